"""Pure-Python specification of TFLite Micro's STRIDED_SLICE (int8, int16, int32: a copy).

TFLM (``micro/kernels/strided_slice_common.cc``) reads ``begin``, ``end`` and ``strides`` as int32
vectors of the input's rank (<= 4 in Prepare), takes ``begin_mask``, ``end_mask`` and
``shrink_axis_mask`` from the options and sets ``ellipsis_mask``, ``new_axis_mask`` and ``offset``
to 0 whatever the model says. Two sets of index rules are involved:

* Prepare checks the stored output shape with ``strided_slice::StartForAxis`` / ``StopForAxis``
  (``strided_slice_logic.h``): a mask replaces the index by the lowest/highest ``int`` before
  negative indices are wrapped and the result clamped; a shrunk axis ends at ``start + 1``; the
  length is ``ceil(float(end - start) / float(stride))``, at least 0 (:func:`prepare_shape`).
* Eval runs ``reference_ops::StridedSlice`` on shapes padded to 5-D with
  ``StridedSliceStartForAxis`` / ``StridedSliceEndForAxis``: wrap negatives, clamp to
  ``[0, size]`` (stride > 0) or ``[-1, size - 1]`` (stride < 0), then a mask sets ``0`` /
  ``size - 1`` (begin) or ``size`` / ``-1`` (end); a shrunk axis ends at ``start + 1`` unless
  ``start >= size`` (:func:`resolve`).

The two agree except for a shrunk axis whose begin is out of range or whose stride is negative,
where Eval copies nothing and leaves the output unwritten; tinyzo refuses those (:func:`check_shrink`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["INT_MAX", "INT_MIN", "check_shrink", "prepare_shape", "resolve", "strided_slice"]

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1


def _clamp(v: int, lo: int, hi: int) -> int:
    """TFLM's ``strided_slice::Clamp``: ``v`` limited to ``[lo, hi]``."""
    return min(max(v, lo), hi)


def _bit(mask: int, axis: int) -> bool:
    return bool(mask & (1 << axis))


def resolve(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_axis_mask: int) -> tuple:
    """Eval's ``(starts, stops)`` per axis (``StridedSliceStartForAxis`` / ``StridedSliceEndForAxis``).

    ``shape``, ``begin``, ``end``, ``strides``: sequences of the input's rank (strides non-zero).
    Returns two lists of ints; axis k visits ``starts[k], starts[k] + strides[k], ...`` while
    ``< stops[k]`` (stride > 0) or ``> stops[k]`` (stride < 0).
    """
    starts, stops = [], []
    for k, size in enumerate(shape):
        stride = int(strides[k])
        start = int(begin[k])
        if start < 0:
            start += size
        start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
        if _bit(begin_mask, k):
            start = 0 if stride > 0 else size - 1
        if _bit(shrink_axis_mask, k):
            stop = start if start >= size else start + 1
        else:
            stop = int(end[k])
            if stop < 0:
                stop += size
            stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
            if _bit(end_mask, k):
                stop = size if stride > 0 else -1
        starts.append(start)
        stops.append(stop)
    return starts, stops


def prepare_shape(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_axis_mask: int) -> tuple:
    """The output shape TFLM's Prepare (``CheckOutputSize``) requires: shrunk axes left out.

    Per axis: ``start = StartForAxis``, ``stop = StopForAxis`` (or ``start + 1`` when shrunk),
    length ``max(0, int(ceil(float32(stop - start) / float32(stride))))``.
    """
    out = []
    for k, size in enumerate(shape):
        stride = int(strides[k])
        start = int(begin[k])
        if size == 0:
            start = 0
        else:
            if _bit(begin_mask, k):
                start = INT_MIN if stride > 0 else INT_MAX
            if start < 0:
                start += size
            start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
        if size == 0:
            stop = 0
        elif _bit(shrink_axis_mask, k):
            stop = start + 1
        else:
            stop = int(end[k])
            if _bit(end_mask, k):
                stop = INT_MAX if stride > 0 else INT_MIN
            if stop < 0:
                stop += size
            stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
        length = math.ceil(float(np.float32(stop - start) / np.float32(stride)))
        if not _bit(shrink_axis_mask, k):
            out.append(max(length, 0))
    return tuple(out)


def check_shrink(shape, begin, strides, begin_mask: int, shrink_axis_mask: int) -> None:
    """Raise ``ValueError`` for a shrunk axis that Eval would copy nothing from.

    That is a shrunk axis whose start is outside the axis, or whose stride is negative: Eval ends
    it at ``start + 1`` and its loop (``index > stop`` for stride < 0) never runs, while Prepare
    has already left the axis out of the output shape.
    """
    for k, size in enumerate(shape):
        if not _bit(shrink_axis_mask, k):
            continue
        if int(strides[k]) < 0:
            raise ValueError(f"shrink_axis_mask with the negative stride {int(strides[k])} on axis {k}")
        start = int(begin[k])
        if not _bit(begin_mask, k) and not -size <= start < size:
            raise ValueError(f"shrink_axis_mask takes index {start} of axis {k}, which has size {size}")


def strided_slice(x, begin, end, strides, begin_mask: int = 0, end_mask: int = 0, shrink_axis_mask: int = 0):
    """TFLM STRIDED_SLICE of ``x`` (any integer dtype): the elements Eval selects, in its order.

    Returns an array of :func:`prepare_shape`'s shape holding, in row-major order, ``x[i_0, ...,
    i_{r-1}]`` for every index with ``i_k`` running over axis k's offsets (:func:`resolve`).
    """
    x = np.asarray(x)
    starts, stops = resolve(x.shape, begin, end, strides, begin_mask, end_mask, shrink_axis_mask)
    ranges = [range(s, e, int(st)) for s, e, st in zip(starts, stops, strides)]
    values = [x[idx] for idx in _product(ranges)]
    shape = prepare_shape(x.shape, begin, end, strides, begin_mask, end_mask, shrink_axis_mask)
    return np.array(values, dtype=x.dtype).reshape(shape)


def _product(ranges):
    if not ranges:
        yield ()
        return
    for i in ranges[0]:
        for rest in _product(ranges[1:]):
            yield (i,) + rest
