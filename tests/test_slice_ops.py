"""STRIDED_SLICE, SPLIT, SPLIT_V, GATHER: kernels == spec (hypothesis), ops == TFLite Micro, clear refusals.

(1) the jitted kernels against :mod:`tinyzo.spec.strided_slice` / :mod:`tinyzo.spec.layout`, and the
specs against numpy's slicing / ``np.split`` / ``np.take`` (a third opinion); (2) hand-picked
one-operator models (int8, int16, int32) run by the TFLM interpreter, among them the slice of the
micro_speech audio front end; (3) what is refused, with the reason in one line.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_elementwise import assert_same_as_tflm, qp

from tinyzo.errors import InputError, UnsupportedModelError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels.layout import gather_copy, strided_slice_copy
from tinyzo.spec import layout as L
from tinyzo.spec import strided_slice as SS

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q = (0.05, -3)
DTYPES = [np.int8, np.int16, np.int32]


def rand(rng, shape, dtype=np.int8):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ----------------------------------------------------------------------------- (1) kernels == spec
@st.composite
def slice_case(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    begin = [draw(st.integers(-d - 2, d + 2)) for d in shape]
    end = [draw(st.integers(-d - 2, d + 2)) for d in shape]
    strides = [draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for _ in shape]
    bm, em, sm = (draw(st.integers(0, 2**rank - 1)) for _ in range(3))
    sm &= sum(1 << k for k in range(rank) if strides[k] > 0 and -shape[k] <= begin[k] < shape[k])
    return shape, begin, end, strides, bm, em, sm


def numpy_slice(x, begin, end, strides, bm, em, sm):
    """The same selection with Python slices: masks -> None, a shrunk axis -> its index."""
    idx = []
    for k in range(x.ndim):
        if sm >> k & 1:
            b = 0 if bm >> k & 1 else begin[k]
            idx.append(b + x.shape[k] if b < 0 else b)
        else:
            idx.append(slice(None if bm >> k & 1 else begin[k], None if em >> k & 1 else end[k], strides[k]))
    return x[tuple(idx)]


@PROP
@given(case=slice_case(), n=st.integers(1, 3), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_prop_strided_slice_kernel_equals_spec_and_numpy(case, n, dtype, seed):
    shape, begin, end, strides, bm, em, sm = case
    x = rand(np.random.default_rng(seed), (n,) + shape, dtype)
    want = np.stack([SS.strided_slice(x[b], begin, end, strides, bm, em, sm) for b in range(n)])
    np.testing.assert_array_equal(want, np.stack([numpy_slice(x[b], begin, end, strides, bm, em, sm) for b in range(n)]))
    starts, stops = SS.resolve(shape, begin, end, strides, bm, em, sm)
    ext = 5 - len(shape)
    out = np.empty((n, want[0].size), dtype)
    strided_slice_copy(x.reshape((n,) + (1,) * ext + shape), np.array([0] * ext + starts, np.int64),
                       np.array([1] * ext + stops, np.int64), np.array([1] * ext + strides, np.int64), out)
    np.testing.assert_array_equal(out.reshape(want.shape), want)


def test_strided_slice_index_rules():
    # begin_mask / end_mask with a negative stride: from the last element down to the first
    assert SS.resolve([5], [2], [1], [-1], 1, 1, 0) == ([4], [-1])
    # out-of-range indices are clamped, negative ones wrap
    assert SS.resolve([5], [-7], [9], [2], 0, 0, 0) == ([0], [5])
    assert SS.prepare_shape([5], [-7], [9], [2], 0, 0, 0) == (3,)
    assert SS.prepare_shape([4, 5], [1, 3], [0, 0], [1, -1], 0, 0, 1) == (3,)
    with pytest.raises(ValueError, match="negative stride"):
        SS.check_shrink([4], [1], [-1], 0, 1)
    with pytest.raises(ValueError, match="size 4"):
        SS.check_shrink([4], [4], [1], 0, 1)


@st.composite
def gather_case(draw):
    rank = draw(st.integers(1, 4))
    pshape = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    bd = draw(st.integers(0, rank - 1))
    axis = draw(st.integers(bd, rank - 1))
    ishape = tuple(pshape[:bd]) + tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2))))
    return pshape, ishape, axis, bd


@PROP
@given(case=gather_case(), n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_prop_gather_kernel_equals_spec(case, n, seed):
    pshape, ishape, axis, bd = case
    rng = np.random.default_rng(seed)
    params = rand(rng, (n,) + pshape)
    idx = rng.integers(0, pshape[axis], size=(n,) + ishape).astype(np.int32)
    want = np.stack([L.gather(params[b], idx[b], axis, bd) for b in range(n)])
    if bd == 0:
        np.testing.assert_array_equal(want[0], np.take(params[0], idx[0], axis=axis))
    batch = int(np.prod(pshape[:bd], dtype=np.int64))
    outer = int(np.prod(pshape[bd:axis], dtype=np.int64))
    inner = int(np.prod(pshape[axis + 1:], dtype=np.int64))
    coord = int(np.prod(ishape[bd:], dtype=np.int64))
    out = np.empty((n, want[0].size), np.int8)
    gather_copy(params.reshape(n, -1), idx.reshape(n, -1), batch, outer, pshape[axis], inner, coord, out)
    np.testing.assert_array_equal(out.reshape(want.shape), want)


@PROP
@given(rank=st.integers(2, 4), n=st.integers(1, 3), data=st.data())
def test_prop_split_ops_equal_spec_and_numpy(rank, n, data):
    shape = [1] + [data.draw(st.integers(1, 3)) for _ in range(rank - 1)]
    axis = data.draw(st.integers(1, rank - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    shape[axis] = sum(sizes)
    dtype = data.draw(st.sampled_from(DTYPES))
    m = split_v_model(tuple(shape), sizes, axis, dtype)
    x = rand(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), (n,) + tuple(shape[1:]), dtype)
    ys = m(x)
    ys = ys if isinstance(ys, tuple) else (ys,)
    for b in range(n):
        want = L.split(x[b:b + 1], axis, sizes)
        for y, w, v in zip(ys, want, np.split(x[b:b + 1], np.cumsum(sizes)[:-1], axis=axis)):
            np.testing.assert_array_equal(y[b:b + 1], w)
            np.testing.assert_array_equal(w, v)


# ----------------------------------------------------------------------------- models
def slice_model(shape, begin, end, strides, out, dtype=np.int8, q=Q, bm=0, em=0, sm=0, idx_dtype=np.int32, **opts):
    qi = qp(*q) if q else None
    tensors = [Tensor("x", shape, dtype, qi)]
    for name, v in (("b", begin), ("e", end), ("s", strides)):
        tensors.append(Tensor(name, (len(v),), idx_dtype, None, np.array(v, idx_dtype)))
    tensors.append(Tensor("y", out, dtype, qi))
    options = {"begin_mask": bm, "end_mask": em, "shrink_axis_mask": sm, **opts}
    return Model(tensors, [Operator("STRIDED_SLICE", (0, 1, 2, 3), (4,), options)], (0,), (4,))


def split_model(shape, n, axis, dtype=np.int8, q=Q, num_splits=None):
    qi = qp(*q) if q else None
    o = list(shape)
    o[axis] //= n
    tensors = [Tensor("axis", (1,), np.int32, None, np.int32([axis])), Tensor("x", shape, dtype, qi)]
    tensors += [Tensor(f"y{k}", tuple(o), dtype, qi) for k in range(n)]
    outs = tuple(range(2, 2 + n))
    return Model(tensors, [Operator("SPLIT", (0, 1), outs, {"num_splits": num_splits or n})], (1,), outs)


def split_v_model(shape, sizes, axis, dtype=np.int8, q=Q, size_splits=None):
    qi = qp(*q) if q else None
    tensors = [Tensor("x", shape, dtype, qi),
               Tensor("sizes", (len(sizes),), np.int32, None, np.int32(size_splits or sizes)),
               Tensor("axis", (1,), np.int32, None, np.int32([axis]))]
    for s in sizes:
        o = list(shape)
        o[axis] = s
        tensors.append(Tensor(f"y{len(tensors)}", tuple(o), dtype, qi))
    outs = tuple(range(3, 3 + len(sizes)))
    return Model(tensors, [Operator("SPLIT_V", (0, 1, 2), outs, {"num_splits": len(sizes)})], (0,), outs)


def gather_model(pshape, ishape, axis=0, bd=0, params=None, indices=None, idx_dtype=np.int32, pdtype=np.int8):
    try:
        out = L.gather_shape(pshape, ishape, axis, bd)
    except ValueError:  # a refusal test: any output shape
        out = (1,)
    tensors = [Tensor("p", pshape, pdtype, qp(*Q), params), Tensor("i", ishape, idx_dtype, None, indices),
               Tensor("y", out, pdtype, qp(*Q))]
    inputs = tuple(k for k, t in enumerate(tensors[:2]) if t.data is None)
    return Model(tensors, [Operator("GATHER", (0, 1), (2,), {"axis": axis, "batch_dims": bd})], inputs, (2,))


# ----------------------------------------------------------------------------- (2) TFLM
TFLM_CASES = [
    # the micro_speech audio front end: int32 energies 5..240 of 257 (here with a batch dimension)
    lambda: slice_model((1, 257), [0, 5], [1, 241], [1, 1], (1, 236), np.int32, q=None),
    lambda: slice_model((1, 6, 7), [0, -1, 1], [1, 0, -2], [1, -2, 3], (1, 3, 2), np.int16, q=None),
    lambda: slice_model((1, 4, 5, 3), [0, 9, 0, 2], [1, -9, 5, 0], [1, -1, 2, 1], (1, 4, 3), bm=2, em=2, sm=8),
    lambda: slice_model((1, 1, 5), [0, 0, 1], [1, 1, 4], [1, 1, 1], (1, 3), sm=1),  # the batch axis shrunk
    lambda: split_model((1, 4, 6), 3, 2),
    lambda: split_model((1, 4, 6), 2, 1, np.int16, q=None),
    lambda: split_v_model((1, 5, 2), [1, 3, 1], 1, np.int32, q=None),
    lambda: split_v_model((1, 2, 7), [4, 3], -1, size_splits=[-1, 3]),
    lambda: gather_model((1, 5, 3), (2, 4), axis=1, indices=np.int32([[4, 0, 1, 1], [2, 2, 3, 0]])),
    lambda: gather_model((10, 4), (1, 6), params=rand(np.random.default_rng(4), (10, 4))),  # a lookup table
    lambda: gather_model((1, 3, 4), (1, 2), axis=-1, bd=1),  # run-time params and indices, batch_dims 1
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(TFLM_CASES)))
def test_slicing_single_op_equals_tflm(case):
    m = TFLM_CASES[case]()
    rng = np.random.default_rng(200 + case)
    xs = []
    for i in m.inputs:
        t = m.tensors[i]
        if m.operators[0].opcode == "GATHER" and i == 1:
            xs.append(rng.integers(0, m.prepared[0].axis_size, size=(3,) + t.shape[1:]).astype(np.int32))
        else:
            xs.append(rand(rng, (3,) + t.shape[1:], t.dtype))
    assert_same_as_tflm(m, xs)


# ----------------------------------------------------------------------------- (3) refusals
@pytest.mark.parametrize("build, match", [
    (lambda: slice_model((1, 4), [0, 0], [1, 2], [1, 1], (1, 2), ellipsis_mask=2), "ellipsis_mask"),
    (lambda: slice_model((1, 4), [0, 0], [1, 2], [1, 1], (1, 2), new_axis_mask=1), "new_axis_mask"),
    (lambda: slice_model((1, 4), [0, 0], [1, 2], [1, 1], (1, 2), offset=True), "offset"),
    (lambda: slice_model((1, 1, 1, 1, 4), [0] * 5, [1, 1, 1, 1, 2], [1] * 5, (1, 1, 1, 1, 2)), "at most 4"),
    (lambda: slice_model((1, 4), [0, 0], [1, 2], [1, 1], (1, 2), idx_dtype=np.int64), "constant int32"),
    (lambda: slice_model((1, 4), [0, 0], [1, 2], [1, 0], (1, 2)), "non-zero"),
    (lambda: slice_model((1, 4), [0, 2], [1, 3], [1, -1], (1,), sm=2), "negative stride"),
    (lambda: slice_model((1, 4), [0, 4], [1, 5], [1, 1], (1,), sm=2), "unwritten"),
    (lambda: slice_model((2, 4), [0, 0], [1, 4], [1, 1], (1, 4)), "dimension 0 is the batch"),
    (lambda: slice_model((1, 4), [0, 0], [1, 4], [1, 2], (1, 3)), "differs from the computed"),
    (lambda: slice_model((1, 4), [0, 0], [1, 4], [1, 1], (1, 4), np.uint8, q=None), "uint8"),
    (lambda: split_model((1, 4, 6), 4, 2), "equal pieces"),
    (lambda: split_model((1, 4, 6), 2, 2, num_splits=3), "num_splits"),
    (lambda: split_v_model((1, 5), [2, 3], 1, size_splits=[2, 2]), "add up"),
    (lambda: split_v_model((1, 5), [2, 3], 1, size_splits=[-1, -1]), "one -1"),
    (lambda: gather_model((1, 5), (2,), axis=1, indices=np.int64([0, 1]), idx_dtype=np.int64), "int32 indices"),
    (lambda: gather_model((1, 5), (1, 2), axis=1, pdtype=np.int16), "int16"),
    (lambda: gather_model((1, 5), (2,), axis=1, indices=np.int32([1, 5])), "out of range"),
    (lambda: gather_model((1, 5), (2,), axis=3, indices=np.int32([1, 2])), "axis 3"),
])
def test_slicing_refusals_name_the_problem(build, match):
    with pytest.raises((UnsupportedOperatorError, UnsupportedModelError), match=match):
        build()


def test_gather_refuses_out_of_range_run_time_indices():
    m = gather_model((8, 3), (1, 2), params=np.zeros((8, 3), np.int8))
    assert m(np.int32([[1, 7]])).shape == (1, 2, 3)
    with pytest.raises(InputError, match="index 8 is out of range"):
        m(np.int32([[1, 8]]))
