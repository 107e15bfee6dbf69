"""Jitted int8 -> int8 and int16 -> int16 SOFTMAX, bit-exact with TFLite Micro.

The kernels :func:`softmax_s8`, :func:`softmax_s16` and their fixed-point helpers are the jitted twins
of :mod:`tinyzo.spec.softmax` (property-tested equal). Scalars are carried as
int64 holding int32 values; every int32 addition/subtraction that may
overflow in C++ wraps explicitly (:func:`tinyzo.kernels.arith.wrap_int32`),
so jitted and ``NUMBA_DISABLE_JIT=1`` runs agree.

References: gemmlowp ``fixedpoint/fixedpoint.h`` and TFLite
``kernels/internal/common.h`` for the helpers,
``kernels/internal/reference/softmax.h`` (``Softmax<int8_t, int8_t>``,
``SoftmaxInt16``) for the kernels. The parameters come from
:func:`tinyzo.ops.softmax.softmax_params` / :func:`~tinyzo.ops.softmax.softmax_s16_params`.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import (
    INT32_MAX,
    INT32_MIN,
    SINGLE,
    c_div_pow2,
    clamp_int8,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_single,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from tinyzo.kernels.lut import lut_lookup_int16
from tinyzo.spec.softmax import (  # the constants are defined once, in the spec
    ACCUMULATION_INTEGER_BITS,
    CONSTANT_48_OVER_17,
    CONSTANT_NEG_32_OVER_17,
    EXP_BARREL_SHIFTER,
    EXP_MINUS_ONE_EIGHTH,
    ONE_THIRD,
    SCALED_DIFF_INTEGER_BITS,
)


@njit(cache=True, inline="always")
def saturating_rounding_multiply_by_pot(x, exponent):
    """gemmlowp ``SaturatingRoundingMultiplyByPOT``: saturating ``x * 2**exponent`` (exponent > 0),
    rounding-half-away ``x / 2**-exponent`` (exponent < 0). int32 ``x``, exponent in [-31, 30]."""
    x = np.int64(x)
    e = np.int64(exponent)
    if e == 0:
        return x
    if e < 0:
        return rounding_divide_by_pot(x, -e)
    threshold = (np.int64(1) << (np.int64(31) - e)) - np.int64(1)
    if x > threshold:
        return np.int64(INT32_MAX)
    if x < -threshold:
        return np.int64(INT32_MIN)
    return wrap_int32(x * (np.int64(1) << e))


@njit(cache=True, inline="always")
def rescale(x, src_integer_bits, dst_integer_bits):
    """gemmlowp ``Rescale<dst>(FixedPoint<int32_t, src>)``."""
    return saturating_rounding_multiply_by_pot(x, np.int64(src_integer_bits) - np.int64(dst_integer_bits))


@njit(cache=True, inline="always")
def rounding_half_sum(a, b):
    """gemmlowp ``RoundingHalfSum`` for int32: ``(a + b + sign) / 2`` with C (truncating) division."""
    s = np.int64(a) + np.int64(b)
    return wrap_int32(c_div_pow2(s + (np.int64(1) if s >= 0 else np.int64(-1)), 1))


@njit(cache=True, inline="always")
def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """gemmlowp ``exp_on_interval_between_negative_one_quarter_and_0_excl``: Q0.31 ``exp(a)``, ``a`` in [-1/4, 0)."""
    x = wrap_int32(np.int64(a) + np.int64(1 << 28))
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap_int32(saturating_rounding_doubling_high_mul(wrap_int32(x4_over_4 + x3), ONE_THIRD) + x2), -1
    )
    return wrap_int32(
        np.int64(EXP_MINUS_ONE_EIGHTH)
        + saturating_rounding_doubling_high_mul(EXP_MINUS_ONE_EIGHTH, wrap_int32(x + poly))
    )


@njit(cache=True, inline="always")
def _exp_barrel_shifter(result, remainder, integer_bits, exponent, multiplier):
    """One step of gemmlowp's exp barrel shifter: ``result * exp(-2**exponent)`` if that bit of ``remainder`` is set."""
    ib = np.int64(integer_bits)
    k = np.int64(exponent)
    if ib > k and (np.int64(remainder) & (np.int64(1) << (np.int64(31) - ib + k))) != 0:
        return saturating_rounding_doubling_high_mul(result, multiplier)
    return np.int64(result)


@njit(cache=True, nogil=True)
def exp_on_negative_values(a, integer_bits):
    """gemmlowp ``exp_on_negative_values(FixedPoint<int32_t, integer_bits>)`` -> Q0.31; integer_bits in [0, 29]."""
    a = np.int64(a)
    ib = np.int64(integer_bits)
    fractional_bits = np.int64(31) - ib
    one_quarter = np.int64(1) << (fractional_bits - np.int64(2))
    mask = one_quarter - np.int64(1)
    a_mod_quarter_minus_one_quarter = wrap_int32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(a_mod_quarter_minus_one_quarter, ib, 0))
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    # gemmlowp's GEMMLOWP_EXP_BARREL_SHIFTER(k, raw exp(-2**k)) for k = -2..4
    for exponent, multiplier in EXP_BARREL_SHIFTER:
        result = _exp_barrel_shifter(result, remainder, ib, exponent, multiplier)
    if ib > 5:
        clamp = -(np.int64(1) << (np.int64(36) - ib))
        if a < clamp:
            result = np.int64(0)
    if a == 0:
        result = np.int64(INT32_MAX)
    return result


@njit(cache=True, nogil=True)
def two_over_one_plus_x_for_x_in_0_1(a):
    """Q2.29 ``2 / (1 + a)`` for a Q0.31 ``a`` in [0, 1): gemmlowp's Newton-Raphson division, shared by
    ``one_over_one_plus_x_for_x_in_0_1`` and ``one_minus_x_over_one_plus_x_for_x_in_0_1``; see the spec."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap_int32(
        np.int64(CONSTANT_48_OVER_17) + saturating_rounding_doubling_high_mul(half_denominator, CONSTANT_NEG_32_OVER_17)
    )
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus_half_denominator_times_x = wrap_int32(np.int64(1 << 29) - half_denominator_times_x)
        x = wrap_int32(x + rescale(saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x), 4, 2))
    return x


@njit(cache=True, nogil=True)
def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: Q0.31 ``1 / (1 + a)``, ``a`` in [0, 1)."""
    return rescale(two_over_one_plus_x_for_x_in_0_1(a), 1, 0)


@njit(cache=True, inline="always")
def count_leading_zeros(x):
    """TFLite ``CountLeadingZeros<uint32_t>`` of the low 32 bits of ``x`` (32 for 0)."""
    u = np.int64(x) & np.int64(0xFFFFFFFF)
    n = np.int64(32)
    while u != 0:
        u >>= np.int64(1)
        n -= np.int64(1)
    return n


@njit(cache=True, nogil=True)
def get_reciprocal(x, x_integer_digits):
    """TFLite ``GetReciprocal``: ``(shifted_scale Q0.31, num_bits_over_unit)`` for a nonzero int32 ``x``."""
    headroom_plus_one = count_leading_zeros(x)
    num_bits_over_unit = np.int64(x_integer_digits) - headroom_plus_one
    u = (np.int64(x) & np.int64(0xFFFFFFFF)) << headroom_plus_one
    shifted_sum_minus_one = wrap_int32((u - np.int64(2147483648)) & np.int64(0xFFFFFFFF))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier_greater_than_one(x, quantized_multiplier, left_shift, rounding):
    """TFLite ``MultiplyByQuantizedMultiplierGreaterThanOne``; rounding 0 = double (TFLM), 1 = single."""
    if rounding == SINGLE:
        return multiply_by_quantized_multiplier_single(x, quantized_multiplier, left_shift)
    return saturating_rounding_doubling_high_mul(
        wrap_int32(np.int64(x) * (np.int64(1) << np.int64(left_shift))), quantized_multiplier
    )


@njit(cache=True, inline="always")
def row_max(x, i):
    """The largest entry of row ``i`` of ``x`` (int8/int16[M, D], D >= 1), as int64."""
    max_in_row = np.int64(x[i, 0])
    for c in range(1, x.shape[1]):
        max_in_row = max(max_in_row, np.int64(x[i, c]))
    return max_in_row


@njit(cache=True, inline="always")
def exps_row_s8(x, i, max_in_row, input_multiplier, input_left_shift, diff_min, rounding, exps):
    """First pass of the int8-input softmax over row ``i`` of ``x`` (int8[M, D]).

    Writes ``exps[c] = exp_on_negative_values(MBQM>1(x - max))`` (Q0.31, int64[D]) for every ``c`` with
    ``x - max >= diff_min`` (the others are left unwritten; TFLM recomputes the same value in its second pass)
    and returns the int32-wrapped sum of those exponentials rescaled to Q12.19.
    """
    sum_of_exps = np.int64(0)
    for c in range(x.shape[1]):
        input_diff = np.int64(x[i, c]) - max_in_row
        if input_diff >= diff_min:
            input_diff_rescaled = multiply_by_quantized_multiplier_greater_than_one(
                input_diff, input_multiplier, input_left_shift, rounding
            )
            e = exp_on_negative_values(input_diff_rescaled, SCALED_DIFF_INTEGER_BITS)
            exps[c] = e
            sum_of_exps = wrap_int32(sum_of_exps + rescale(e, 0, ACCUMULATION_INTEGER_BITS))
    return sum_of_exps


@njit(cache=True, nogil=True)
def softmax_s8(x, input_multiplier, input_left_shift, diff_min, out, rounding=0):
    """int8 -> int8 softmax over the last axis, bit-exact with TFLite Micro.

    ``reference_ops::Softmax<int8_t, int8_t>``: per row, ``d = x - max(row)``;
    entries with ``d >= diff_min`` get ``e = exp_on_negative_values(
    MultiplyByQuantizedMultiplierGreaterThanOne(d, input_multiplier,
    input_left_shift))`` (Q5.26 -> Q0.31), summed in Q12.19 (``Rescale<12>``,
    int32 wrapping add); ``GetReciprocal(sum, 12)`` gives ``s`` and
    ``num_bits_over_unit``; ``out = clamp(RoundingDivideByPOT(SRDHM(s, e),
    num_bits_over_unit + 23) - 128, -128, 127)``; other entries get -128.
    The output has scale 1/256 and zero point -128.

    Args:
        x: int8[M, D], D >= 1.
        input_multiplier: int32 in [2**30, 2**31 - 1].
        input_left_shift: in [1, 31] (double rounding), [1, 30] (single).
        diff_min: int <= 0.
        out: int8[M, D], written.
        rounding: 0 = double (TFLM's default build), 1 = ``TFLITE_SINGLE_ROUNDING``.

    Returns:
        The number of rows on which TFLite Micro aborts (its
        ``TFLITE_CHECK(0 <= exponent <= 31)`` fails: the sum of exponentials is
        512 or more, possible from D = 512 on). Such rows are written as -128;
        the caller must treat a nonzero count as an error.
    """
    m_rows, depth = x.shape
    exps = np.empty(depth, dtype=np.int64)
    bad_rows = 0
    for i in range(m_rows):
        max_in_row = row_max(x, i)
        sum_of_exps = exps_row_s8(x, i, max_in_row, input_multiplier, input_left_shift, diff_min, rounding, exps)
        shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
        exponent = num_bits_over_unit + np.int64(31 - 8)
        if exponent < 0 or exponent > 31:
            bad_rows += 1
            for c in range(depth):
                out[i, c] = -128
            continue
        for c in range(depth):
            input_diff = np.int64(x[i, c]) - max_in_row
            if input_diff < diff_min:
                out[i, c] = -128
            else:
                unsat_output = rounding_divide_by_pot(
                    saturating_rounding_doubling_high_mul(shifted_scale, exps[c]), exponent
                )
                out[i, c] = clamp_int8(unsat_output - np.int64(128))
    return bad_rows


@njit(cache=True, nogil=True)
def softmax_s16(x, input_multiplier, input_left_shift, exp_lut, one_over_one_plus_x_lut, out, rounding=0):
    """int16 -> int16 softmax over the last axis, bit-exact with TFLite Micro (``reference_ops::SoftmaxInt16``).

    Per row: ``e = LUTLookup(clamp16(MBQM(x - max, input_multiplier, input_left_shift) + 32767), exp_lut)``;
    ``sum`` of the ``e`` (int32); ``h = CountLeadingZeros(sum)``; ``r = LUTLookup(clamp16((((sum << (h - 1))
    + 2**13) >> 14) - 3 * 2**15), one_over_one_plus_x_lut)``; ``out = clamp((e * r + 2**(30 - h)) >> (31 - h),
    0, 32767)``. See :func:`tinyzo.spec.softmax.softmax_s16`. The output has scale 1/32768, zero point 0.

    Args:
        x: int16[M, D], 1 <= D <= 65538 (the int32 sum of exponentials cannot overflow).
        input_multiplier, input_left_shift: ``QuantizeMultiplier(s_in * beta / (10 / 65535))``, shift in [-31, 15].
        exp_lut, one_over_one_plus_x_lut: int16[513], TFLM's tables (:mod:`tinyzo.spec.lut`).
        out: int16[M, D], written (TFLM caches the exponentials there; here a separate buffer).
        rounding: 0 = double (TFLM's default build), 1 = ``TFLITE_SINGLE_ROUNDING``.
    """
    m_rows, depth = x.shape
    exps = np.empty(depth, dtype=np.int64)
    for i in range(m_rows):
        max_in_row = row_max(x, i)
        sum_of_exps = np.int64(0)
        for c in range(depth):
            scaled_diff = multiply_by_quantized_multiplier(np.int64(x[i, c]) - max_in_row, input_multiplier,
                                                           input_left_shift, rounding)
            sym = min(np.int64(32767), max(np.int64(-32768), scaled_diff + np.int64(32767)))
            e = lut_lookup_int16(sym, exp_lut)
            exps[c] = e
            sum_of_exps += e
        headroom_plus_one = count_leading_zeros(sum_of_exps)
        shifted_sum = ((sum_of_exps << (headroom_plus_one - np.int64(1))) + np.int64(1 << 13)) >> np.int64(14)
        sym_sum = min(np.int64(32767), max(np.int64(-32768), shifted_sum - np.int64((1 << 15) + (1 << 16))))
        reciprocal = lut_lookup_int16(sym_sum, one_over_one_plus_x_lut)
        right_shift = np.int64(31) - headroom_plus_one
        rnd = np.int64(1) << (right_shift - np.int64(1))
        for c in range(depth):
            v = (exps[c] * reciprocal + rnd) >> right_shift
            out[i, c] = min(np.int64(32767), max(np.int64(0), v))
