"""Pure-Python specification of the layout operators: SQUEEZE, EXPAND_DIMS, TRANSPOSE, SPLIT/SPLIT_V, GATHER.

None of them computes: each output element is one input element, copied bit for bit (any
integer dtype). What is specified is *which* element, and the shape rules TFLite Micro applies
in Prepare:

* SQUEEZE (``micro/kernels/squeeze.cc``): with no ``squeeze_dims``, every dimension of size 1
  goes; otherwise the listed dimensions (negative counts from the end), each of which must be 1.
  The bytes are copied unchanged.
* EXPAND_DIMS (``expand_dims.cc``): a dimension of size 1 inserted at ``axis``
  (``axis < 0``: ``axis + rank + 1``), ``0 <= axis <= rank``. The bytes are copied unchanged.
* TRANSPOSE (``reference_ops::Transpose``): ``out[i_0, ..., i_{r-1}] = x[j]`` with
  ``j[perm[k]] = i_k``, i.e. output dimension k is input dimension ``perm[k]`` (numpy's
  ``x.transpose(perm)``).
* SPLIT / SPLIT_V (``split.cc``, ``split_v.cc``): the input cut along ``axis`` into consecutive
  pieces of the outputs' sizes.
* GATHER (``gather.cc``): with ``batch_dims`` b and ``axis`` a, ``out[batch, outer, coord, inner]
  = x[batch, outer, indices[batch, coord], inner]``.

Loops over Python ints; the kernels in :mod:`tinyzo.kernels.layout` are property-tested against these.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "expand_dims_shape",
    "gather",
    "gather_axes",
    "gather_shape",
    "split",
    "squeeze_shape",
    "transpose",
    "transpose_shape",
]


def squeeze_shape(in_shape, squeeze_dims) -> tuple:
    """TFLM SQUEEZE's output shape: ``in_shape`` without the squeezed dimensions.

    ``squeeze_dims``: list of ints (empty: every dimension of size 1). Raises ``ValueError`` for a
    listed dimension out of ``[-rank, rank)`` or not of size 1, and for rank > 8 (TFLM's limit).
    """
    rank = len(in_shape)
    if rank > 8:
        raise ValueError(f"input rank {rank} is above SQUEEZE's limit of 8")
    if len(squeeze_dims) == 0:
        drop = {k for k, d in enumerate(in_shape) if d == 1}
    else:
        drop = set()
        for d in squeeze_dims:
            k = d + rank if d < 0 else d
            if not 0 <= k < rank or in_shape[k] != 1:
                raise ValueError(f"squeeze dimension {d} is out of range or not of size 1 in shape {tuple(in_shape)}")
            drop.add(k)
    return tuple(d for k, d in enumerate(in_shape) if k not in drop)


def expand_dims_shape(in_shape, axis: int) -> tuple:
    """TFLM EXPAND_DIMS's output shape: a 1 inserted at ``axis`` (negative: ``axis + rank + 1``).

    Raises ``ValueError`` unless ``0 <= axis <= rank`` after that correction.
    """
    rank = len(in_shape)
    a = axis + rank + 1 if axis < 0 else axis
    if not 0 <= a <= rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank} (-{rank + 1}..{rank})")
    return tuple(in_shape[:a]) + (1,) + tuple(in_shape[a:])


def transpose_shape(in_shape, perm) -> tuple:
    """Output shape of TRANSPOSE: ``out[k] = in_shape[perm[k]]``.

    Raises ``ValueError`` if ``perm`` is not a permutation of ``range(rank)`` (TFLM checks each
    entry is in range; a repeated entry would leave output elements unwritten).
    """
    if sorted(int(p) for p in perm) != list(range(len(in_shape))):
        raise ValueError(f"perm {list(perm)} is not a permutation of 0..{len(in_shape) - 1}")
    return tuple(in_shape[int(p)] for p in perm)


def transpose(x, perm) -> np.ndarray:
    """TFLM TRANSPOSE: ``out[i] = x[j]`` where ``j[perm[k]] = i[k]`` for every output index ``i``."""
    x = np.asarray(x)
    out = np.zeros(transpose_shape(x.shape, perm), dtype=x.dtype)
    for idx in itertools.product(*(range(d) for d in out.shape)):
        src = [0] * x.ndim
        for k, p in enumerate(perm):
            src[int(p)] = idx[k]
        out[idx] = x[tuple(src)]
    return out


def split(x, axis: int, sizes) -> list:
    """TFLM SPLIT / SPLIT_V: consecutive pieces of ``sizes[i]`` elements along ``axis`` (non-negative).

    ``sum(sizes)`` must equal ``x.shape[axis]``. Output i element at position p along the axis is the
    input element at ``p + sizes[0] + ... + sizes[i-1]``.
    """
    x = np.asarray(x)
    outs = []
    start = 0
    for s in sizes:
        shape = list(x.shape)
        shape[axis] = s
        o = np.zeros(shape, dtype=x.dtype)
        for idx in itertools.product(*(range(d) for d in shape)):
            src = list(idx)
            src[axis] += start
            o[idx] = x[tuple(src)]
        outs.append(o)
        start += s
    return outs


def gather_shape(params_shape, indices_shape, axis: int, batch_dims: int) -> tuple:
    """TFLM GATHER's output shape ``params[:axis] + indices[batch_dims:] + params[axis + 1:]``.

    ``axis`` and ``batch_dims`` may be negative (``+ rank(params)`` and ``+ rank(indices)``). Raises
    ``ValueError`` unless ``0 <= batch_dims <= axis < rank(params)``, ``batch_dims <= rank(indices)``
    and the first ``batch_dims`` dimensions of params and indices are equal (TFLM's Prepare).
    Returns the output shape; see :func:`gather_axes` for the resolved axis and batch_dims.
    """
    a, b = gather_axes(params_shape, indices_shape, axis, batch_dims)
    return tuple(params_shape[:a]) + tuple(indices_shape[b:]) + tuple(params_shape[a + 1:])


def gather_axes(params_shape, indices_shape, axis: int, batch_dims: int) -> tuple:
    """``(axis, batch_dims)`` resolved and checked as TFLM's GATHER Prepare does (see :func:`gather_shape`)."""
    rp, ri = len(params_shape), len(indices_shape)
    a = axis + rp if axis < 0 else axis
    if not 0 <= a < rp:
        raise ValueError(f"axis {axis} is out of range for params of rank {rp}")
    b = batch_dims + ri if batch_dims < 0 else batch_dims
    if not (0 <= b < rp and b <= ri and b <= a):
        raise ValueError(f"batch_dims {batch_dims} must satisfy 0 <= batch_dims <= axis ({a}), < rank(params) ({rp}) "
                         f"and <= rank(indices) ({ri})")
    if tuple(params_shape[:b]) != tuple(indices_shape[:b]):
        raise ValueError(f"the first {b} dimensions of params {tuple(params_shape)} and indices "
                         f"{tuple(indices_shape)} differ (batch_dims)")
    return a, b


def gather(params, indices, axis: int, batch_dims: int) -> np.ndarray:
    """TFLM GATHER: ``out[i_params_before, i_coords, i_params_after] = params[..., indices[...], ...]``.

    For output index ``(p_0..p_{a-1}, c_b..c_{ri-1}, q_{a+1}..)`` the source is
    ``params[p_0..p_{a-1}, indices[p_0..p_{b-1}, c_b..c_{ri-1}], q_{a+1}..]``. Every index must be in
    ``[0, params.shape[axis])`` (TFLM only DCHECKs it); raises ``ValueError`` otherwise.
    """
    params, indices = np.asarray(params), np.asarray(indices)
    a, b = gather_axes(params.shape, indices.shape, axis, batch_dims)
    out = np.zeros(gather_shape(params.shape, indices.shape, a, b), dtype=params.dtype)
    n_coord = indices.ndim - b
    for idx in itertools.product(*(range(d) for d in out.shape)):
        before = idx[:a]
        coord = idx[a:a + n_coord]
        after = idx[a + n_coord:]
        k = int(indices[tuple(before[:b]) + tuple(coord)])
        if not 0 <= k < params.shape[a]:
            raise ValueError(f"index {k} is out of range [0, {params.shape[a]})")
        out[idx] = params[tuple(before) + (k,) + tuple(after)]
    return out
