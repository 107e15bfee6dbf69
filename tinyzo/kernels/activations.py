"""Jitted int8 activation kernels: RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH; int16 (``_s16``)
kernels of RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH.

Each kernel maps a flat C-contiguous int8 (int16) array to a caller-provided array of the same
dtype and size, element by element, bit-exact with the TFLite Micro kernel named in its docstring and
equal to :mod:`tinyzo.spec.activations` (property-tested). Scalars are carried as int64
holding int32 (or int16) values; every wrap-around C performs is explicit, so jitted and
``NUMBA_DISABLE_JIT=1`` runs agree. ``rounding``: 0 = double rounding (TFLM), 1 = single.
Parameters come from :mod:`tinyzo.ops.activations`, which validates them.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import (
    INT32_MAX,
    c_div_pow2,
    clamp_int8,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul_bits,
    wrap_int32,
)
from tinyzo.kernels.softmax import (
    exp_on_negative_values,
    one_over_one_plus_x_for_x_in_0_1,
    rescale,
    two_over_one_plus_x_for_x_in_0_1,
)
from tinyzo.spec.activations import INPUT_INTEGER_BITS, INT16_MAX, INT16_MIN


@njit(cache=True, nogil=True)
def relu_s8(x, input_zero_point, output_multiplier, output_shift, output_zero_point, act_min, act_max, rounding, out):
    """Int8 RELU (TFLM ``ReluQuantized``): ``clamp(out_zp + MBQM(x - in_zp, m, s), act_min, act_max)``.

    Args:
        x: int8[n]; input_zero_point, output_zero_point: int in [-128, 127];
        output_multiplier, output_shift: ``QuantizeMultiplier(s_in / s_out)`` (shift in [-31, 31]);
        act_min, act_max: the clamp (TFLM: output zero point, 127); rounding: 0 or 1; out: int8[n], written.
    """
    for i in range(x.shape[0]):
        v = np.int64(output_zero_point) + multiply_by_quantized_multiplier(
            np.int64(x[i]) - np.int64(input_zero_point), output_multiplier, output_shift, rounding)
        if v < act_min:
            v = np.int64(act_min)
        if v > act_max:
            v = np.int64(act_max)
        out[i] = v


@njit(cache=True, nogil=True)
def relu6_s8(x, lower, upper, out):
    """Int8 RELU6 (TFLM ``Relu6Quantized``): ``x`` clamped to ``[lower, upper]`` (raw values, no requantization).

    Args: x: int8[n]; lower: the input zero point; upper: the input's quantized 6.0, both int8; out: int8[n].
    """
    for i in range(x.shape[0]):
        v = x[i]
        if v > upper:
            v = upper
        elif v < lower:
            v = lower
        out[i] = v


@njit(cache=True, inline="always")
def _leaky_relu(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                shift_alpha, rounding, lower, upper, out):
    """The LEAKY_RELU loop shared by the int8 and int16 kernels; the result is clamped to ``[lower, upper]``."""
    m_alpha = np.int64(multiplier_alpha)
    negative = m_alpha < 0
    safe_alpha = wrap_int32(-m_alpha) if negative else m_alpha
    for i in range(x.shape[0]):
        v = np.int64(x[i]) - np.int64(input_zero_point)
        if v >= 0:
            r = multiply_by_quantized_multiplier(v, multiplier_identity, shift_identity, rounding)
        else:
            r = multiply_by_quantized_multiplier(v, safe_alpha, shift_alpha, rounding)
            if negative:
                r = wrap_int32(-r)
        out[i] = min(max(np.int64(output_zero_point) + r, np.int64(lower)), np.int64(upper))


@njit(cache=True, nogil=True)
def leaky_relu_s8(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                  shift_alpha, rounding, out):
    """Int8 LEAKY_RELU (TFLM ``reference_ops::QuantizeLeakyRelu``).

    ``v = x - in_zp``; ``out = clamp(out_zp + (v >= 0 ? MBQM(v, m_id, s_id) : sign * MBQM(v, |m_alpha|, s_alpha)),
    -128, 127)``, ``sign = -1`` for a negative alpha multiplier (a negative alpha).

    Args:
        x: int8[n]; zero points in [-128, 127]; multiplier_identity/shift_identity:
            ``QuantizeMultiplier(s_in / s_out)``; multiplier_alpha/shift_alpha:
            ``QuantizeMultiplier(s_in * alpha / s_out)`` (multiplier < 0 for alpha < 0);
        rounding: 0 or 1; out: int8[n], written.
    """
    _leaky_relu(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                shift_alpha, rounding, -128, 127, out)


# ----------------------------------------------------------------------------- HARD_SWISH (int16 fixed point)
@njit(cache=True, inline="always")
def _wrap_int16(x):
    return ((np.int64(x) + np.int64(32768)) & np.int64(0xFFFF)) - np.int64(32768)


@njit(cache=True, inline="always")
def saturating_rounding_doubling_high_mul_int16(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul<int16_t>``; see the spec of the same name."""
    return _wrap_int16(saturating_rounding_doubling_high_mul_bits(a, b, 16))


@njit(cache=True, inline="always")
def saturating_doubling_high_mul_int16(a, b):
    """TFLite ``SaturatingDoublingHighMul`` (int16, truncating, as SQDMULH)."""
    a = np.int64(a)
    b = np.int64(b)
    if a == INT16_MIN and b == INT16_MIN:
        return np.int64(INT16_MAX)
    return _wrap_int16(c_div_pow2(a * b, 15))


@njit(cache=True, inline="always")
def saturating_left_shift_int16(value, amount):
    """TFLite ``SaturatingLeftShift`` (int16): ``value * 2**amount`` clamped to int16; amount in [0, 30]."""
    r = np.int64(value) * (np.int64(1) << np.int64(amount))
    if r > INT16_MAX:
        return np.int64(INT16_MAX)
    if r < INT16_MIN:
        return np.int64(INT16_MIN)
    return r


@njit(cache=True, nogil=True)
def hard_swish_s8(x, input_zero_point, output_zero_point, reluish_multiplier_fixedpoint_int16,
                  reluish_multiplier_exponent, output_multiplier_fixedpoint_int16, output_multiplier_exponent, out):
    """Int8 HARD_SWISH (TFLM ``reference_ops::HardSwish<int8_t>``); see :func:`tinyzo.spec.activations.hard_swish_s8`.

    Args:
        x: int8[n]; zero points in [-128, 127];
        reluish_multiplier_fixedpoint_int16, output_multiplier_fixedpoint_int16: int16 multipliers
            (``DownScaleInt32ToInt16Multiplier`` of ``QuantizeMultiplier``) in [0, 32767];
        reluish_multiplier_exponent in [-15, 31]; output_multiplier_exponent in [-15, 0];
        out: int8[n], written.
    """
    e = np.int64(reluish_multiplier_exponent)
    for i in range(x.shape[0]):
        hires = _wrap_int16((np.int64(x[i]) - np.int64(input_zero_point)) * np.int64(128))
        preshift_output = saturating_rounding_doubling_high_mul_int16(hires, output_multiplier_fixedpoint_int16)
        reluish = hires
        if e > 0:
            reluish = saturating_left_shift_int16(reluish, e - np.int64(1))
        reluish = saturating_rounding_doubling_high_mul_int16(reluish, reluish_multiplier_fixedpoint_int16)
        if e > 0:
            reluish = saturating_left_shift_int16(reluish, 1)
        if e < 0:
            reluish = rounding_divide_by_pot(reluish, -e)
        reluish = (reluish + np.int64(32768)) >> np.int64(1)
        preshift_result = saturating_doubling_high_mul_int16(reluish, preshift_output)
        v = rounding_divide_by_pot(preshift_result, -np.int64(output_multiplier_exponent))
        out[i] = clamp_int8(_wrap_int16(v + np.int64(output_zero_point)))


# ----------------------------------------------------------------------------- LOGISTIC, TANH (gemmlowp fixed point)
@njit(cache=True, nogil=True)
def logistic_fixedpoint(a, integer_bits):
    """gemmlowp ``logistic(FixedPoint<int32_t, integer_bits>)`` -> Q0.31; see the spec of the same name."""
    a = np.int64(a)
    abs_input = a if a > 0 else wrap_int32(-a)
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_int32(-abs_input), integer_bits))
    if a == 0:
        return np.int64(1 << 30)
    if a > 0:
        return result_if_positive
    return wrap_int32(np.int64(INT32_MAX) - result_if_positive)


@njit(cache=True, nogil=True)
def one_minus_x_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp ``one_minus_x_over_one_plus_x_for_x_in_0_1``: Q0.31 ``(1 - a) / (1 + a)``, ``a`` in [0, 1)."""
    return rescale(wrap_int32(two_over_one_plus_x_for_x_in_0_1(a) - np.int64(1 << 29)), 2, 0)


@njit(cache=True, nogil=True)
def tanh_fixedpoint(a, integer_bits):
    """gemmlowp ``tanh(FixedPoint<int32_t, integer_bits>)`` -> Q0.31; see :func:`tinyzo.spec.activations.tanh`."""
    a = np.int64(a)
    n = a if a < 0 else wrap_int32(-a)
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, np.int64(integer_bits) + np.int64(1)))
    if a == 0:
        return np.int64(0)
    if a < 0:
        return wrap_int32(-t)
    return t


@njit(cache=True, nogil=True)
def _q4_27_activation_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding,
                         use_tanh, out):
    """The loop of int8 LOGISTIC (``use_tanh`` False) and TANH (True): input range check, Q4.27 input,
    fixed-point function, output rounding; see :func:`tinyzo.spec.activations.logistic_s8` / ``tanh_s8``."""
    for i in range(x.shape[0]):
        v = np.int64(x[i]) - np.int64(input_zero_point)
        if v <= -input_range_radius:
            out[i] = -128
        elif v >= input_range_radius:
            out[i] = 127
        else:
            q4 = multiply_by_quantized_multiplier(v, input_multiplier, input_left_shift, rounding)
            if use_tanh:
                r = rounding_divide_by_pot(tanh_fixedpoint(q4, INPUT_INTEGER_BITS), 24)
            else:
                r = rounding_divide_by_pot(logistic_fixedpoint(q4, INPUT_INTEGER_BITS), 23) - np.int64(128)
            out[i] = clamp_int8(r)


@njit(cache=True, nogil=True)
def logistic_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding, out):
    """Int8 LOGISTIC (TFLM ``reference_integer_ops::Logistic``), output scale 1/256 and zero point -128.

    ``v = x - in_zp``: -128 for ``v <= -radius``, 127 for ``v >= radius``, else
    ``clamp(RDBPOT(logistic(MBQM(v, input_multiplier, input_left_shift)), 23) - 128, -128, 127)``
    with the fixed-point input in Q4.27.

    Args:
        x: int8[n]; input_zero_point in [-128, 127]; input_range_radius >= 0;
        input_multiplier, input_left_shift: ``frexp`` of ``s_in * 2**27`` (shift in [0, 30] when radius > 0);
        rounding: 0 or 1; out: int8[n], written.
    """
    _q4_27_activation_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding,
                         False, out)


@njit(cache=True, nogil=True)
def tanh_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding, out):
    """Int8 TANH (TFLM ``reference_integer_ops::Tanh``), output scale 1/128 and zero point 0.

    ``v = x - in_zp``: -128 for ``v <= -radius``, 127 for ``v >= radius``, else
    ``clamp(RDBPOT(tanh(MBQM(v, input_multiplier, input_left_shift)), 24), -128, 127)`` (Q4.27 input).
    Arguments as :func:`logistic_s8`.
    """
    _q4_27_activation_s8(x, input_zero_point, input_range_radius, input_multiplier, input_left_shift, rounding,
                         True, out)


# ----------------------------------------------------------------------------- int16 (16x8) kernels
@njit(cache=True, inline="always")
def _clamp16(v):
    if v < INT16_MIN:
        return np.int64(INT16_MIN)
    if v > INT16_MAX:
        return np.int64(INT16_MAX)
    return np.int64(v)


@njit(cache=True, nogil=True)
def relu_s16(x, input_zero_point, output_multiplier, output_shift, output_zero_point, act_min, act_max, rounding,
             out):
    """Int16 RELU (TFLM ``ReluQuantized<int16_t>``): :func:`relu_s8`'s loop on int16[n] arrays.

    Zero points 0 (16x8), ``[act_min, act_max] = [0, 32767]``; ``(output_multiplier, output_shift) =
    QuantizeMultiplier(s_in / s_out)``.
    """
    relu_s8(x, input_zero_point, output_multiplier, output_shift, output_zero_point, act_min, act_max, rounding, out)


@njit(cache=True, nogil=True)
def relu6_s16(x, lower, upper, out):
    """Int16 RELU6 (TFLM ``Relu6Quantized<int16_t>``): :func:`relu6_s8`'s clamp on int16[n] arrays.

    ``lower`` = 0 (the zero point), ``upper`` = ``clamp16(round(6.0f / s_in))``.
    """
    relu6_s8(x, lower, upper, out)


@njit(cache=True, nogil=True)
def leaky_relu_s16(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                   shift_alpha, rounding, out):
    """Int16 LEAKY_RELU (TFLM ``reference_ops::QuantizeLeakyRelu<int16_t>``): :func:`leaky_relu_s8`'s formula
    on int16[n] arrays, clamped to [-32768, 32767]."""
    _leaky_relu(x, input_zero_point, output_zero_point, multiplier_identity, shift_identity, multiplier_alpha,
                shift_alpha, rounding, INT16_MIN, INT16_MAX, out)


@njit(cache=True, inline="always")
def _scaled_input_s16(x, input_multiplier, input_left_shift, rnd):
    """``(x * input_multiplier + rnd) >> input_left_shift`` in int32 (the int16 LOGISTIC/TANH input rescaling)."""
    return wrap_int32(np.int64(x) * np.int64(input_multiplier) + rnd) >> np.int64(input_left_shift)


@njit(cache=True, inline="always")
def _interpolate_table(sigmoid_table, a, frac_bits, saturated):
    """:func:`tinyzo.spec.lut.interpolate_sigmoid_table` on ``sigmoid_table`` (uint16[256]); ``a`` int64 >= 0."""
    uh = a >> frac_bits
    if uh >= 255:
        return saturated
    ua = np.int64(sigmoid_table[uh])
    ub = np.int64(sigmoid_table[uh + 1])
    return (ua << frac_bits) + (a & ((np.int64(1) << frac_bits) - np.int64(1))) * (ub - ua)


@njit(cache=True, nogil=True)
def logistic_s16(x, input_multiplier, input_left_shift, sigmoid_table, out):
    """Int16 LOGISTIC (TFLM ``reference_integer_ops::Logistic``, int16): the interpolated sigmoid table.

    See :func:`tinyzo.spec.activations.logistic_s16`. Output scale 2**-15, zero point 0.

    Args:
        x: int16[n]; input_multiplier in [1, 32767], input_left_shift in [0, 31] (TFLM's power-of-two case
            as ``(3 << shift, 0)``); sigmoid_table: uint16[256] (:data:`tinyzo.spec.lut.SIGMOID_TABLE_UINT16`);
        out: int16[n], written.
    """
    shift = np.int64(input_left_shift)
    rnd = (np.int64(1) << (shift - np.int64(1))) if shift > 0 else np.int64(0)
    for i in range(x.shape[0]):
        v = _scaled_input_s16(x[i], input_multiplier, shift, rnd)
        a = abs(v)
        result = _interpolate_table(sigmoid_table, a, np.int64(9), np.int64(0x7FFF << 10))
        if v >= 0:
            result = result + np.int64(1 << 9)
        else:
            result = np.int64((1 << 25) + (1 << 9) - 1) - result
        out[i] = _wrap_int16(result >> np.int64(10))


@njit(cache=True, nogil=True)
def tanh_s16(x, input_multiplier, input_left_shift, sigmoid_table, out):
    """Int16 TANH (TFLM ``reference_integer_ops::Tanh``, int16): ``2 * sigmoid(2x) - 1`` on the sigmoid table.

    See :func:`tinyzo.spec.activations.tanh_s16`. Output scale 2**-15, zero point 0. Arguments as
    :func:`logistic_s16`.
    """
    shift = np.int64(input_left_shift)
    rnd = (np.int64(1) << (shift - np.int64(1))) if shift > 0 else np.int64(0)
    for i in range(x.shape[0]):
        v = _scaled_input_s16(x[i], input_multiplier, shift, rnd)
        a = abs(v)
        result = _interpolate_table(sigmoid_table, a, np.int64(8), np.int64(0xFFFF << 8))
        if v >= 0:
            result = result - np.int64((1 << 23) - (1 << 7))
        else:
            result = np.int64((1 << 23) + (1 << 7) - 1) - result
        out[i] = _wrap_int16(result >> np.int64(8))
