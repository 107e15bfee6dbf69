"""Pure-Python specification of the int8 activation operators of TFLite Micro.

RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC and TANH, each as the per-element
function of the kernel TFLM runs for int8 (named per function below), over
Python ``int`` with C semantics spelled out: int32 (and, for HARD_SWISH, int16)
wrap-around where C casts, truncating division where C divides. The jitted
kernels in :mod:`tinyzo.kernels.activations` are property-tested to be equal.
The prepare-time parameters come from :mod:`tinyzo.ops.activations`.

LOGISTIC and TANH: TFLM runs ``reference_integer_ops::Logistic`` / ``Tanh`` for
int8, gemmlowp's fixed-point ``logistic`` / ``tanh`` on a Q4.27 input; the
look-up tables of TFLite's optimized kernels are not used.

int16 (16x8, zero point 0): RELU and RELU6 are the int8 formulas with int16 bounds
(:func:`relu_s16`, :func:`relu6_s16`); LEAKY_RELU clamps to int16 (:func:`leaky_relu_s16`);
LOGISTIC and TANH interpolate TFLM's 256-entry sigmoid table (:func:`logistic_s16`,
:func:`tanh_s16`, ``reference_integer_ops::Logistic`` / ``Tanh`` int16 overloads).
TFLM has no int16 HARD_SWISH.
"""

from __future__ import annotations

from tinyzo.spec.arith import (
    ROUNDING_MODES,
    c_div,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul_bits,
    wrap_int,
    wrap_int32,
)
from tinyzo.spec.lut import interpolate_sigmoid_table
from tinyzo.spec.softmax import (
    exp_on_negative_values,
    one,
    one_over_one_plus_x_for_x_in_0_1,
    rescale,
    two_over_one_plus_x_for_x_in_0_1,
)

__all__ = [
    "INPUT_INTEGER_BITS",
    "hard_swish_s8",
    "leaky_relu_s8",
    "leaky_relu_s16",
    "logistic",
    "logistic_s8",
    "logistic_s16",
    "one_minus_x_over_one_plus_x_for_x_in_0_1",
    "relu6_s8",
    "relu6_s16",
    "relu_s8",
    "relu_s16",
    "saturating_doubling_high_mul_int16",
    "saturating_left_shift_int16",
    "saturating_rounding_doubling_high_mul_int16",
    "tanh",
    "tanh_s8",
    "tanh_s16",
]

INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1
#: Integer bits of the fixed-point input of int8 LOGISTIC and TANH (``kInputIntegerBits``): Q4.27.
INPUT_INTEGER_BITS = 4


def _mbqm(x: int, multiplier: int, shift: int, rounding: int) -> int:
    return multiply_by_quantized_multiplier(x, multiplier, shift, ROUNDING_MODES[rounding])


def _clamp8(v: int) -> int:
    return min(127, max(-128, v))


# ----------------------------------------------------------------------------- RELU, RELU6, LEAKY_RELU
def relu_s8(x, input_zero_point, output_multiplier, output_shift, output_zero_point, act_min, act_max,
            rounding=0) -> int:
    """TFLM int8 RELU (``micro/kernels/activations.h`` ``ReluQuantized``).

    ``clamp(output_zp + MBQM(x - input_zp, output_multiplier, output_shift), act_min, act_max)``
    with ``QuantizeMultiplier(s_in / s_out)`` and ``[act_min, act_max] = [output_zp, 127]``.
    ``rounding``: 0 double (TFLM), 1 single.
    """
    v = int(output_zero_point) + _mbqm(int(x) - int(input_zero_point), output_multiplier, output_shift, rounding)
    return min(int(act_max), max(int(act_min), v))


def relu6_s8(x, lower, upper) -> int:
    """TFLM int8 RELU6 (``Relu6Quantized``): the raw input clamped to ``[lower, upper]``, no requantization.

    ``lower`` is the input zero point, ``upper`` the input's quantized 6.0 (clamped to int8).
    """
    x = int(x)
    return int(upper) if x > upper else (int(lower) if x < lower else x)


def _leaky_relu_unclamped(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity,
                          multiplier_alpha, shift_alpha, rounding) -> int:
    """The LEAKY_RELU value before the output type's clamp (shared by the int8 and int16 forms)."""
    v = int(x) - int(input_zero_point)
    if v >= 0:
        r = _mbqm(v, multiplier_identity, shift_identity, rounding)
    else:
        m = int(multiplier_alpha)
        scaled = _mbqm(v, wrap_int32(-m) if m < 0 else m, shift_alpha, rounding)
        r = wrap_int32(-scaled) if m < 0 else scaled
    return int(output_zero_point) + r


def leaky_relu_s8(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                  shift_alpha, rounding=0) -> int:
    """TFLM int8 LEAKY_RELU (``reference_ops::QuantizeLeakyRelu``).

    ``v = x - input_zp``; ``v >= 0``: ``output_zp + MBQM(v, multiplier_identity, shift_identity)``;
    else ``output_zp + sign * MBQM(v, |multiplier_alpha|, shift_alpha)`` where ``sign`` is -1 for a
    negative alpha multiplier (TFLM takes the magnitude, then negates the product, since its
    March 2026 sync; multiplying by the signed multiplier rounds ties the other way, and the
    oracle agrees with the magnitude form); clamped to int8. Negations are int32 (wrapping).
    """
    return _clamp8(_leaky_relu_unclamped(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity,
                                      multiplier_alpha, shift_alpha, rounding))


# ----------------------------------------------------------------------------- HARD_SWISH (int16 fixed point)
def _wrap_int16(x: int) -> int:
    return wrap_int(x, 16)


def saturating_rounding_doubling_high_mul_int16(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul<int16_t>``: high 16 bits of ``2*a*b``, rounded half up.

    ``a == b == -32768`` saturates to 32767; otherwise ``(a*b + nudge) / 2**15`` with C division
    and ``nudge = 2**14`` (product >= 0) or ``1 - 2**14``
    (:func:`tinyzo.spec.arith.saturating_rounding_doubling_high_mul_bits` with 16 bits).
    """
    return saturating_rounding_doubling_high_mul_bits(a, b, 16)


def saturating_doubling_high_mul_int16(a: int, b: int) -> int:
    """TFLite ``SaturatingDoublingHighMul`` (int16, ``hard_swish.h``): ``a*b / 2**15`` truncated toward zero.

    As ARM's ``SQDMULH``: no rounding; ``a == b == -32768`` saturates to 32767.
    """
    if a == b == INT16_MIN:
        return INT16_MAX
    return _wrap_int16(c_div(a * b, 1 << 15))


def saturating_left_shift_int16(value: int, amount: int) -> int:
    """TFLite ``SaturatingLeftShift`` (``hard_swish.h``): ``value * 2**amount`` clamped to int16; amount in [0, 30]."""
    return min(INT16_MAX, max(INT16_MIN, value * (1 << amount)))


def hard_swish_s8(x, input_zero_point, output_zero_point, reluish_multiplier_fixedpoint_int16,
                  reluish_multiplier_exponent, output_multiplier_fixedpoint_int16, output_multiplier_exponent) -> int:
    """TFLM int8 HARD_SWISH (``reference_ops::HardSwish<int8_t>``), ``x * relu6(x + 3) / 6`` in int16 fixed point.

    ``v = (x - input_zp) * 2**7`` (the input on a scale 128x finer); ``preshift =
    SRDHM16(v, output_multiplier)``; the "reluish" factor: ``v`` rescaled by the reluish
    multiplier and exponent (saturating left shifts for a positive exponent, one before and one
    after the multiply; a rounding right shift for a negative one) so that 3.0 maps to 32768,
    then mapped from [-1, 1] to [0, 1] by ``(r + 2**15) >> 1``; the product
    ``SaturatingDoublingHighMul(reluish, preshift)`` (truncating), a rounding right shift by
    ``-output_multiplier_exponent`` (in [0, 15]), plus the output zero point, clamped to int8.
    The reluish exponent is in [-15, 31]. Multipliers are int16 (``DownScaleInt32ToInt16Multiplier``).
    """
    input_value = int(x) - int(input_zero_point)
    hires = _wrap_int16(input_value * (1 << 7))
    preshift_output = saturating_rounding_doubling_high_mul_int16(hires, int(output_multiplier_fixedpoint_int16))
    reluish = hires
    e = int(reluish_multiplier_exponent)
    if e > 0:
        reluish = saturating_left_shift_int16(reluish, e - 1)
    reluish = saturating_rounding_doubling_high_mul_int16(reluish, int(reluish_multiplier_fixedpoint_int16))
    if e > 0:
        reluish = saturating_left_shift_int16(reluish, 1)
    if e < 0:
        reluish = rounding_divide_by_pot(reluish, -e)  # == gemmlowp's int16 version for exponents <= 15
    reluish = (reluish + (1 << 15)) >> 1
    preshift_result = saturating_doubling_high_mul_int16(reluish, preshift_output)
    out = rounding_divide_by_pot(preshift_result, -int(output_multiplier_exponent))
    return _clamp8(_wrap_int16(out + int(output_zero_point)))


# ----------------------------------------------------------------------------- LOGISTIC, TANH (gemmlowp fixed point)
def logistic(a: int, integer_bits: int) -> int:
    """gemmlowp ``logistic(FixedPoint<int32_t, integer_bits>)`` -> Q0.31: ``1 / (1 + exp(-a))``.

    For ``|a|``: ``one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-|a|))``; a negative
    ``a`` gives ``One - that``; ``a == 0`` gives exactly 1/2 (``1 << 30``).
    """
    abs_input = a if a > 0 else wrap_int32(-a)
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_int32(-abs_input), integer_bits))
    result_if_negative = wrap_int32(one(0) - result_if_positive)
    if a == 0:
        return 1 << 30
    return result_if_positive if a > 0 else result_if_negative


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp ``one_minus_x_over_one_plus_x_for_x_in_0_1`` (Q0.31 -> Q0.31): ``(1 - a) / (1 + a)``.

    The Newton-Raphson division of :func:`tinyzo.spec.softmax.one_over_one_plus_x_for_x_in_0_1`
    (:func:`tinyzo.spec.softmax.two_over_one_plus_x_for_x_in_0_1`, Q2.29), then
    ``Rescale<0>(x - 1)``: ``2/(1 + a) - 1``, a saturating left shift by 2.
    """
    return rescale(wrap_int32(two_over_one_plus_x_for_x_in_0_1(a) - one(2)), 2, 0)


def tanh(a: int, integer_bits: int) -> int:
    """gemmlowp ``tanh(FixedPoint<int32_t, integer_bits>)`` -> Q0.31.

    ``n = -|a|``; ``t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(2n))``
    where ``2n`` is ``ExactMulByPot<1>``: the same raw value read with one more integer bit;
    ``tanh(a) = t`` for ``a > 0``, ``-t`` for ``a < 0``, 0 for ``a == 0``.
    """
    n = a if a < 0 else wrap_int32(-a)
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    if a == 0:
        return 0
    return wrap_int32(-t) if a < 0 else t


def _q4_27_activation_s8(function, output_shift: int, output_zero_point: int, x, input_zero_point,
                         input_range_radius, input_multiplier, input_left_shift, rounding) -> int:
    """What TFLM's int8 LOGISTIC and TANH share: ``v = x - input_zp``; ``v <= -radius``: -128;
    ``v >= radius``: 127; else ``q = MBQM(v, input_multiplier, input_left_shift)`` (Q4.27),
    ``RoundingDivideByPOT(function(q), output_shift) + output_zero_point`` clamped to int8."""
    v = int(x) - int(input_zero_point)
    if v <= -input_range_radius:
        return -128
    if v >= input_range_radius:
        return 127
    q4 = _mbqm(v, input_multiplier, input_left_shift, rounding)
    return _clamp8(rounding_divide_by_pot(function(q4, INPUT_INTEGER_BITS), output_shift) + output_zero_point)


def logistic_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding=0) -> int:
    """TFLM int8 LOGISTIC (``reference_integer_ops::Logistic``); output scale 1/256, zero point -128.

    ``v = x - input_zp``; ``v <= -radius``: -128; ``v >= radius``: 127; else
    ``q = MBQM(v, input_multiplier, input_left_shift)`` (Q4.27), ``logistic(q)`` in Q0.31,
    ``RoundingDivideByPOT(., 23) - 128`` clamped to int8.
    """
    return _q4_27_activation_s8(logistic, 31 - 8, -128, x, input_zero_point, input_range_radius, input_multiplier,
                                input_left_shift, rounding)


def tanh_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding=0) -> int:
    """TFLM int8 TANH (``reference_integer_ops::Tanh``); output scale 1/128, zero point 0.

    ``v = x - input_zp``; ``v <= -radius``: -128; ``v >= radius``: 127; else
    ``q = MBQM(v, input_multiplier, input_left_shift)`` (Q4.27), ``tanh(q)`` in Q0.31,
    ``RoundingDivideByPOT(., 24)`` clamped to int8.
    """
    return _q4_27_activation_s8(tanh, 31 - 7, 0, x, input_zero_point, input_range_radius, input_multiplier,
                                input_left_shift, rounding)


# ----------------------------------------------------------------------------- int16 LOGISTIC, TANH (sigmoid table)
def _scaled_input_s16(x: int, input_multiplier: int, input_left_shift: int) -> int:
    """``(x * input_multiplier + round) >> input_left_shift`` in int32, ``round = 2**(shift - 1)`` (0 for shift 0)."""
    rnd = (1 << (input_left_shift - 1)) if input_left_shift > 0 else 0
    return wrap_int32(int(x) * int(input_multiplier) + rnd) >> int(input_left_shift)


def logistic_s16(x, input_multiplier: int, input_left_shift: int) -> int:
    """TFLM int16 LOGISTIC (``reference_integer_ops::Logistic``, int16 overload); output scale 2**-15, zero point 0.

    ``v = (x * input_multiplier + round) >> input_left_shift`` (the input on a scale of 1/(3 * 4096) per unit:
    ``(prepared multiplier, shift)``; TFLM's power-of-two case, multiplier 0, is passed here as ``(3 << shift, 0)``);
    ``a = |v|``; interval ``a >> 9`` of :data:`~tinyzo.spec.lut.SIGMOID_TABLE_UINT16` (saturated from 255 on,
    ``0x7fff << 10``), interpolated with the low 9 bits (uint32); ``v >= 0``: ``(r + 2**9) >> 10``, else
    ``(2**25 - r + 2**9 - 1) >> 10``, stored as int16.
    """
    v = _scaled_input_s16(x, input_multiplier, input_left_shift)
    a = abs(v)
    result = interpolate_sigmoid_table(a, 9, 0x7FFF << 10)
    result = result + (1 << 9) if v >= 0 else (1 << (16 + 9)) - result + (1 << 9) - 1
    return _wrap_int16(result >> 10)


def tanh_s16(x, input_multiplier: int, input_left_shift: int) -> int:
    """TFLM int16 TANH (``reference_integer_ops::Tanh``, int16 overload); output scale 2**-15, zero point 0.

    ``tanh(x) = 2 * sigmoid(2x) - 1`` on the same table: ``v`` as :func:`logistic_s16`; ``a = |v|``, interval
    ``a >> 8`` (saturated from 255 on, ``0xffff << 8``), interpolated with the low 8 bits; ``v >= 0``:
    ``(r - 2**23 + 2**7) >> 8``, else ``(-r + 2**23 + 2**7 - 1) >> 8`` (int32, arithmetic shift), stored as int16.
    """
    v = _scaled_input_s16(x, input_multiplier, input_left_shift)
    a = abs(v)
    result = interpolate_sigmoid_table(a, 8, 0xFFFF << 8)
    result = result - (1 << 23) + (1 << 7) if v >= 0 else -result + (1 << 23) + (1 << 7) - 1
    return _wrap_int16(result >> 8)


# ----------------------------------------------------------------------------- int16 RELU, RELU6, LEAKY_RELU
def _clamp16(v: int) -> int:
    return min(INT16_MAX, max(INT16_MIN, v))


def relu_s16(x, input_zero_point, output_multiplier, output_shift, output_zero_point, act_min, act_max,
             rounding=0) -> int:
    """TFLM int16 RELU (``ReluQuantized<int16_t>``): :func:`relu_s8`'s formula; TFLM's bounds are [0, 32767]."""
    return relu_s8(x, input_zero_point, output_multiplier, output_shift, output_zero_point, act_min, act_max,
                   rounding)


def relu6_s16(x, lower, upper) -> int:
    """TFLM int16 RELU6 (``Relu6Quantized<int16_t>``): :func:`relu6_s8`'s clamp; ``upper`` clamped to int16."""
    return relu6_s8(x, lower, upper)


def leaky_relu_s16(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                   shift_alpha, rounding=0) -> int:
    """TFLM int16 LEAKY_RELU (``reference_ops::QuantizeLeakyRelu<int16_t>``): :func:`leaky_relu_s8`'s formula,
    clamped to int16 instead of int8."""
    return _clamp16(_leaky_relu_unclamped(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity,
                                      multiplier_alpha, shift_alpha, rounding))
