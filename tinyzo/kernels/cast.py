"""Jitted CAST kernels (TFLite Micro ``micro/kernels/cast.cc``, ``static_cast`` per element).

Equal to :func:`tinyzo.spec.cast.cast_value` element by element (property-tested). The integer
wrap is spelled out in int64 arithmetic (``& (2**bits - 1)``, then minus ``2**bits`` for a
negative signed value) so that interpreted code (``NUMBA_DISABLE_JIT=1``) and the C port agree;
a float input is truncated toward zero after the caller (:mod:`tinyzo.ops.cast`) has checked
that every value fits the target (C leaves the other values undefined).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def cast_to_int(x, bits, signed, out):
    """``out[i] = static_cast<intN_t or uintN_t>(x[i])``.

    Args:
        x: [n] int8, int16, int32, uint32 or float32 (floats: finite, truncated value in the target's range).
        bits: 8, 16 or 32, the target's width; signed: True for int8/16/32, False for uint32.
        out: [n] of the target dtype, written.
    """
    mask = (np.int64(1) << np.int64(bits)) - np.int64(1)
    top = np.int64(1) << np.int64(bits - 1)
    for i in range(x.shape[0]):
        v = np.int64(np.trunc(x[i])) if x.dtype.kind == "f" else np.int64(x[i])
        w = v & mask
        if signed and w >= top:
            w -= mask + np.int64(1)
        out[i] = w


@njit(cache=True, nogil=True)
def cast_to_float32(x, out):
    """``out[i] = static_cast<float>(x[i])`` (nearest float32, ties to even). x: [n] integer or float32; out: float32[n]."""
    for i in range(x.shape[0]):
        out[i] = np.float32(x[i])
