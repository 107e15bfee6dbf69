"""Pure-Python specification of the element-wise int8 and int16 conversions.

QUANTIZE (float32 -> int8 and int8 -> int8 requantization; float32 -> int16 and
int8/int16 <-> int16 requantization) and DEQUANTIZE (int8/int16 -> float32), each written as the per-element formula of TFLite Micro's
reference kernel, over Python ``int`` (C int32 semantics spelled out) or
``numpy.float32`` scalars. The jitted kernels in :mod:`tinyzo.kernels.elementwise`
are property-tested to be equal. The binary operators (ADD, SUB, MUL, ...) are
in :mod:`tinyzo.spec.binary`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.spec.arith import (
    INT32_MIN,
    multiply_by_quantized_multiplier,
    wrap_int32,
)

__all__ = [
    "dequantize_s8",
    "dequantize_s16",
    "quantize_f32",
    "quantize_f32_s16",
    "quantize_s8",
    "quantize_s16",
]


def _round_half_away_f32(v: np.float32) -> np.float32:
    """C ``roundf``: nearest integer to a float32, ties away from zero (exact)."""
    if not np.isfinite(v):
        return v
    t = np.float32(np.trunc(v))
    frac = np.float32(abs(v - t))  # exact: the fractional part of a float is representable
    if frac >= np.float32(0.5):
        t = np.float32(t + (np.float32(1) if v > 0 else np.float32(-1)))
    return t


def _f32_to_int32_x86(r: np.float32) -> int:
    """``static_cast<int32_t>`` of an integral float as x86 does it.

    In range: the value. Out of range or NaN (undefined behaviour in C): x86's
    ``cvttss2si`` returns INT32_MIN; this is what the TFLM oracle computes.
    """
    if np.isnan(r) or not (-2147483648.0 <= float(r) < 2147483648.0):
        return INT32_MIN
    return int(r)


def quantize_f32(x: float, scale: float, zero_point: int) -> int:
    """TFLM QUANTIZE float32 -> int8 (``reference_ops::AffineQuantize``).

    ``clamp(int32(roundf(x / float32(scale))) + zero_point, -128, 127)``: the
    division is float32, ``roundf`` rounds half away from zero, the cast
    follows x86 (INT32_MIN when out of int32 range), the zero point is added
    with int32 wrap-around, then the clamp.
    """
    with np.errstate(over="ignore"):  # a float32 overflow gives +-inf, as in C; the cast below handles it
        v = np.float32(np.float32(x) / np.float32(scale))
    q = wrap_int32(_f32_to_int32_x86(_round_half_away_f32(v)) + int(zero_point))
    return min(127, max(-128, q))


def quantize_s8(x: int, multiplier: int, shift: int, input_zero_point: int, output_zero_point: int, rounding="double") -> int:
    """TFLM QUANTIZE int8 -> int8 (``reference_ops::Requantize``).

    ``clamp(MultiplyByQuantizedMultiplier(x - input_zp, multiplier, shift) + output_zp, -128, 127)``
    with ``(multiplier, shift) = QuantizeMultiplier(s_in / s_out)`` (shift may be > 0).
    """
    v = multiply_by_quantized_multiplier(int(x) - int(input_zero_point), multiplier, shift, rounding) + int(output_zero_point)
    return min(127, max(-128, v))


def dequantize_s8(x: int, scale: float, zero_point: int) -> np.float32:
    """TFLM DEQUANTIZE int8 -> float32: ``float32(scale) * float32(x - zero_point)`` (one float32 rounding)."""
    return np.float32(np.float32(scale) * np.float32(int(x) - int(zero_point)))


def quantize_f32_s16(x: float, scale: float, zero_point: int) -> int:
    """TFLM QUANTIZE float32 -> int16 (``AffineQuantize<float, int16_t>``): :func:`quantize_f32` clamped to int16."""
    with np.errstate(over="ignore"):
        v = np.float32(np.float32(x) / np.float32(scale))
    q = wrap_int32(_f32_to_int32_x86(_round_half_away_f32(v)) + int(zero_point))
    return min(32767, max(-32768, q))


def quantize_s16(x: int, multiplier: int, shift: int, input_zero_point: int, output_zero_point: int,
                 rounding="double") -> int:
    """TFLM QUANTIZE int8/int16 -> int16 (``Requantize<int8_t|int16_t, int16_t>``): :func:`quantize_s8` clamped
    to int16. (int16 -> int8 is :func:`quantize_s8` of an int16 value.)"""
    v = multiply_by_quantized_multiplier(int(x) - int(input_zero_point), multiplier, shift, rounding) + int(output_zero_point)
    return min(32767, max(-32768, v))


def dequantize_s16(x: int, scale: float, zero_point: int) -> np.float32:
    """TFLM DEQUANTIZE int16 -> float32: ``float32(double(scale) * (x - zero_point))``, equal to the float32
    product (the double product of a 24-bit and a 17-bit integer is exact)."""
    return dequantize_s8(x, scale, zero_point)
