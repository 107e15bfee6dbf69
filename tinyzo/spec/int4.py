"""Pure-Python specification of TFLite's packed INT4 tensors.

A TFLite ``INT4`` tensor of N elements is stored in ``ceil(N / 2)`` bytes, two's-complement
nibbles, element ``2i`` in the low nibble of byte ``i`` and element ``2i + 1`` in its high nibble;
an odd N leaves the last high nibble unused. TFLM unpacks such a filter into an int8 scratch
buffer with ``tflite::tensor_utils::UnpackDenseInt4IntoInt8``
(``tensorflow/lite/kernels/internal/portable_tensor_utils.cc``) before every int8 CONV_2D,
DEPTHWISE_CONV_2D or FULLY_CONNECTED call; :func:`unpack_dense_int4_into_int8` is that function
line by line (a C ``int8_t`` shifted left by 4, truncated to int8, shifted right arithmetically).
"""

from __future__ import annotations


def _to_int8(v: int) -> int:
    """Two's-complement wrap to int8 (a C ``static_cast<int8_t>``)."""
    return ((v + 128) % 256) - 128


def unpack_dense_int4_into_int8(src: list, num_elements: int) -> list:
    """TFLM ``UnpackDenseInt4IntoInt8``: ``num_elements`` int8 values in [-8, 7] from packed bytes.

    Args:
        src: the packed bytes as ints (int8 or uint8 values), at least ``ceil(num_elements / 2)``.
        num_elements: the tensor's element count N >= 0.

    Returns:
        A list of N ints: ``lower = (int8_t)(byte << 4) >> 4`` then ``higher = byte >> 4`` per byte;
        for odd N the last element is the low nibble of byte ``N // 2``.
    """
    out = [0] * num_elements
    for i in range(num_elements // 2):
        byte = _to_int8(int(src[i]))
        out[2 * i] = _to_int8(byte << 4) >> 4
        out[2 * i + 1] = byte >> 4
    if num_elements % 2:
        out[num_elements - 1] = _to_int8(_to_int8(int(src[num_elements // 2])) << 4) >> 4
    return out


def pack_int4(values: list) -> list:
    """The inverse of :func:`unpack_dense_int4_into_int8` (what the TFLite converter writes).

    Args:
        values: ints in [-8, 7].

    Returns:
        ``ceil(len(values) / 2)`` ints in [-128, 127] (int8 bytes): ``(v[2i] & 15) | ((v[2i+1] & 15) << 4)``;
        an odd count leaves the last high nibble 0.

    Raises:
        ValueError: a value outside [-8, 7].
    """
    for v in values:
        if not -8 <= v <= 7:
            raise ValueError(f"INT4 value {v} is outside [-8, 7]")
    out = []
    for i in range(0, len(values), 2):
        lo = values[i] & 15
        hi = (values[i + 1] & 15) if i + 1 < len(values) else 0
        out.append(_to_int8(lo | (hi << 4)))
    return out
