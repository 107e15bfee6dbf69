"""TRANSPOSE_CONV (int8 and 16x8): op == spec (hypothesis), padding, int64 requantization, refusals, TFLM.

(1) random shapes, strides, SAME/VALID, per-tensor/per-channel weights, biases and roundings through
the prepared op against :mod:`tinyzo.spec.transpose_conv` (the spec's scattered sums are also checked
against a numpy dense formulation); (2) TFLite's padding and int64 ``MultiplyByQuantizedMultiplier``
on hand-computed values, the jitted primitive == the spec; (3) what is refused; (4) hand-picked
models run by TFLM (the random sweep is in tests/test_ops_tflm.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyzo.errors import ArithmeticContractError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels.arith import multiply_by_quantized_multiplier_int64 as mbqm64_jit
from tinyzo.quant import QuantParams
from tinyzo.spec import transpose_conv as S
from tinyzo.spec.arith import multiply_by_quantized_multiplier_int64 as mbqm64

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tconv_model(in_hw, w, bias, *, out_hw, stride=(1, 1), padding="SAME", act="NONE", int16=False, s_in=0.02,
                z_in=3, s_w=(0.01,), s_out=0.1, z_out=-5, rounding="double", bias_index=True, shape_data=None):
    """A one-operator TRANSPOSE_CONV model: input (1, H, W, C), filter w (OHWI), bias (or None)."""
    o, _, _, c = w.shape
    dt = np.int16 if int16 else np.int8
    zi, zo = (0, 0) if int16 else (z_in, z_out)
    s_w = np.asarray(s_w, np.float32)
    tensors = [Tensor("shape", (4,), np.int32, None, np.int32(shape_data or [1, out_hw[0], out_hw[1], o])),
               Tensor("w", w.shape, np.int8, QuantParams(s_w, np.zeros(s_w.size), 0), w),
               Tensor("x", (1,) + tuple(in_hw) + (c,), dt, QuantParams([s_in], [zi])),
               Tensor("y", (1,) + tuple(out_hw) + (o,), dt, QuantParams([s_out], [zo]))]
    inputs = (0, 1, 2)
    if bias is not None:
        tensors.append(Tensor("b", (o,), bias.dtype, QuantParams(np.float32(s_in) * s_w, np.zeros(s_w.size)), bias))
        inputs = (0, 1, 2, 4)
    elif not bias_index:
        inputs = (0, 1, 2, -1)
    opts = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1], "fused_activation_function": act}
    return Model(tensors, [Operator("TRANSPOSE_CONV", inputs, (3,), opts)], (2,), (3,), rounding=rounding)


def spec_of(m, x):
    p = m.prepared[0]
    w = m.tensors[1].data
    bias = m.tensors[4].data if len(m.tensors) > 4 and 4 in m.operators[0].inputs else None
    o = m.operators[0].options
    kw = {"out_hw": (p.out_h, p.out_w), "stride": (o["stride_h"], o["stride_w"]), "padding": o["padding"],
          "multiplier": p.multiplier.tolist(), "shift": p.shift.tolist(), "act_min": p.act_min, "act_max": p.act_max}
    if p.int16:
        return S.transpose_conv_s16(x, w, bias, **kw)
    return S.transpose_conv_s8(x, w, bias, input_offset=p.input_offset, output_offset=p.output_offset,
                               rounding=m.rounding, **kw)


# ----------------------------------------------------------------------------- (1) op == spec
@st.composite
def tconv_case(draw):
    out_hw = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    sizes = [S.transpose_conv_out_size(padding, o, kk, s) for o, kk, s in zip(out_hw, k, stride)]
    if draw(st.booleans()) or not all(sizes):  # any input size: TFLM's scatter is defined for it
        sizes = [draw(st.integers(1, 5)), draw(st.integers(1, 5))]
    c, o = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    return tuple(sizes), out_hw, k, stride, padding, c, o


@PROP
@given(case=tconv_case(), int16=st.booleans(), per_channel=st.booleans(), bias_kind=st.integers(0, 2),
       act=st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]), rounding=st.sampled_from(["double", "single"]),
       n=st.integers(1, 3), z_in=st.integers(-128, 127), z_out=st.integers(-128, 127), seed=st.integers(0, 2**32 - 1))
def test_prop_transpose_conv_equals_spec(case, int16, per_channel, bias_kind, act, rounding, n, z_in, z_out, seed):
    in_hw, out_hw, k, stride, padding, c, o = case
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, size=(o,) + k + (c,)).astype(np.int8)
    s_w = np.exp(rng.uniform(np.log(1e-3), np.log(0.05), size=o if per_channel else 1))
    if int16:
        bias = None if bias_kind == 0 else rng.integers(-(2**36), 2**36, size=o).astype(
            np.int64 if bias_kind == 1 else np.int16)
        s_in, s_out = 1e-3, 1e-3 * float(np.median(s_w)) * 64 * np.sqrt(c * k[0] * k[1]) * rng.uniform(0.1, 4)
    else:
        bias = None if bias_kind == 0 else rng.integers(-(2**31), 2**31, size=o).astype(np.int32) if bias_kind == 2 \
            else rng.integers(-30000, 30000, size=o).astype(np.int32)
        s_in, s_out = 0.02, 0.02 * float(np.median(s_w)) * np.sqrt(c * k[0] * k[1]) * rng.uniform(1, 100)
    m = tconv_model(in_hw, w, bias, out_hw=out_hw, stride=stride, padding=padding, act=act, int16=int16, s_in=s_in,
                    z_in=z_in, s_w=s_w, s_out=s_out, z_out=z_out, rounding=rounding)
    info = np.iinfo(np.int16 if int16 else np.int8)
    x = rng.integers(info.min, info.max, size=(n,) + in_hw + (c,), endpoint=True).astype(info.dtype)
    np.testing.assert_array_equal(m(x), spec_of(m, x))


def _dense_scatter(x, w, out_hw, stride, pad, offset):
    """numpy formulation of the scatter: tap (fy, fx) adds ``x @ w[:, fy, fx, :]^T`` to the strided output grid.

    The full (uncropped) result has output position ``oy`` at row ``oy + pad``; it is cropped to the output.
    """
    n, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    rows = max((h - 1) * stride[0] + kh, pad[0] + out_hw[0])
    cols = max((wd - 1) * stride[1] + kw, pad[1] + out_hw[1])
    full = np.zeros((n, rows, cols, o), np.int64)
    xo = x.astype(np.int64) + offset
    for fy in range(kh):
        for fx in range(kw):
            full[:, fy:fy + (h - 1) * stride[0] + 1:stride[0], fx:fx + (wd - 1) * stride[1] + 1:stride[1], :] += (
                xo @ w[:, fy, fx, :].astype(np.int64).T)
    return full[:, pad[0]:pad[0] + out_hw[0], pad[1]:pad[1] + out_hw[1], :]


@settings(max_examples=30, deadline=None)
@given(case=tconv_case(), seed=st.integers(0, 2**32 - 1))
def test_spec_accumulators_equal_dense_formulation(case, seed):
    """The spec's scattered sums == an independent numpy formulation (before requantization)."""
    in_hw, out_hw, k, stride, padding, c, o = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(2, *in_hw, c)).astype(np.int8)
    w = rng.integers(-127, 128, size=(o,) + k + (c,)).astype(np.int8)
    pad = S.transpose_conv_padding(padding, stride[0], stride[1], out_hw[0], out_hw[1], k[0], k[1])
    got = np.array(S._accumulate(x, w, out_hw, stride, pad, 7), np.int64)
    np.testing.assert_array_equal(got, _dense_scatter(x, w, out_hw, stride, pad, 7))


# ----------------------------------------------------------------------------- (2) padding, int64 requantization
def test_padding_hand_computed():
    # SAME, stride 2, output 8, filter 3: forward output 4, total (4-1)*2+3-8 = 1 -> pad 0 (offset 1 unused)
    assert S.transpose_conv_padding("SAME", 2, 2, 8, 8, 3, 3) == (0, 0)
    # SAME, stride 1, output 5, filter 3: total 2 -> pad 1; filter 4: total 3 -> pad 1
    assert S.transpose_conv_padding("SAME", 1, 1, 5, 5, 3, 4) == (1, 1)
    # VALID, stride 2, output 9, filter 3: forward output 4, total 0
    assert S.transpose_conv_padding("VALID", 2, 1, 9, 9, 3, 3) == (0, 0)
    # VALID, output 1, filter 4, stride 1: forward size (1 + 1 - 4) / 1 < 0 fails: TFLite leaves 0, 0
    assert S.transpose_conv_padding("VALID", 1, 1, 1, 6, 4, 3) == (0, 0)
    # VALID with C truncation: (2 + 2 - 5) / 2 = 0 (not -1): forward size 0, total (0-1)*2+5-2 = 1 -> 0
    assert S.transpose_conv_out_size("VALID", 2, 5, 2) == 0
    assert S.transpose_conv_padding("SAME", 3, 3, 4, 7, 4, 2) == (1, 0)


def test_mbqm_int64_hand_computed():
    # multiplier 2**30 (0.5), shift 0: reduced 2**14, x * 2**14 / 2**15 rounded half up
    assert mbqm64(3, 1 << 30, 0) == 2
    assert mbqm64(-3, 1 << 30, 0) == -1  # (-3 * 2**14 + 2**14) >> 15 = floor(-1) = -1
    assert mbqm64(-5, 1 << 30, 0) == -2  # floor(-2) = -2: ties go up
    assert mbqm64(1000, 0x7FFFFFFF, 1) == 2000  # 0x7FFF reduced multiplier: 1000 * 32767 / 2**14
    assert mbqm64(2**46, 1 << 30, -31) == 2**14  # the smallest shift
    v = ((2**47 - 1) * 0x7FFF + (1 << 7)) >> 8  # beyond int32: the (int32_t) conversion wraps
    assert mbqm64(2**47 - 1, 0x7FFFFFFF, 7) == ((v + 2**31) % 2**32) - 2**31
    with pytest.raises(ValueError):   # outside the defined shifts (the right shift 15 - shift must be >= 1)
        mbqm64(5, 1 << 30, 15)


@settings(max_examples=300, deadline=None)
@given(x=st.integers(-(2**47), 2**47 - 1), m=st.integers(0, 2**31 - 1), shift=st.integers(-31, 7))
def test_mbqm_int64_jit_equals_spec(x, m, shift):
    assert int(mbqm64_jit(np.int64(x), np.int32(m), shift)) == mbqm64(x, m, shift)


# ----------------------------------------------------------------------------- (3) refusals
def _w(o=2, k=3, c=2):
    return np.arange(o * k * k * c, dtype=np.int64).reshape(o, k, k, c).astype(np.int8) % 100


@pytest.mark.parametrize("kwargs, bias, match", [
    ({"shape_data": [1, 5, 5, 3]}, None, "output shape tensor"),
    ({"s_w": (0.01, 0.02, 0.03)}, None, "3 scales for 2 output channels"),
    ({"int16": True}, np.zeros(2, np.int32), "int64 or int16"),
    ({}, np.zeros(2, np.int64), "int32 tensor"),
    ({}, np.zeros(3, np.int32), "of 2 values"),
])
def test_refusals(kwargs, bias, match):
    with pytest.raises(UnsupportedOperatorError, match=match):
        tconv_model((2, 2), _w(), bias, out_hw=(4, 4), stride=(2, 2), **kwargs)


def test_refuses_int16_zero_point_and_asymmetric_filter():
    m = tconv_model((2, 2), _w(), None, out_hw=(4, 4), stride=(2, 2), int16=True)
    m.tensors[2] = Tensor("x", (1, 2, 2, 2), np.int16, QuantParams([0.01], [3]))
    with pytest.raises(UnsupportedOperatorError, match="zero point 3"):
        Model(m.tensors, m.operators, m.inputs, m.outputs)
    m = tconv_model((2, 2), _w(), None, out_hw=(4, 4), stride=(2, 2))
    m.tensors[1] = Tensor("w", (2, 3, 3, 2), np.int8, QuantParams([0.01], [1]), _w())
    with pytest.raises(UnsupportedOperatorError, match="symmetric"):
        Model(m.tensors, m.operators, m.inputs, m.outputs)
    m.tensors[1] = Tensor("w", (2, 3, 3, 2), np.int8, QuantParams([0.01], [0]))  # not a constant
    with pytest.raises(UnsupportedOperatorError, match="constant"):
        Model(m.tensors, m.operators, (1, 2), m.outputs)


def test_refuses_16x8_outside_int64_requantization_contract():
    with pytest.raises(ArithmeticContractError, match="shift > 7"):
        tconv_model((2, 2), _w(), None, out_hw=(4, 4), stride=(2, 2), int16=True, s_in=1.0, s_w=(1.0,), s_out=1e-3)
    with pytest.raises(ArithmeticContractError, match="2\\*\\*47"):
        tconv_model((2, 2), _w(), np.full(2, 2**47 - 10, np.int64), out_hw=(4, 4), stride=(2, 2), int16=True)


# ----------------------------------------------------------------------------- (4) TFLM, hand-picked
@pytest.mark.oracle
@pytest.mark.parametrize("int16", [False, True])
def test_hand_picked_models_equal_tflm(int16):
    """A 2x upsampling (stride 2, SAME, output 2*in and 2*in - 1), a VALID 3x3 and a bias given as index -1."""
    from single_op import compare_with_tflm

    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, size=(3, 3, 3, 4)).astype(np.int8)
    bias = rng.integers(-5000, 5000, size=3).astype(np.int64 if int16 else np.int32)
    s = {"s_in": 1e-3, "s_out": 0.05} if int16 else {}
    models = [tconv_model((4, 4), w, bias, out_hw=(8, 8), stride=(2, 2), int16=int16, act="RELU", **s),
              tconv_model((4, 4), w, bias, out_hw=(7, 7), stride=(2, 2), int16=int16, **s),
              tconv_model((3, 2), w, None, out_hw=(5, 4), stride=(1, 1), padding="VALID", int16=int16, **s),
              tconv_model((3, 3), w, None, out_hw=(6, 6), stride=(2, 2), int16=int16, bias_index=False, **s)]
    for k, m in enumerate(models):
        n, d = compare_with_tflm(m, n=3, seed=k)
        assert d == 0 and n > 0, (k, d, n)
