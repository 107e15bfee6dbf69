"""Pure-Python specification of TFLite Micro's SOFTMAX with int8 input and int16 output.

TFLite's templated ``reference_ops::Softmax<int8_t, int16_t>`` (``reference/softmax.h``) is the
int8 -> int8 computation of :mod:`tinyzo.spec.softmax` with the output type changed: the final
shift is ``num_bits_over_unit + 31 - 16`` (always in [15, 26]: the sum of exponentials is at least
1 and below 2**11, so TFLM's ``TFLITE_CHECK`` on it never fails) and the result is offset by
-32768 and clamped to int16; dropped entries (``x - max < diff_min``) give -32768. The output has
zero point -32768 and scale 1/65536 (TFLM checks both in ``CalculateSoftmaxParams``). The
parameters are those of the int8 softmax (:func:`tinyzo.ops.softmax.softmax_params`).
"""

from __future__ import annotations

from tinyzo.spec.arith import DOUBLE_ROUNDING, rounding_divide_by_pot, saturating_rounding_doubling_high_mul, wrap_int32
from tinyzo.spec.softmax import (
    ACCUMULATION_INTEGER_BITS,
    SCALED_DIFF_INTEGER_BITS,
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier_greater_than_one,
    rescale,
)

__all__ = ["softmax_row_s8_s16"]


def softmax_row_s8_s16(row, input_multiplier: int, input_left_shift: int, diff_min: int,
                       rounding: str = DOUBLE_ROUNDING) -> list[int]:
    """One row of ``reference_ops::Softmax<int8_t, int16_t>``: int8 values in, int16 values out."""
    row = [int(v) for v in row]
    max_in_row = max(row)
    exps = []
    sum_of_exps = 0  # Q12.19
    for v in row:
        input_diff = v - max_in_row
        if input_diff >= diff_min:
            e = exp_on_negative_values(multiply_by_quantized_multiplier_greater_than_one(
                input_diff, input_multiplier, input_left_shift, rounding), SCALED_DIFF_INTEGER_BITS)
            exps.append(e)
            sum_of_exps = wrap_int32(sum_of_exps + rescale(e, 0, ACCUMULATION_INTEGER_BITS))
        else:
            exps.append(None)
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    exponent = num_bits_over_unit + 31 - 16
    out = []
    for e in exps:
        if e is None:
            out.append(-32768)
            continue
        unsat_output = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, e), exponent)
        out.append(max(-32768, min(32767, unsat_output - 32768)))
    return out
