"""RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH: jitted kernels == spec (hypothesis), ops == TFLite Micro.

Evidence layers: (1) property tests of every kernel of :mod:`tinyzo.kernels.activations` and of
its fixed-point primitives against :mod:`tinyzo.spec.activations`, on all 256 int8 inputs, with
random and extreme scales (multipliers at both ends, power-of-two ratios that make exact .5 ties),
zero points at the int8 corners and both rounding modes; (2) the TFLM interpreter on every int8
input for hand-picked scales, including the scales (found by search) where float32 and double
prepare arithmetic differ, which settle what the oracle computes (random one-op models of each
operator: tests/test_ops_tflm.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_elementwise import PROP, ROUNDINGS, assert_same_as_tflm, qp, scales, zero_points

from tinyzo.errors import ArithmeticContractError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels import activations as K
from tinyzo.ops.activations import (
    down_scale_int32_to_int16_multiplier,
    hard_swish_params,
    leaky_relu_params,
    logistic_tanh_params,
    relu6_bounds,
    relu_params,
)
from tinyzo.quant import rounding_code
from tinyzo.spec import activations as S

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
INT32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 2**27, -(2**27)]))
INT16 = st.one_of(st.integers(-(2**15), 2**15 - 1), st.sampled_from([0, 1, -1, 2**15 - 1, -(2**15)]))


def _run(kernel, *args):
    out = np.empty(ALL_INT8.size, np.int8)
    kernel(ALL_INT8, *args, out)
    return out


def _spec(f, *args):
    return np.array([f(int(v), *args) for v in ALL_INT8], np.int8)


# ----------------------------------------------------------------------------- (1) primitives == spec
@PROP
@given(a=INT16, b=INT16, amount=st.integers(0, 30))
def test_prop_int16_primitives_equal_spec(a, b, amount):
    assert K.saturating_rounding_doubling_high_mul_int16(a, b) == S.saturating_rounding_doubling_high_mul_int16(a, b)
    assert K.saturating_doubling_high_mul_int16(a, b) == S.saturating_doubling_high_mul_int16(a, b)
    assert K.saturating_left_shift_int16(a, amount) == S.saturating_left_shift_int16(a, amount)


def test_int16_primitives_known_values():
    assert S.saturating_rounding_doubling_high_mul_int16(-(2**15), -(2**15)) == 2**15 - 1  # the one overflow
    assert S.saturating_doubling_high_mul_int16(-(2**15), -(2**15)) == 2**15 - 1
    assert S.saturating_rounding_doubling_high_mul_int16(1, 2**14) == 1  # 0.5 rounds up
    assert S.saturating_rounding_doubling_high_mul_int16(-1, 2**14) == 0  # -0.5 rounds up too (nudge)
    assert S.saturating_doubling_high_mul_int16(3, 2**14) == 1 and S.saturating_doubling_high_mul_int16(-3, 2**14) == -1
    assert S.saturating_left_shift_int16(300, 7) == 2**15 - 1 and S.saturating_left_shift_int16(-300, 7) == -(2**15)
    assert down_scale_int32_to_int16_multiplier(2**31 - 1) == 2**15 - 1
    assert down_scale_int32_to_int16_multiplier(2**30) == 2**14
    assert down_scale_int32_to_int16_multiplier(2**30 + 2**15) == 2**14 + 1  # half rounds up


@PROP
@given(a=INT32)
def test_prop_fixed_point_logistic_tanh_equal_spec(a):
    assert K.logistic_fixedpoint(a, 4) == S.logistic(a, 4)
    assert K.tanh_fixedpoint(a, 4) == S.tanh(a, 4)
    if a >= 0:
        assert K.one_minus_x_over_one_plus_x_for_x_in_0_1(a) == S.one_minus_x_over_one_plus_x_for_x_in_0_1(a)


def test_fixed_point_logistic_tanh_known_values():
    assert S.logistic(0, 4) == 1 << 30 and S.tanh(0, 4) == 0
    one_q4 = 1 << 27  # 1.0 in Q4.27; gemmlowp's approximations are far finer than an int8 output step (2**-8)
    assert abs(S.logistic(one_q4, 4) / 2**31 - 1 / (1 + np.exp(-1))) < 2**-20
    assert abs(S.tanh(-one_q4, 4) / 2**31 - np.tanh(-1)) < 2**-20
    assert S.logistic(one_q4, 4) + S.logistic(-one_q4, 4) == 2**31 - 1  # result_if_negative = One - result


# ----------------------------------------------------------------------------- (1) kernels == spec
@PROP
@given(s_in=scales, s_out=scales, z_in=zero_points, z_out=zero_points, rounding=st.sampled_from(ROUNDINGS))
def test_prop_relu_and_relu6_kernels_equal_spec(s_in, s_out, z_in, z_out, rounding):
    m, sh, lo, hi = relu_params(s_in, s_out, z_out, rounding)
    r = rounding_code(rounding)
    np.testing.assert_array_equal(_run(K.relu_s8, z_in, m, sh, z_out, lo, hi, r),
                                  _spec(S.relu_s8, z_in, m, sh, z_out, lo, hi, r))
    try:
        lower, upper = relu6_bounds(s_in, z_in)
    except ArithmeticContractError:
        return
    np.testing.assert_array_equal(_run(K.relu6_s8, lower, upper), _spec(S.relu6_s8, lower, upper))


@PROP
@given(s_in=scales, s_out=scales, z_in=zero_points, z_out=zero_points, rounding=st.sampled_from(ROUNDINGS),
       alpha=st.one_of(st.floats(-3, 3), st.sampled_from([0.0, 0.2, -0.2, 0.5, -0.5, 1.0, -1.0, 0.01])))
def test_prop_leaky_relu_kernel_equals_spec(s_in, s_out, z_in, z_out, rounding, alpha):
    mi, si, ma, sa = leaky_relu_params(s_in, s_out, alpha, rounding)
    r = rounding_code(rounding)
    np.testing.assert_array_equal(_run(K.leaky_relu_s8, z_in, z_out, mi, si, ma, sa, r),
                                  _spec(S.leaky_relu_s8, z_in, z_out, mi, si, ma, sa, r))


@PROP
@given(s_in=scales, ratio=st.one_of(st.floats(1 / 128, 500), st.sampled_from([1 / 64, 0.5, 1.0, 2.0, 256.0])),
       z_in=zero_points, z_out=zero_points, rounding=st.sampled_from(ROUNDINGS))
def test_prop_hard_swish_kernel_equals_spec(s_in, ratio, z_in, z_out, rounding):
    try:
        p = hard_swish_params(s_in, float(np.float32(s_in * ratio)), rounding)
    except ArithmeticContractError:
        assume(False)
    args = (z_in, z_out, p["reluish_multiplier_fixedpoint_int16"], p["reluish_multiplier_exponent"],
            p["output_multiplier_fixedpoint_int16"], p["output_multiplier_exponent"])
    np.testing.assert_array_equal(_run(K.hard_swish_s8, *args), _spec(S.hard_swish_s8, *args))


@PROP
@given(s_in=st.one_of(scales, st.sampled_from([2.0**-7, 2.0**-20, 8.0, 16.0, 0.1])), z_in=zero_points,
       rounding=st.sampled_from(ROUNDINGS))
def test_prop_logistic_and_tanh_kernels_equal_spec(s_in, z_in, rounding):
    try:
        m, sh, radius = logistic_tanh_params(s_in)
    except ArithmeticContractError:
        assume(False)
    r = rounding_code(rounding)
    np.testing.assert_array_equal(_run(K.logistic_s8, z_in, radius, m, sh, r),
                                  _spec(S.logistic_s8, z_in, radius, m, sh, r))
    np.testing.assert_array_equal(_run(K.tanh_s8, z_in, radius, m, sh, r), _spec(S.tanh_s8, z_in, radius, m, sh, r))


def test_prepare_known_values():
    assert relu6_bounds(6 / 100, -28) == (-28, 72)  # float32(6 / 0.06) = 100.00000149 -> 100
    assert relu6_bounds(1e-3, 0) == (0, 127)  # clamped
    assert relu_params(0.5, 0.25, -3) == (1 << 30, 2, -3, 127)  # ratio 2 = 2**30 * 2**(2 - 31)
    m, sh, radius = logistic_tanh_params(1 / 16)  # 2**-4 * 2**27 = 2**23: frexp (0.5, 24)
    assert (m, sh, radius) == (1 << 30, 24, (15 << 27) >> 24)
    with pytest.raises(ArithmeticContractError):
        logistic_tanh_params(2.0**-30)
    with pytest.raises(ArithmeticContractError):
        hard_swish_params(1.0, 1.0 / 200)  # output scale below input scale / 128
    with pytest.raises(ArithmeticContractError):
        relu6_bounds(1e-10, 0)


def test_hard_swish_spec_shape():
    """hard_swish(x) = x * relu6(x + 3) / 6 within a few output steps on a fine grid."""
    s_in, s_out = 0.05, 0.03
    p = hard_swish_params(s_in, s_out)
    args = (0, -40, p["reluish_multiplier_fixedpoint_int16"], p["reluish_multiplier_exponent"],
            p["output_multiplier_fixedpoint_int16"], p["output_multiplier_exponent"])
    for q in range(-128, 128):
        x = q * s_in
        want = np.clip(np.round(x * min(6, max(0, x + 3)) / 6 / s_out) - 40, -128, 127)
        assert abs(S.hard_swish_s8(q, *args) - want) <= 1


# ----------------------------------------------------------------------------- op prepare/compute
def unary_model(opcode, shape, q_in, q_out, options=None, rounding="double"):
    tensors = [Tensor("x", shape, np.int8, qp(*q_in)), Tensor("y", shape, np.int8, qp(*q_out))]
    return Model(tensors, [Operator(opcode, (0,), (1,), options or {})], (0,), (1,), name=opcode.lower(),
                 rounding=rounding)


OP_CASES = [  # (opcode, input (s, z), output (s, z), options)
    ("RELU", (0.05, 3), (0.03, -100), {}),
    ("RELU6", (0.05, 3), (0.05, 3), {}),
    ("LEAKY_RELU", (0.05, 3), (0.04, -7), {"alpha": 0.2}),
    ("LEAKY_RELU", (0.05, 3), (0.04, -7), {"alpha": -0.7}),
    ("HARD_SWISH", (0.05, 3), (0.03, -100), {}),
    ("LOGISTIC", (0.05, 3), (1 / 256, -128), {}),
    ("TANH", (0.05, 3), (1 / 128, 0), {}),
]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("case", range(len(OP_CASES)))
def test_op_batch_equals_spec(case, rounding):
    opcode, q_in, q_out, opts = OP_CASES[case]
    m = unary_model(opcode, (1, 4, 64), q_in, q_out, opts, rounding)
    x = np.stack([ALL_INT8.reshape(4, 64), ALL_INT8[::-1].reshape(4, 64)])
    y = m(x)
    prep, r = m.prepared[0], rounding_code(rounding)
    spec = {
        "RELU": lambda v: S.relu_s8(v, prep.z_in, prep.output_multiplier, prep.output_shift, prep.z_out, prep.act_min,
                                    prep.act_max, r),
        "RELU6": lambda v: S.relu6_s8(v, prep.lower, prep.upper),
        "LEAKY_RELU": lambda v: S.leaky_relu_s8(v, prep.z_in, prep.z_out, prep.multiplier_identity,
                                                prep.shift_identity, prep.multiplier_alpha, prep.shift_alpha, r),
        "HARD_SWISH": lambda v: S.hard_swish_s8(v, prep.z_in, prep.z_out, *prep.params.values()),
        "LOGISTIC": lambda v: S.logistic_s8(v, prep.z_in, prep.input_range_radius, prep.input_multiplier,
                                            prep.input_left_shift, r),
        "TANH": lambda v: S.tanh_s8(v, prep.z_in, prep.input_range_radius, prep.input_multiplier,
                                    prep.input_left_shift, r),
    }[opcode]
    want = np.vectorize(spec)(x.astype(np.int64)).astype(np.int8)
    np.testing.assert_array_equal(y, want)
    assert prep.macs() == 0


def test_ops_refuse_bad_graphs():
    with pytest.raises(UnsupportedOperatorError, match="RELU6.*raw int8"):
        unary_model("RELU6", (1, 4), (0.05, 3), (0.05, 4))
    with pytest.raises(UnsupportedOperatorError, match="LOGISTIC.*1/256|LOGISTIC.*0.00390625"):
        unary_model("LOGISTIC", (1, 4), (0.05, 3), (1 / 128, -128))
    with pytest.raises(UnsupportedOperatorError, match="TANH.*zero point"):
        unary_model("TANH", (1, 4), (0.05, 3), (1 / 128, 5))
    with pytest.raises(UnsupportedOperatorError, match="HARD_SWISH.*quantization not supported"):
        unary_model("HARD_SWISH", (1, 4), (1.0, 0), (1 / 200, 0))
    with pytest.raises(UnsupportedOperatorError, match="LEAKY_RELU.*not finite"):
        unary_model("LEAKY_RELU", (1, 4), (0.05, 3), (0.05, 3), {"alpha": float("inf")})
    with pytest.raises(UnsupportedOperatorError, match="differs from input shape"):
        Model([Tensor("x", (1, 4), np.int8, qp(0.1, 0)), Tensor("y", (1, 5), np.int8, qp(0.1, 0))],
              [Operator("RELU", (0,), (1,))], (0,), (1,))
    with pytest.raises(UnsupportedOperatorError, match="constant input|every input is a constant"):
        Model([Tensor("c", (1, 4), np.int8, qp(0.1, 0), data=np.zeros((1, 4), np.int8)),
               Tensor("x", (1, 4), np.int8, qp(0.1, 0)),
               Tensor("y", (1, 4), np.int8, qp(0.1, 0)), Tensor("z", (1, 4), np.int8, qp(0.1, 0))],
              [Operator("TANH", (0,), (2,)), Operator("ADD", (1, 2), (3,), {"fused_activation_function": "NONE"})],
              (1,), (3,))
    with pytest.raises(UnsupportedOperatorError, match="needs 1 input|takes 1 input"):
        Model([Tensor("x", (1, 4), np.int8, qp(0.1, 0)), Tensor("y", (1, 4), np.int8, qp(0.1, 0))],
              [Operator("RELU", (0, 0), (1,))], (0,), (1,))


@pytest.mark.parametrize("opcode, opts", [("LEAKY_RELU", {"alpha": -0.3}), ("HARD_SWISH", {}), ("TANH", {})])
def test_tflite_and_npz_round_trip(opcode, opts, tmp_path):
    import tinyzo
    from tinyzo.io import read_tflite, write_tflite

    q_out = {"TANH": (1 / 128, 0)}.get(opcode, (0.04, -7))
    m = unary_model(opcode, (1, 256), (0.05, 3), q_out, opts)
    x = ALL_INT8.reshape(1, 256)
    tinyzo.save(m, tmp_path / "m.npz")
    for back in (read_tflite(write_tflite(m)), tinyzo.load(tmp_path / "m.npz")):
        assert back.operators[0].opcode == opcode
        got = {k: np.float32(v) for k, v in back.operators[0].options.items()}
        assert got == {k: np.float32(v) for k, v in opts.items()}
        np.testing.assert_array_equal(back(x), m(x))


# ----------------------------------------------------------------------------- (2) TFLM
TFLM_CASES = OP_CASES + [
    ("RELU", (0.5, 0), (0.25, 0), {}),  # ratio 2: exact
    ("RELU", (0.25, -128), (0.5, 127), {}),  # ratio 1/2: .5 ties in the rounding shift
    ("RELU", (1e-3, 0), (0.1, 0), {}),  # multiplier 2**-7: a long right shift
    ("RELU6", (0.01, -128), (0.01, -128), {}),  # 6.0 beyond int8: upper 127
    ("RELU6", (0.1, 100), (0.1, 100), {}),  # quantized 6.0 = 160 -> clamped
    ("LEAKY_RELU", (0.5, 0), (0.25, 0), {"alpha": 0.25}),  # ties on both branches
    ("LEAKY_RELU", (0.02, -128), (0.3, 127), {"alpha": 1.7}),
    ("LEAKY_RELU", (0.5, 0), (0.25, 0), {"alpha": -0.25}),  # negative alpha at ties: |multiplier|, then negate
    ("LEAKY_RELU", (0.5, 0), (0.25, 0), {"alpha": -0.75}),
    ("HARD_SWISH", (0.1, -128), (0.07, -5), {}),  # reluish exponent > 0 (left shifts)
    ("HARD_SWISH", (0.002, 0), (0.002, 0), {}),  # reluish exponent < 0 (rounding right shift)
    ("HARD_SWISH", (0.5, 0), (0.25, 0), {}),
    ("LOGISTIC", (1 / 16, 0), (1 / 256, -128), {}),  # power-of-two input scale
    ("LOGISTIC", (0.2, -128), (1 / 256, -128), {}),  # saturates at both ends (radius)
    ("LOGISTIC", (0.002, 127), (1 / 256, -128), {}),
    ("TANH", (1 / 32, 0), (1 / 128, 0), {}),
    ("TANH", (0.15, 10), (1 / 128, 0), {}),
    ("TANH", (0.003, -100), (1 / 128, 0), {}),
    # scales found by search where float32 and double prepare arithmetic give different outputs:
    ("RELU", (0.005782485939562321, -94), (0.01131079625338316, 32), {}),
    ("LEAKY_RELU", (0.08647286146879196, 3), (0.04235405474901199, 60), {"alpha": 0.2}),
    ("LEAKY_RELU", (0.032641954720020294, 118), (0.09134095162153244, -53), {"alpha": 0.2}),
    ("HARD_SWISH", (0.005899276118725538, 86), (0.0008571785874664783, -30), {}),
    ("HARD_SWISH", (0.021017249673604965, -22), (0.011779178865253925, 86), {}),
    ("RELU6", (0.036474164575338364, -111), (0.036474164575338364, -111), {}),  # float32 6/s: 54, double: 53
    ("RELU6", (0.04428044334053993, -16), (0.04428044334053993, -16), {}),
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(TFLM_CASES)))
def test_activation_single_op_equals_tflm_on_every_input(case):
    opcode, q_in, q_out, opts = TFLM_CASES[case]
    m = unary_model(opcode, (1, 256), q_in, q_out, opts)
    x = np.stack([ALL_INT8, ALL_INT8[::-1]])
    assert_same_as_tflm(m, [x])


def test_float32_and_double_prepare_differ_on_the_searched_scales():
    """The searched cases above are sensitive: float32 ratios (the C source as read) give other outputs."""
    m = unary_model("RELU", (1, 256), (0.005782485939562321, -94), (0.01131079625338316, 32))
    mf, sf = __import__("tinyzo.quant", fromlist=["quantize_multiplier"]).quantize_multiplier(
        float(np.float32(np.float32(0.005782485939562321) / np.float32(0.01131079625338316))))
    f32 = _spec(S.relu_s8, -94, mf, sf, 32, 32, 127)
    assert np.count_nonzero(f32 != m(ALL_INT8.reshape(1, 256)).reshape(-1)) > 0
    _, upper = relu6_bounds(0.036474164575338364, -111)
    assert upper == 54 and -111 + round(6.0 / 0.036474164575338364) == 53  # float32 (TFLM) vs double


def test_negative_alpha_tie_case_is_sensitive():
    """LEAKY_RELU alpha -0.25 (multiplier exactly -1/2): the signed-multiplier form rounds the ties the other way."""
    from tinyzo.spec.arith import multiply_by_quantized_multiplier as mbqm

    m = unary_model("LEAKY_RELU", (1, 256), (0.5, 0), (0.25, 0), {"alpha": -0.25})
    p = m.prepared[0]
    assert p.multiplier_alpha == -(1 << 30) and p.shift_alpha == 0
    ours = m(ALL_INT8.reshape(1, 256)).reshape(-1)
    signed = np.array([min(127, max(-128, mbqm(v, p.multiplier_alpha, 0) if v < 0 else 2 * v))
                       for v in range(-128, 128)])
    assert ours[1] == 63 and signed[1] == 64  # x = -127: 63.5 rounds to 63 (TFLM, test above), not 64
