"""SQUEEZE, EXPAND_DIMS, TRANSPOSE: kernel == spec (hypothesis), ops == TFLite Micro, clear refusals.

(1) the TRANSPOSE kernel against :func:`tinyzo.spec.layout.transpose` (numpy's transpose is a
third opinion) on random shapes, permutations and dtypes, and the shape rules of SQUEEZE and
EXPAND_DIMS against TFLM's; (2) hand-picked one-operator models (int8 and int16, batch of 3) run
by the TFLM interpreter; (3) what is refused, with the reason in one line.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_elementwise import assert_same_as_tflm, qp

from tinyzo.errors import UnsupportedModelError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels.layout import transpose_copy
from tinyzo.quant import QuantParams
from tinyzo.spec import layout as S

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q = (0.05, -3)


def rand(rng, shape, dtype=np.int8):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ----------------------------------------------------------------------------- (1) kernels == spec
@st.composite
def transpose_case(draw):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    perm = draw(st.permutations(list(range(rank))))
    return shape, perm, draw(st.sampled_from([np.int8, np.int16, np.int32]))


@PROP
@given(case=transpose_case(), n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_prop_transpose_kernel_equals_spec(case, n, seed):
    shape, perm, dtype = case
    x = rand(np.random.default_rng(seed), (n,) + shape, dtype)
    want = np.stack([S.transpose(x[b], perm) for b in range(n)])
    np.testing.assert_array_equal(want, x.transpose((0,) + tuple(p + 1 for p in perm)))
    strides = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape))]
    ext = 5 - len(shape)
    out = np.empty((n,) + (1,) * ext + want.shape[1:], dtype)
    transpose_copy(x.reshape(n, -1), np.array([0] * ext + [strides[p] for p in perm], np.int64), out)
    np.testing.assert_array_equal(out.reshape(want.shape), want)


def test_squeeze_and_expand_dims_shape_rules():
    assert S.squeeze_shape((1, 1, 3, 1), []) == (3,)
    assert S.squeeze_shape((1, 1, 3, 1), [1, -1]) == (1, 3)
    with pytest.raises(ValueError):
        S.squeeze_shape((1, 2, 3), [1])  # not of size 1
    with pytest.raises(ValueError):
        S.squeeze_shape((1, 2, 1), [3])  # out of range
    assert S.expand_dims_shape((1, 2, 3), 0) == (1, 1, 2, 3)
    assert S.expand_dims_shape((1, 2, 3), 3) == (1, 2, 3, 1)
    assert S.expand_dims_shape((1, 2, 3), -1) == (1, 2, 3, 1)
    assert S.expand_dims_shape((1, 2, 3), -4) == (1, 1, 2, 3)
    with pytest.raises(ValueError):
        S.expand_dims_shape((1, 2, 3), 4)
    with pytest.raises(ValueError):
        S.expand_dims_shape((1, 2, 3), -5)
    with pytest.raises(ValueError):
        S.transpose_shape((1, 2, 3), [0, 1, 1])


# ----------------------------------------------------------------------------- models
def squeeze_model(shape, out, dims, dtype=np.int8, q=Q, q_out=None):
    qi = qp(*q) if q else None
    qo = qp(*(q_out or q)) if q else None
    tensors = [Tensor("x", shape, dtype, qi), Tensor("y", out, dtype, qo)]
    return Model(tensors, [Operator("SQUEEZE", (0,), (1,), {"squeeze_dims": list(dims)})], (0,), (1,))


def expand_model(shape, out, axis, dtype=np.int8, axis_dtype=np.int32, q=Q):
    qi = qp(*q) if q else None
    tensors = [Tensor("x", shape, dtype, qi), Tensor("a", (1,), axis_dtype, None, np.array([axis], axis_dtype)),
               Tensor("y", out, dtype, qi)]
    return Model(tensors, [Operator("EXPAND_DIMS", (0, 1), (2,))], (0,), (2,))


def transpose_model(shape, perm, dtype=np.int8, perm_dtype=np.int32, out=None, q=Q, perm_const=True):
    qi = qp(*q) if q else None
    out = out or tuple(shape[p] for p in perm)
    tensors = [Tensor("x", shape, dtype, qi),
               Tensor("p", (len(perm),), perm_dtype, None, np.array(perm, perm_dtype) if perm_const else None),
               Tensor("y", out, dtype, qi)]
    return Model(tensors, [Operator("TRANSPOSE", (0, 1), (2,))], (0, 1) if not perm_const else (0,), (2,))


def test_squeeze_expand_transpose_ops_move_the_values():
    rng = np.random.default_rng(5)
    x = rand(rng, (3, 2, 1, 4), np.int16)
    np.testing.assert_array_equal(squeeze_model((1, 2, 1, 4), (1, 2, 4), [2], np.int16, q=None)(x), x[:, :, 0])
    y = expand_model((1, 2, 1, 4), (1, 2, 1, 4, 1), -1, np.int16, q=None)(x)
    np.testing.assert_array_equal(y, x[..., None])
    t = transpose_model((1, 2, 1, 4), [0, 3, 1, 2], np.int16, q=None)(x)
    np.testing.assert_array_equal(t, x.transpose(0, 3, 1, 2))
    assert t.dtype == np.int16


# ----------------------------------------------------------------------------- (2) TFLM
TFLM_CASES = [
    squeeze_model((1, 3, 1, 1, 2), (1, 3, 2), [2, 3]),
    squeeze_model((1, 1, 1, 5), (1, 5), [-2, 1], np.int16, q=(1 / 4096, 0)),
    squeeze_model((1, 4, 1), (1, 4), [2], np.int32, q=None),
    expand_model((1, 7), (1, 1, 7), 1),
    expand_model((1, 3, 2), (1, 3, 2, 1), -1, np.int16, q=None),
    expand_model((1, 3), (1, 1, 3), 0),  # before the batch: each sample (1, 3) -> (1, 1, 3)
    transpose_model((1, 2, 3, 4), [0, 3, 1, 2]),
    transpose_model((1, 2, 3, 4, 5), [0, 4, 2, 3, 1], np.int16, q=(1 / 4096, 0)),
    transpose_model((1, 5), [0, 1]),
    transpose_model((1, 3, 1), [2, 1, 0]),  # dimension 0 moves, but both outer dimensions are 1
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(TFLM_CASES)))
def test_layout_single_op_equals_tflm(case):
    m = TFLM_CASES[case]
    x = rand(np.random.default_rng(100 + case), (3,) + m.tensors[0].shape[1:], m.tensors[0].dtype)
    assert_same_as_tflm(m, [x])


# ----------------------------------------------------------------------------- (3) refusals
@pytest.mark.parametrize("build, match", [
    (lambda: squeeze_model((1, 1, 3), (3,), []), "dimension 0 is the batch"),
    (lambda: squeeze_model((1, 2, 3), (1, 3), [1]), "not of size 1"),
    (lambda: squeeze_model((1, 1, 3), (1, 3), [1], q_out=(0.1, 0)), "without requantizing"),
    (lambda: squeeze_model((1, 1, 3), (1, 1, 3), [1]), "differs from the computed"),
    (lambda: expand_model((1, 3), (1, 3, 1), 2, np.int32, q=None), "int32"),
    (lambda: expand_model((1, 3), (1, 3, 1), 2, axis_dtype=np.int64), "constant int32"),
    (lambda: transpose_model((1, 2, 3), [1, 0, 2]), "dimension 0 is the batch"),
    (lambda: transpose_model((1, 2, 3), [0, 2, 1], perm_dtype=np.int64), "constant int32"),
    (lambda: transpose_model((1, 2, 3), [0, 2, 1], perm_const=False), "constant int32"),
    (lambda: transpose_model((1, 2, 3), [0, 2, 2], out=(1, 3, 3)), "not a permutation"),
    (lambda: transpose_model((1, 1, 1, 1, 1, 2), [0, 1, 2, 3, 5, 4]), "1..5"),
    (lambda: transpose_model((1, 2, 3), [0, 2, 1], np.int32, q=None), "int32"),
])
def test_layout_refusals_name_the_problem(build, match):
    with pytest.raises((UnsupportedOperatorError, UnsupportedModelError), match=match):
        build()


def test_int16_input_is_refused_by_an_int8_operator():
    tensors = [Tensor("x", (1, 4), np.int16, QuantParams([0.01], [0])), Tensor("y", (1, 4), np.int16, QuantParams([0.01], [0]))]
    with pytest.raises(UnsupportedOperatorError, match="int8 only"):   # HARD_SWISH: TFLM has no int16 kernel
        Model(tensors, [Operator("HARD_SWISH", (0,), (1,))], (0,), (1,))


def test_squeeze_and_expand_dims_may_run_in_place_transpose_may_not():
    """SQUEEZE/EXPAND_DIMS copy the bytes unchanged (element i -> element i); TRANSPOSE moves them."""
    from tinyzo.memory import inference_schedule, plan_arena

    tensors = [Tensor("x", (1, 64, 1), np.int8, qp(*Q)), Tensor("s", (1, 64), np.int8, qp(*Q)),
               Tensor("a", (1,), np.int32, None, np.int32([1])), Tensor("e", (1, 1, 64), np.int8, qp(*Q)),
               Tensor("p", (3,), np.int32, None, np.int32([0, 2, 1])), Tensor("y", (1, 64, 1), np.int8, qp(*Q))]
    ops = [Operator("SQUEEZE", (0,), (1,), {"squeeze_dims": [2]}), Operator("EXPAND_DIMS", (1, 2), (3,)),
           Operator("TRANSPOSE", (3, 4), (5,))]
    sched = inference_schedule(Model(tensors, ops, (0,), (5,)))
    assert [len(s.inplace) for s in sched.steps] == [1, 1, 0]
    plan = plan_arena(sched, in_place=True)
    assert [(s, o, i) for s, o, i in plan.inplace] == [(0, 1, 0), (1, 2, 1)]  # x, s and e share one buffer
    assert plan.peak_bytes <= plan_arena(sched).peak_bytes
