"""Element-wise conversions: QUANTIZE, DEQUANTIZE, prepared and run as TFLite Micro does.

ADD and the other binary operators are in :mod:`tinyzo.ops.binary`.

* QUANTIZE (``quantize_common.cc``): float32 -> int8 (``AffineQuantize``) and
  int8 -> int8 (``Requantize`` with ``QuantizeMultiplier(s_in / s_out)``); for 16x8
  models (int16 zero point 0) also float32 -> int16, int8 -> int16 and int16 -> int16, the same
  two formulas with the output type's clamp; int16 (any zero point) -> int8 or int32 by
  ``Requantize<int16_t, Out>`` (:mod:`tinyzo.spec.requantize`, TFLM's keyword benchmark model).
  TFLM's int32 -> int16 requantization is not implemented here.
* DEQUANTIZE (``dequantize_common.cc``): int8 or int16 -> float32.

Run-time arrays carry a leading batch dimension N in place of the file's
dimension 0; every sample gives what TFLM gives for it alone.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels.elementwise import (
    dequantize_s8,
    dequantize_s16,
    quantize_f32,
    quantize_f32_s16,
    quantize_s8,
    quantize_s16,
)
from tinyzo.kernels.requantize import requantize_s16
from tinyzo.ops.base import PreparedOp, register
from tinyzo.ops.int16 import INT16, require_int8_or_int16
from tinyzo.quant import check_multiplier_shift, quantize_multiplier, rounding_code

__all__ = ["Dequantize", "Quantize"]


def _runtime_shape(t, n: int) -> tuple:
    """Shape of tensor ``t`` at run time: the batch ``n`` replaces dimension 0."""
    return (n,) + tuple(t.shape[1:])


@register("QUANTIZE")
class Quantize(PreparedOp):
    """TFLite ``QUANTIZE``: float32 -> int8/int16 (``AffineQuantize``) or int8/int16 -> int8/int16 (``Requantize``);
    int16 -> int8 or int32 (``Requantize<int16_t, Out>``, any int16 zero point).

    The output is int8 or int16 (zero point 0), quantized per tensor. For an integer input the
    multiplier is ``QuantizeMultiplier(s_in / s_out)`` (double of the float32 scales) and the
    model's rounding mode applies.
    """

    def prepare(self):
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.int16_input = inp.dtype == np.int16 and out.dtype in (np.int8, np.int32)
        if self.int16_input:
            self._prepare_int16(inp, out)
            return
        self.out_dtype = require_int8_or_int16(self, out, "output")
        if tuple(inp.shape[1:]) != tuple(out.shape[1:]) or len(inp.shape) != len(out.shape) or len(out.shape) < 1:
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        self.out_zero_point = int(out.quant.zero_point[0])
        self.out_scale = np.float32(out.quant.scale[0])
        if inp.dtype == np.float32:
            self.float_input = True
        elif inp.dtype in (np.int8, INT16):
            require_int8_or_int16(self, inp, "input")
            self.float_input = False
            self.in_zero_point = int(inp.quant.zero_point[0])
            effective_scale = float(np.float32(inp.quant.scale[0])) / float(self.out_scale)
            try:
                self.multiplier, self.shift = check_multiplier_shift(
                    *quantize_multiplier(effective_scale, self.model.rounding), self.model.rounding)
            except ArithmeticContractError as e:
                self.fail(f"quantization not supported: {e}")
            self.rounding = rounding_code(self.model.rounding)
        else:
            self.fail(f"input {inp.name!r} is {inp.dtype}; only float32, int8 and int16 inputs are supported")
        self.in_dtype = inp.dtype
        self._out = out

    def _prepare_int16(self, inp, out):
        """int16 -> int8 or int32 (TFLM ``Requantize<int16_t, Out>``, :mod:`tinyzo.spec.requantize`): the
        paths TFLM's keyword benchmark model needs; other int16 pairs are refused."""
        if out.dtype not in (np.int8, np.int32):
            self.fail(f"output {out.name!r} is {out.dtype}; from an int16 input tinyzo quantizes to int8 or int32")
        if inp.is_constant:
            self.fail(f"constant input {inp.name!r} is not supported")
        if tuple(inp.shape[1:]) != tuple(out.shape[1:]) or len(inp.shape) != len(out.shape) or len(out.shape) < 1:
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        for t, role in ((inp, "input"), (out, "output")):
            if t.quant is None or t.quant.per_channel:
                self.fail(f"{role} {t.name!r} must be quantized per tensor")
            if not (np.isfinite(t.quant.scale[0]) and t.quant.scale[0] > 0):
                self.fail(f"{role} {t.name!r} has a non-positive or non-finite scale")
            info = np.iinfo(t.dtype)
            if not info.min <= int(t.quant.zero_point[0]) <= info.max:
                self.fail(f"{role} {t.name!r} has zero point {int(t.quant.zero_point[0])} outside {t.dtype}")
        self.float_input = False
        self.in_zero_point = int(inp.quant.zero_point[0])
        self.out_zero_point = int(out.quant.zero_point[0])
        effective_scale = float(np.float32(inp.quant.scale[0])) / float(np.float32(out.quant.scale[0]))
        try:
            self.multiplier, self.shift = check_multiplier_shift(
                *quantize_multiplier(effective_scale, self.model.rounding), self.model.rounding)
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")
        self.rounding = rounding_code(self.model.rounding)
        self._out = out

    def compute(self, x):
        """float32[N, ...], int8[N, ...] or int16[N, ...] -> int8[N, ...], int16[N, ...] (or int32 from int16)."""
        if self.int16_input:
            out = np.empty(_runtime_shape(self._out, x.shape[0]), dtype=self._out.dtype)
            info = np.iinfo(out.dtype)
            requantize_s16(np.ascontiguousarray(x, dtype=np.int16).reshape(-1), self.multiplier, self.shift,
                           self.in_zero_point, self.out_zero_point, int(info.min), int(info.max), self.rounding,
                           out.reshape(-1))
            return out
        out = np.empty(_runtime_shape(self._out, x.shape[0]), dtype=self.out_dtype)
        s16 = self.out_dtype == INT16
        if self.float_input:
            fn = quantize_f32_s16 if s16 else quantize_f32
            fn(np.ascontiguousarray(x, dtype=np.float32).reshape(-1), self.out_scale, self.out_zero_point,
               out.reshape(-1))
        else:
            fn = quantize_s16 if s16 else quantize_s8
            fn(np.ascontiguousarray(x, dtype=self.in_dtype).reshape(-1), self.multiplier, self.shift,
               self.in_zero_point, self.out_zero_point, self.rounding, out.reshape(-1))
        return out


@register("DEQUANTIZE")
class Dequantize(PreparedOp):
    """TFLite ``DEQUANTIZE``: int8 or int16 (per tensor) -> float32, ``scale * (q - zero_point)`` in float32."""

    def prepare(self):
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.dtype = require_int8_or_int16(self, inp, "input")
        if out.dtype != np.float32:
            self.fail(f"output {out.name!r} is {out.dtype}; only float32 is supported")
        if tuple(inp.shape[1:]) != tuple(out.shape[1:]) or len(inp.shape) != len(out.shape) or len(out.shape) < 1:
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        self.scale = np.float32(inp.quant.scale[0])
        self.zero_point = int(inp.quant.zero_point[0])
        self._out = out

    def compute(self, x):
        """int8[N, ...] or int16[N, ...] -> float32[N, ...]."""
        out = np.empty(_runtime_shape(self._out, x.shape[0]), dtype=np.float32)
        fn = dequantize_s16 if self.dtype == INT16 else dequantize_s8
        fn(np.ascontiguousarray(x, dtype=self.dtype).reshape(-1), self.scale, self.zero_point, out.reshape(-1))
        return out
