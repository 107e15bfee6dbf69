"""Jitted int16 table look-up (TFLite's ``LUTLookup(int16_t, const int16_t*)``).

Equal to :func:`tinyzo.spec.lut.lut_lookup_int16` (property-tested); the tables come from
:mod:`tinyzo.spec.lut` (computed once, in prepare).
"""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _wrap_int16(x):
    return ((np.int64(x) + np.int64(32768)) & np.int64(0xFFFF)) - np.int64(32768)


@njit(cache=True, inline="always")
def lut_lookup_int16(value, lut):
    """``LUTLookup``: the interpolated int16 value of ``lut`` (int16[513]) at ``value`` (int16 range).

    ``index = 256 + (value >> 7)``, ``offset = value & 0x7f``, ``slope = int16(lut[index + 1] - lut[index])``,
    result ``int16(lut[index] + ((slope * offset + 64) >> 7))``.
    """
    v = np.int64(value)
    index = np.int64(256) + (v >> np.int64(7))
    offset = v & np.int64(0x7F)
    base = np.int64(lut[index])
    slope = _wrap_int16(np.int64(lut[index + 1]) - base)
    delta = (slope * offset + np.int64(64)) >> np.int64(7)
    return _wrap_int16(base + delta)
