"""AVERAGE_POOL_2D, MAX_POOL_2D, MEAN: jitted kernels == pure-Python spec, ops == TFLite Micro.

(1) hypothesis property tests of the kernels (and the MEAN op's axis handling)
against :mod:`tinyzo.spec.pool`; (2) person_detect's AVERAGE_POOL_2D on the
tensor TFLM computes before it, and single-op models (written with
``write_tflite``) for several strides, paddings, activations, mean axes,
keep_dims and quantization parameters, run by the TFLM interpreter.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_elementwise import assert_same_as_tflm, qp, rand_int8

from tinyzo.errors import UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels import pool as K
from tinyzo.quant import quantize_multiplier
from tinyzo.spec import pool as S

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUNDINGS = ["double", "single"]

scales = st.one_of(st.floats(1e-4, 10.0), st.sampled_from([1e-6, 0.00390625, 1.0, 1e3])).map(lambda s: float(np.float32(s)))
zero_points = st.one_of(st.integers(-128, 127), st.sampled_from([-128, 127, 0]))


# ----------------------------------------------------------------------------- (1) kernels == spec
@st.composite
def pool_case(draw):
    h, w, c = draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 3))
    fh, fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    out_h, out_w, pad_h, pad_w, _, _ = S.compute_padding_height_width(sh, sw, 1, 1, h, w, fh, fw, padding)
    assume(out_h >= 1 and out_w >= 1)
    lo = draw(st.integers(-128, 127))
    hi = draw(st.integers(lo, 127))
    return {"shape": (draw(st.integers(1, 2)), h, w, c), "out_h": out_h, "out_w": out_w, "stride_h": sh,
            "stride_w": sw, "filter_h": fh, "filter_w": fw, "pad_h": pad_h, "pad_w": pad_w, "act_min": lo, "act_max": hi}


@PROP
@given(case=pool_case(), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["average", "max"]))
def test_prop_pool_kernels_equal_spec(case, seed, kind):
    case = dict(case)
    x = rand_int8(np.random.default_rng(seed), case.pop("shape"))
    x.reshape(-1)[0] = -128
    args = [case[k] for k in ("stride_h", "stride_w", "filter_h", "filter_w", "pad_h", "pad_w", "act_min", "act_max")]
    out = np.empty((x.shape[0], case["out_h"], case["out_w"], x.shape[3]), np.int8)
    kernel, spec = (K.average_pool_s8, S.average_pool_s8) if kind == "average" else (K.max_pool_s8, S.max_pool_s8)
    kernel(x, *args, out)
    np.testing.assert_array_equal(out, spec(x, case["out_h"], case["out_w"], *args))


def test_average_pool_rounds_half_away_from_zero():
    # window of 2: sums 3 -> 2 (1.5 up), -3 -> -2 (-1.5 down), 1 -> 1 (0.5 up), -1 -> -1
    x = np.array([1, 2, -1, -2, 0, 1, 0, -1], np.int8).reshape(1, 1, 8, 1)
    out = np.empty((1, 1, 4, 1), np.int8)
    K.average_pool_s8(x, 1, 2, 1, 2, 0, 0, -128, 127, out)
    np.testing.assert_array_equal(out.reshape(-1), [2, -2, 1, -1])


def test_compute_padding_height_width_known_values():
    # SAME 5x5, filter 3, stride 2: out 3, total padding 2 -> 1 each side
    assert S.compute_padding_height_width(2, 2, 1, 1, 5, 5, 3, 3, "SAME") == (3, 3, 1, 1, 0, 0)
    # SAME 4x4, filter 3, stride 2: out 2, total padding 1 -> 0 before, offset 1 after
    assert S.compute_padding_height_width(2, 2, 1, 1, 4, 4, 3, 3, "SAME") == (2, 2, 0, 0, 1, 1)
    # VALID 3x3, filter 3, stride 2 (person_detect's pool): out 1, no padding
    assert S.compute_padding_height_width(2, 2, 1, 1, 3, 3, 3, 3, "VALID") == (1, 1, 0, 0, 0, 0)


def test_mean_output_multiplier_known_values():
    # n = 20: s = 4, m * 16 / 20; n = 1: unchanged
    assert S.mean_output_multiplier(1 << 30, 1, 20) == ((1 << 34) // 20, -3)
    assert S.mean_output_multiplier(1 << 30, -2, 1) == (1 << 30, -2)
    # s is capped at 31 + shift
    assert S.mean_output_multiplier(1 << 30, -29, 1 << 10) == (((1 << 30) << 2) // (1 << 10), -31)


@st.composite
def mean_case(draw):
    rank = draw(st.integers(1, 5))
    shape = (draw(st.integers(1, 2)),) + tuple(draw(st.integers(1, 4)) for _ in range(rank - 1))
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=0, max_size=3))
    resolved = sorted({a % rank for a in axes})
    assume(len(resolved) <= 2)
    keep = draw(st.booleans())
    assume(keep or 0 not in resolved)
    return shape, axes, keep


@PROP
@given(case=mean_case(), s_in=scales, s_out=scales, z_in=zero_points, z_out=zero_points,
       rounding=st.sampled_from(ROUNDINGS), seed=st.integers(0, 2**32 - 1))
def test_prop_mean_op_equals_spec(case, s_in, s_out, z_in, z_out, rounding, seed):
    """The MEAN op (transpose + 2-D kernel) equals the spec's index-mapping reduction, per sample."""
    shape, axes, keep = case
    rank = len(shape)
    resolved = sorted({a % rank for a in axes})
    out_shape = tuple(1 if k in resolved else d for k, d in enumerate(shape)) if keep else tuple(
        d for k, d in enumerate(shape) if k not in resolved)
    file_in = (1,) + shape[1:]
    file_out = (1,) + out_shape[1:]
    m = _mean_model(file_in, axes, keep, (s_in, z_in), (s_out, z_out), file_out, rounding)
    x = rand_int8(np.random.default_rng(seed), shape)
    y = m(x)
    mult, sh = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)), rounding)
    per_sample_axes = [a for a in resolved if a != 0]
    want = np.stack([S.mean_s8(x[i : i + 1], per_sample_axes, True, z_in, mult, sh, z_out, rounding).reshape(file_out)
                     for i in range(shape[0])])
    np.testing.assert_array_equal(y, want.reshape(y.shape))


@PROP
@given(m_rows=st.integers(1, 6), k=st.integers(1, 40), z_in=zero_points, z_out=zero_points, s_in=scales, s_out=scales,
       rounding=st.sampled_from(ROUNDINGS), seed=st.integers(0, 2**32 - 1))
def test_prop_mean_kernel_equals_spec(m_rows, k, z_in, z_out, s_in, s_out, rounding, seed):
    x = rand_int8(np.random.default_rng(seed), (m_rows, k))
    mult, sh = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)), rounding)
    fm, fs = S.mean_output_multiplier(mult, sh, k)
    out = np.empty(m_rows, np.int8)
    K.mean_s8(x, z_in, fm, fs, z_out, 0 if rounding == "double" else 1, out)
    np.testing.assert_array_equal(out, S.mean_s8(x, [1], False, z_in, mult, sh, z_out, rounding))


@PROP
@given(m_rows=st.integers(1, 4), k=st.integers(1, 300), inner=st.integers(1, 40), z_in=zero_points,
       z_out=zero_points, s_in=scales, s_out=scales, rounding=st.sampled_from(ROUNDINGS), seed=st.integers(0, 2**32 - 1))
def test_prop_mean_block_kernel_equals_row_kernel(m_rows, k, inner, z_in, z_out, s_in, s_out, rounding, seed):
    """The in-place MEAN over the middle axis (adjacent reduced axes) == the row kernel on the transposed copy."""
    rng = np.random.default_rng(seed)
    x = rand_int8(rng, (m_rows, k, inner))
    if rng.integers(0, 2):  # saturated inputs: the largest sums
        x[:] = rng.choice(np.array([-128, 127], np.int8))
    mult, sh = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)), rounding)
    fm, fs = S.mean_output_multiplier(mult, sh, k)
    r = 0 if rounding == "double" else 1
    got = np.empty((m_rows, inner), np.int8)
    K.mean_block_s8(x, z_in, fm, fs, z_out, r, np.empty(inner, np.int32), got)
    want = np.empty(m_rows * inner, np.int8)
    K.mean_s8(np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(-1, k), z_in, fm, fs, z_out, r, want)
    np.testing.assert_array_equal(got.reshape(-1), want)


# ----------------------------------------------------------------------------- ops
def _pool_model(kind, in_shape, out_shape, q_in, q_out, padding, stride, filt, act="NONE"):
    tensors = [Tensor("x", in_shape, np.int8, qp(*q_in)), Tensor("y", out_shape, np.int8, qp(*q_out))]
    opts = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1], "filter_height": filt[0],
            "filter_width": filt[1], "fused_activation_function": act}
    return Model(tensors, [Operator(kind, (0,), (1,), opts)], (0,), (1,))


def _mean_model(in_shape, axes, keep, q_in, q_out, out_shape, rounding="double"):
    tensors = [
        Tensor("x", in_shape, np.int8, qp(*q_in)),
        Tensor("axes", (len(axes),), np.int32, data=np.array(axes, np.int32)),
        Tensor("y", out_shape, np.int8, qp(*q_out)),
    ]
    return Model(tensors, [Operator("MEAN", (0, 1), (2,), {"keep_dims": keep})], (0,), (2,), rounding=rounding)


def test_pool_ops_refuse_what_tflm_refuses():
    with pytest.raises(UnsupportedOperatorError, match="same scale"):
        _pool_model("AVERAGE_POOL_2D", (1, 4, 4, 1), (1, 2, 2, 1), (0.1, 0), (0.2, 0), "VALID", (2, 2), (2, 2))
    with pytest.raises(UnsupportedOperatorError, match="differs"):
        _pool_model("MAX_POOL_2D", (1, 4, 4, 1), (1, 3, 3, 1), (0.1, 0), (0.1, 0), "VALID", (2, 2), (2, 2))
    with pytest.raises(UnsupportedOperatorError, match="axes"):
        _mean_model((1, 2, 3, 4), [1, 2, 3], False, (0.1, 0), (0.1, 0), (1,))
    with pytest.raises(UnsupportedOperatorError, match="batch"):
        _mean_model((1, 2, 3), [0], False, (0.1, 0), (0.1, 0), (2, 3))


def test_pool_macs():
    # pools and means add, they do not multiply-accumulate: 0 MACs, the MCU papers' convention
    m = _pool_model("AVERAGE_POOL_2D", (1, 5, 5, 3), (1, 3, 3, 3), (0.1, 0), (0.1, 0), "SAME", (2, 2), (3, 3))
    assert m.prepared[0].macs() == 0
    m = _mean_model((1, 2, 3, 4), [1, 2], True, (0.1, 0), (0.1, 0), (1, 1, 1, 4))
    assert m.prepared[0].macs() == 0


# ----------------------------------------------------------------------------- (2) TFLM
@pytest.mark.oracle
def test_person_detect_average_pool_equals_tflm():
    """person_detect's AVERAGE_POOL_2D (op 27: 3x3 VALID stride 2) on the tensor TFLM feeds it."""
    from conftest import model_path
    from oracle import tflm_run

    schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
    data = model_path("person_detect").read_bytes()
    mt = schema.ModelT.InitFromPackedBuf(data, 0)
    sg = mt.subgraphs[0]
    ops = [op for op in sg.operators if mt.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.AVERAGE_POOL_2D
           or mt.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode == schema.BuiltinOperator.AVERAGE_POOL_2D]
    assert len(ops) == 1
    op = ops[0]
    o = op.builtinOptions
    t_in, t_out = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
    padding = "VALID" if o.padding == schema.Padding.VALID else "SAME"
    acts = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
    m = _pool_model("AVERAGE_POOL_2D", tuple(t_in.shape), tuple(t_out.shape),
                    (float(t_in.quantization.scale[0]), int(t_in.quantization.zeroPoint[0])),
                    (float(t_out.quantization.scale[0]), int(t_out.quantization.zeroPoint[0])),
                    padding, (o.strideH, o.strideW), (o.filterHeight, o.filterWidth), acts[o.fusedActivationFunction])
    x = rand_int8(np.random.default_rng(7), (3, 96, 96, 1))
    _, vals = tflm_run(data, [x], tensors=[int(op.inputs[0]), int(op.outputs[0])])
    pool_in = vals[int(op.inputs[0])].reshape((3,) + tuple(t_in.shape[1:]))
    np.testing.assert_array_equal(m(pool_in), vals[int(op.outputs[0])].reshape((3,) + tuple(t_out.shape[1:])))


POOL_CASES = [
    # (in shape, padding, stride, filter, activation, (scale, zero point))
    ((1, 7, 9, 3), "SAME", (2, 2), (3, 3), "NONE", (0.1, 3)),
    ((1, 7, 9, 3), "VALID", (2, 3), (3, 2), "RELU", (0.05, -20)),
    ((1, 8, 8, 2), "SAME", (1, 1), (4, 4), "RELU6", (0.04, -128)),
    ((1, 5, 6, 4), "SAME", (3, 2), (2, 5), "RELU_N1_TO_1", (0.02, 10)),
    ((1, 6, 6, 1), "VALID", (1, 1), (6, 6), "NONE", (1.0, 0)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_pool_single_op_equals_tflm(kind, case):
    shape, padding, stride, filt, act, q = POOL_CASES[case]
    out_h, out_w, *_ = S.compute_padding_height_width(*stride, 1, 1, shape[1], shape[2], *filt, padding)
    m = _pool_model(kind, shape, (1, out_h, out_w, shape[3]), q, q, padding, stride, filt, act)
    x = rand_int8(np.random.default_rng(20 + case), (4,) + shape[1:])
    x[0] = np.where(np.arange(x[0].size).reshape(x[0].shape) % 2 == 0, 127, -128)  # extreme sums
    assert_same_as_tflm(m, [x])


MEAN_CASES = [
    # (in shape, axes, keep_dims, (s_in, z_in), (s_out, z_out))
    ((1, 4, 5, 3), [1, 2], True, (0.1, 3), (0.1, 3)),  # the old 4-D special case, equal parameters
    ((1, 4, 5, 3), [2, 1], False, (0.1, 3), (0.05, -7)),
    ((1, 4, 5, 3), [1, 2], True, (0.02, -128), (0.3, 60)),
    ((1, 4, 5, 3), [-1], False, (0.1, 0), (0.02, 5)),
    ((1, 4, 5, 3), [3, 1], True, (0.2, -3), (0.2, -3)),
    ((1, 7, 6), [1], False, (0.5, 100), (0.01, -100)),  # saturates
    ((1, 2, 3, 2, 4), [2, 4], True, (0.1, 1), (0.15, 2)),  # 5-D
    ((1, 4, 5, 3), [0, 1], True, (0.1, 1), (0.1, 1)),  # axis 0 with keep_dims
    ((1, 9, 9, 2), [1, 2], False, (1.0, 0), (2e-3, 0)),  # multiplier > 1 before folding
    ((1, 12), [], True, (0.1, 2), (0.07, -1)),  # no axes: plain requantization
    ((1, 4, 5, 3), [1, -3, 2], False, (0.03, -9), (0.04, 4)),  # duplicate axes (resolved to {1, 2})
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(MEAN_CASES)))
def test_mean_single_op_equals_tflm(case):
    shape, axes, keep, q_in, q_out = MEAN_CASES[case]
    rank = len(shape)
    red = {a % rank for a in axes}
    out_shape = tuple(1 if k in red else d for k, d in enumerate(shape)) if keep else tuple(
        d for k, d in enumerate(shape) if k not in red)
    m = _mean_model(shape, axes, keep, q_in, q_out, out_shape)
    x = rand_int8(np.random.default_rng(40 + case), (5,) + shape[1:])
    x[0] = 127
    x[1] = -128
    assert_same_as_tflm(m, [x])
