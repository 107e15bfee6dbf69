"""Pure-Python specification of TFLite Micro's int8 -> int8 and int16 -> int16 SOFTMAX.

Every fixed-point function used by the int8 softmax is its own small function
named after its gemmlowp / TFLite counterpart (in snake_case) and works on
Python ``int`` values holding int32 raw fixed-point numbers. A gemmlowp
``FixedPoint<int32_t, n>`` is represented by its raw int32 value; the number of
integer bits ``n`` (a template parameter in C++) is passed explicitly where it
matters. Additions and subtractions, undefined behaviour on overflow in C++,
wrap as two's-complement int32 (what every compiler TFLite Micro runs on
does).

References (bit-exact):

* gemmlowp ``fixedpoint/fixedpoint.h``: ``SaturatingRoundingMultiplyByPOT``,
  ``Rescale``, ``RoundingHalfSum``,
  ``exp_on_interval_between_negative_one_quarter_and_0_excl``,
  ``exp_on_negative_values``, ``one_over_one_plus_x_for_x_in_0_1``;
* TFLite ``kernels/internal/common.h``: ``CountLeadingZeros``,
  ``GetReciprocal``, ``MultiplyByQuantizedMultiplierGreaterThanOne``;
* TFLite ``kernels/internal/reference/softmax.h``: the templated
  ``Softmax<int8_t, int8_t>`` (what ``tensorflow/lite/micro/kernels/softmax.cc``
  runs for int8 input and int8 output) and ``SoftmaxInt16`` (int16 input and
  output: two interpolated look-up tables, :mod:`tinyzo.spec.lut`, no gemmlowp).

The prepare-time parameters (``input_multiplier``, ``input_left_shift``,
``diff_min``) are computed by :func:`tinyzo.ops.softmax.softmax_params`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.spec.arith import (
    DOUBLE_ROUNDING,
    INT32_MAX,
    INT32_MIN,
    SINGLE_ROUNDING,
    c_div,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_single,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from tinyzo.spec.lut import lut_lookup_int16

#: Integer bits of the scaled input difference fed to exp (Q5.26).
SCALED_DIFF_INTEGER_BITS = 5
#: Integer bits of the sum of exponentials (Q12.19).
ACCUMULATION_INTEGER_BITS = 12

# gemmlowp constants (raw int32 values of FixedPoint<int32_t, 0> unless noted)
EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8)
ONE_THIRD = 715827883  # 1/3
CONSTANT_48_OVER_17 = 1515870810  # FixedPoint<int32_t, 2>: 48/17
CONSTANT_NEG_32_OVER_17 = -1010580540  # FixedPoint<int32_t, 2>: -32/17
#: (exponent k, raw Q0.31 value of exp(-2**k)) for gemmlowp's exp barrel shifter.
EXP_BARREL_SHIFTER = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def one(integer_bits: int) -> int:
    """gemmlowp ``FixedPoint<int32_t, n>::One()``: ``INT32_MAX`` for n == 0, else ``1 << (31 - n)``."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def saturating_rounding_multiply_by_pot(x: int, exponent: int) -> int:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` on an int32 ``x``.

    ``exponent > 0``: ``x * 2**exponent``, saturated to [INT32_MIN, INT32_MAX]
    when ``|x| > 2**(31 - exponent) - 1``; ``exponent < 0``:
    :func:`rounding_divide_by_pot` by ``-exponent`` (half away from zero);
    ``exponent == 0``: ``x``. ``exponent`` in [-31, 30].
    """
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap_int32(x * (1 << exponent))


def rescale(x: int, src_integer_bits: int, dst_integer_bits: int) -> int:
    """gemmlowp ``Rescale<dst>(FixedPoint<int32_t, src>)``: change the Q format of ``x``.

    ``saturating_rounding_multiply_by_pot(x, src - dst)``: saturating when
    gaining fractional bits, rounding half away from zero when losing them.
    """
    return saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)


def rounding_half_sum(a: int, b: int) -> int:
    """gemmlowp ``RoundingHalfSum`` (int32): ``(a + b + sign(a + b)) / 2`` in int64, C division.

    ``sign`` is +1 for a sum >= 0, -1 otherwise: rounds half away from zero.
    """
    s = a + b
    return wrap_int32(c_div(s + (1 if s >= 0 else -1), 2))


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """gemmlowp ``exp_on_interval_between_negative_one_quarter_and_0_excl`` (Q0.31 -> Q0.31).

    ``exp(a)`` for ``a`` in [-1/4, 0) by a 4th order Taylor expansion around
    -1/8: ``x = a + 1/8``,
    ``exp(-1/8) * (1 + x + x**2/2 + x**3/6 + x**4/24)`` with gemmlowp's
    fixed-point products (:func:`saturating_rounding_doubling_high_mul`).
    """
    x = wrap_int32(a + (1 << 28))  # ConstantPOT<-3>: 1/8
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap_int32(saturating_rounding_doubling_high_mul(wrap_int32(x4_over_4 + x3), ONE_THIRD) + x2), -1
    )
    return wrap_int32(
        EXP_MINUS_ONE_EIGHTH + saturating_rounding_doubling_high_mul(EXP_MINUS_ONE_EIGHTH, wrap_int32(x + poly))
    )


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp ``exp_on_negative_values(FixedPoint<int32_t, integer_bits>)`` -> Q0.31.

    ``exp(a)`` for ``a <= 0`` given as raw int32 with ``integer_bits`` integer
    bits (in [0, 29]). ``a`` is split into ``a mod 1/4 - 1/4`` (evaluated by
    :func:`exp_on_interval_between_negative_one_quarter_and_0_excl`) and a
    multiple of 1/4 whose bits select factors ``exp(-2**k)`` (the barrel
    shifter); for ``integer_bits > 5`` values below -32 give 0; ``a == 0``
    gives ``One()`` (INT32_MAX). Positive ``a`` is outside the contract but
    computed as the C++ code does.
    """
    if not 0 <= integer_bits <= 29:
        raise ValueError(f"integer_bits must be in [0, 29], got {integer_bits}")
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap_int32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0)
    )
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in EXP_BARREL_SHIFTER:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = saturating_rounding_doubling_high_mul(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        if a < clamp:
            result = 0
    if a == 0:
        result = one(0)
    return result


def two_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """``2 / (1 + a)`` in Q2.29 for a Q0.31 ``a`` in [0, 1): gemmlowp's Newton-Raphson division.

    Three Newton-Raphson iterations for the reciprocal of ``half_denominator = (1 + a) / 2``
    (:func:`rounding_half_sum`) in Q2.29, starting at ``48/17 - 32/17 * half_denominator``. gemmlowp
    writes these lines in both ``one_over_one_plus_x_for_x_in_0_1`` and
    ``one_minus_x_over_one_plus_x_for_x_in_0_1``, which differ only in what they do with the result.
    """
    half_denominator = rounding_half_sum(a, one(0))
    x = wrap_int32(
        CONSTANT_48_OVER_17 + saturating_rounding_doubling_high_mul(half_denominator, CONSTANT_NEG_32_OVER_17)
    )
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus_half_denominator_times_x = wrap_int32(one(2) - half_denominator_times_x)
        x = wrap_int32(x + rescale(saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1`` (Q0.31 -> Q0.31): ``1 / (1 + a)`` for ``a`` in [0, 1).

    :func:`two_over_one_plus_x_for_x_in_0_1` halved: ``ExactMulByPot<-1>`` (Q2.29 -> Q1.30, the
    same raw value), then ``Rescale<0>``.
    """
    return rescale(two_over_one_plus_x_for_x_in_0_1(a), 1, 0)


def count_leading_zeros(x: int) -> int:
    """TFLite ``CountLeadingZeros<uint32_t>``: leading zero bits of ``x`` as uint32 (32 for 0)."""
    x &= 0xFFFFFFFF
    return 32 - x.bit_length()


def get_reciprocal(x: int, x_integer_digits: int) -> tuple[int, int]:
    """TFLite ``GetReciprocal``: ``1 / x`` as a Q0.31 significand and a power of two.

    ``x`` is a raw int32 fixed-point number with ``x_integer_digits`` integer
    bits, nonzero. Returns ``(shifted_scale, num_bits_over_unit)`` with
    ``1/x ~= shifted_scale / 2**31 / 2**num_bits_over_unit``: ``x`` is
    normalized to ``[1, 2)`` by a left shift of ``CountLeadingZeros(x)`` (in
    uint32, wrapping), ``1`` is subtracted, and
    :func:`one_over_one_plus_x_for_x_in_0_1` gives the reciprocal.
    """
    headroom_plus_one = count_leading_zeros(x)
    if headroom_plus_one >= 32:
        raise ArithmeticContractError("GetReciprocal of 0 (a shift by 32 is undefined in C)")
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32((((x & 0xFFFFFFFF) << headroom_plus_one) - (1 << 31)) & 0xFFFFFFFF)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def multiply_by_quantized_multiplier_greater_than_one(
    x: int, quantized_multiplier: int, left_shift: int, rounding: str = DOUBLE_ROUNDING
) -> int:
    """TFLite ``MultiplyByQuantizedMultiplierGreaterThanOne``: ``x * qm * 2**(left_shift - 31)``.

    Double rounding (TFLM's default build): ``SaturatingRoundingDoublingHighMul(
    x * (1 << left_shift), qm)`` with the left shift done in int32 (wrapping,
    as compiled C does; ``left_shift`` in [0, 31]). Single rounding
    (``TFLITE_SINGLE_ROUNDING``): the single-rounding
    ``MultiplyByQuantizedMultiplier`` with ``shift = left_shift`` in [0, 30].
    """
    if rounding == SINGLE_ROUNDING:
        return multiply_by_quantized_multiplier_single(x, quantized_multiplier, left_shift)
    if rounding != DOUBLE_ROUNDING:
        raise ValueError(f"unknown rounding {rounding!r}")
    if not 0 <= left_shift <= 31:
        raise ValueError(f"left_shift must be in [0, 31], got {left_shift}")
    return saturating_rounding_doubling_high_mul(wrap_int32(x * (1 << left_shift)), quantized_multiplier)


def softmax_exps_s8(row, input_multiplier: int, input_left_shift: int, diff_min: int,
                    rounding: str = DOUBLE_ROUNDING) -> tuple[list[int | None], int]:
    """First pass of the int8-input softmax over one row (int8 values, at least one).

    Returns ``exp(beta * input_scale * (x - max))`` in Q0.31 for each entry with ``x - max >= diff_min``
    (``None`` for the dropped ones) and the int32-wrapped sum of those exponentials in Q12.19.
    """
    row = [int(v) for v in row]
    max_in_row = max(row)
    exps = []
    sum_of_exps = 0  # Q12.19
    for v in row:
        input_diff = v - max_in_row
        if input_diff >= diff_min:
            input_diff_rescaled = multiply_by_quantized_multiplier_greater_than_one(
                input_diff, input_multiplier, input_left_shift, rounding
            )
            exp_in_0 = exp_on_negative_values(input_diff_rescaled, SCALED_DIFF_INTEGER_BITS)
            exps.append(exp_in_0)
            sum_of_exps = wrap_int32(sum_of_exps + rescale(exp_in_0, 0, ACCUMULATION_INTEGER_BITS))
        else:
            exps.append(None)
    return exps, sum_of_exps


def softmax_outputs(exps: list[int | None], shifted_scale: int, exponent: int, lower: int, upper: int) -> list[int]:
    """Second pass of the softmax with an int8 input: ``clamp(RoundingDivideByPOT(SRDHM(shifted_scale, e),
    exponent) + lower, lower, upper)`` per exponential ``e`` (Q0.31), ``lower`` for a dropped (``None``) entry.

    ``[lower, upper]`` is the output type's range (int8: [-128, 127]; int16: [-32768, 32767]); ``exponent`` in
    [0, 31].
    """
    out = []
    for e in exps:
        if e is None:
            out.append(lower)
            continue
        unsat_output = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, e), exponent)
        out.append(max(lower, min(upper, unsat_output + lower)))
    return out


def softmax_row_s8(
    row, input_multiplier: int, input_left_shift: int, diff_min: int, rounding: str = DOUBLE_ROUNDING
) -> list[int]:
    """One row of TFLite's ``reference_ops::Softmax<int8_t, int8_t>`` (see :func:`softmax_s8`)."""
    exps, sum_of_exps = softmax_exps_s8(row, input_multiplier, input_left_shift, diff_min, rounding)
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    exponent = num_bits_over_unit + 31 - 8
    if not 0 <= exponent <= 31:
        raise ArithmeticContractError(
            f"softmax: sum of exponentials {sum_of_exps / 2**19:.1f} needs a shift of {exponent}, outside "
            "[0, 31]; TFLite Micro aborts (TFLITE_CHECK) on this row"
        )
    return softmax_outputs(exps, shifted_scale, exponent, -128, 127)


def softmax_s8(x, input_multiplier: int, input_left_shift: int, diff_min: int, rounding: str = DOUBLE_ROUNDING):
    """TFLite Micro's int8 -> int8 softmax over the last axis, bit for bit.

    For each row: ``max`` of the row; for each entry with
    ``d = x - max >= diff_min``: ``e = exp_on_negative_values(
    MultiplyByQuantizedMultiplierGreaterThanOne(d, input_multiplier,
    input_left_shift))`` (Q5.26 in, Q0.31 out), summed in Q12.19 after
    ``Rescale<12>``; ``GetReciprocal`` of the sum gives a Q0.31 significand
    ``s`` and ``num_bits_over_unit``; the output is
    ``clamp(RoundingDivideByPOT(SRDHM(s, e), num_bits_over_unit + 23) - 128, -128, 127)``,
    and -128 for entries with ``d < diff_min``. The output means
    ``(q + 128) / 256`` (scale 1/256, zero point -128).

    Args:
        x: int8 values, shape [rows, depth] (a list of lists or an array), depth >= 1.
        input_multiplier: int32 in [2**30, 2**31 - 1], from
            :func:`tinyzo.ops.softmax.softmax_params`.
        input_left_shift: int in [1, 31] (double rounding) / [1, 30] (single).
        diff_min: int <= 0, entries further than this below the row max give -128.
        rounding: ``"double"`` (TFLM's default) or ``"single"``
            (``TFLITE_SINGLE_ROUNDING``), the requantization of the input difference.

    Returns:
        int8 ndarray [rows, depth].

    Raises:
        ArithmeticContractError: for a row whose sum of exponentials is 512 or
            more (possible from depth 512 on), where TFLite Micro's
            ``TFLITE_CHECK(0 <= exponent && exponent <= 31)`` aborts.
    """
    rows = [softmax_row_s8(r, input_multiplier, input_left_shift, diff_min, rounding) for r in x]
    depth = len(rows[0]) if rows else 0
    return np.array(rows, dtype=np.int8).reshape(len(rows), depth)


# ----------------------------------------------------------------------------- int16 -> int16 (look-up tables)
def softmax_row_s16(row, input_multiplier: int, input_left_shift: int, exp_lut, one_over_one_plus_x_lut,
                    rounding: str = DOUBLE_ROUNDING) -> list[int]:
    """One row of TFLite's ``reference_ops::SoftmaxInt16`` (see :func:`softmax_s16`)."""
    row = [int(v) for v in row]
    max_in_row = max(row)
    exps = []
    sum_of_exps = 0  # Q16.15, int32 (no wrap: depth is at most 65538)
    for v in row:
        scaled_diff = multiply_by_quantized_multiplier(v - max_in_row, input_multiplier, input_left_shift, rounding)
        sym_scaled_diff = min(32767, max(-32768, scaled_diff + 32767))  # [-65535, 0] -> [-32768, 32767]
        e = lut_lookup_int16(sym_scaled_diff, exp_lut)  # Q0.15
        exps.append(e)
        sum_of_exps += e
    headroom_plus_one = count_leading_zeros(sum_of_exps)
    shifted_sum = ((sum_of_exps << (headroom_plus_one - 1)) + (1 << 13)) >> 14  # [2**16, 2**17]
    sym_shifted_sum = min(32767, max(-32768, shifted_sum - ((1 << 15) + (1 << 16))))  # x = sum - 1, recentred
    reciprocal_scale_q015 = lut_lookup_int16(sym_shifted_sum, one_over_one_plus_x_lut)
    right_shift = 31 - headroom_plus_one
    rnd = 1 << (right_shift - 1)
    return [min(32767, max(0, wrap_int32((e * reciprocal_scale_q015 + rnd) >> right_shift))) for e in exps]


def softmax_s16(x, input_multiplier: int, input_left_shift: int, exp_lut, one_over_one_plus_x_lut,
                rounding: str = DOUBLE_ROUNDING):
    """TFLite Micro's int16 -> int16 softmax over the last axis (``reference_ops::SoftmaxInt16``), bit for bit.

    For each row: ``max`` of the row; for each entry ``e = LUTLookup(clamp16(MBQM(x - max,
    input_multiplier, input_left_shift) + 32767), exp_lut)`` (Q0.15; the multiplier maps the
    difference so that [-65535, 0] means [-10, 0]); ``sum`` of the ``e`` (int32);
    ``h = CountLeadingZeros(sum)``; ``s = ((sum << (h - 1)) + 2**13) >> 14`` (in [2**16, 2**17]);
    ``r = LUTLookup(clamp16(s - 3 * 2**15), one_over_one_plus_x_lut)`` (``1 / (1 + x)`` with
    ``x = sum / 2**(31 - h) - 1``); output ``clamp((e * r + 2**(30 - h)) >> (31 - h), 0, 32767)``
    (scale 1/32768, zero point 0).

    Args:
        x: int16 values, shape [rows, depth] (list of lists or array), 1 <= depth <= 65538.
        input_multiplier, input_left_shift: ``QuantizeMultiplier(s_in * beta / (10 / 65535))``
            (:func:`tinyzo.ops.softmax.softmax_s16_params`); shift in [-31, 15].
        exp_lut, one_over_one_plus_x_lut: int16[513] (:func:`tinyzo.spec.lut.softmax_exp_lut`,
            :func:`tinyzo.spec.lut.softmax_one_over_one_plus_x_lut`).
        rounding: ``"double"`` (TFLM) or ``"single"``: the ``MultiplyByQuantizedMultiplier`` of the difference.

    Returns:
        int16 ndarray [rows, depth].
    """
    rows = [softmax_row_s16(r, input_multiplier, input_left_shift, exp_lut, one_over_one_plus_x_lut, rounding)
            for r in x]
    depth = len(rows[0]) if rows else 0
    return np.array(rows, dtype=np.int16).reshape(len(rows), depth)
