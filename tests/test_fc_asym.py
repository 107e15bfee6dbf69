"""FULLY_CONNECTED with asymmetric per-tensor int8 weights (a non-zero weight zero point).

TFLM's per-tensor kernel computes ``acc += (w + weights_offset) * (x + input_offset)`` with
``weights_offset = -zero_point``; its per-channel kernel ignores weight zero points (refused here).
(1) the op against :func:`tinyzo.spec.conv.fully_connected_s8` with ``filter_offset`` on random
and extreme values, on both sides of the float32-exact depth; (2) one-operator models run by TFLM;
(3) refusals and what training does with such a layer.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_elementwise import assert_same_as_tflm

from tinyzo.errors import InputError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.quant import QuantParams
from tinyzo.spec.conv import fully_connected_s8

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=10 if NO_JIT else 40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fc_model(k, n_out, w, w_zp, bias=None, sx=0.02, zx=-5, sw=0.004, sy=0.3, zy=7, act="NONE", per_channel=False):
    sws = np.full(n_out if per_channel else 1, sw, np.float32)
    zps = np.full(sws.size, w_zp, np.int64)
    tensors = [Tensor("x", (1, k), np.int8, QuantParams([sx], [zx])),
               Tensor("w", (n_out, k), np.int8, QuantParams(sws, zps), np.asarray(w, np.int8)),
               Tensor("b", (n_out,), np.int32, QuantParams(sws * np.float32(sx), np.zeros(sws.size)),
                      np.zeros(n_out, np.int32) if bias is None else np.asarray(bias, np.int32)),
               Tensor("y", (1, n_out), np.int8, QuantParams([sy], [zy]))]
    op = Operator("FULLY_CONNECTED", (0, 1, 2), (3,), {"fused_activation_function": act})
    return Model(tensors, [op], (0,), (3,))


def spec_of(m, x):
    p = m.prepared[0]
    return fully_connected_s8(x, m.tensors[1].data, m.tensors[2].data, input_offset=p.input_offset,
                              output_offset=p.output_offset, multiplier=p.multiplier[:1], shift=p.shift[:1],
                              act_min=p.act_min, act_max=p.act_max, filter_offset=p.weights_offset)


# ----------------------------------------------------------------------------- (1) op == spec
@PROP
@given(k=st.sampled_from([1, 7, 64, 514, 515, 1100]), n_out=st.integers(1, 6), w_zp=st.integers(-128, 127),
       extreme=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_prop_asymmetric_fc_equals_spec(k, n_out, w_zp, extreme, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(n_out, k)).astype(np.int8)
    x = rng.integers(-128, 128, size=(3, k)).astype(np.int8)
    if extreme:  # |w + offset| = 255 and |x + input offset| at its largest: the float32 bound's worst case
        w[:] = -128 if w_zp > 0 else 127
        x[0] = -128
    m = fc_model(k, n_out, w, w_zp, bias=rng.integers(-50000, 50000, size=n_out), sw=0.0002, sy=2.0)
    np.testing.assert_array_equal(m(x), spec_of(m, x))


def test_float64_gemm_where_float32_would_round():
    """K = 515 with |w + offset| = 255 and x = -128: partial sums reach 128 * 255 * 515 > 2**24."""
    k = 515
    x = np.full((1, k), -128, np.int8)
    x[0, 0] = -127  # sum x * (w + 127) = 16,809,345: odd and above 2**24, a float32 sum would round it
    raw = 514 * 128 * 255 + 127 * 255
    # the bias brings the accumulator to 3 and the multiplier is 1: an error of 1 in the sum changes the output
    m = fc_model(k, 1, np.full((1, k), -128), 127, bias=[3 - raw], sx=1.0, zx=0, sw=1.0, sy=1.0, zy=0)
    assert m.prepared[0].wt.dtype == np.float64
    np.testing.assert_array_equal(m(x), [[3]])
    np.testing.assert_array_equal(m(x), spec_of(m, x))
    assert fc_model(514, 1, np.full((1, 514), -128), 127).prepared[0].wt.dtype == np.float32


# ----------------------------------------------------------------------------- (2) TFLM
TFLM_CASES = [(16, 4, 127, "NONE"), (16, 4, -128, "RELU"), (300, 9, 3, "NONE"), (515, 3, 127, "RELU6"),
              (1100, 2, -77, "NONE"), (1, 1, 50, "RELU_N1_TO_1")]


@pytest.mark.oracle
@pytest.mark.parametrize("k, n_out, w_zp, act", TFLM_CASES)
def test_asymmetric_fc_equals_tflm(k, n_out, w_zp, act):
    rng = np.random.default_rng(k + n_out)
    w = rng.integers(-128, 128, size=(n_out, k)).astype(np.int8)
    w[0, : k // 2] = -128 if w_zp > 0 else 127
    m = fc_model(k, n_out, w, w_zp, bias=rng.integers(-30000, 30000, size=n_out), act=act, sw=0.0005, sy=0.5)
    x = rng.integers(-128, 128, size=(6, k)).astype(np.int8)
    x[0] = -128
    assert_same_as_tflm(m, [x])


# ----------------------------------------------------------------------------- (3) refusals, training
def test_per_channel_asymmetric_weights_are_refused():
    w = np.zeros((3, 4), np.int8)
    with pytest.raises(UnsupportedOperatorError, match="per-channel kernel ignores"):
        fc_model(4, 3, w, 5, per_channel=True)
    assert fc_model(4, 3, w, 0, per_channel=True).prepared[0].weights_offset == 0


def test_asymmetric_fc_is_not_trained():
    m = fc_model(4, 3, np.zeros((3, 4), np.int8), 9)
    assert m.trainable_ops() == []
    with pytest.raises(InputError, match="asymmetric weights"):
        m.get_params(0)
    assert fc_model(4, 3, np.zeros((3, 4), np.int8), 0).trainable_ops() == [0]
