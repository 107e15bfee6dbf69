"""Jitted int8 -> int16 SOFTMAX (TFLite ``reference_ops::Softmax<int8_t, int16_t>``), bit-exact with TFLM.

The int8 -> int8 kernel (:func:`tinyzo.kernels.softmax.softmax_s8`) with the output type changed:
shift ``num_bits_over_unit + 15``, offset -32768, int16 clamp. Equal to
:func:`tinyzo.spec.softmax_s16.softmax_row_s8_s16` row by row (property-tested).
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import rounding_divide_by_pot, saturating_rounding_doubling_high_mul
from tinyzo.kernels.softmax import ACCUMULATION_INTEGER_BITS, exps_row_s8, get_reciprocal, row_max


@njit(cache=True, nogil=True)
def softmax_s8_s16(x, input_multiplier, input_left_shift, diff_min, out, rounding=0):
    """int8 -> int16 softmax over the last axis (output scale 1/65536, zero point -32768).

    Args:
        x: int8[M, D], D >= 1.
        input_multiplier, input_left_shift, diff_min: as :func:`tinyzo.kernels.softmax.softmax_s8`.
        out: int16[M, D], written.
        rounding: 0 = double (TFLM's default build), 1 = ``TFLITE_SINGLE_ROUNDING``.
    """
    m_rows, depth = x.shape
    exps = np.empty(depth, dtype=np.int64)
    for i in range(m_rows):
        max_in_row = row_max(x, i)
        sum_of_exps = exps_row_s8(x, i, max_in_row, input_multiplier, input_left_shift, diff_min, rounding, exps)
        shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
        exponent = num_bits_over_unit + np.int64(31 - 16)
        for c in range(depth):
            if np.int64(x[i, c]) - max_in_row < diff_min:
                out[i, c] = -32768
            else:
                v = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exps[c]), exponent)
                out[i, c] = min(max(v - np.int64(32768), np.int64(-32768)), np.int64(32767))
