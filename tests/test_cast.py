"""CAST: kernels == spec (hypothesis, every type pair, edge values), op == TFLite Micro, clear refusals.

(1) :mod:`tinyzo.kernels.cast` against :func:`tinyzo.spec.cast.cast_value` (and numpy's own
conversions where they are defined); (2) one-operator models of the type pairs the micro_speech
audio front end uses (uint32 <-> int32, int16 -> int32, int32 -> int8) and the float interface
pairs (int16/int32 -> float32, float32 -> int32) run by the TFLM interpreter; (3) refusals.
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
from tinyzo.io import read_tflite, write_tflite
from tinyzo.kernels.cast import cast_to_float32, cast_to_int
from tinyzo.spec.cast import CAST_INPUT_DTYPES, CAST_OUTPUT_DTYPES, cast_value, float_fits

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=20 if NO_JIT else 80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDGES = [0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769, 65535, 65536, 2**24, 2**24 + 1,
         2**24 + 3, 2**31 - 1, -(2**31), 2**31 + 63, 2**32 - 1, 2**32 - 129, 2**32 - 128]


def values(dtype):
    info = np.iinfo(dtype) if dtype.kind != "f" else None
    if info is None:
        return st.one_of(st.floats(-(2.0**33), 2.0**33, width=32), st.sampled_from([0.5, -0.5, -0.0, 127.99, -128.99,
                                                                                    2.0**31, -(2.0**31), 4294967295.0]))
    return st.one_of(st.integers(info.min, info.max), st.sampled_from([e for e in EDGES if info.min <= e <= info.max]))


def run_kernel(x, dst):
    out = np.empty(x.shape, dst)
    if dst.kind == "f":
        cast_to_float32(x, out)
    else:
        cast_to_int(x, 8 * dst.itemsize, dst.kind == "i", out)
    return out


@PROP
@given(src=st.sampled_from(CAST_INPUT_DTYPES), dst=st.sampled_from(CAST_OUTPUT_DTYPES), data=st.data())
def test_prop_cast_kernels_equal_spec(src, dst, data):
    xs = data.draw(st.lists(values(src), min_size=1, max_size=20))
    if src.kind == "f" and dst.kind != "f":
        xs = [v for v in xs if float_fits(float(np.float32(v)), dst)] or [0.0]
    x = np.array(xs, dtype=src)
    got = run_kernel(x, dst)
    want = np.array([cast_value(v, src, dst) for v in x.tolist()], dtype=dst)
    np.testing.assert_array_equal(got.view(f"u{dst.itemsize}"), want.view(f"u{dst.itemsize}"))
    if dst.kind == "f" or src.kind == "f":  # numpy agrees where C defines the conversion
        np.testing.assert_array_equal(got, x.astype(dst))


def test_cast_spec_edge_values():
    assert cast_value(2**32 - 1, np.uint32, np.int32) == -1
    assert cast_value(-1, np.int32, np.uint32) == 2**32 - 1
    assert cast_value(300, np.int16, np.int8) == 44
    assert cast_value(2**24 + 1, np.int32, np.float32) == 2.0**24  # tie to even
    assert cast_value(2**24 + 3, np.int32, np.float32) == 2.0**24 + 4
    assert cast_value(-2.9, np.float32, np.int8) == -2
    with pytest.raises(ValueError):
        cast_value(128.0, np.float32, np.int8)
    with pytest.raises(ValueError):
        cast_value(float("nan"), np.float32, np.int32)


# ----------------------------------------------------------------------------- models
def cast_model(src, dst, shape=(1, 6), q_in=None, q_out=None):
    tensors = [Tensor("x", shape, src, q_in), Tensor("y", shape, dst, q_out)]
    return Model(tensors, [Operator("CAST", (0,), (1,))], (0,), (1,))


PAIRS = [(np.uint32, np.int32), (np.int32, np.uint32), (np.int16, np.int32), (np.int32, np.int8),
         (np.int8, np.int16), (np.int16, np.int8), (np.int16, np.float32), (np.int32, np.float32),
         (np.uint32, np.float32), (np.float32, np.int32), (np.float32, np.int16), (np.int8, np.int32)]


@pytest.mark.oracle
@pytest.mark.parametrize("src, dst", PAIRS, ids=[f"{np.dtype(a).name}-{np.dtype(b).name}" for a, b in PAIRS])
def test_cast_single_op_equals_tflm(src, dst):
    src, dst = np.dtype(src), np.dtype(dst)
    rng = np.random.default_rng(7)
    shape = (1, 40)
    if src.kind == "f":
        info = np.iinfo(dst)
        x = rng.uniform(max(info.min, -(2**20)) - 0.99, min(info.max, 2**20) + 0.99, size=(3, 40)).astype(src)
        x[0, :4] = [0.5, -0.5, -0.0, 2.5]
    else:
        info = np.iinfo(src)
        x = rng.integers(info.min, info.max, size=(3, 40), dtype=src, endpoint=True)
        x[0, :8] = [v for v in EDGES if info.min <= v <= info.max][-8:] + [0] * max(0, 8 - len(
            [v for v in EDGES if info.min <= v <= info.max]))
    q_in = qp(0.05, -3) if src == np.int8 else None
    q_out = qp(0.5, 4) if dst == np.int8 else None
    m = cast_model(src, dst, shape, q_in, q_out)
    assert_same_as_tflm(m, [x])


def test_float_interface_cast_model_loads_from_tflite():
    """A .tflite whose float32 input is read by CAST (or float32 output written by CAST) is an integer model."""
    for src, dst in ((np.float32, np.int32), (np.int16, np.float32)):
        m = read_tflite(write_tflite(cast_model(src, dst)))
        assert m.tensors[m.outputs[0]].dtype == dst


def test_cast_refusals():
    with pytest.raises(InputError, match="does not fit int8"):
        cast_model(np.float32, np.int8)(np.float32([[1, 2, 3, 4, 5, 128.5]]))
    with pytest.raises(InputError, match="nan"):
        cast_model(np.float32, np.int32)(np.float32([[1, 2, 3, 4, 5, np.nan]]))
    with pytest.raises(UnsupportedModelError, match="int64"):
        cast_model(np.int64, np.int32)
    with pytest.raises(UnsupportedOperatorError, match="uint8"):
        cast_model(np.int8, np.uint8, q_in=qp(0.1, 0))
    with pytest.raises(UnsupportedOperatorError, match="differ in size"):
        Model([Tensor("x", (1, 6), np.int16), Tensor("y", (1, 5), np.int32)], [Operator("CAST", (0,), (1,))], (0,), (1,))
    # a float32 tensor inside the graph (CAST -> float -> CAST) is not run
    tensors = [Tensor("x", (1, 4), np.int16), Tensor("f", (1, 4), np.float32), Tensor("y", (1, 4), np.int32)]
    ops = [Operator("CAST", (0,), (1,)), Operator("CAST", (1,), (2,))]
    with pytest.raises(UnsupportedOperatorError, match="not a model output"):
        Model(tensors, ops, (0,), (2,))


def test_cast_in_place_candidates_follow_the_item_sizes():
    """CAST converts element i alone: in place when the output's items are not larger than the input's."""
    from tinyzo.memory import inference_schedule

    def two_casts(a, b, c):
        tensors = [Tensor("x", (1, 8), a), Tensor("t", (1, 8), b), Tensor("y", (1, 8), c)]
        return Model(tensors, [Operator("CAST", (0,), (1,)), Operator("CAST", (1,), (2,))], (0,), (2,))

    narrowing = inference_schedule(two_casts(np.int16, np.int32, np.int8))
    assert [len(s.inplace) for s in narrowing.steps] == [0, 1]  # int16 -> int32 widens; int32 -> int8 narrows
    assert [len(s.inplace) for s in inference_schedule(two_casts(np.int32, np.uint32, np.int32)).steps] == [1, 1]
