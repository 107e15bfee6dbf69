"""BATCH_MATMUL (int8): op == spec (hypothesis), spec == numpy's matmul, op == TFLite Micro, refusals.

(1) random ranks 2..5, broadcast batch dimensions, adj_x/adj_y, zero points and constant operands
through the op against :func:`tinyzo.spec.batch_matmul.batch_matmul_s8`, whose accumulators are
also checked against numpy's int64 ``matmul``; (2) hand-picked one-operator models run by TFLM;
(3) what is refused.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_elementwise import assert_same_as_tflm, qp

from tinyzo.errors import UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.spec import batch_matmul as S

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bmm_model(lshape, rshape, adj_x=False, adj_y=False, ql=(0.02, 3), qr=(0.01, -7), qo=(0.05, 5), lhs=None,
              rhs=None, dtype=np.int8, out=None):
    try:
        out = out or S.batch_matmul_shape(lshape, rshape, adj_x, adj_y)
    except ValueError:  # a refusal test: any output shape
        out = (1, 1)
    tensors = [Tensor("lhs", lshape, dtype, qp(*ql), lhs), Tensor("rhs", rshape, dtype, qp(*qr), rhs),
               Tensor("y", out, dtype, qp(*qo))]
    inputs = tuple(k for k in range(2) if tensors[k].data is None)
    return Model(tensors, [Operator("BATCH_MATMUL", (0, 1), (2,), {"adj_x": adj_x, "adj_y": adj_y})], inputs, (2,))


def spec_of(m, lhs, rhs):
    p = m.prepared[0]
    o = m.operators[0].options
    return S.batch_matmul_s8(lhs, rhs, adj_x=o["adj_x"], adj_y=o["adj_y"], lhs_offset=p.lhs_offset,
                             rhs_offset=p.rhs_offset, multiplier=p.multiplier, shift=p.shift,
                             output_offset=p.output_offset)


# ----------------------------------------------------------------------------- (1) op == spec
@st.composite
def bmm_case(draw):
    r = draw(st.integers(2, 5))
    batch = [draw(st.integers(1, 3)) for _ in range(r - 2)]
    m_, k_, p_ = (draw(st.integers(1, 5)) for _ in range(3))
    adj_x, adj_y = draw(st.booleans()), draw(st.booleans())
    if r == 2:  # the run-time lhs's dimension 0 is the batch: one row (or depth 1) per sample
        k_, m_ = (1, m_) if adj_x else (k_, 1)
    lb = [d if draw(st.booleans()) else 1 for d in batch]
    rb = [d if draw(st.booleans()) else 1 for d in batch]
    lshape = (1,) + tuple(lb[1:]) + ((k_, m_) if adj_x else (m_, k_)) if r > 2 else ((k_, m_) if adj_x else (m_, k_))
    rshape = tuple(rb) + ((p_, k_) if adj_y else (k_, p_))
    rshape = rshape[draw(st.integers(0, r - 2)):]  # the constant operand may have a lower rank
    return lshape, rshape, adj_x, adj_y


@PROP
@given(case=bmm_case(), n=st.integers(1, 3), zl=st.integers(-128, 127), zr=st.integers(-128, 127),
       seed=st.integers(0, 2**32 - 1))
def test_prop_batch_matmul_equals_spec(case, n, zl, zr, seed):
    lshape, rshape, adj_x, adj_y = case
    out = S.batch_matmul_shape(lshape, rshape, adj_x, adj_y)
    if out[0] != 1:
        return
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=rshape).astype(np.int8)
    m = bmm_model(lshape, rshape, adj_x, adj_y, ql=(0.02, zl), qr=(0.01, zr), rhs=w)
    x = rng.integers(-128, 128, size=(n,) + lshape[1:]).astype(np.int8)
    y = m(x)
    for b in range(n):
        np.testing.assert_array_equal(y[b:b + 1], spec_of(m, x[b:b + 1], w))


def test_spec_accumulators_equal_numpy_matmul():
    """With multiplier 2**30 / shift 1 (x 1.0), no offsets beyond the zero points, the spec is numpy's matmul."""
    rng = np.random.default_rng(3)
    lhs = rng.integers(-4, 5, size=(2, 1, 3, 4)).astype(np.int8)
    rhs = rng.integers(-4, 5, size=(3, 5, 4)).astype(np.int8)
    got = S.batch_matmul_s8(lhs, rhs, adj_y=True, lhs_offset=1, rhs_offset=-2, multiplier=1 << 30, shift=1)
    want = np.matmul(lhs.astype(np.int64) + 1, np.swapaxes(rhs.astype(np.int64) - 2, -1, -2))
    np.testing.assert_array_equal(got, np.clip(want, -128, 127))


# ----------------------------------------------------------------------------- (2) TFLM
TFLM_CASES = [
    dict(lshape=(1, 4, 8), rshape=(1, 8, 5)),
    dict(lshape=(1, 4, 8), rshape=(1, 5, 8), adj_y=True, ql=(0.03, -128), qr=(0.02, 127)),
    dict(lshape=(1, 8, 4), rshape=(1, 8, 5), adj_x=True),
    dict(lshape=(1, 3, 2, 6), rshape=(6, 7), const_rhs=True),  # weights shared by the batch dimensions
    dict(lshape=(1, 3, 2, 6), rshape=(1, 1, 6, 7)),  # rhs broadcast over dimension 1
    dict(lshape=(1, 1, 2, 6), rshape=(1, 3, 7, 6), adj_y=True),  # lhs broadcast over dimension 1
    dict(lshape=(1, 2, 1, 3, 300), rshape=(1, 2, 4, 300, 2), qo=(2.0, 0)),
    dict(lshape=(5, 6), rshape=(1, 6, 3), const_lhs=True),
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(TFLM_CASES)))
def test_batch_matmul_equals_tflm(case):
    c = dict(TFLM_CASES[case])
    rng = np.random.default_rng(300 + case)
    if c.pop("const_rhs", False):
        c["rhs"] = rng.integers(-128, 128, size=c["rshape"]).astype(np.int8)
    if c.pop("const_lhs", False):
        c["lhs"] = rng.integers(-128, 128, size=c["lshape"]).astype(np.int8)
    m = bmm_model(**c)
    xs = [rng.integers(-128, 128, size=(3,) + m.tensors[i].shape[1:]).astype(np.int8) for i in m.inputs]
    assert_same_as_tflm(m, xs)


# ----------------------------------------------------------------------------- (3) refusals
@pytest.mark.parametrize("build, match", [
    (lambda: bmm_model((1, 2, 3), (1, 4, 5)), "depths differ"),
    (lambda: bmm_model((1, 2, 3, 4), (1, 3, 4, 5)), "do not broadcast"),
    (lambda: bmm_model((1, 1, 1, 1, 2, 3), (1, 3, 5)), "2..5"),
    (lambda: bmm_model((1, 2, 3), (1, 3, 5), dtype=np.int16), "only int8"),
    (lambda: bmm_model((2, 3), (3, 5)), "dimension 0 is the batch"),
    (lambda: Model([Tensor("l", (1, 3), np.int8, qp(0.1, 0), np.zeros((1, 3), np.int8)),
                    Tensor("r", (3, 5), np.int8, qp(0.1, 0), np.zeros((3, 5), np.int8)),
                    Tensor("y", (1, 5), np.int8, qp(0.1, 0)), Tensor("unused", (1, 2), np.int8, qp(0.1, 0))],
                   [Operator("BATCH_MATMUL", (0, 1), (2,), {})], (3,), (2,)), "both operands are constant|every input is a constant"),
    (lambda: bmm_model((1, 2, 3), (1, 3, 5), out=(1, 2, 4)), "differs from the computed"),
])
def test_batch_matmul_refusals_name_the_problem(build, match):
    with pytest.raises(UnsupportedOperatorError, match=match):
        build()
