"""TRANSPOSE_CONV on int8 and 16x8: prepare (TFLM's ``TransposeConvPrepare``) and run.

Inputs (TFLite's order): 0 the output shape (a constant int32[4], equal to the output tensor's
shape; TFLM itself reads the output tensor's shape), 1 the filter int8[O, KH, KW, C] (OHWI),
2 the input (NHWC), 3 an optional bias. Output NHWC. Options: ``padding`` SAME/VALID (computed
from the *output* size: :func:`tinyzo.spec.transpose_conv.transpose_conv_padding`), ``stride_h``,
``stride_w`` >= 1, ``fused_activation_function`` NONE/RELU/RELU6/RELU_N1_TO_1. Dilation does not
exist for this operator. The input's spatial size is not tied to the output's: TFLM's scatter
kernel is defined for any pair, and so is tinyzo's.

* int8: int8 input/output quantized per tensor, int8 symmetric weights per tensor or per output
  channel (axis 0), int32 bias; per-channel multipliers ``double(s_in) * double(s_w[c]) /
  double(s_out)`` (``PopulateConvolutionQuantizationParams``); int32 accumulators.
* 16x8: int16 input/output with zero point 0 (the kernel applies no offsets), the same weights,
  int64 bias (or int16, widened to int64 as TFLM does in a scratch buffer); int64 accumulators and
  the int64 requantization, whose contract needs a multiplier below 128 (shift <= 7) and
  ``|accumulator + bias| < 2**47`` (checked from the weights and bias at prepare).

TFLM requests an arena scratch buffer of one output's accumulators (int32, or int64 for 16x8)
plus, for a 16x8 int16 bias, the widened bias: :func:`tinyzo.memory.schedule.scratch_bytes`.
Definition: :mod:`tinyzo.spec.transpose_conv`; kernels: :mod:`tinyzo.kernels.transpose_conv`. The
reference is TFLM's reference kernel, which its Python interpreter runs; CMSIS-NN's optimized
transposed convolution was not checked.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels.transpose_conv import pack_weights, transpose_conv_s8, transpose_conv_s16
from tinyzo.ops.base import ACTIVATIONS, PreparedOp, register
from tinyzo.ops.conv import per_channel_multipliers
from tinyzo.ops.int16 import require_int16
from tinyzo.quant import activation_range, rounding_code
from tinyzo.spec.transpose_conv import transpose_conv_padding

__all__ = ["TransposeConv"]

#: |accumulator + bias| must stay below this for TFLite's int64 MultiplyByQuantizedMultiplier.
INT64_REQUANT_LIMIT = 1 << 47


@register("TRANSPOSE_CONV")
class TransposeConv(PreparedOp):
    """TFLite ``TRANSPOSE_CONV`` (TFLM ``reference_integer_ops::TransposeConv``, int8 or 16x8)."""

    def prepare(self):
        shape_t, w, x, y = self.tensor(0), self.tensor(1), self.tensor(2), self.tensor(0, output=True)
        b = self.tensor(3, optional=True)
        if x.dtype == np.int8:
            self.require_int8(x, "input")
            self.require_int8(y, "output")
        elif x.dtype == np.int16:
            for t, role in ((x, "input"), (y, "output")):
                require_int16(self, t, role)
        else:
            self.fail(f"input {x.name!r} is {x.dtype}; TRANSPOSE_CONV supports int8 and int16 (16x8) here")
        if y.dtype != x.dtype:
            self.fail(f"output {y.name!r} is {y.dtype}, the input is {x.dtype}; they must match")
        self.int16 = x.dtype == np.int16
        if w.dtype != np.int8 or w.quant is None or not w.is_constant or len(w.shape) != 4:
            self.fail("the filter (input 1) must be a constant 4-D int8 quantized tensor (OHWI)")
        if np.any(w.quant.zero_point != 0):
            self.fail("the filter must be symmetric (zero point 0): TFLite Micro's kernel ignores filter zero points")
        if w.quant.per_channel and w.quant.axis != 0:
            self.fail(f"per-channel filter scales must be along axis 0 (output channels), got axis {w.quant.axis}")
        if len(x.shape) != 4 or len(y.shape) != 4:
            self.fail(f"input {list(x.shape)} and output {list(y.shape)} must be 4-D (NHWC)")
        self.require_batch_one(x, "input")
        self.require_batch_one(y, "output")
        o, kh, kw, c = w.shape
        if min(o, kh, kw, c) < 1:
            self.fail(f"filter shape {list(w.shape)} has an empty dimension")
        if c != x.shape[3]:
            self.fail(f"filter depth {c} differs from the input depth {x.shape[3]}")
        if o != y.shape[3]:
            self.fail(f"filter output channels {o} differ from the output depth {y.shape[3]}")
        if shape_t.dtype != np.int32 or not shape_t.is_constant or shape_t.data.size != 4:
            self.fail("the output shape (input 0) must be a constant int32 tensor of 4 values")
        if tuple(int(v) for v in shape_t.data.reshape(-1)) != tuple(y.shape):
            self.fail(f"the output shape tensor holds {shape_t.data.reshape(-1).tolist()}, the output tensor is "
                      f"{list(y.shape)}; the file is corrupt")
        self.n_out, self.kh, self.kw = o, kh, kw
        self._check_bias(b)
        pad = self.enum_option("padding", "SAME", ("SAME", "VALID"))
        self.stride_h, self.stride_w = self.int_option("stride_h", 1), self.int_option("stride_w", 1)
        self.out_h, self.out_w = y.shape[1], y.shape[2]
        self.pad_h, self.pad_w = transpose_conv_padding(pad, self.stride_h, self.stride_w, self.out_h, self.out_w, kh, kw)
        self.input_offset = -int(x.quant.zero_point[0])
        self.output_offset = int(y.quant.zero_point[0])
        self.multiplier, self.shift = per_channel_multipliers(self, x.quant.scale[0], w.quant.scale, y.quant.scale[0], o)
        if self.int16 and int(self.shift.max()) > 7:
            raise ArithmeticContractError(
                f"operator {self.index} (TRANSPOSE_CONV): requantization multiplier s_in * s_w / s_out >= 128 "
                "(shift > 7), outside TFLite's int64 MultiplyByQuantizedMultiplier; the scales are corrupt or extreme")
        act = self.enum_option("fused_activation_function", "NONE", ACTIVATIONS)
        try:
            self.act_min, self.act_max = activation_range(act, y.quant, x.dtype)
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")
        self.rounding = rounding_code(self.model.rounding)
        self.check_buffers(1)
        self.load_params()

    def _check_bias(self, b):
        """The bias type of each path: int32 for int8; int64 or int16 for 16x8 (TFLM reads it as such)."""
        if b is None:
            return
        allowed = (np.dtype(np.int64), np.dtype(np.int16)) if self.int16 else (np.dtype(np.int32),)
        names = " or ".join(d.name for d in allowed)
        if b.dtype not in allowed or not b.is_constant or b.data.size != self.n_out:
            self.fail(f"the bias (input 3) must be a constant {names} tensor of {self.n_out} values, got {b.dtype} "
                      f"{list(b.shape)}")

    def load_params(self):
        """Pack the filter and read the bias (again after a training update); check the 16x8 contract."""
        w = self.tensor(1).data
        b = self.tensor(3, optional=True)
        self.wp = pack_weights(w)
        bias_dtype = np.int64 if self.int16 else np.int32
        self.bias = (b.data.reshape(-1).astype(bias_dtype) if b is not None
                     else np.zeros(self.n_out, dtype=bias_dtype))
        if self.int16:
            # every output accumulates at most C * KH * KW products of |x| <= 2**15 and |w| <= 128
            worst = np.abs(w.astype(np.int64)).reshape(self.n_out, -1).sum(axis=1) * (1 << 15)
            worst = worst + np.abs(self.bias)
            if int(worst.max()) >= INT64_REQUANT_LIMIT:
                raise ArithmeticContractError(
                    f"operator {self.index} (TRANSPOSE_CONV): an accumulator plus bias may reach "
                    f"{int(worst.max())} >= 2**47, outside TFLite's int64 MultiplyByQuantizedMultiplier")

    def buffer_bytes(self, n: int) -> dict:
        """The output for a batch of ``n``, one sample's accumulators and the packed filter."""
        item = 2 if self.int16 else 1
        per_sample = self.out_h * self.out_w * self.n_out
        return {"output": n * per_sample * item, "accumulators": per_sample * (8 if self.int16 else 4),
                "packed filter": self.kh * self.kw * self.n_out * self.tensor(1).shape[3] * 4}

    def compute(self, x):
        """int8[N, H, W, C] (or int16 for 16x8) -> the same dtype [N, OH, OW, O]."""
        x = np.ascontiguousarray(x)
        n = x.shape[0]
        if self.int16:
            acc = self.scratch("acc", (self.out_h, self.out_w, self.n_out), np.int64)
            out = np.empty((n, self.out_h, self.out_w, self.n_out), dtype=np.int16)
            transpose_conv_s16(x, self.wp, self.bias, self.stride_h, self.stride_w, self.pad_h, self.pad_w,
                               self.multiplier, self.shift, self.act_min, self.act_max, acc, out)
        else:
            acc = self.scratch("acc", (self.out_h, self.out_w, self.n_out), np.int32)
            out = np.empty((n, self.out_h, self.out_w, self.n_out), dtype=np.int8)
            transpose_conv_s8(x, self.wp, self.bias, self.stride_h, self.stride_w, self.pad_h, self.pad_w,
                              self.input_offset, self.multiplier, self.shift, self.output_offset, self.act_min,
                              self.act_max, self.rounding, acc, out)
        return out

    def macs(self):
        """Multiply-accumulates of the scatter (per sample): input pixels x taps landing inside the output x C x O."""
        x = self.tensor(2)
        rows = _hits(x.shape[1], self.kh, self.stride_h, self.pad_h, self.out_h)
        cols = _hits(x.shape[2], self.kw, self.stride_w, self.pad_w, self.out_w)
        return rows * cols * x.shape[3] * self.n_out


def _hits(n_in: int, k: int, stride: int, pad: int, n_out: int) -> int:
    """How many (input position, filter tap) pairs along one axis land inside the output."""
    return sum(1 for i in range(n_in) for f in range(k) if 0 <= i * stride - pad + f < n_out)
