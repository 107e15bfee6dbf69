"""Slicing operators STRIDED_SLICE, SPLIT, SPLIT_V and GATHER, prepared and run as TFLite Micro does.

* STRIDED_SLICE (``micro/kernels/strided_slice*.cc``, ``reference_ops::StridedSlice``): int8,
  int16, int32; constant int32 ``begin``/``end``/``strides`` of the input's rank (<= 4);
  ``begin_mask``, ``end_mask``, ``shrink_axis_mask``. TFLM sets ``ellipsis_mask``,
  ``new_axis_mask`` and ``offset`` to 0 whatever the model says; tinyzo refuses models that set
  them rather than ignore them. Index rules: :mod:`tinyzo.spec.strided_slice`.
* SPLIT (``split.cc``; inputs ``axis``, ``input``) and SPLIT_V (``split_v.cc``; inputs ``input``,
  ``size_splits``, ``axis``): int8, int16, int32; a constant int32 axis. TFLM takes the pieces'
  sizes from the output shapes (it never reads ``size_splits``); tinyzo checks that
  ``size_splits`` (one -1 allowed) and ``num_splits`` agree with them.
* GATHER (``gather.cc``): int8 params, int32 indices (TFLM refuses int64), ``axis`` and
  ``batch_dims`` (negative allowed). Either params or indices may be a constant shared by every
  sample. Every index must lie in ``[0, params.shape[axis])``: TFLM only DCHECKs it and reads out
  of bounds otherwise; tinyzo refuses such constant indices when preparing and such run-time
  indices with :class:`tinyzo.errors.InputError` when running.

Outputs have the input's dtype and quantization (raw values are copied). Dimension 0 of every
run-time tensor is the batch and must be 1 in the file; each sample is computed on the file's
full shapes, as TFLM computes it alone. Kernels: :mod:`tinyzo.kernels.layout`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import InputError
from tinyzo.kernels.layout import gather_copy, split_copy, strided_slice_copy
from tinyzo.ops.base import PreparedOp, register
from tinyzo.spec import strided_slice as SS
from tinyzo.spec.layout import gather_axes, gather_shape

__all__ = ["STRIDED_SLICE_MAX_RANK", "Gather", "Split", "SplitV", "StridedSlice"]

#: TFLM's STRIDED_SLICE Prepare: "input dim should not exceed 4".
STRIDED_SLICE_MAX_RANK = 4
_SLICE_RANK = 5  # reference_ops::StridedSlice pads every shape to 5-D


def _constant_int32(op: PreparedOp, k: int, what: str, size: int | None = None) -> list:
    """The values of constant int32 input ``k`` (TFLM reads these inputs as int32 only)."""
    t = op.tensor(k)
    if not t.is_constant or t.dtype != np.int32:
        op.fail(f"{what} must be a constant int32 tensor (TFLite Micro requires it)")
    values = [int(v) for v in t.data.reshape(-1)]
    if size is not None and len(values) != size:
        op.fail(f"{what} has {len(values)} values; {size} are needed")
    return values


@register("STRIDED_SLICE")
class StridedSlice(PreparedOp):
    """TFLite ``STRIDED_SLICE`` of an int8, int16 or int32 tensor (TFLM ``reference_ops::StridedSlice``)."""

    def prepare(self):
        inp, out = self.copy_io()
        rank = len(inp.shape)
        if rank > STRIDED_SLICE_MAX_RANK:
            self.fail(f"input rank {rank} is not supported (TFLite Micro: at most {STRIDED_SLICE_MAX_RANK})")
        begin = _constant_int32(self, 1, "begin", rank)
        end = _constant_int32(self, 2, "end", rank)
        strides = _constant_int32(self, 3, "strides", rank)
        if 0 in strides:
            self.fail(f"strides {strides} hold a 0 (TFLite Micro: stride value has to be non-zero)")
        for name in ("ellipsis_mask", "new_axis_mask"):
            if int(self.option(name, 0)) != 0:
                self.fail(f"{name} = {self.option(name)} is not supported (TFLite Micro ignores it)")
        if self.option("offset", False):
            self.fail("offset = true is not supported (TFLite Micro ignores it)")
        bm, em, sm = (int(self.option(k, 0)) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
        try:
            SS.check_shrink(inp.shape, begin, strides, bm, sm)
        except ValueError as e:
            self.fail(f"{e} (TFLite Micro would leave the output unwritten)")
        self.require_output_shape(out, SS.prepare_shape(inp.shape, begin, end, strides, bm, em, sm))
        starts, stops = SS.resolve(inp.shape, begin, end, strides, bm, em, sm)
        ext = _SLICE_RANK - rank
        self.starts = np.array([0] * ext + starts, np.int64)
        self.stops = np.array([1] * ext + stops, np.int64)
        self.strides = np.array([1] * ext + strides, np.int64)
        self.in5 = (1,) * ext + tuple(inp.shape)
        self.n_out = int(np.prod(out.shape, dtype=np.int64))
        self._out = out

    def compute(self, x):
        """[N, in_shape[1:]] -> [N, out_shape[1:]] (same dtype)."""
        n = x.shape[0]
        x5 = np.ascontiguousarray(x).reshape((n,) + self.in5)
        out = np.empty((n, self.n_out), dtype=x.dtype)
        strided_slice_copy(x5, self.starts, self.stops, self.strides, out)
        return out.reshape((n,) + tuple(self._out.shape[1:]))


class _SplitBase(PreparedOp):
    """Shared prepare and compute of SPLIT and SPLIT_V; subclasses set ``input_index`` and ``axis_index``."""

    input_index = 0
    axis_index = 0

    def _sizes(self, inp, axis, outs) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self):
        inp = self.tensor(self.input_index)
        outs = [self.tensor(k, output=True) for k in range(len(self.op.outputs))]
        if not outs:
            self.fail("has no outputs")
        self.require_copyable(inp, "input")
        self.require_batch_one(inp, "input")
        for k, o in enumerate(outs):
            self.require_same_type(inp, o, "input", f"output {k}")
            self.require_batch_one(o, f"output {k}")
        axis_values = _constant_int32(self, self.axis_index, "axis", 1)
        rank = len(inp.shape)
        axis = axis_values[0] + rank if axis_values[0] < 0 else axis_values[0]
        if not 0 <= axis < rank:
            self.fail(f"axis {axis_values[0]} is out of range for rank {rank}")
        n_splits = int(self.option("num_splits", 0))
        if n_splits != len(outs):
            self.fail(f"num_splits = {n_splits} but the operator has {len(outs)} outputs")
        sizes = self._sizes(inp, axis, outs)
        for k, (o, s) in enumerate(zip(outs, sizes)):
            want = tuple(inp.shape[:axis]) + (s,) + tuple(inp.shape[axis + 1:])
            if tuple(o.shape) != want:
                self.fail(f"output {k} shape {list(o.shape)} differs from the computed {list(want)}")
        self.axis = axis
        self.outer = int(np.prod(inp.shape[:axis], dtype=np.int64))
        inner = int(np.prod(inp.shape[axis + 1:], dtype=np.int64))
        self.blocks = [s * inner for s in sizes]
        self._outs = outs

    def compute(self, x):
        """[N, in_shape[1:]] -> one [N, out_k shape[1:]] array per output (same dtype)."""
        n = x.shape[0]
        x2 = np.ascontiguousarray(x).reshape(n * self.outer, -1)
        results = []
        offset = 0
        for o, block in zip(self._outs, self.blocks):
            out = np.empty((n * self.outer, block), dtype=x.dtype)
            split_copy(x2, out, offset)
            offset += block
            results.append(out.reshape((n,) + tuple(o.shape[1:])))
        return tuple(results)


@register("SPLIT")
class Split(_SplitBase):
    """TFLite ``SPLIT`` (inputs: constant int32 axis, data): ``num_splits`` equal pieces along the axis."""

    input_index = 1
    axis_index = 0

    def _sizes(self, inp, axis, outs):
        if inp.shape[axis] % len(outs):
            self.fail(f"dimension {axis} of size {inp.shape[axis]} does not split into {len(outs)} equal pieces")
        return [inp.shape[axis] // len(outs)] * len(outs)


@register("SPLIT_V")
class SplitV(_SplitBase):
    """TFLite ``SPLIT_V`` (inputs: data, constant ``size_splits``, constant int32 axis): pieces of the given sizes.

    ``size_splits`` (int32 or int64, one value per output, at most one -1) must agree with the
    output shapes, from which TFLM takes the sizes.
    """

    input_index = 0
    axis_index = 2

    def _sizes(self, inp, axis, outs):
        st = self.tensor(1)
        if not st.is_constant or st.dtype not in (np.int32, np.int64):
            self.fail("size_splits must be a constant int32/int64 tensor")
        sizes = [int(v) for v in st.data.reshape(-1)]
        if len(sizes) != len(outs):
            self.fail(f"size_splits has {len(sizes)} values for {len(outs)} outputs")
        if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
            self.fail(f"size_splits {sizes} may hold one -1 and otherwise sizes >= 0")
        if -1 in sizes:
            sizes[sizes.index(-1)] = inp.shape[axis] - (sum(sizes) + 1)
        if sum(sizes) != inp.shape[axis] or min(sizes) < 0:
            self.fail(f"size_splits {sizes} do not add up to dimension {axis} of size {inp.shape[axis]}")
        if 0 in sizes:
            self.fail(f"size_splits {sizes} make an empty output (TFLite Micro cannot allocate it)")
        return sizes


@register("GATHER")
class Gather(PreparedOp):
    """TFLite ``GATHER`` of int8 params by int32 indices along ``axis`` with ``batch_dims`` (TFLM ``gather.cc``)."""

    def prepare(self):
        params, idx, out = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        self.require_copyable(params, "params", (np.dtype(np.int8),))
        self.require_same_type(params, out, "params")
        if idx.dtype != np.int32:
            self.fail(f"indices {idx.name!r} are {idx.dtype}; TFLite Micro's GATHER takes int32 indices only")
        for t, role in ((params, "params"), (idx, "indices")):
            if not t.is_constant:
                self.require_batch_one(t, role)
        self.require_batch_one(out, "output")
        axis, bd = self.checked(gather_axes, params.shape, idx.shape, int(self.option("axis", 0)),
                                int(self.option("batch_dims", 0)))
        self.require_output_shape(out, self.checked(gather_shape, params.shape, idx.shape, axis, bd))
        self.axis_size = int(params.shape[axis])
        if idx.is_constant:
            bad = idx.data[(idx.data < 0) | (idx.data >= self.axis_size)]
            if bad.size:
                self.fail(f"index {int(bad[0])} is out of range [0, {self.axis_size}) (TFLite Micro would read out "
                          "of bounds)")
        self.batch_size = int(np.prod(params.shape[:bd], dtype=np.int64))
        self.outer_size = int(np.prod(params.shape[bd:axis], dtype=np.int64))
        self.inner_size = int(np.prod(params.shape[axis + 1:], dtype=np.int64))
        self.coord_size = int(np.prod(idx.shape[bd:], dtype=np.int64))
        self._params, self._idx, self._out = params, idx, out
        self._p_const = np.ascontiguousarray(params.data).reshape(1, -1) if params.is_constant else None
        self._i_const = np.ascontiguousarray(idx.data).reshape(1, -1) if idx.is_constant else None

    def compute(self, *inputs):
        """Run-time params int8[N, ...] and/or indices int32[N, ...] -> int8[N, out_shape[1:]]."""
        it = iter(inputs)
        p = self._p_const if self._p_const is not None else np.ascontiguousarray(next(it))
        i = self._i_const if self._i_const is not None else np.ascontiguousarray(next(it), dtype=np.int32)
        n = max(p.shape[0], i.shape[0])
        p2, i2 = p.reshape(p.shape[0], -1), i.reshape(i.shape[0], -1)
        if self._i_const is None:
            bad = (i2 < 0) | (i2 >= self.axis_size)
            if bad.any():
                raise InputError(f"operator {self.index} (GATHER): index {int(i2[bad][0])} is out of range "
                                 f"[0, {self.axis_size}) (TFLite Micro would read out of bounds)")
        out = np.empty((n, int(np.prod(self._out.shape, dtype=np.int64))), dtype=np.int8)
        gather_copy(p2, i2, self.batch_size, self.outer_size, self.axis_size, self.inner_size, self.coord_size, out)
        return out.reshape((n,) + tuple(self._out.shape[1:]))
