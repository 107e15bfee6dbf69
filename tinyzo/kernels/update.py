"""Jitted kernel of the float-shadow integer update (tinyzo.training.update.FloatShadow), nearest rounding.

The element-wise arithmetic of :meth:`tinyzo.training.update.FloatShadow.update` with
:func:`tinyzo.training.update.round_subtract` (``rounding="nearest"``) in one loop: the same float32
operations in the same order (no FMA, no reassociation) and the same integer rounding, so the
results are bit-identical to the numpy expressions, with one pass over the parameter instead of
about fifteen numpy calls and their temporary arrays.
"""

import numpy as np
from numba import njit

__all__ = ["shadow_update_nearest"]

_ONE24 = np.int64(1 << 24)
_HALF24 = np.int64(1 << 23)
_LOW24 = np.int64((1 << 24) - 1)


@njit(cache=True, nogil=True)
def shadow_update_nearest(p, d, r, lo, hi, limit, new, r_new):
    """One float-shadow step per element, rounding to nearest (ties away from zero)::

        e     = float32(d - r)                                   # the shadow's move, in float32
        ec    = clip(e, -limit, limit)                           # |d| <= 2**38 keeps d * 2**24 < 2**62
        t     = ec * 2**24 (exact);  ft = floor(t);  sticky = ft != t
        v     = p * 2**24 - int64(ft)                            # (p - e) * 2**24 in (v - 1, v]
        new   = clamp((v >> 24) + up, lo, hi)                    # up: remainder > 1/2, or == 1/2 exactly
                                                                 # (not sticky) with v >> 24 >= 0
        r_new = clip(float32(float32(p - new) - e), float32(lo - new), float32(hi - new))

    Args:
        p: int8[n] or int32[n], the integer parameter (C-contiguous, flat).
        d: float32[n], the step (``lr * g / s**2``), finite; r: float32[n], the residual (shadow - p)
            (the caller takes the numpy path for a non-finite step: NaN has no defined integer here).
        lo, hi: the clamp (int8 weights: -127, 127; int32 biases: the int32 range).
        limit: float32 2**38.
        new: int64[n], written: the new integer parameter (clamped); r_new: float32[n], written.
    """
    lim = np.float32(limit)
    scale = np.float32(16777216.0)
    lo64 = np.int64(lo)
    hi64 = np.int64(hi)
    for i in range(p.shape[0]):
        e = np.float32(d[i] - r[i])
        ec = e if e > -lim else -lim  # numpy's clip: max then min, the bound on a tie
        ec = ec if ec < lim else lim
        t = ec * scale
        ft = np.float32(np.floor(t))
        sticky = ft != t
        v = np.int64(p[i]) * _ONE24 - np.int64(ft)
        a = v >> np.int64(24)
        rem = v & _LOW24
        if rem > _HALF24 or (rem == _HALF24 and not sticky and a >= 0):
            a += np.int64(1)
        if a < lo64:
            a = lo64
        if a > hi64:
            a = hi64
        new[i] = a
        rn = np.float32(np.float32(np.int64(p[i]) - a) - e)
        r_lo = np.float32(lo64 - a)
        r_hi = np.float32(hi64 - a)
        rn = rn if rn > r_lo else r_lo
        rn = rn if rn < r_hi else r_hi
        r_new[i] = rn
