"""Element-wise operators: ADD, QUANTIZE, DEQUANTIZE, prepared and run as TFLite Micro does.

* ADD (``micro/kernels/add.cc``, ``add_common.cc``): int8 with TFLite's general
  rescaling (``left_shift = 20``, multipliers from
  ``QuantizeMultiplierSmallerThanOneExp``), fused activation, numpy-style
  broadcasting up to 6-D (``BroadcastAdd6DSlow``).
* QUANTIZE (``quantize_common.cc``): float32 -> int8 (``AffineQuantize``) and
  int8 -> int8 (``Requantize`` with ``QuantizeMultiplier(s_in / s_out)``).
* DEQUANTIZE (``dequantize_common.cc``): int8 -> float32.

Run-time arrays carry a leading batch dimension N in place of the file's
dimension 0; every sample gives what TFLM gives for it alone.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels.elementwise import add_s8, broadcast_add_s8, dequantize_s8, quantize_f32, quantize_s8
from tinyzo.ops.base import PreparedOp, register
from tinyzo.quant import (
    check_multiplier_shift,
    quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
    rounding_code,
)

__all__ = ["Add", "Dequantize", "Quantize", "add_params", "broadcast_strides"]

#: TFLM's ``left_shift`` for int8 ADD (15 for int16).
ADD_LEFT_SHIFT_INT8 = 20
#: TFLM's broadcasting kernels handle up to 6 dimensions.
MAX_BROADCAST_RANK = 6


def add_params(s1: float, z1: int, s2: float, z2: int, s_out: float, z_out: int, rounding: str = "double") -> dict:
    """TFLM ``CalculateOpDataAdd`` for int8: the integer parameters of ADD.

    ``twice_max = 2 * max(s1, s2)`` (float32 scales widened to double);
    input k multiplier ``s_k / twice_max``; output multiplier
    ``twice_max / (2**20 * s_out)``; each through
    ``QuantizeMultiplierSmallerThanOneExp``.

    Returns a dict with the keyword names of :func:`tinyzo.spec.elementwise.add_func`
    (without ``act_min``/``act_max``/``rounding``).

    Raises:
        ArithmeticContractError: if the output multiplier is not below 1
            (TFLite's ``TFLITE_CHECK_LT`` aborts), i.e. ``s_out <= max(s1, s2) / 2**19``.
    """
    s1 = float(np.float32(s1))
    s2 = float(np.float32(s2))
    s_out = float(np.float32(s_out))
    twice_max_input_scale = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s1 / twice_max_input_scale, rounding)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s2 / twice_max_input_scale, rounding)
    real_out = twice_max_input_scale / (float(1 << ADD_LEFT_SHIFT_INT8) * s_out)
    mo, sho = quantize_multiplier_smaller_than_one_exp(real_out, rounding)
    return {
        "input1_offset": -int(z1),
        "input1_multiplier": m1,
        "input1_shift": sh1,
        "input2_offset": -int(z2),
        "input2_multiplier": m2,
        "input2_shift": sh2,
        "left_shift": ADD_LEFT_SHIFT_INT8,
        "output_multiplier": mo,
        "output_shift": sho,
        "output_offset": int(z_out),
    }


def broadcast_strides(shape, out_shape) -> np.ndarray:
    """Element strides of a C-contiguous ``shape`` read as ``out_shape`` (TFLM ``NdArrayDesc``).

    ``shape`` is extended with leading 1s to ``len(out_shape)``; the stride is 0
    on each dimension where it is 1 and the output is larger. Returns int64[len(out_shape)].
    """
    r = len(out_shape)
    ext = (1,) * (r - len(shape)) + tuple(shape)
    strides = np.zeros(r, dtype=np.int64)
    step = 1
    for d in range(r - 1, -1, -1):
        strides[d] = 0 if (ext[d] == 1 and out_shape[d] != 1) else step
        step *= ext[d]
    return strides


def _runtime_shape(t, n: int) -> tuple:
    """Shape of tensor ``t`` at run time: the batch ``n`` replaces dimension 0."""
    return (n,) + tuple(t.shape[1:])


@register("ADD")
class Add(PreparedOp):
    """TFLite ``ADD`` on int8 with rescaling, fused activation and broadcasting (TFLM ``add.cc``).

    Options: ``fused_activation_function`` (NONE, RELU, RELU6, RELU_N1_TO_1).
    Either operand may be a constant; a constant is shared by every sample of
    the batch (its dimension 0, if it has the output's rank, must be 1).
    """

    def prepare(self):
        if len(self.op.inputs) != 2 or len(self.op.outputs) != 1:
            self.fail(f"needs 2 inputs and 1 output, got {len(self.op.inputs)} and {len(self.op.outputs)}")
        a, b, out = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        self.require_int8(a, "input 1")
        self.require_int8(b, "input 2")
        self.require_int8(out, "output")
        if a.is_constant and b.is_constant:
            self.fail("both inputs are constant; fold the constant ADD before conversion")
        rank = len(out.shape)
        if rank < 1 or rank > MAX_BROADCAST_RANK:
            self.fail(f"output rank {rank} is not supported (1..{MAX_BROADCAST_RANK})")
        for t, role in ((a, "input 1"), (b, "input 2")):
            if len(t.shape) > rank:
                self.fail(f"{role} {t.name!r} has rank {len(t.shape)} > output rank {rank}")
            if t.is_constant:
                if len(t.shape) == rank and t.shape[0] != 1:
                    self.fail(f"constant {role} {t.name!r} has {t.shape[0]} in the batch dimension; only 1 is supported")
            elif len(t.shape) != rank:
                self.fail(f"run-time {role} {t.name!r} must have the output's rank {rank} (leading batch dimension)")
        try:
            expected = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        except ValueError:
            self.fail(f"input shapes {a.shape} and {b.shape} do not broadcast")
        if tuple(expected[1:]) != tuple(out.shape[1:]) or len(expected) != rank:
            self.fail(f"output shape {out.shape} differs from the broadcast input shape {tuple(expected)}")
        rounding = self.model.rounding
        try:
            self.params = add_params(
                a.quant.scale[0], a.quant.zero_point[0], b.quant.scale[0], b.quant.zero_point[0],
                out.quant.scale[0], out.quant.zero_point[0], rounding,
            )
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")
        self.act_min, self.act_max = self.activation(out)
        self.rounding = rounding_code(rounding)
        self._a, self._b, self._out = a, b, out
        self._consts = {k: np.ascontiguousarray(t.data, dtype=np.int8) for k, t in enumerate((a, b)) if t.is_constant}

    def _operands(self, inputs):
        it = iter(inputs)
        n = None
        arrays = []
        for k, t in enumerate((self._a, self._b)):
            if k in self._consts:
                arrays.append(self._consts[k])
            else:
                x = np.ascontiguousarray(next(it), dtype=np.int8)
                n = x.shape[0]
                arrays.append(x)
        return arrays, n

    def compute(self, *inputs):
        """int8[N, ...] (+ int8[N, ...]) -> int8[N, out_shape[1:]]."""
        (x1, x2), n = self._operands(inputs)
        out_shape = _runtime_shape(self._out, n)
        out = np.empty(out_shape, dtype=np.int8)
        p = self.params
        args = (
            p["input1_offset"], p["input1_multiplier"], p["input1_shift"],
            p["input2_offset"], p["input2_multiplier"], p["input2_shift"],
            p["left_shift"], p["output_multiplier"], p["output_shift"], p["output_offset"],
            self.act_min, self.act_max, self.rounding,
        )
        if x1.shape == x2.shape == out_shape:
            add_s8(x1.reshape(-1), x2.reshape(-1), *args, out.reshape(-1))
            return out
        ext = (1,) * (MAX_BROADCAST_RANK - len(out_shape)) + out_shape
        s1 = broadcast_strides(x1.shape, ext)
        s2 = broadcast_strides(x2.shape, ext)
        broadcast_add_s8(x1.reshape(-1), s1, x2.reshape(-1), s2, *args, out.reshape(ext))
        return out



@register("QUANTIZE")
class Quantize(PreparedOp):
    """TFLite ``QUANTIZE``: float32 -> int8 (``AffineQuantize``) or int8 -> int8 (``Requantize``).

    The output is int8, quantized per tensor. For int8 input the multiplier
    is ``QuantizeMultiplier(s_in / s_out)`` (double of the float32 scales) and
    the model's rounding mode applies.
    """

    def prepare(self):
        if len(self.op.inputs) != 1 or len(self.op.outputs) != 1:
            self.fail(f"needs 1 input and 1 output, got {len(self.op.inputs)} and {len(self.op.outputs)}")
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.require_int8(out, "output")
        if inp.is_constant:
            self.fail(f"constant input {inp.name!r} is not supported")
        if tuple(inp.shape[1:]) != tuple(out.shape[1:]) or len(inp.shape) != len(out.shape) or len(out.shape) < 1:
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        self.out_zero_point = int(out.quant.zero_point[0])
        self.out_scale = np.float32(out.quant.scale[0])
        if inp.dtype == np.float32:
            self.float_input = True
        elif inp.dtype == np.int8:
            self.require_int8(inp, "input")
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
            self.fail(f"input {inp.name!r} is {inp.dtype}; only float32 and int8 inputs are supported")
        self._out = out

    def compute(self, x):
        """float32[N, ...] or int8[N, ...] -> int8[N, ...]."""
        out = np.empty(_runtime_shape(self._out, x.shape[0]), dtype=np.int8)
        if self.float_input:
            quantize_f32(np.ascontiguousarray(x, dtype=np.float32).reshape(-1), self.out_scale, self.out_zero_point, out.reshape(-1))
        else:
            quantize_s8(
                np.ascontiguousarray(x, dtype=np.int8).reshape(-1), self.multiplier, self.shift,
                self.in_zero_point, self.out_zero_point, self.rounding, out.reshape(-1),
            )
        return out


@register("DEQUANTIZE")
class Dequantize(PreparedOp):
    """TFLite ``DEQUANTIZE``: int8 (per tensor) -> float32, ``scale * (q - zero_point)`` in float32."""

    def prepare(self):
        if len(self.op.inputs) != 1 or len(self.op.outputs) != 1:
            self.fail(f"needs 1 input and 1 output, got {len(self.op.inputs)} and {len(self.op.outputs)}")
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.require_int8(inp, "input")
        if inp.is_constant:
            self.fail(f"constant input {inp.name!r} is not supported")
        if out.dtype != np.float32:
            self.fail(f"output {out.name!r} is {out.dtype}; only float32 is supported")
        if tuple(inp.shape[1:]) != tuple(out.shape[1:]) or len(inp.shape) != len(out.shape) or len(out.shape) < 1:
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        self.scale = np.float32(inp.quant.scale[0])
        self.zero_point = int(inp.quant.zero_point[0])
        self._out = out

    def compute(self, x):
        """int8[N, ...] -> float32[N, ...]."""
        out = np.empty(_runtime_shape(self._out, x.shape[0]), dtype=np.float32)
        dequantize_s8(np.ascontiguousarray(x, dtype=np.int8).reshape(-1), self.scale, self.zero_point, out.reshape(-1))
        return out
