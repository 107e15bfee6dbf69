"""Pure-Python specification of TFLite's fixed-point primitives (gemmlowp / TFLM).

Every function takes and returns Python ``int`` and reproduces, bit for bit,
the C++ function of the same name in TFLite Micro
(``tensorflow/lite/kernels/internal/common.h`` and gemmlowp's
``fixedpoint.h``), including C's truncating integer division and the
two's-complement wrap of an ``(int32_t)`` cast.
"""

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Name of TFLite's default requantization (``MultiplyByQuantizedMultiplier``
#: built without ``TFLITE_SINGLE_ROUNDING``): TFLite Micro uses it.
DOUBLE_ROUNDING = "double"
#: Name of TFLite's ``TFLITE_SINGLE_ROUNDING`` requantization.
SINGLE_ROUNDING = "single"
ROUNDING_MODES = (DOUBLE_ROUNDING, SINGLE_ROUNDING)


def wrap_int(x: int, bits: int) -> int:
    """Two's-complement wrap of ``x`` to a ``bits``-bit signed integer, as a C cast does."""
    return ((x + 2 ** (bits - 1)) % 2**bits) - 2 ** (bits - 1)


def wrap_int32(x: int) -> int:
    """Two's-complement wrap of ``x`` to int32, as a C ``(int32_t)`` cast does."""
    return wrap_int(x, 32)


def c_div(a: int, b: int) -> int:
    """C integer division: the quotient truncated toward zero (``b != 0``)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def saturating_rounding_doubling_high_mul_bits(a: int, b: int, bits: int) -> int:
    """gemmlowp's template ``SaturatingRoundingDoublingHighMul<intN_t>`` for ``N = bits`` (16 or 32).

    Returns the high N bits of ``2*a*b``, rounded half up (away from zero for negative products,
    through the nudge ``1 - 2**(N-2)`` in place of ``2**(N-2)``; C division by ``2**(N-1)``),
    saturating the single overflow case ``a == b == -2**(N-1)`` to ``2**(N-1) - 1``; the result
    wraps to intN as C's cast does. ``a``, ``b`` in intN range.
    """
    lowest = -(1 << (bits - 1))
    if a == b == lowest:
        return -lowest - 1
    ab = a * b
    nudge = (1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2))
    return wrap_int(c_div(ab + nudge, 1 << (bits - 1)), bits)


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 ``a``, ``b``: the high 32 bits of ``2*a*b``,
    rounded half up; ``a == b == INT32_MIN`` saturates to ``INT32_MAX`` (:func:`saturating_rounding_doubling_high_mul_bits`)."""
    return saturating_rounding_doubling_high_mul_bits(a, b, 32)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero.

    ``x`` is int32, ``exponent`` in [0, 31]. ``>>`` is an arithmetic shift in
    C for int32 (and in Python), ``&`` acts on the two's-complement bits.
    """
    if not 0 <= exponent <= 31:
        raise ValueError(f"exponent must be in [0, 31], got {exponent}")
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier_double(x: int, quantized_multiplier: int, shift: int) -> int:
    """TFLite's default ``MultiplyByQuantizedMultiplier`` (double rounding).

    ``x * quantized_multiplier * 2**(shift - 31)``: a left shift (``shift > 0``,
    done in int32 and wrapping as compiled C does), then
    :func:`saturating_rounding_doubling_high_mul`, then
    :func:`rounding_divide_by_pot` by ``-shift`` (``shift < 0``).
    ``x`` int32, ``quantized_multiplier`` int32, ``shift`` in [-31, 31].
    """
    left_shift = max(0, shift)
    right_shift = 0 if shift > 0 else -shift
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrap_int32(x * (1 << left_shift)), quantized_multiplier),
        right_shift,
    )


def multiply_by_quantized_multiplier_single(x: int, quantized_multiplier: int, shift: int) -> int:
    """TFLite's ``MultiplyByQuantizedMultiplier`` built with ``TFLITE_SINGLE_ROUNDING``.

    One rounding: ``(x * m + 2**(30 - shift)) >> (31 - shift)`` in int64, then
    an int32 cast. ``x`` int32, ``quantized_multiplier`` in [0, INT32_MAX],
    ``shift`` in [-31, 30].
    """
    if not -31 <= shift <= 30:
        raise ValueError(f"single rounding needs shift in [-31, 30], got {shift}")
    total_shift = 31 - shift
    result = (x * quantized_multiplier + (1 << (total_shift - 1))) >> total_shift
    return wrap_int32(result)


def multiply_by_quantized_multiplier(x: int, quantized_multiplier: int, shift: int, rounding: str = DOUBLE_ROUNDING) -> int:
    """Requantize ``x`` with the named rounding mode (``"double"``, TFLM's default, or ``"single"``)."""
    if rounding == DOUBLE_ROUNDING:
        return multiply_by_quantized_multiplier_double(x, quantized_multiplier, shift)
    if rounding == SINGLE_ROUNDING:
        return multiply_by_quantized_multiplier_single(x, quantized_multiplier, shift)
    raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")


def wrap_int64(x: int) -> int:
    """Two's-complement wrap of ``x`` to int64 (C's int64 arithmetic as compiled: it wraps)."""
    return ((x + 2**63) % 2**64) - 2**63


#: the largest shift :func:`multiply_by_quantized_multiplier_int64` can apply (its right shift
#: ``15 - shift`` must be >= 1: ``1 << (total_shift - 1)`` is undefined below)
INT64_MBQM_MAX_SHIFT = 14
#: TFLite's documented input range of the int64 overload: ``|x| < 2**47`` (its ``assert``)
INT64_MBQM_MAX_ABS_X = 1 << 47


def multiply_by_quantized_multiplier_int64(x: int, quantized_multiplier: int, shift: int) -> int:
    """TFLite's ``MultiplyByQuantizedMultiplier(int64_t x, int32_t, int)`` (the 16x8 kernels' int64 accumulators).

    The multiplier is reduced to 15 bits, ``reduced = (qm + 2**15) >> 16`` (``0x7FFF`` from
    ``qm >= 0x7FFF0000`` on, where the sum would reach 2**15), then
    ``(int32_t)((x * reduced + 2**(t - 1)) >> t)`` with ``t = 15 - shift``, in int64 (wrapping as
    compiled C does) and a wrapping int32 cast. Double- and single-rounding builds of TFLite define
    this overload with the same arithmetic (``common.cc``), so it has no rounding-mode argument.
    ``x`` int64, ``quantized_multiplier`` in [0, INT32_MAX], ``shift`` in [-31, 14] (TFLite documents
    [-31, 7] and ``|x| < 2**47``; the formula is defined up to shift 14, and the int64 wrap makes it
    total; TFLM as installed computes exactly this for shifts 8..13 and |x| > 2**47 too).
    """
    if not -31 <= shift <= INT64_MBQM_MAX_SHIFT:
        raise ValueError(f"int64 requantization needs shift in [-31, {INT64_MBQM_MAX_SHIFT}], got {shift}")
    reduced = (quantized_multiplier + (1 << 15)) >> 16 if quantized_multiplier < 0x7FFF0000 else 0x7FFF
    total_shift = 15 - shift
    v = wrap_int64(wrap_int64(x * reduced) + (1 << (total_shift - 1)))
    return wrap_int32(v >> total_shift)
