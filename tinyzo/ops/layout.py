"""Layout operators SQUEEZE, EXPAND_DIMS and TRANSPOSE, prepared and run as TFLite Micro does.

* SQUEEZE (``micro/kernels/squeeze.cc``): option ``squeeze_dims`` (empty: every dimension of
  size 1); a byte copy. Any of int8, int16, int32 (TFLM copies any type).
* EXPAND_DIMS (``expand_dims.cc``): a constant int32 ``axis`` input (one value); a byte copy.
  int8 and int16 (TFLM's types besides float32).
* TRANSPOSE (``transpose.cc``, ``reference_ops::Transpose``): a constant int32 ``perm`` input,
  rank 1..5; int8 and int16 (TFLM's types besides float32).

The output has the input's dtype and quantization (TFLM copies raw values; a model whose output
quantization differs is refused rather than silently reinterpreted). Dimension 0 of the input and
of the output must be 1 (the batch): each sample is computed on the file's full shape, as TFLM
computes it alone, so a transpose or squeeze that would move data across samples is refused.
Definitions: :mod:`tinyzo.spec.layout`; kernel: :func:`tinyzo.kernels.layout.transpose_copy`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.kernels.layout import transpose_copy
from tinyzo.ops.base import PreparedOp, register
from tinyzo.spec.layout import expand_dims_shape, squeeze_shape, transpose_shape

__all__ = ["TRANSPOSE_MAX_RANK", "ExpandDims", "Squeeze", "Transpose"]

#: TFLM's TRANSPOSE: "Transpose op only supports 1D-5D input arrays".
TRANSPOSE_MAX_RANK = 5


class _CopyOp(PreparedOp):
    """Shared prepare of the one-input, one-output copying operators."""

    dtypes = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))


class _ByteCopy(_CopyOp):
    """The bytes copied unchanged into the output's shape (SQUEEZE, EXPAND_DIMS)."""

    def compute(self, x):
        """[N, ...] -> [N, output shape[1:]] (a copy of the same bytes, same dtype)."""
        return np.array(x, copy=True).reshape((x.shape[0],) + tuple(self._out.shape[1:]))


@register("SQUEEZE")
class Squeeze(_ByteCopy):
    """TFLite ``SQUEEZE`` (TFLM: a byte copy): dimensions of size 1 removed.

    Option ``squeeze_dims`` (list of ints, negative from the end; empty: every size-1 dimension).
    int8, int16 or int32.
    """

    def prepare(self):
        inp, out = self.copy_io(self.dtypes)
        dims = [int(d) for d in (self.option("squeeze_dims") or [])]
        self.require_output_shape(out, self.checked(squeeze_shape, inp.shape, dims))
        self._out = out


@register("EXPAND_DIMS")
class ExpandDims(_ByteCopy):
    """TFLite ``EXPAND_DIMS`` (TFLM: a copy): a dimension of size 1 inserted at the constant int32 ``axis``.

    int8 or int16 (TFLM's EXPAND_DIMS has no int32).
    """

    dtypes = (np.dtype(np.int8), np.dtype(np.int16))

    def prepare(self):
        inp, out = self.copy_io(self.dtypes)
        axis_t = self.tensor(1)
        if not axis_t.is_constant or axis_t.dtype != np.int32 or axis_t.data.size != 1 or len(axis_t.shape) > 1:
            self.fail("the axis input must be a constant int32 tensor of one value (TFLite Micro requires it)")
        axis = int(axis_t.data.reshape(-1)[0])
        self.require_output_shape(out, self.checked(expand_dims_shape, inp.shape, axis))
        self._out = out


@register("TRANSPOSE")
class Transpose(_CopyOp):
    """TFLite ``TRANSPOSE`` (TFLM ``reference_ops::Transpose``): output dimension k is input dimension ``perm[k]``.

    Input 1: constant int32 ``perm`` of shape (rank,), rank 1..5. int8 or int16.
    """

    dtypes = (np.dtype(np.int8), np.dtype(np.int16))

    def prepare(self):
        inp, out = self.copy_io(self.dtypes)
        rank = len(inp.shape)
        if rank > TRANSPOSE_MAX_RANK:
            self.fail(f"input rank {rank} is not supported (TFLite Micro: 1..{TRANSPOSE_MAX_RANK})")
        perm_t = self.tensor(1)
        if not perm_t.is_constant or perm_t.dtype != np.int32 or tuple(perm_t.shape) != (rank,):
            self.fail(f"perm must be a constant int32 tensor of shape ({rank},) (TFLite Micro requires it)")
        perm = [int(p) for p in perm_t.data.reshape(-1)]
        self.require_output_shape(out, self.checked(transpose_shape, inp.shape, perm))
        in_strides = [int(np.prod(inp.shape[d + 1:], dtype=np.int64)) for d in range(rank)]
        ext = TRANSPOSE_MAX_RANK - rank
        self.in_strides = np.array([0] * ext + [in_strides[p] for p in perm], dtype=np.int64)
        self.out5 = (1,) * ext + tuple(out.shape)
        self.perm = tuple(perm)
        self._out = out

    def compute(self, x):
        """[N, in_shape[1:]] -> [N, out_shape[1:]] (same dtype)."""
        n = x.shape[0]
        x2 = np.ascontiguousarray(x).reshape(n, -1)
        out = np.empty((n,) + self.out5, dtype=x.dtype)
        transpose_copy(x2, self.in_strides, out)
        return out.reshape((n,) + tuple(self._out.shape[1:]))
