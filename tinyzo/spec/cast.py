"""Pure-Python specification of TFLite Micro's CAST (``micro/kernels/cast.cc``: ``static_cast`` per element).

TFLM's CAST takes int8, int16, int32, uint32, float32 (and bool) inputs and writes int8, int16,
int32, uint32 or float32 outputs; each element is ``static_cast<ToT>(x)`` (no quantization
parameters are read). C++ defines the conversions as:

* integer -> integer: the value modulo ``2**bits`` of the target type (two's complement wrap;
  C++20 says so, and the compilers TFLM is built with did so before);
* integer -> float32: the nearest float32, ties to even (IEEE round to nearest);
* float32 -> integer: truncation toward zero; **undefined** when the truncated value does not fit
  the target type or the value is NaN (tinyzo refuses such data instead of guessing);
* float32 -> float32: unchanged.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CAST_INPUT_DTYPES", "CAST_OUTPUT_DTYPES", "cast_value", "float_fits"]

#: The integer/float input types of TFLM's CAST that tinyzo runs (TFLM's bool input is not among them).
CAST_INPUT_DTYPES = tuple(np.dtype(d) for d in (np.int8, np.int16, np.int32, np.uint32, np.float32))
#: The output types of TFLM's CAST.
CAST_OUTPUT_DTYPES = tuple(np.dtype(d) for d in (np.int8, np.int16, np.int32, np.uint32, np.float32))


def float_fits(v: float, dtype) -> bool:
    """True when ``static_cast<dtype>(v)`` is defined: ``v`` finite and ``trunc(v)`` in ``dtype``'s range."""
    if not math.isfinite(v):
        return False
    info = np.iinfo(dtype)
    return info.min <= math.trunc(v) <= info.max


def cast_value(v, src, dst):
    """``static_cast<dst>(v)`` for one value ``v`` of dtype ``src``, as a Python int or float.

    Raises ``ValueError`` for a float that does not fit ``dst`` (undefined behaviour in C).
    """
    src, dst = np.dtype(src), np.dtype(dst)
    if dst.kind == "f":
        return float(np.float32(v)) if src.kind == "f" else _int_to_float32(int(v))
    if src.kind == "f":
        if not float_fits(float(v), dst):
            raise ValueError(f"{float(v)!r} does not fit {dst} (undefined in C)")
        return math.trunc(float(v))
    bits = 8 * dst.itemsize
    w = int(v) % (1 << bits)
    if dst.kind == "i" and w >= 1 << (bits - 1):
        w -= 1 << bits
    return w


def _int_to_float32(v: int) -> float:
    """The float32 nearest to the integer ``v`` (ties to even), by exact rational comparison."""
    if v == 0:
        return 0.0
    sign = -1 if v < 0 else 1
    a = abs(v)
    e = a.bit_length() - 24  # keep 24 significant bits
    if e <= 0:
        return float(sign * a)
    q, r = divmod(a, 1 << e)
    half = 1 << (e - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return float(sign * q * (1 << e))
