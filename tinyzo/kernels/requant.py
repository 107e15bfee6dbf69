"""Requantization of whole rows of int32 accumulators, written so that LLVM vectorizes it.

:func:`tinyzo.kernels.arith.multiply_by_quantized_multiplier` is the readable, scalar definition
(branches, a saturation case); calling it once per output element costs about 2.5 ns here, more
than the multiply-accumulates of a small convolution. :func:`requantize_row_s8` computes the same
function for a row of accumulators, with per-element parameters prepared once
(:func:`requant_params`), branch free, so that the loop compiles to SIMD code (``vpmuldq``,
``vpsravd``, ``vpmovdb``). It is equal to the scalar primitive for every int32 accumulator
(property-tested in tests/test_conv_int.py) under the condition
:func:`tinyzo.quant.quantize_multiplier` guarantees: ``0 <= multiplier <= 2**31 - 1``, so
gemmlowp's saturating case (``INT32_MIN * INT32_MIN``) cannot occur.

Double rounding (TFLM's default), per element with ``ls = max(shift, 0)``, ``rs = max(-shift, 0)``:

1. ``xs = wrap32(acc << ls)`` (C: ``acc * (1 << left_shift)`` in int32; ``ls >= 32`` leaves 0),
2. ``SaturatingRoundingDoublingHighMul(xs, m)`` = ``(xs * m + 2**30) >> 31`` (int64, floor). The
   C code adds ``2**30`` to a non-negative product and ``1 - 2**30`` to a negative one, then divides
   by ``2**31`` truncating toward zero; for a negative product that is
   ``floor((ab + 1 - 2**30 + 2**31 - 1) / 2**31)``, the same expression,
3. ``RoundingDivideByPOT(q, rs)`` in gemmlowp's own int32 form: ``(q >> rs) + (rem > thr)`` with
   ``rem = q & mask``, ``thr = (mask >> 1) + (q < 0)``, ``mask = 2**rs - 1``.

Single rounding (``TFLITE_SINGLE_ROUNDING``): ``wrap32((acc * m + 2**(t - 1)) >> t)`` with
``t = 31 - shift``.

When no shift is positive (no left shift: every multiplier of a convolution below 1, the usual case)
both roundings are one formula, computed with one 64-bit product and one shift per element (about
1.5x faster here). With ``T = 31 - shift`` and ``rs = -shift``, double rounding is

    ``(acc * m + C - D * [acc < 0]) >> T``,  ``C = 2**30 + 2**(30 + rs)``, ``D = 2**31`` (rs >= 1);
    ``C = 2**30``, ``D = 0`` (rs = 0),

and single rounding is the same with ``C = 2**(T - 1)``, ``D = 0``. Why: gemmlowp's
``RoundingDivideByPOT(q, rs)`` rounds half away from zero, i.e. ``floor((q + 2**(rs-1)) / 2**rs)`` for
``q >= 0`` and ``floor((q + 2**(rs-1) - 1) / 2**rs)`` for ``q < 0``, and ``q`` itself is
``floor((acc * m + 2**30) / 2**31)``; ``floor((floor(X / a) + h) / b) = floor((X + h a) / (a b))``
for integers joins the two divisions. The sign of ``q`` is the sign of ``acc``, except when
``-2**30 <= acc * m < 0``, where ``q = 0`` and both branches give 0. ``|acc * m + C| < 2**63``. The
layout (:data:`RQU_ROWS` rows) is chosen by :func:`requant_params` and recognised by the kernel from
the row count; property-tested against the scalar primitive like the general one.

Then ``+ output_offset`` and the clamp, as every TFLM int8 kernel does (computed as a clamp to
``[act_min - output_offset, act_max - output_offset]`` and then the addition: equal, and no int32
addition can overflow).
"""

import numpy as np
from numba import njit

#: rows of the general parameter array made by :func:`requant_params` (double rounding; single
#: rounding uses RQ_MULT and RQ_LSHIFT, the latter holding the total shift ``31 - shift``)
RQ_MULT, RQ_LSHIFT, RQ_RSHIFT, RQ_MASK, RQ_HALF = range(5)
RQ_ROWS = 5
#: rows of the one-formula layout (no positive shift): multiplier, total shift ``T = 31 - shift``,
#: and ``B = C - 2**(T - 1)``, 2**30 for double rounding with ``shift < 0`` (then ``D = 2 B``), else 0
#: (then ``D = 0``)
RQU_MULT, RQU_SHIFT, RQU_BASE = range(3)
RQU_ROWS = 3


def requant_params(multiplier, shift, rounding: int, length: int | None = None) -> np.ndarray:
    """Per-element requantization parameters for :func:`requantize_row_s8`.

    Args:
        multiplier: int32[C] in [0, 2**31 - 1] (:func:`tinyzo.quant.quantize_multiplier`).
        shift: int32[C]; >= -31 for double rounding, in [-31, 30] for single.
        rounding: 0 double (TFLM), 1 single.
        length: tile the C channels to this many elements (element ``i`` gets channel ``i % C``),
            padding with zero multipliers and shifts (outputs = the clamped output offset) when C
            does not divide it; None for C.

    Returns:
        int32[3, length] when no shift is positive (the one-formula layout, module docstring):
        multiplier, ``T = 31 - shift`` in [31, 62], ``2**30`` (double rounding with ``shift < 0``)
        or 0. Otherwise int32[5, length]: double rounding: multiplier,
        left shift in [0, 31], right shift in [0, 31], mask ``2**rs - 1``, ``mask >> 1``; single
        rounding: multiplier, total shift ``31 - shift``, 0, 0, 0.
    """
    m = np.asarray(multiplier, dtype=np.int64).reshape(-1).copy()
    s = np.asarray(shift, dtype=np.int64).reshape(-1)
    c = m.size
    if np.any(m < 0) or np.any(m > 2**31 - 1):
        raise ValueError("multipliers must be in [0, 2**31 - 1]")
    if rounding == 0:
        if np.any(s < -31):
            raise ValueError("double-rounding shifts must be >= -31")
    elif np.any(s < -31) or np.any(s > 30):
        raise ValueError("single-rounding shifts must be in [-31, 30]")
    if length is not None and length != c and length % c != 0:  # pad with channels that output 0
        m = np.concatenate([m, np.zeros(max(length - c, 0), np.int64)])[:length]
        s = np.concatenate([s, np.zeros(max(length - c, 0), np.int64)])[:length]
        c = length
    if np.all(s <= 0):
        rq = np.zeros((RQU_ROWS, c), dtype=np.int64)
        rq[RQU_MULT] = m
        rq[RQU_SHIFT] = 31 - s
        if rounding == 0:
            rq[RQU_BASE] = np.where(s < 0, 2**30, 0)
    else:
        rq = np.zeros((RQ_ROWS, c), dtype=np.int64)
        if rounding == 0:
            ls = np.maximum(s, 0)
            m[ls >= 32] = 0  # acc << 32 or more wraps to 0 in int32: the result is 0, as with m = 0
            ls = np.where(ls >= 32, 0, ls)
            rs = np.maximum(-s, 0)
            rq[RQ_LSHIFT] = ls
            rq[RQ_RSHIFT] = rs
            rq[RQ_MASK] = (np.int64(1) << rs) - 1
            rq[RQ_HALF] = rq[RQ_MASK] >> 1
        else:
            rq[RQ_LSHIFT] = 31 - s
        rq[RQ_MULT] = m
    rq = rq.astype(np.int32)
    if length is None or length == c:
        return rq
    return np.ascontiguousarray(np.tile(rq, (1, length // c)))


@njit(cache=True, nogil=True, inline="always")
def offset_bounds(output_offset, act_min, act_max):
    """``(offset, lo, hi)`` as int64: the output offset and the clamp bounds minus it (the clamp comes
    before the offset, module docstring), as the vectorized requantizations take them."""
    off = np.int64(output_offset)
    return off, np.int64(act_min) - off, np.int64(act_max) - off


@njit(cache=True, nogil=True)
def requantize_row_s8(acc, rq, output_offset, act_min, act_max, rounding, out):
    """``out[i] = clamp(MultiplyByQuantizedMultiplier(acc[i], m[i], shift[i]) + output_offset)``.

    Args:
        acc: int32[L] accumulators (bias included).
        rq: int32[3 or 5, >= L] from :func:`requant_params` (same ``rounding``; the row count tells
            the one-formula layout from the general one).
        output_offset: output zero point in [-128, 127]; act_min <= act_max in [-128, 127].
        rounding: 0 double (TFLM default), 1 single.
        out: int8[L], written.

    Bit-exact with :func:`tinyzo.kernels.arith.multiply_by_quantized_multiplier` followed by the
    offset and clamp; branch free so that LLVM vectorizes the loop.
    """
    n = acc.shape[0]
    mult = rq[0]
    # clamp before adding the offset: the same result, and no int32 overflow of r + offset
    lo = np.int32(act_min - output_offset)
    hi = np.int32(act_max - output_offset)
    if rq.shape[0] == RQU_ROWS:  # no positive shift: one 64-bit product and shift (module docstring)
        tsh = rq[RQU_SHIFT]
        base = rq[RQU_BASE]
        one = np.int64(1)
        for i in range(n):
            a = np.int64(acc[i])
            t = np.int64(tsh[i])
            p = a * np.int64(mult[i]) + np.int64(base[i]) + (one << (t - one))
            p = p - ((np.int64(base[i]) << one) & (a >> np.int64(63)))  # D = 2 B where acc < 0
            r = p >> t
            r = min(max(r, np.int64(lo)), np.int64(hi))
            out[i] = np.int32(r + np.int64(output_offset))
    elif rounding == 0:
        lsh = rq[1]
        rsh = rq[2]
        mask = rq[3]
        half = rq[4]
        for i in range(n):
            xs = np.int32(np.int32(acc[i]) << np.int32(lsh[i]))
            q = np.int32((np.int64(xs) * np.int64(mult[i]) + np.int64(1073741824)) >> np.int64(31))
            rem = np.int32(q & mask[i])
            thr = np.int32(half[i] - (q >> np.int32(31)))  # + 1 when q < 0
            r = np.int32(np.int32(q >> np.int32(rsh[i])) + (np.int32(1) if rem > thr else np.int32(0)))
            r = max(r, lo)
            r = min(r, hi)
            out[i] = np.int32(r + np.int32(output_offset))
    else:
        tsh = rq[1]
        for i in range(n):
            t = np.int64(tsh[i])
            rnd = np.int64(1) << (t - np.int64(1))
            r = np.int64(np.int32((np.int64(acc[i]) * np.int64(mult[i]) + rnd) >> t))
            r = r + output_offset
            r = max(r, act_min)
            r = min(r, act_max)
            out[i] = r
