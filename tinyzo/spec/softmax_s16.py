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

from tinyzo.spec.arith import DOUBLE_ROUNDING
from tinyzo.spec.softmax import ACCUMULATION_INTEGER_BITS, get_reciprocal, softmax_exps_s8, softmax_outputs

__all__ = ["softmax_row_s8_s16"]


def softmax_row_s8_s16(row, input_multiplier: int, input_left_shift: int, diff_min: int,
                       rounding: str = DOUBLE_ROUNDING) -> list[int]:
    """One row of ``reference_ops::Softmax<int8_t, int16_t>``: int8 values in, int16 values out."""
    exps, sum_of_exps = softmax_exps_s8(row, input_multiplier, input_left_shift, diff_min, rounding)
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    return softmax_outputs(exps, shifted_scale, num_bits_over_unit + 31 - 16, -32768, 32767)
