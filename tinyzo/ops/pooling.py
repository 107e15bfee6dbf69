"""Pooling and reduction: AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, prepared and run as TFLite Micro does.

* AVERAGE_POOL_2D / MAX_POOL_2D (``micro/kernels/pooling.cc``,
  ``pooling_common.cc``): int8 or int16 (16x8, zero point 0) NHWC, SAME/VALID padding from
  ``ComputePaddingHeightWidth``, strides, fused activation; the input and
  output must share scale (within 1e-6) and zero point, as TFLM checks. The int16
  kernels are TFLM's int16 overloads of the same loops (int32 sum, at most 65535
  window elements for int16; max from -32768).
* MEAN (``micro/kernels/reduce.cc``, ``reduce_common.cc``): TFLM's int8 path
  is ``EvalIntegerMean`` -> ``reference_ops::QuantizedMeanOrSum`` for every
  axis set and every pair of quantization parameters (the older special
  cases, ``reference_integer_ops::Mean`` for 4-D axes {1, 2} and a
  truncating mean for equal parameters, are gone from current TFLM; this was
  checked against the TFLM interpreter). At most 2 distinct axes and rank <= 5
  (TFLM's fixed ``resolved_axis[2]`` and ``temp_index[5]`` buffers).
"""

from __future__ import annotations

import math

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels.pool import average_pool_s8, average_pool_s16, max_pool_s8, max_pool_s16, mean_block_s8, mean_s8
from tinyzo.ops.base import INT32_MAX, PreparedOp, register
from tinyzo.ops.int16 import INT16, require_int8_or_int16, require_int16
from tinyzo.quant import check_multiplier_shift, quantize_multiplier, rounding_code
from tinyzo.spec.pool import compute_padding_height_width, mean_output_multiplier

__all__ = ["AveragePool2D", "MaxPool2D", "Mean"]

#: TFLM's MEAN keeps the resolved axes in ``int resolved_axis[2]``.
MEAN_MAX_AXES = 2
#: ... and the input index in ``int temp_index[5]``.
MEAN_MAX_RANK = 5
#: int16 AVERAGE_POOL_2D: the most window elements whose int32 sum (and rounding) cannot overflow.
AVERAGE_POOL_S16_MAX_WINDOW = 65535


class _Pool2D(PreparedOp):
    """Shared prepare of the two 2-D pools (TFLM ``PoolingPrepare``); ``kernel``/``kernel_s16`` by input type."""

    kernel = None
    kernel_s16 = None
    #: the most elements of an int16 window (None: no limit)
    max_window_s16 = None

    def prepare(self):
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.dtype = require_int8_or_int16(self, inp, "input")
        if self.dtype == INT16:
            require_int16(self, out, "output")
        else:
            self.require_int8(out, "output")
        if len(inp.shape) != 4 or len(out.shape) != 4:
            self.fail(f"input and output must be 4-D NHWC, got {inp.shape} and {out.shape}")
        if abs(float(np.float32(inp.quant.scale[0])) - float(np.float32(out.quant.scale[0]))) > 1.0e-6 or int(
            inp.quant.zero_point[0]
        ) != int(out.quant.zero_point[0]):
            self.fail("input and output must have the same scale and zero point (TFLite Micro requires it)")
        padding = self.enum_option("padding", "SAME", ("SAME", "VALID"))
        sh, sw = self.int_option("stride_h", 1), self.int_option("stride_w", 1)
        fh, fw = self.int_option("filter_height", 1), self.int_option("filter_width", 1)
        _, in_h, in_w, ch = inp.shape
        # TFLite computes the padded extent (out - 1) * stride + filter in int32
        if (in_h + sh) + fh > INT32_MAX or (in_w + sw) + fw > INT32_MAX:
            self.fail(f"strides ({sh}, {sw}) and filter size ({fh}, {fw}) overflow int32")
        out_h, out_w, pad_h, pad_w, _, _ = compute_padding_height_width(sh, sw, 1, 1, in_h, in_w, fh, fw, padding)
        if out_h < 1 or out_w < 1:
            self.fail(f"the filter ({fh}, {fw}) does not fit the input ({in_h}, {in_w}) with {padding} padding")
        if (out_h, out_w, ch) != tuple(out.shape[1:]):
            self.fail(f"output shape {out.shape} differs from the computed (N, {out_h}, {out_w}, {ch})")
        # TFLM's AveragePool returns an error for a window without any input element.
        for o, s, p, f, size in ((out_h, sh, pad_h, fh, in_h), (out_w, sw, pad_w, fw, in_w)):
            start = np.arange(o, dtype=np.int64) * s - p
            if np.any(np.minimum(f, size - start) <= np.maximum(0, -start)):
                self.fail("a pooling window lies entirely in the padding")
        limit = type(self).max_window_s16
        if self.dtype == INT16 and limit is not None and fh * fw > limit:
            self.fail(f"an int16 {fh}x{fw} window sums up to {fh * fw} values, beyond TFLite Micro's int32 "
                      f"accumulator (at most {limit})")
        self.act_min, self.act_max = self.activation(out)
        self._kernel = type(self).kernel_s16 if self.dtype == INT16 else type(self).kernel
        self.stride_h, self.stride_w, self.filter_h, self.filter_w = sh, sw, fh, fw
        self.pad_h, self.pad_w = pad_h, pad_w
        self._out = out

    def compute(self, x):
        """int8[N, H, W, C] -> int8[N, OH, OW, C] (int16 -> int16 on the int16 path)."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        out = np.empty((x.shape[0],) + tuple(self._out.shape[1:]), dtype=self.dtype)
        self._kernel(
            x, self.stride_h, self.stride_w, self.filter_h, self.filter_w,
            self.pad_h, self.pad_w, self.act_min, self.act_max, out,
        )
        return out



@register("AVERAGE_POOL_2D")
class AveragePool2D(_Pool2D):
    """TFLite ``AVERAGE_POOL_2D`` on int8 or int16 (TFLM ``reference_integer_ops::AveragePool``).

    Options: ``padding``, ``stride_h``/``stride_w``, ``filter_height``/``filter_width``,
    ``fused_activation_function``. The average counts only the window
    elements inside the image and rounds half away from zero.
    """

    kernel = staticmethod(average_pool_s8)
    kernel_s16 = staticmethod(average_pool_s16)
    max_window_s16 = AVERAGE_POOL_S16_MAX_WINDOW


@register("MAX_POOL_2D")
class MaxPool2D(_Pool2D):
    """TFLite ``MAX_POOL_2D`` on int8 or int16 (TFLM ``reference_integer_ops::MaxPool``); options as :class:`AveragePool2D`."""

    kernel = staticmethod(max_pool_s8)
    kernel_s16 = staticmethod(max_pool_s16)


@register("MEAN")
class Mean(PreparedOp):
    """TFLite ``MEAN`` on int8 (TFLM ``QuantizedMeanOrSum``), over the axes of the constant input 1.

    Option ``keep_dims``. The output is rescaled from the input's to the
    output's quantization with ``QuantizeMultiplier(s_in / s_out)`` and
    ``1/count`` folded into the multiplier; the model's rounding mode applies.
    Reducing the batch dimension is supported only with ``keep_dims`` (each
    sample is then its own mean over a dimension of size 1).
    """

    def prepare(self):
        inp, axis_t, out = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        self.require_int8(inp, "input")
        self.require_int8(out, "output")
        if not axis_t.is_constant or axis_t.dtype != np.int32:
            self.fail("the axis input must be a constant int32 tensor")
        rank = len(inp.shape)
        if not 1 <= rank <= MEAN_MAX_RANK:
            self.fail(f"input rank {rank} is not supported (1..{MEAN_MAX_RANK})")
        axes = []
        for a in np.asarray(axis_t.data).reshape(-1).tolist():
            a = a + rank if a < 0 else a
            if not 0 <= a < rank:
                self.fail(f"axis {a} is out of range for rank {rank}")
            if a not in axes:
                axes.append(a)
        if len(axes) > MEAN_MAX_AXES:
            self.fail(f"{len(axes)} distinct axes are not supported (TFLite Micro handles at most {MEAN_MAX_AXES})")
        keep_dims = self.bool_option("keep_dims", False)
        if 0 in axes and not keep_dims:
            self.fail("reducing the batch dimension (axis 0) without keep_dims is not supported")
        if keep_dims:
            expected = tuple(1 if k in axes else d for k, d in enumerate(inp.shape))
        else:
            expected = tuple(d for k, d in enumerate(inp.shape) if k not in axes)
        if len(expected) != len(out.shape) or tuple(expected[1:]) != tuple(out.shape[1:]):
            self.fail(f"output shape {out.shape} differs from the computed {expected}")
        count = 1
        for a in axes:
            count *= inp.shape[a]
        if count < 1:
            self.fail("the reduced dimensions are empty")
        real = float(np.float32(inp.quant.scale[0])) / float(np.float32(out.quant.scale[0]))
        try:
            m, s = check_multiplier_shift(*quantize_multiplier(real, self.model.rounding), self.model.rounding)
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")
        self.multiplier, self.shift = mean_output_multiplier(m, s, count)
        self.count = count
        self.input_zero_point = int(inp.quant.zero_point[0])
        self.output_zero_point = int(out.quant.zero_point[0])
        self.rounding = rounding_code(self.model.rounding)
        # Per sample, axis 0 has size 1: it contributes nothing to the reduction.
        self.reduce_axes = tuple(sorted(a for a in axes if a != 0))
        self.keep_axes = tuple(k for k in range(rank) if k not in self.reduce_axes)
        self._inp, self._out = inp, out

    def _adjacent(self) -> bool:
        """Whether the reduced axes are adjacent (reduced in place by :func:`mean_block_s8`)."""
        red = self.reduce_axes
        return bool(red) and red == tuple(range(red[0], red[-1] + 1))

    def buffer_bytes(self, n: int) -> dict:
        """The output and, for a batch of ``n``, the transposed input copy (reduced axes apart) or the sums."""
        out = super().buffer_bytes(n)
        if self._adjacent():
            out["sums"] = 4 * math.prod(self._inp.shape[self.reduce_axes[-1] + 1:])
        else:
            out["transposed input"] = n * math.prod(self._inp.shape[1:])
        return out

    def compute(self, x):
        """int8[N, ...] -> int8[N, out_shape[1:]]."""
        x = np.asarray(x, dtype=np.int8)
        n = x.shape[0]
        args = (self.input_zero_point, self.multiplier, self.shift, self.output_zero_point, self.rounding)
        red = self.reduce_axes
        if self._adjacent():  # e.g. H and W of NHWC: reduced in place, no transpose
            outer = n * math.prod(x.shape[1:red[0]])
            inner = math.prod(x.shape[red[-1] + 1:])
            x3 = np.ascontiguousarray(x).reshape(outer, self.count, inner)
            flat = np.empty((outer, inner), dtype=np.int8)
            mean_block_s8(x3, *args, self.scratch("mean_acc", (inner,), np.int32), flat)
        else:
            xt = np.ascontiguousarray(np.transpose(x, self.keep_axes + self.reduce_axes)).reshape(-1, self.count)
            flat = np.empty(xt.shape[0], dtype=np.int8)
            mean_s8(xt, *args, flat)
        return flat.reshape((n,) + tuple(self._out.shape[1:]))

