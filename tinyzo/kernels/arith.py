"""Jitted fixed-point primitives (gemmlowp / TFLite ``common.h``).

Scalars in, scalar out; each is equal, for every int32 input, to the
function of the same name in :mod:`tinyzo.spec.arith` (property-tested).
All arithmetic is done in int64 so that jitted and ``NUMBA_DISABLE_JIT=1``
runs agree; the int32 results are returned as int64 values in int32 range.
"""

import numpy as np
from numba import njit

from tinyzo.spec.arith import INT32_MAX, INT32_MIN  # noqa: F401 (used by the kernel modules)

#: rounding-mode codes used by the kernels (see :func:`tinyzo.quant.rounding_code`)
DOUBLE = 0
SINGLE = 1


@njit(cache=True, inline="always")
def wrap_int32(x):
    """Two's-complement wrap of an int64 to int32 range (C ``(int32_t)`` cast)."""
    x = np.int64(x)
    return ((x + np.int64(2147483648)) & np.int64(0xFFFFFFFF)) - np.int64(2147483648)


@njit(cache=True, inline="always")
def c_div_pow2(v, bits):
    """C division of an int64 by ``2**bits`` (truncation toward zero; ``>>`` alone floors); bits in [0, 62]."""
    v = np.int64(v)
    q = v >> np.int64(bits)
    if v < 0 and (v & ((np.int64(1) << np.int64(bits)) - np.int64(1))) != 0:
        q += np.int64(1)
    return q


@njit(cache=True, inline="always")
def clamp_int8(v):
    """``v`` clamped to the int8 range [-128, 127], as int64."""
    return min(max(np.int64(v), np.int64(-128)), np.int64(127))


@njit(cache=True, inline="always")
def clamp_int16(v):
    """``v`` clamped to the int16 range [-32768, 32767], as int64."""
    return min(max(np.int64(v), np.int64(-32768)), np.int64(32767))


@njit(cache=True, inline="always")
def saturating_rounding_doubling_high_mul_bits(a, b, bits):
    """gemmlowp's template ``SaturatingRoundingDoublingHighMul<intN_t>`` for ``N = bits`` (16 or 32).

    The high N bits of ``2*a*b`` rounded half up (the nudge ``2**(N-2)``, ``1 - 2**(N-2)`` for a
    negative product, then C division by ``2**(N-1)``); ``a == b == -2**(N-1)`` saturates to
    ``2**(N-1) - 1``. ``a``, ``b`` in intN range; the result is in intN range.
    """
    a = np.int64(a)
    b = np.int64(b)
    lowest = -(np.int64(1) << np.int64(bits - 1))
    if a == lowest and b == lowest:
        return -lowest - np.int64(1)
    ab = a * b
    half = np.int64(1) << np.int64(bits - 2)
    nudge = half if ab >= 0 else np.int64(1) - half
    return c_div_pow2(ab + nudge, bits - 1)


@njit(cache=True, inline="always")
def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` for int32 ``a``, ``b`` (as int64)."""
    return saturating_rounding_doubling_high_mul_bits(a, b, 32)


@njit(cache=True, inline="always")
def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero, exponent in [0, 31]."""
    x = np.int64(x)
    e = np.int64(exponent)
    mask = (np.int64(1) << e) - np.int64(1)
    remainder = x & mask
    threshold = (mask >> np.int64(1)) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if remainder > threshold else np.int64(0))


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier_double(x, quantized_multiplier, shift):
    """TFLite's default (double-rounding) ``MultiplyByQuantizedMultiplier``; shift in [-31, 31]."""
    s = np.int64(shift)
    left_shift = s if s > 0 else np.int64(0)
    right_shift = np.int64(0) if s > 0 else -s
    xs = wrap_int32(np.int64(x) * (np.int64(1) << left_shift))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, quantized_multiplier), right_shift)


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier_single(x, quantized_multiplier, shift):
    """TFLite's ``TFLITE_SINGLE_ROUNDING`` ``MultiplyByQuantizedMultiplier``; shift in [-31, 30]."""
    total_shift = np.int64(31) - np.int64(shift)
    rnd = np.int64(1) << (total_shift - np.int64(1))
    result = (np.int64(x) * np.int64(quantized_multiplier) + rnd) >> total_shift
    return wrap_int32(result)


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier(x, quantized_multiplier, shift, rounding):
    """Requantize with rounding code ``rounding`` (0 = double, TFLM's default; 1 = single)."""
    if rounding == SINGLE:
        return multiply_by_quantized_multiplier_single(x, quantized_multiplier, shift)
    return multiply_by_quantized_multiplier_double(x, quantized_multiplier, shift)


@njit(cache=True, nogil=True)
def requantize_s8(acc, multiplier, shift, output_offset, act_min, act_max, rounding, out):
    """Requantize int32 accumulators to int8, per channel (last axis).

    ``out[i, c] = clamp(MBQM(acc[i, c], multiplier[c], shift[c]) + output_offset, act_min, act_max)``

    Args:
        acc: int32[M, C] accumulators (bias already added).
        multiplier: int32[C] Q31 significands; shift: int32[C] in [-31, 31].
        output_offset: int, the output zero point in [-128, 127].
        act_min, act_max: int clamp bounds within [-128, 127].
        rounding: 0 double (TFLM), 1 single.
        out: int8[M, C], written.
    """
    m_rows, n_ch = acc.shape
    for i in range(m_rows):
        for c in range(n_ch):
            v = multiply_by_quantized_multiplier(acc[i, c], multiplier[c], shift[c], rounding) + output_offset
            v = max(v, act_min)
            v = min(v, act_max)
            out[i, c] = v


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier_int64(x, quantized_multiplier, shift):
    """TFLite's ``MultiplyByQuantizedMultiplier(int64_t, int32_t, int)``; shift in [-31, 14].

    ``(int32)((x * reduced + 2**(t - 1)) >> t)``, ``t = 15 - shift``, ``reduced`` the multiplier
    rounded to 15 bits. Equal to :func:`tinyzo.spec.arith.multiply_by_quantized_multiplier_int64`
    for ``|x| < 2**47`` (TFLite's documented input range, which the 16x8 operators check at prepare
    time): the product then stays below 2**62 and no int64 operation can overflow.
    """
    qm = np.int64(quantized_multiplier)
    if qm < np.int64(0x7FFF0000):
        reduced = (qm + np.int64(32768)) >> np.int64(16)
    else:
        reduced = np.int64(0x7FFF)
    total_shift = np.int64(15) - np.int64(shift)
    rnd = np.int64(1) << (total_shift - np.int64(1))
    return wrap_int32((np.int64(x) * reduced + rnd) >> total_shift)
