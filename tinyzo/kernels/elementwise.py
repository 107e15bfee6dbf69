"""Jitted element-wise kernels: QUANTIZE (float32/int8/int16 -> int8, float32/int8/int16 -> int16), DEQUANTIZE
(int8/int16 -> float32).

Bit-exact with TFLite Micro's reference kernels (``reference_ops::AffineQuantize``,
``reference_ops::Requantize``, ``reference_ops::Dequantize``) and equal to the
pure-Python twins in :mod:`tinyzo.spec.elementwise` (property-tested). The binary
operators (ADD, SUB, MUL, ...) are in :mod:`tinyzo.kernels.binary`.
Arrays are C-contiguous; outputs are written into caller-provided arrays.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import INT32_MIN, clamp_int8, clamp_int16, multiply_by_quantized_multiplier, wrap_int32


@njit(cache=True, inline="always")
def _round_half_away_f32(v):
    """C ``roundf`` on a float32: ties away from zero, computed exactly (inf/NaN unchanged)."""
    if not np.isfinite(v):
        return v
    t = np.float32(np.trunc(v))
    frac = np.float32(abs(np.float32(v - t)))
    if frac >= np.float32(0.5):
        if v > 0:
            t = np.float32(t + np.float32(1.0))
        else:
            t = np.float32(t - np.float32(1.0))
    return t


@njit(cache=True, nogil=True)
def _affine_quantize(x, s, zero_point):
    """``int32(roundf(x / s)) + zero_point`` (int32 wrap) before the output type's clamp: float32
    division, ties away from zero, x86's INT32_MIN for values outside int32 or NaN."""
    r = _round_half_away_f32(np.float32(np.float32(x) / s))
    if r >= np.float32(-2147483648.0) and r < np.float32(2147483648.0):
        q = np.int64(r)
    else:
        q = np.int64(INT32_MIN)
    return wrap_int32(q + np.int64(zero_point))


@njit(cache=True, nogil=True)
def quantize_f32(x, scale, zero_point, out):
    """Float32 -> int8 QUANTIZE (TFLM ``reference_ops::AffineQuantize``).

    ``out[i] = clamp(int32(roundf(x[i] / scale)) + zero_point, -128, 127)`` with a
    float32 division, ``roundf`` (ties away from zero), and the float -> int32
    cast as x86 performs it (INT32_MIN when the value is outside int32 or
    NaN; the TFLM oracle does this, an ARM core would saturate instead), then
    an int32 wrapping add of the zero point.

    Args:
        x: float32[n]; scale: float32 > 0; zero_point: int in [-128, 127].
        out: int8[n], written.
    """
    s = np.float32(scale)
    for i in range(x.shape[0]):
        out[i] = clamp_int8(_affine_quantize(x[i], s, zero_point))


@njit(cache=True, nogil=True)
def quantize_s8(x, multiplier, shift, input_zero_point, output_zero_point, rounding, out):
    """Int8 (or int16) -> int8 QUANTIZE (TFLM ``reference_ops::Requantize``).

    ``out[i] = clamp(MBQM(x[i] - input_zp, multiplier, shift) + output_zp, -128, 127)``.

    Args:
        x: int8[n] (int16[n], zero point 0, for TFLM's int16 -> int8 requantization); multiplier: int32 Q31
            significand, shift in [-31, 31] (from ``QuantizeMultiplier(s_in / s_out)``); zero points in [-128, 127];
        rounding: 0 double (TFLM), 1 single. out: int8[n], written.
    """
    for i in range(x.shape[0]):
        v = multiply_by_quantized_multiplier(np.int64(x[i]) - np.int64(input_zero_point), multiplier, shift, rounding)
        out[i] = clamp_int8(v + np.int64(output_zero_point))


@njit(cache=True, nogil=True)
def dequantize_s8(x, scale, zero_point, out):
    """Int8 -> float32 DEQUANTIZE (TFLM ``reference_ops::Dequantize``).

    ``out[i] = scale * float32(x[i] - zero_point)``, one float32 product.

    Args:
        x: int8[n]; scale: float32; zero_point: int; out: float32[n], written.
    """
    s = np.float32(scale)
    for i in range(x.shape[0]):
        out[i] = np.float32(s * np.float32(np.int64(x[i]) - np.int64(zero_point)))


@njit(cache=True, nogil=True)
def quantize_f32_s16(x, scale, zero_point, out):
    """Float32 -> int16 QUANTIZE (TFLM ``reference_ops::AffineQuantize<float, int16_t>``).

    :func:`quantize_f32`'s formula clamped to [-32768, 32767]: ``clamp(int32(roundf(x / scale)) + zero_point)``
    (float32 division, ties away from zero, x86's INT32_MIN for values outside int32 or NaN).

    Args: x: float32[n]; scale: float32 > 0; zero_point: 0 (16x8); out: int16[n], written.
    """
    s = np.float32(scale)
    for i in range(x.shape[0]):
        out[i] = clamp_int16(_affine_quantize(x[i], s, zero_point))


@njit(cache=True, nogil=True)
def quantize_s16(x, multiplier, shift, input_zero_point, output_zero_point, rounding, out):
    """Int8 or int16 -> int16 QUANTIZE (TFLM ``reference_ops::Requantize<int8_t|int16_t, int16_t>``).

    ``out[i] = clamp(MBQM(x[i] - input_zp, multiplier, shift) + output_zp, -32768, 32767)``.
    (int16 -> int8 is :func:`quantize_s8` on an int16 ``x``.)

    Args:
        x: int8[n] or int16[n]; multiplier, shift: ``QuantizeMultiplier(s_in / s_out)`` (shift in [-31, 31]);
        input_zero_point: the input's (int8: [-128, 127]; int16: 0); output_zero_point: 0;
        rounding: 0 double (TFLM), 1 single. out: int16[n], written.
    """
    for i in range(x.shape[0]):
        v = multiply_by_quantized_multiplier(np.int64(x[i]) - np.int64(input_zero_point), multiplier, shift, rounding)
        out[i] = clamp_int16(v + np.int64(output_zero_point))


@njit(cache=True, nogil=True)
def dequantize_s16(x, scale, zero_point, out):
    """Int16 -> float32 DEQUANTIZE (TFLM ``reference_ops::Dequantize<int16_t, float>``): :func:`dequantize_s8`.

    TFLM multiplies in double and rounds to float32 once; ``x - zero_point`` has at most 17 bits, so
    the double product is exact and the result is the float32 product ``scale * float32(x - zero_point)``.
    Args: x: int16[n]; scale: float32; zero_point: 0; out: float32[n], written.
    """
    dequantize_s8(x, scale, zero_point, out)


@njit(cache=True, nogil=True)
def saturating_add_s8(a, d, out):
    """``out = clamp(a + d, -128, 127)`` element by element (node perturbation of an int8 activation).

    ``a``: int8, ``d``: any integer dtype, ``out``: int8, all of one shape and C-contiguous. The sum is
    formed in int64, so it is exact for every int8 ``a`` and any int32/int64 ``d`` below 2**62.
    """
    af = a.ravel()
    df = d.ravel()
    of = out.ravel()
    for i in range(af.size):
        of[i] = clamp_int8(np.int64(af[i]) + np.int64(df[i]))
