"""Packing and unpacking of TFLite ``INT4`` tensor data (vectorized; the definition is
:mod:`tinyzo.spec.int4`, tested equal in tests/test_int4.py)."""

from __future__ import annotations

import numpy as np

__all__ = ["INT4_MAX", "INT4_MIN", "pack_int4", "packed_int4_bytes", "unpack_int4"]

INT4_MIN, INT4_MAX = -8, 7


def packed_int4_bytes(num_elements: int) -> int:
    """Bytes of an INT4 tensor of ``num_elements`` values: ``ceil(num_elements / 2)``."""
    return (int(num_elements) + 1) // 2


def unpack_int4(raw, num_elements: int) -> np.ndarray:
    """TFLM ``UnpackDenseInt4IntoInt8``: int8[num_elements] in [-8, 7] from packed bytes.

    ``raw``: a bytes-like object of at least :func:`packed_int4_bytes` bytes; element ``2i`` is the
    low nibble of byte ``i``, element ``2i + 1`` its high nibble, both sign-extended.
    """
    b = np.frombuffer(raw, dtype=np.int8, count=packed_int4_bytes(num_elements)).astype(np.int16)
    out = np.empty(2 * b.size, dtype=np.int8)
    out[0::2] = ((b << 12).astype(np.int16) >> 12).astype(np.int8)  # (int8)(byte << 4) >> 4
    out[1::2] = (b >> 4).astype(np.int8)  # arithmetic shift of the signed byte
    return out[:num_elements].copy()


def pack_int4(values: np.ndarray) -> bytes:
    """Pack int8 values in [-8, 7] two per byte, low nibble first (an odd count pads a zero nibble).

    Raises:
        ValueError: a value outside [-8, 7] (the caller names the tensor).
    """
    v = np.asarray(values).reshape(-1)
    if v.size and (int(v.min()) < INT4_MIN or int(v.max()) > INT4_MAX):
        raise ValueError(f"values in [{int(v.min())}, {int(v.max())}] do not fit INT4 [-8, 7]")
    nib = np.zeros(2 * packed_int4_bytes(v.size), dtype=np.uint8)
    nib[: v.size] = v.astype(np.int64) & 15
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()
