"""16x8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: jitted kernels and prepared ops == the spec.

(1) the int64 ``MultiplyByQuantizedMultiplier`` (kernel == spec over its whole input range, plus
hand-computed values); (2) the prepared ops (which call :mod:`tinyzo.kernels.conv16`) against
:mod:`tinyzo.spec.conv16` on random models of tests/single_op.py (every 16x8 type: int64 bias, int32
bias, no bias, grouped, per-tensor/per-channel weights, activations, both rounding modes) and on
extreme values; (3) the refusals (one-line errors naming what is missing). TFLM itself:
tests/test_conv_types_tflm.py. Runs under NUMBA_DISABLE_JIT too (tests/test_nojit.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from single_op import TYPED_CASES, random_inputs

import tinyzo.kernels.arith as k
import tinyzo.spec.arith as s
import tinyzo.spec.conv as spec8
import tinyzo.spec.conv16 as spec16
from tinyzo.errors import ArithmeticContractError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels.conv16 import conv2d_s16_gemm, depthwise_conv2d_s16, requantize_gemm_s16
from tinyzo.ops.conv_paths import ConvPathError
from tinyzo.quant import QuantParams

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TYPES_16 = [n for n in TYPED_CASES if "16x8" in n]


# ----------------------------------------------------------------------------- (1) int64 MBQM
X47 = st.integers(-(2**47), 2**47 - 1)
X_EDGE = st.sampled_from([-(2**47), 2**47 - 1, -1, 0, 1, 2**31, -(2**31) - 1, 12345678901])
QM = st.one_of(st.integers(0, s.INT32_MAX), st.sampled_from([0, 1 << 30, 0x7FFEFFFF, 0x7FFF0000, s.INT32_MAX]))


@settings(max_examples=100 if NO_JIT else 2000, deadline=None)
@given(st.one_of(X47, X_EDGE), QM, st.integers(-31, s.INT64_MBQM_MAX_SHIFT))
@example(2**47 - 1, s.INT32_MAX, 14)  # the largest product: (2**47 - 1) * 0x7FFF < 2**62
@example(-(2**47), s.INT32_MAX, 14)
def test_mbqm_int64_kernel_equals_spec(x, qm, shift):
    assert k.multiply_by_quantized_multiplier_int64(x, qm, shift) == s.multiply_by_quantized_multiplier_int64(
        x, qm, shift)


def test_mbqm_int64_known_values():
    # reduced multiplier: (2**30 + 2**15) >> 16 = 2**14; x * 2**14 / 2**(15 - shift) = x / 2 * 2**shift
    f = s.multiply_by_quantized_multiplier_int64
    assert f(10, 1 << 30, 0) == 5 and f(11, 1 << 30, 0) == 6 and f(-11, 1 << 30, 0) == -5  # ties round up
    assert f(3, 1 << 30, 2) == 6
    assert f(1 << 40, 1 << 30, -31) == 256
    # 0x7FFF0000 and above use 0x7FFF (the rounded value 2**15 would not fit the reduction)
    assert f(1 << 20, s.INT32_MAX, 0) == f(1 << 20, 0x7FFF0000, 0) == (0x7FFF << 20) >> 15
    # the int32 cast wraps
    assert f(2**46, 1 << 30, 14) == s.wrap_int32(2**46 * 2**14 >> 1)
    with pytest.raises(ValueError, match="shift"):
        f(1, 1 << 30, 15)


# ----------------------------------------------------------------------------- (2) op == spec
def spec_output(model, x):
    """The spec's output for a one-operator CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED model (any type)."""
    op, p = model.operators[0], model.prepared[0]
    w = model.tensors[op.inputs[1]].data
    b = model.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] != -1 else None
    mult, shift = p.multiplier.tolist(), p.shift.tolist()
    geo = {}
    if op.opcode != "FULLY_CONNECTED":
        geo = {"stride": (p.stride_h, p.stride_w), "dilation": (p.dil_h, p.dil_w),
                   "padding": op.options.get("padding", "VALID")}
    if p.int16:
        lim = {"act_min": p.act_min, "act_max": p.act_max}
        if op.opcode == "CONV_2D":
            return spec16.conv2d_s16(x, w, b, multiplier=mult, shift=shift, acc_bits=p.acc_bits,
                                     rounding=model.rounding, **geo, **lim)
        if op.opcode == "DEPTHWISE_CONV_2D":
            return spec16.depthwise_conv2d_s16(x, w, b, depth_multiplier=p.depth_multiplier, multiplier=mult,
                                               shift=shift, **geo, **lim)
        return spec16.fully_connected_s16(x.reshape(-1, p.k_len), w, b, multiplier=mult, shift=shift,
                                          input_offset=p.input_offset, filter_offset=p.weights_offset,
                                          output_offset=p.output_offset, acc_bits=p.acc_bits,
                                          rounding=model.rounding, **lim)
    q = {"input_offset": p.input_offset, "output_offset": p.output_offset, "multiplier": mult, "shift": shift,
             "act_min": p.act_min, "act_max": p.act_max, "rounding": model.rounding}
    if op.opcode == "CONV_2D":
        return spec8.conv2d_s8(x, w, b, **geo, **q)
    if op.opcode == "DEPTHWISE_CONV_2D":
        return spec8.depthwise_conv2d_s8(x, w, b, depth_multiplier=p.depth_multiplier, **geo, **q)
    return spec8.fully_connected_s8(x.reshape(-1, p.k_len), w, b, filter_offset=p.weights_offset, **q)


@PROP
@given(name=st.sampled_from(TYPES_16), seed=st.integers(0, 2**32 - 1), rounding=st.sampled_from(["double", "single"]))
def test_16x8_ops_equal_spec(name, seed, rounding):
    rng = np.random.default_rng(seed)
    model = TYPED_CASES[name](rng, rounding)
    (x,) = random_inputs(model, 2, rng)
    y = model(x)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y.reshape(-1), spec_output(model, x).reshape(-1))


def _model(opcode, x_shape, w, bias, *, s_in=1e-3, s_w=None, s_out=1e-3, act="NONE", opts=None, w_zp=0,
           rounding="double"):
    """A one-operator 16x8 model with explicit arrays (output shape computed by the spec)."""
    w = np.asarray(w, np.int8)
    n_out = w.shape[3] if opcode == "DEPTHWISE_CONV_2D" else w.shape[0]
    s_w = np.full(n_out, 1e-3, np.float32) if s_w is None else np.asarray(s_w, np.float32)
    opts = dict(opts or {}, fused_activation_function=act)
    if opcode == "FULLY_CONNECTED":
        y_shape = (x_shape[0], n_out)
    else:
        opts = {"padding": "VALID", "stride_h": 1, "stride_w": 1, **opts}
        y = spec16.conv2d_s16 if opcode == "CONV_2D" else spec16.depthwise_conv2d_s16
        kw = {"padding": opts["padding"], "stride": (opts["stride_h"], opts["stride_w"])}
        y_shape = y(np.zeros(x_shape, np.int16), w if opcode == "DEPTHWISE_CONV_2D" else w[:, :, :, :1].repeat(
            x_shape[3], axis=3) if w.shape[3] != x_shape[3] else w, None, multiplier=[0] * n_out, shift=[0] * n_out,
                    **kw).shape
    tensors = [Tensor("x", x_shape, np.int16, QuantParams([s_in], [0])),
               Tensor("w", w.shape, np.int8, QuantParams(s_w, np.full(s_w.size, w_zp), 3 if opcode ==
                                                         "DEPTHWISE_CONV_2D" else 0), w)]
    ins = (0, 1, -1)
    if bias is not None:
        bias = np.asarray(bias)
        tensors.append(Tensor("b", (n_out,), bias.dtype, QuantParams(np.float32(s_in) * s_w, np.zeros(s_w.size)),
                              bias))
        ins = (0, 1, 2)
    tensors.append(Tensor("y", y_shape, np.int16, QuantParams([s_out], [0])))
    return Model(tensors, [Operator(opcode, ins, (len(tensors) - 1,), opts)], (0,), (len(tensors) - 1,),
                 rounding=rounding)


@pytest.mark.parametrize("opcode", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_extreme_values_equal_spec(opcode):
    """int16 extremes times +-127/-128 weights, biases at the edge of the int64 contract, shift 14 and -31."""
    rng = np.random.default_rng(3)
    if opcode == "FULLY_CONNECTED":
        x_shape, w = (4, 600), rng.choice([-128, 127], size=(3, 600))
    elif opcode == "CONV_2D":
        x_shape, w = (4, 3, 3, 5), rng.choice([-128, 127], size=(3, 2, 2, 5))
    else:
        x_shape, w = (4, 3, 3, 3), rng.choice([-128, 127], size=(1, 2, 2, 3))
    x = rng.choice(np.array([-32768, 32767, -32767, 0], np.int16), size=x_shape)
    bound = (np.abs(w).reshape(-1, 3).sum(axis=0) if opcode == "DEPTHWISE_CONV_2D"
             else np.abs(w).reshape(3, -1).sum(axis=1)) * 2**15
    for bias in (2**47 - 1 - bound, -(2**47 - 1 - bound), np.zeros(3, np.int64)):
        for real, want_shift in ((2**13.5, 14), (1.0, 1), (2.0**-30, -29), (2.0**-40, 0)):  # 2**-40: flushed to 0
            m = _model(opcode, x_shape, w, np.asarray(bias, np.int64), s_out=1e-6 / real)
            assert int(m.prepared[0].shift.max()) == want_shift
            np.testing.assert_array_equal(m(x).reshape(-1), spec_output(m, x).reshape(-1))


def test_int32_accumulator_wraps_like_c():
    """An int32 bias selects TFLM's int32 accumulator: the sum wraps modulo 2**32 before requantizing."""
    w = np.full((1, 1, 1, 1), 127, np.int8)
    x = np.full((1, 1, 1, 1), 32767, np.int16)
    bias = np.array([2**31 - 1], np.int32)  # 127 * 32767 + 2**31 - 1 wraps to a negative accumulator
    m = _model("CONV_2D", (1, 1, 1, 1), w, bias, s_out=1e-3 * 2**20)
    assert m.prepared[0].acc_bits == 32
    want = s.multiply_by_quantized_multiplier(s.wrap_int32(127 * 32767 + 2**31 - 1), int(m.prepared[0].multiplier[0]),
                                              int(m.prepared[0].shift[0]))
    assert want < 0 and int(m(x)[0, 0, 0, 0]) == want
    m64 = _model("CONV_2D", (1, 1, 1, 1), w, bias.astype(np.int64), s_out=1e-3 * 2**20)
    assert m64.prepared[0].acc_bits == 64 and int(m64(x)[0, 0, 0, 0]) > 0


def test_no_bias_accumulator_from_quantized_bias_type():
    w = np.ones((2, 1, 1, 3), np.int8)
    assert _model("CONV_2D", (1, 2, 2, 3), w, None).prepared[0].acc_bits == 64
    assert _model("CONV_2D", (1, 2, 2, 3), w, None, opts={"quantized_bias_type": "INT32"}).prepared[0].acc_bits == 32
    fc = _model("FULLY_CONNECTED", (1, 3), np.ones((2, 3)), None, opts={"quantized_bias_type": "INT32"})
    assert fc.prepared[0].acc_bits == 32


def test_kernels_directly_equal_spec():
    """The three kernels called with hand-built operands (no prepare) on a random layer."""
    rng = np.random.default_rng(9)
    x = rng.integers(-32768, 32768, size=(2, 5, 4, 3), dtype=np.int16)
    mult = rng.integers(1 << 30, 2**31 - 1, size=4).astype(np.int32)
    shift = rng.integers(-20, 3, size=4).astype(np.int32)
    bias = rng.integers(-(2**30), 2**30, size=4).astype(np.int64)
    w = rng.integers(-128, 128, size=(4, 2, 2, 3), dtype=np.int8)
    m = _model("CONV_2D", (1, 5, 4, 3), w, bias)
    p = m.prepared[0]
    want = spec16.conv2d_s16(x, w, bias, multiplier=mult, shift=shift, act_min=-1000, act_max=30000)
    out = np.empty(want.shape, np.int16)
    params = p.conv_params.copy()
    params["act_min"], params["act_max"] = -1000, 30000
    conv2d_s16_gemm(x, np.ascontiguousarray(w.reshape(4, -1).T.astype(np.float64)), bias, mult, shift, params, 0,
                    np.empty((3, 12)), np.empty((3, 4)), out)
    np.testing.assert_array_equal(out, want)
    wd = rng.integers(-128, 128, size=(1, 2, 2, 6), dtype=np.int8)
    bias6, mult6, shift6 = np.resize(bias, 6), np.resize(mult, 6), np.resize(shift, 6)
    want = spec16.depthwise_conv2d_s16(x, wd, bias6, depth_multiplier=2, multiplier=mult6, shift=shift6)
    out = np.empty(want.shape, np.int16)
    depthwise_conv2d_s16(x, wd, bias6, 1, 1, 1, 1, 0, 0, 2, mult6, shift6, -32768, 32767, np.empty(6, np.int64), out)
    np.testing.assert_array_equal(out, want)
    rows, wf = x.reshape(-1, 12), w.reshape(4, 12)
    want = spec16.fully_connected_s16(rows, wf, bias.astype(np.int32), multiplier=mult, shift=shift, acc_bits=32,
                                      output_offset=7, rounding="single")
    out = np.empty(want.shape, np.int16)
    raw = rows.astype(np.float64) @ wf.T.astype(np.float64)
    requantize_gemm_s16(raw, bias.astype(np.int32).astype(np.int64), mult, shift, 1, 1, 7, -32768, 32767, out)
    np.testing.assert_array_equal(out, want)


# ----------------------------------------------------------------------------- (3) refusals
def _refusal(opcode, **kw):
    w = kw.pop("w", np.ones((1, 1, 1, 2) if opcode != "FULLY_CONNECTED" else (2, 2), np.int8))
    x_shape = kw.pop("x_shape", (1, 2, 2, 2) if opcode != "FULLY_CONNECTED" else (1, 2))
    return _model(opcode, x_shape, w, kw.pop("bias", None), **kw)


def test_refusals_name_what_is_missing():
    with pytest.raises(UnsupportedOperatorError, match="int64 .*TFLite Micro reads it as int64"):
        _refusal("DEPTHWISE_CONV_2D", w=np.ones((1, 1, 1, 2)), bias=np.zeros(2, np.int32))
    with pytest.raises(UnsupportedOperatorError, match="int16 activations .* int64 or int32 bias"):
        _refusal("CONV_2D", bias=np.zeros(1, np.int16))
    with pytest.raises(ArithmeticContractError, match="shift of 15 > 14"):
        _refusal("CONV_2D", s_out=1e-6 / 2**14.5, bias=np.zeros(1, np.int64))
    with pytest.raises(ArithmeticContractError, match="2\\*\\*47"):
        _refusal("FULLY_CONNECTED", bias=np.array([2**47, 0], np.int64))
    # the int32 accumulator has no such contract (it wraps)
    _refusal("FULLY_CONNECTED", bias=np.array([2**31 - 1, 0], np.int32))
    with pytest.raises(ConvPathError, match="16x8"):
        _refusal("CONV_2D").prepared[0].set_path("int")


def test_refuses_nonzero_int16_zero_point_and_mixed_types():
    m = _refusal("CONV_2D", bias=np.zeros(1, np.int64))
    x, w, b, y = m.tensors
    for bad_x, bad_y, msg in ((Tensor("x", x.shape, np.int16, QuantParams([1e-3], [5])), y, "zero point 5"),
                              (x, Tensor("y", y.shape, np.int8, QuantParams([1e-3], [0])), "must be int16"),
                              (Tensor("x", x.shape, np.int32, QuantParams([1e-3], [0])), y, "int8 and int16")):
        with pytest.raises(UnsupportedOperatorError, match=msg):
            Model([bad_x, w, b, bad_y], m.operators, (0,), (3,))
    with pytest.raises(UnsupportedOperatorError, match="int8 activations take an int32 bias"):
        Model([Tensor("x", x.shape, np.int8, QuantParams([1e-3], [0])), w, b,
               Tensor("y", y.shape, np.int8, QuantParams([1e-3], [0]))], m.operators, (0,), (3,))


def test_16x8_layers_are_not_trainable():
    m = _refusal("CONV_2D", bias=np.zeros(1, np.int64))
    assert m.trainable_ops() == []
