"""The int16 edges of TFLM's keyword model: QUANTIZE int16 -> int8 / int32 and SOFTMAX int8 -> int16.

(1) The jitted kernels equal their specs (:mod:`tinyzo.spec.requantize`,
:mod:`tinyzo.spec.softmax_s16`) on random parameters (hypothesis, both rounding modes); (2) every
int16 input value (QUANTIZE) and every pair of int8 values in a softmax row (SOFTMAX) through TFLM
for several scales, the keyword model's among them; (3) what is refused. Random one-operator models
of both run in tests/test_ops_tflm.py (``QUANTIZE_INT16``, ``SOFTMAX_INT16_OUT``).
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
from tinyzo.kernels.requantize import requantize_s16
from tinyzo.kernels.softmax_s16 import softmax_s8_s16
from tinyzo.ops.softmax import softmax_params
from tinyzo.quant import quantize_multiplier
from tinyzo.spec.requantize import requantize
from tinyzo.spec.softmax_s16 import softmax_row_s8_s16

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT32 = (-(2**31), 2**31 - 1)


def quantize_model(n, q_in, out_t, q_out):
    tensors = [Tensor("x", (1, n), np.int16, qp(*q_in)), Tensor("y", (1, n), out_t, qp(*q_out))]
    return Model(tensors, [Operator("QUANTIZE", (0,), (1,))], (0,), (1,))


def softmax_model(shape, s_in, zp_in=0, q_out=(1 / 65536, -32768), beta=1.0, out_t=np.int16):
    tensors = [Tensor("x", shape, np.int8, qp(s_in, zp_in)), Tensor("y", shape, out_t, qp(*q_out))]
    return Model(tensors, [Operator("SOFTMAX", (0,), (1,), {"beta": beta})], (0,), (1,))


# ----------------------------------------------------------------------------- (1) kernels == specs
@PROP
@given(st.floats(1e-4, 1e4), st.integers(-32768, 32767), st.sampled_from([np.int8, np.int32]),
       st.integers(-(2**31), 2**31 - 1), st.sampled_from(["double", "single"]), st.integers(0, 2**31))
def test_prop_requantize_s16_equals_spec(ratio, zp_in, out_t, zp_out, rounding, seed):
    info = np.iinfo(out_t)
    zp_out = int(np.clip(zp_out, info.min, info.max))
    m, sh = quantize_multiplier(ratio, rounding)
    x = np.random.default_rng(seed).integers(-32768, 32768, size=64).astype(np.int16)
    x[:4] = [-32768, 32767, 0, zp_in]
    out = np.empty(64, out_t)
    requantize_s16(x, m, sh, zp_in, zp_out, int(info.min), int(info.max), 0 if rounding == "double" else 1, out)
    np.testing.assert_array_equal(out, [requantize(v, m, sh, zp_in, zp_out, int(info.min), int(info.max), rounding)
                                        for v in x])


@PROP
@given(st.floats(0.001, 2.0), st.sampled_from([0.5, 1.0, 2.0]), st.integers(1, 40),
       st.sampled_from(["double", "single"]), st.integers(0, 2**31))
def test_prop_softmax_s8_s16_equals_spec(scale, beta, depth, rounding, seed):
    mult, shift, diff_min = softmax_params(beta, scale, rounding)
    x = np.random.default_rng(seed).integers(-128, 128, size=(5, depth)).astype(np.int8)
    x[0] = 127  # ties at the maximum
    out = np.empty(x.shape, np.int16)
    softmax_s8_s16(x, mult, shift, diff_min, out, 0 if rounding == "double" else 1)
    np.testing.assert_array_equal(out, [softmax_row_s8_s16(r, mult, shift, diff_min, rounding) for r in x])


def test_softmax_s16_means_probabilities():
    """The int16 output is (q + 32768) / 65536: a row of equal values gives 1/depth each."""
    m = softmax_model((1, 4), 0.1)
    y = m(np.full((1, 4), 9, np.int8))
    np.testing.assert_array_equal(y, np.full((1, 4), -32768 + 16384, np.int16))


# ----------------------------------------------------------------------------- (2) TFLM, every input
@pytest.mark.oracle
@pytest.mark.parametrize("q_in, out_t, q_out", [
    ((0.000625, 0), np.int8, (0.05920833, -128)),          # keyword model's input QUANTIZE
    ((1.5259022e-05, -32768), np.int32, (3.051851e-05, 0)),  # keyword model's output QUANTIZE
    ((0.01, 17), np.int8, (0.002, 5)),                      # ratio > 1: left shift, saturation
    ((0.003, -5), np.int32, (1e-6, -2_100_000_000)),         # int32 output, the zero point sum wraps
    ((2e-4, 301), np.int32, (7e-4, 123456)),
])
def test_quantize_int16_every_input_equals_tflm(q_in, out_t, q_out):
    x = np.arange(-32768, 32768, dtype=np.int16).reshape(1, -1)
    assert_same_as_tflm(quantize_model(x.shape[1], q_in, out_t, q_out), [x])


@pytest.mark.oracle
@pytest.mark.parametrize("s_in, beta", [(0.06996273, 1.0), (0.01, 1.0), (0.5, 2.0), (0.2, 0.5)])
def test_softmax_int16_out_every_pair_equals_tflm(s_in, beta):
    """Rows of two: every (a, b) int8 pair (the keyword model's last softmax has depth 2; without the
    JIT, by test_nojit.py, every 61st pair: the interpreted kernel takes a minute for all of them)."""
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    x = np.stack([a.reshape(-1), b.reshape(-1)], axis=-1).astype(np.int8)[::61 if NO_JIT else 1].reshape(1, -1, 2)
    assert_same_as_tflm(softmax_model(x.shape, s_in, beta=beta), [x])


# ----------------------------------------------------------------------------- (3) refusals
def test_refusals():
    with pytest.raises(UnsupportedOperatorError, match="must have zero point 0") as e:   # int16 -> int16: 16x8 only
        quantize_model(4, (0.01, 3), np.int16, (0.01, 0))
    assert "\n" not in str(e.value)
    with pytest.raises(UnsupportedOperatorError, match="zero point 40000"):
        quantize_model(4, (0.01, 40000), np.int8, (0.01, 0))
    with pytest.raises(UnsupportedOperatorError, match="scale 1/65536"):
        softmax_model((1, 4), 0.1, q_out=(1 / 65536, 0))
    with pytest.raises(UnsupportedOperatorError, match="scale 1/65536"):
        softmax_model((1, 4), 0.1, q_out=(1.01 / 65536, -32768))
    softmax_model((1, 4), 0.1, q_out=(1.0009 / 65536, -32768))  # within TFLM's 0.1 %
