"""Pure-Python specification of TFLite's integer ``reference_ops::Requantize<In, Out>`` (QUANTIZE
between integer types), for the int16 input paths: int16 -> int8 and int16 -> int32 (what TFLM's
keyword benchmark model runs at its input and output). int8 -> int8 is
:func:`tinyzo.spec.elementwise.quantize_s8`.

Per element: ``output = wrap_int32(MultiplyByQuantizedMultiplier(x - input_zero_point,
multiplier, shift) + output_zero_point)``, then clamped to the output type's range
``[out_min, out_max]`` (a no-op for int32), with ``(multiplier, shift) =
QuantizeMultiplier(double(s_in) / double(s_out))`` (``PrepareQuantizeReference``). The int32 sum
wraps as C's does on every target TFLM runs on. TFLM's fast path for equal scales (an XOR by 0x80)
concerns int8 <-> uint8 only.
"""

from __future__ import annotations

from tinyzo.spec.arith import DOUBLE_ROUNDING, multiply_by_quantized_multiplier, wrap_int32

__all__ = ["requantize"]


def requantize(x: int, multiplier: int, shift: int, input_zero_point: int, output_zero_point: int,
               out_min: int, out_max: int, rounding: str = DOUBLE_ROUNDING) -> int:
    """One element of ``Requantize``: ``clamp(wrap32(MBQM(x - zp_in) + zp_out), out_min, out_max)``.

    ``x``: an int16 value; zero points: ints of the input's and the output's type; ``out_min``,
    ``out_max``: the output type's range (e.g. -128, 127 for int8; INT32_MIN, INT32_MAX for int32).
    """
    v = wrap_int32(multiply_by_quantized_multiplier(int(x) - int(input_zero_point), multiplier, shift, rounding)
                   + int(output_zero_point))
    return min(max(v, out_min), out_max)
