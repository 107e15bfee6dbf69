"""Data-movement operators: RESHAPE, PAD/PADV2, CONCATENATION, as TFLite Micro prepares and runs them.

* RESHAPE (``micro/kernels/reshape_common.cc``): the bytes are copied
  unchanged; the new shape (constant input 1, else the ``new_shape`` option,
  else the stored output shape) may hold one -1, resolved from the element
  count. TFLM does not compare quantization parameters, and neither does this.
* PAD / PADV2 (``pad.cc``, ``pad_common.cc``): constant paddings (rank x 2),
  rank <= 5; the pad value is the output zero point (PAD) or the constant
  scalar input 2 (PADV2), which must have the output's scale and zero point.
* CONCATENATION (``concatenation.cc``): TFLM copies int8 values without
  requantizing (it stores the input scales but never uses them), so inputs
  whose scale or zero point differ from the output's are refused here rather
  than silently reinterpreted.

The batch dimension (dimension 0, N at run time) cannot be reshaped, padded or
concatenated along: every sample is processed as TFLM processes it alone.
"""

from __future__ import annotations

import numpy as np

from tinyzo.kernels.shape import concatenation_copy_s8, pad_s8
from tinyzo.ops.base import PreparedOp, register
from tinyzo.spec.shape import resolve_reshape

__all__ = ["Concatenation", "Pad", "Reshape"]

#: ``reference_ops::PadKernelMaxDimensionCount()``.
PAD_MAX_RANK = 5
#: TFLM's CONCATENATION: ``RuntimeShape::kMaxSmallSize`` dimensions (its ``kMaxInputNum`` = 10
#: inputs is :data:`tinyzo.ops.base.OPERATOR_ARITY`'s bound).
CONCAT_MAX_RANK = 6


def _same_quant(a, b) -> bool:
    """True when tensors ``a`` and ``b`` have the same float32 scale and zero point."""
    return np.float32(a.quant.scale[0]) == np.float32(b.quant.scale[0]) and int(a.quant.zero_point[0]) == int(
        b.quant.zero_point[0]
    )


@register("RESHAPE")
class Reshape(PreparedOp):
    """TFLite ``RESHAPE`` of an int8, int16 or int32 tensor (TFLM: a byte copy; input and output types match).

    The new shape comes from the constant int32/int64 input 1, else the
    ``new_shape`` option, else the stored output shape; one -1 is resolved. Its
    dimension 0 must be 1 (the batch), as must the input's.
    """

    def prepare(self):
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.require_copyable(inp, "input")
        self.require_copyable(out, "output")
        if inp.dtype != out.dtype:
            self.fail(f"output {out.name!r} is {out.dtype}, input {inp.name!r} is {inp.dtype}; they must match")
        self.dtype = inp.dtype
        shape_t = self.tensor(1, optional=True)
        if shape_t is not None:
            if not shape_t.is_constant or shape_t.dtype not in (np.int32, np.int64):
                self.fail("the shape input must be a constant int32/int64 tensor")
            new_shape = np.asarray(shape_t.data).reshape(-1).tolist()
        elif self.int_list_option("new_shape", []):
            new_shape = self.int_list_option("new_shape", [])
        else:
            new_shape = list(out.shape)
        n_elems = int(np.prod(inp.shape, dtype=np.int64))
        resolved = self.checked(resolve_reshape, new_shape, n_elems)
        stored = self.checked(resolve_reshape, out.shape, n_elems) if -1 in out.shape else tuple(out.shape)
        if len(inp.shape) < 1 or inp.shape[0] != 1 or len(resolved) < 1 or resolved[0] != 1:
            self.fail(f"reshape {inp.shape} -> {resolved} moves data across the batch dimension (dimension 0 must stay 1)")
        if tuple(resolved) != tuple(stored):
            self.fail(f"output shape {out.shape} differs from the new shape {resolved}")
        self.new_shape = tuple(resolved)

    def compute(self, x):
        """int8/int16/int32[N, ...] -> the same type [N, new_shape[1:]] (a copy)."""
        return np.array(x, dtype=self.dtype, copy=True).reshape((x.shape[0],) + self.new_shape[1:])


@register("PAD", "PADV2")
class Pad(PreparedOp):
    """TFLite ``PAD`` / ``PADV2`` of an int8 tensor (TFLM ``reference_ops::PadImpl``).

    Input 1: constant int32/int64 paddings of shape (rank, 2), non-negative,
    0 for the batch dimension. Input 2 (optional, PADV2): a constant int8
    scalar with the output's scale and zero point; without it the pad value
    is the output zero point.
    """

    def prepare(self):
        inp, pad_t, out = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        self.require_int8(inp, "input")
        self.require_int8(out, "output")
        rank = len(inp.shape)
        if not 1 <= rank <= PAD_MAX_RANK or len(out.shape) != rank:
            self.fail(f"input/output ranks {rank}/{len(out.shape)} are not supported (equal, 1..{PAD_MAX_RANK})")
        if not pad_t.is_constant or pad_t.dtype not in (np.int32, np.int64):
            self.fail("the paddings input must be a constant int32/int64 tensor")
        pads = np.asarray(pad_t.data).reshape(-1)
        if pads.size != 2 * rank:
            self.fail(f"paddings hold {pads.size} values; {2 * rank} (rank x 2) are needed")
        pads = pads.reshape(rank, 2).astype(np.int64)
        if np.any(pads < 0):
            self.fail(f"negative paddings {pads.tolist()} are not supported")
        if pads[0, 0] != 0 or pads[0, 1] != 0:
            self.fail("padding the batch dimension (dimension 0) is not supported")
        expected = tuple(int(d + l + r) for d, (l, r) in zip(inp.shape, pads))
        if expected[1:] != tuple(out.shape[1:]):
            self.fail(f"output shape {out.shape} differs from the padded input shape {expected}")
        value_t = self.tensor(2, optional=True)
        if value_t is None:
            self.pad_value = int(out.quant.zero_point[0])
        else:
            self.require_int8(value_t, "constant value")
            if not value_t.is_constant or np.asarray(value_t.data).size != 1:
                self.fail("the constant value input must be a constant int8 scalar")
            if not _same_quant(value_t, out):
                self.fail("the constant value must have the output's scale and zero point (TFLite Micro requires it)")
            self.pad_value = int(np.asarray(value_t.data).reshape(-1)[0])
        ext = PAD_MAX_RANK - rank
        self.left = np.zeros(PAD_MAX_RANK, dtype=np.int64)
        self.right = np.zeros(PAD_MAX_RANK, dtype=np.int64)
        self.left[ext:] = pads[:, 0]
        self.right[ext:] = pads[:, 1]
        self._out = out

    def compute(self, x):
        """int8[N, ...] -> int8[N, padded ...]."""
        x = np.ascontiguousarray(x, dtype=np.int8)
        out_shape = (x.shape[0],) + tuple(self._out.shape[1:])
        out = np.empty(out_shape, dtype=np.int8)
        ext = (1,) * (PAD_MAX_RANK - x.ndim)
        pad_s8(x.reshape(ext + x.shape), self.left, self.right, self.pad_value, out.reshape(ext + out_shape))
        return out


@register("CONCATENATION")
class Concatenation(PreparedOp):
    """TFLite ``CONCATENATION`` of int8, int16 or int32 tensors (TFLM ``reference_ops::Concatenation``: a copy).

    Options: ``axis`` (negative counts from the end; not the batch axis 0),
    ``fused_activation_function`` (must be NONE, as TFLM requires). Up to 10
    inputs of rank <= 6, all with the output's scale and zero point. Constant
    inputs are shared by every sample (their dimension 0 must be 1).
    """

    def prepare(self):
        n_in = len(self.op.inputs)
        out = self.tensor(0, output=True)
        self.require_copyable(out, "output")
        self.dtype = out.dtype
        self.enum_option("fused_activation_function", "NONE", ("NONE",))
        rank = len(out.shape)
        if not 1 <= rank <= CONCAT_MAX_RANK:
            self.fail(f"output rank {rank} is not supported (1..{CONCAT_MAX_RANK})")
        axis = self.int_option("axis", 0, lo=-rank, hi=rank - 1)
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            self.fail("concatenating along the batch dimension (axis 0) is not supported")
        ins = [self.tensor(k) for k in range(n_in)]
        total = 0
        for k, t in enumerate(ins):
            if self.dtype != np.int8:  # int16/int32: raw values copied; types and quantization must match
                self.require_copyable(t, f"input {k}")
                self.require_same_type(t, out, f"input {k}")
            else:
                self.require_int8(t, f"input {k}")
            if self.dtype == np.int8 and not _same_quant(t, out):
                self.fail(
                    f"input {k} {t.name!r} has a different scale/zero point from the output; TFLite Micro copies "
                    "int8 values without requantizing, which is not supported"
                )
            if len(t.shape) != rank or any(t.shape[d] != out.shape[d] for d in range(1, rank) if d != axis):
                self.fail(f"input {k} shape {t.shape} does not match output shape {out.shape} outside axis {axis}")
            if t.is_constant and t.shape[0] != 1:
                self.fail(f"constant input {k} {t.name!r} has {t.shape[0]} in the batch dimension; only 1 is supported")
            total += t.shape[axis]
        if total != out.shape[axis]:
            self.fail(f"the inputs add up to {total} along axis {axis}, the output has {out.shape[axis]}")
        if all(t.is_constant for t in ins):
            self.fail("all inputs are constant; fold the constant CONCATENATION before conversion")
        self.axis = axis
        self._ins, self._out = ins, out

    def compute(self, *inputs):
        """int8/int16/int32[N, ...] inputs (constants left out) -> [N, ...] concatenated along ``axis``."""
        n = inputs[0].shape[0]
        it = iter(inputs)
        arrays = []
        for t in self._ins:
            if t.is_constant:
                arrays.append(np.broadcast_to(np.asarray(t.data, dtype=self.dtype), (n,) + tuple(t.shape[1:])))
            else:
                arrays.append(next(it))
        out_shape = (n,) + tuple(self._out.shape[1:])
        out = np.empty(out_shape, dtype=self.dtype)
        outer = int(np.prod(out_shape[: self.axis], dtype=np.int64))
        out2 = out.reshape(outer, -1)
        offset = 0
        for a in arrays:
            a2 = np.ascontiguousarray(a, dtype=self.dtype).reshape(outer, -1)
            concatenation_copy_s8(a2, out2, offset)
            offset += a2.shape[1]
        return out
