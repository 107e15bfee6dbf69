"""Jitted integer QUANTIZE from int16 (TFLite ``reference_ops::Requantize<int16_t, Out>``).

Equal, element by element, to :func:`tinyzo.spec.requantize.requantize` (property-tested). The
int8 -> int8 kernel is :func:`tinyzo.kernels.elementwise.quantize_s8`.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import multiply_by_quantized_multiplier, wrap_int32


@njit(cache=True, nogil=True)
def requantize_s16(x, multiplier, shift, input_zero_point, output_zero_point, out_min, out_max, rounding, out):
    """``out[i] = clamp(wrap32(MBQM(x[i] - input_zp, multiplier, shift) + output_zp), out_min, out_max)``.

    Args:
        x: int16[n].
        multiplier: int32 Q31 significand; shift in [-31, 31] (``QuantizeMultiplier(s_in / s_out)``).
        input_zero_point: int16 range; output_zero_point: the output type's range.
        out_min, out_max: the output type's range (int8: -128, 127; int32: INT32_MIN, INT32_MAX).
        rounding: 0 double (TFLM), 1 single.
        out: int8[n] or int32[n], written.
    """
    for i in range(x.shape[0]):
        v = multiply_by_quantized_multiplier(np.int64(x[i]) - np.int64(input_zero_point), multiplier, shift, rounding)
        v = wrap_int32(v + np.int64(output_zero_point))
        out[i] = min(max(v, np.int64(out_min)), np.int64(out_max))
