"""UNIDIRECTIONAL_SEQUENCE_LSTM, fully integer (8x8->16): prepare (TFLM's ``UnidirectionalSequenceLstmPrepare``) and run.

TFLM's integer kernel (``lstm_eval_common.cc``'s ``PrepareGateParametersInteger``; formulas in
:mod:`tinyzo.spec.lstm`) is the only LSTM it runs: the standard LSTM of Keras' layer.

Inputs (TFLite's 24, ``lstm_shared.h``): 0 the input int8 [B, T, I] (or [T, B, I] when
``time_major``), 1-4 input weights and 5-8 recurrent weights (constant int8 [S, I] / [S, S],
symmetric, one scale each: TFLM's LSTM builds per-tensor fully connected parameters), 12-15 the gate
biases (constant int32 [S]), 18 the hidden ("output") state, int8 [B, S], and 19 the cell state,
int16 [B, S] with zero point 0 and a power-of-two scale 2**p (``CheckedLog2``), both variable
tensors. Absent (-1, as TFLM requires): the CIFG input gate, 9-11 peepholes, 16-17 projection,
20-23 layer norm. Output: int8 [B, T, S] (or time major), a copy of each step's hidden state (its
own quantization parameters are not read, as in TFLM). Options: ``fused_activation_function``
TANH (the cell gate's; TFLM asserts on anything else), ``cell_clip`` (applied when > 0),
``time_major``; ``proj_clip`` and ``asymmetric_quantize_inputs`` concern absent tensors / float
models; ``diagonal_recurrent_tensors`` is refused (TFLM's kernel has no such variant).

Per gate the fully connected parameters are ``QuantizeMultiplier(double(s_in) * double(s_w) /
2**-12)`` (``GetQuantizedConvolutionMultipler``, whose product the oracle forms in double although
the source read writes a float32 product; the bias scale is not checked);
the element-wise products use ``QuantizeMultiplier(double(a) * double(b) / double(c))`` with the
gate scale 2**-15 (``CreateInterGateMulParams``).

Batches: dimension 0 of the input and output is the batch tinyzo runs samples over, so it must be 1
in the file: a batch-major model [1, T, I] (a whole sequence per invocation) or a time-major model
[1, B, I] (one step of B sequences). State: the hidden and cell states are variable tensors; the
model starts from TFLM's reset state (hidden state at its zero point, cell state 0) and carries each
stream's states from one call to the next as TFLM does between invocations
(``Model.reset_state()`` starts over; a batch of N is N independent streams).

TFLM requests four arena scratch buffers of B * S int16 each (:mod:`tinyzo.memory.schedule`); the
state tensors live in its persistent arena tail. The reference is TFLM's reference kernel, which its
Python interpreter runs (not TFLite's older ``lstm_eval`` with intermediate tensors and layer norm,
nor CMSIS-NN's ``arm_lstm_unidirectional_s8``, which were not checked).
"""

from __future__ import annotations

import math

import numpy as np

from tinyzo.errors import ArithmeticContractError, InputError
from tinyzo.kernels.lstm import LSTM_PARAMS, lstm_s8
from tinyzo.ops.base import PreparedOp, register
from tinyzo.quant import check_multiplier_shift, quantize_multiplier, rounding_code
from tinyzo.spec.lstm import lstm_tanh_params

__all__ = ["UnidirectionalSequenceLSTM"]

#: input indices of the four gates' input weights, recurrent weights and biases (forget, input, cell, output)
GATE_INPUT_WEIGHTS = (2, 1, 3, 4)
GATE_RECURRENT_WEIGHTS = (6, 5, 7, 8)
GATE_BIASES = (13, 12, 14, 15)
HIDDEN_STATE, CELL_STATE = 18, 19
#: inputs TFLM's integer LSTM requires to be absent: peepholes, projection, layer norm
ABSENT = {9: "peephole", 10: "peephole", 11: "peephole", 16: "projection", 17: "projection",
          20: "layer norm", 21: "layer norm", 22: "layer norm", 23: "layer norm"}
#: TFLM's fixed gate scales: fully connected outputs in Q3.12, nonlinearity outputs in Q0.15
GATE_INPUT_SCALE = 2.0**-12
GATE_OUTPUT_SCALE = 2.0**-15
#: cell scales 2**p accepted: the tanh's rescaling shift 12 + p and its ``3 << shift`` stay in int32
CELL_POWER_RANGE = (-30, 0)


@register("UNIDIRECTIONAL_SEQUENCE_LSTM")
class UnidirectionalSequenceLSTM(PreparedOp):
    """TFLite ``UNIDIRECTIONAL_SEQUENCE_LSTM`` with int8 activations, int8 weights, int16 cell (TFLM ``EvalLstm``)."""

    def prepare(self):
        x, y = self.tensor(0), self.tensor(0, output=True)
        h, c = self.tensor(HIDDEN_STATE), self.tensor(CELL_STATE)
        for k, what in ABSENT.items():
            if self.tensor(k, optional=True) is not None:
                self.fail(f"input {k} ({what}) is present; TFLite Micro's integer LSTM runs the standard LSTM only "
                          "(no peephole, projection or layer norm)")
        if self.tensor(1, optional=True) is None:
            self.fail("the input gate's weights (input 1) are absent (CIFG); TFLite Micro's integer LSTM needs them")
        self.require_int8(x, "input")
        self.require_int8(h, "hidden state")
        if y.dtype != np.int8:
            self.fail(f"output {y.name!r} is {y.dtype}; the int8 LSTM writes int8")
        if c.dtype != np.int16 or c.quant is None or c.quant.per_channel or int(c.quant.zero_point[0]) != 0:
            self.fail(f"cell state {c.name!r} must be int16 quantized per tensor with zero point 0 (8x8->16 LSTM)")
        for t, role in ((h, "hidden state"), (c, "cell state")):
            if not t.is_variable:
                self.fail(f"{role} {t.name!r} is not a variable tensor (TFLM requires is_variable)")
        self.time_major = self.bool_option("time_major", False)
        if self.bool_option("diagonal_recurrent_tensors", False):
            self.fail("diagonal_recurrent_tensors is not supported (TFLite Micro's LSTM has no such variant)")
        self.enum_option("fused_activation_function", "NONE", ("TANH",))  # the cell gate's; TFLM asserts otherwise
        self._shapes(x, y, h, c)
        self._weights()
        self._quantization(x, h, c)
        # the input and the two states (variable tensors: the model hands each stream's state, kept between calls)
        self.runtime_inputs = (self.op.inputs[0], self.op.inputs[18], self.op.inputs[19])
        self.check_buffers(1)
        self.load_params()

    def _shapes(self, x, y, h, c):
        """Sizes (TFLM's ``CreateLstmSizeInfo``/``ValidateTensorSize``) and tinyzo's batch rule."""
        if len(x.shape) != 3 or len(y.shape) != 3:
            self.fail(f"input {list(x.shape)} and output {list(y.shape)} must be 3-D")
        t_steps, b_dim = (x.shape[0], x.shape[1]) if self.time_major else (x.shape[1], x.shape[0])
        self.i_dim = x.shape[2]
        if len(h.shape) != 2:
            self.fail(f"hidden state {h.name!r} must be 2-D [batch, state], got {list(h.shape)}")
        self.s_dim = h.shape[1]
        if min(t_steps, b_dim, self.i_dim, self.s_dim) < 1:
            self.fail(f"input {list(x.shape)} or state {list(h.shape)} has an empty dimension")
        for t, role in ((h, "hidden state"), (c, "cell state")):
            if tuple(t.shape) != (b_dim, self.s_dim):
                self.fail(f"{role} {t.name!r} has shape {list(t.shape)}, want [{b_dim}, {self.s_dim}] (batch, state)")
        if tuple(y.shape) != (x.shape[0], x.shape[1], self.s_dim):
            self.fail(f"output shape {list(y.shape)} differs from [{x.shape[0]}, {x.shape[1]}, {self.s_dim}]")
        if x.shape[0] != 1:
            lay = "time steps" if self.time_major else "batch"
            self.fail(f"input dimension 0 ({lay}) is {x.shape[0]}; tinyzo runs samples over dimension 0, so it must "
                      "be 1 (a batch-major [1, T, I] sequence or a time-major [1, B, I] step)")
        self.t_steps, self.b_dim = t_steps, b_dim

    def _weights(self):
        """Each gate's weights: constant int8 [S, I] / [S, S], symmetric, one scale; biases constant int32 [S]."""
        for k in GATE_INPUT_WEIGHTS + GATE_RECURRENT_WEIGHTS:
            w = self.tensor(k)
            cols = self.i_dim if k in GATE_INPUT_WEIGHTS else self.s_dim
            if w.dtype != np.int8 or w.quant is None or not w.is_constant or tuple(w.shape) != (self.s_dim, cols):
                self.fail(f"weights (input {k}) must be a constant int8 quantized tensor of shape [{self.s_dim}, {cols}]")
            if w.quant.per_channel:
                self.fail(f"weights (input {k}) must be quantized per tensor: TFLite Micro's LSTM uses one multiplier "
                          "per fully connected layer")
            if int(w.quant.zero_point[0]) != 0:
                self.fail(f"weights (input {k}) must be symmetric (zero point 0)")
            if not (math.isfinite(float(w.quant.scale[0])) and float(w.quant.scale[0]) >= 0):
                self.fail(f"weights (input {k}) have a negative or non-finite scale")
        for k in GATE_BIASES:
            b = self.tensor(k)
            if b.dtype != np.int32 or not b.is_constant or tuple(b.shape) != (self.s_dim,):
                self.fail(f"bias (input {k}) must be a constant int32 tensor of shape [{self.s_dim}]")

    def _multiplier(self, real: float, what: str) -> tuple[int, int]:
        try:
            return check_multiplier_shift(*quantize_multiplier(real, self.model.rounding), self.model.rounding)
        except ArithmeticContractError as e:
            raise ArithmeticContractError(f"operator {self.index} (UNIDIRECTIONAL_SEQUENCE_LSTM), {what}: {e}") from None

    def _quantization(self, x, h, c):
        """TFLM's ``PrepareGateParametersInteger`` and ``CreateLstmCellStateInfo``."""
        s_x, s_h, s_c = (float(np.float32(t.quant.scale[0])) for t in (x, h, c))
        if not (s_c > 0 and math.isfinite(s_c)):
            self.fail("the cell state scale must be positive and finite")
        mant, exp = math.frexp(s_c)
        power = exp - 1
        if mant != 0.5 or not CELL_POWER_RANGE[0] <= power <= CELL_POWER_RANGE[1]:
            self.fail(f"the cell state scale {s_c!r} must be a power of two 2**p with p in "
                      f"[{CELL_POWER_RANGE[0]}, {CELL_POWER_RANGE[1]}] (TFLite's quantizer gives 2**(k - 15))")
        p = np.zeros(1, dtype=LSTM_PARAMS)
        p["input_offset"] = -int(x.quant.zero_point[0])
        p["hidden_offset"] = -int(h.quant.zero_point[0])
        p["hidden_zero_point"] = int(h.quant.zero_point[0])
        for g, (ki, kr) in enumerate(zip(GATE_INPUT_WEIGHTS, GATE_RECURRENT_WEIGHTS)):
            for src_scale, k, field in ((s_x, ki, "fc_in"), (s_h, kr, "fc_rec")):
                # GetQuantizedConvolutionMultipler: the source read (Aug 2026) multiplies the float32 scales in
                # float32; the oracle (tflite-micro 0.dev20261023) multiplies them in double, and tinyzo follows
                # the oracle (tests/test_lstm.py holds models where the two give different outputs)
                prod = src_scale * float(np.float32(self.tensor(k).quant.scale[0]))
                m, s = self._multiplier(prod / GATE_INPUT_SCALE, f"weights (input {k})")
                p[f"{field}_multiplier"][0, g], p[f"{field}_shift"][0, g] = m, s
        for name, real in (("forget_mul", GATE_OUTPUT_SCALE * s_c / s_c),
                           ("input_mul", GATE_OUTPUT_SCALE * GATE_OUTPUT_SCALE / s_c),
                           ("output_mul", GATE_OUTPUT_SCALE * GATE_OUTPUT_SCALE / s_h)):
            p[f"{name}_multiplier"], p[f"{name}_shift"] = self._multiplier(real, name.replace("_", " "))
        p["cell_tanh_multiplier"], p["cell_tanh_shift"] = lstm_tanh_params(power)
        clip = self.float_option("cell_clip", 0.0)
        p["cell_clip"] = int(min(max(clip / s_c, -32768.0), 32767.0)) if clip > 0 else 0
        p["rounding"] = rounding_code(self.model.rounding)
        self.params = p
        self.cell_power = power
        self.hidden_zero_point = int(h.quant.zero_point[0])

    def load_params(self):
        """Stack the gates' weights and biases (gate order forget, input, cell, output)."""
        self.w_in = np.ascontiguousarray(np.stack([self.tensor(k).data for k in GATE_INPUT_WEIGHTS]).astype(np.int8))
        self.w_rec = np.ascontiguousarray(np.stack([self.tensor(k).data for k in GATE_RECURRENT_WEIGHTS]).astype(np.int8))
        self.bias = np.ascontiguousarray(np.stack([self.tensor(k).data for k in GATE_BIASES]).astype(np.int32))

    def reset_state(self, n: int) -> tuple:
        """TFLM's reset state for ``n`` samples: hidden int8[n, B, S] at its zero point, cell int16[n, B, S] zeros."""
        h = np.full((n, self.b_dim, self.s_dim), self.hidden_zero_point, dtype=np.int8)
        return h, np.zeros((n, self.b_dim, self.s_dim), dtype=np.int16)

    def compute_with_state(self, x, h, c):
        """Run ``x`` int8[N, *input_shape[1:]] from states ``h`` int8[N, B, S], ``c`` int16[N, B, S] (updated in place).

        Returns the output int8[N, *output_shape[1:]].
        """
        n = x.shape[0]
        xs = np.ascontiguousarray(x, dtype=np.int8).reshape(n, self.t_steps, self.b_dim, self.i_dim)
        out = np.empty((n, self.t_steps, self.b_dim, self.s_dim), dtype=np.int8)
        gates = self.scratch("gates", (4, self.s_dim), np.int16)
        lstm_s8(xs, self.w_in, self.w_rec, self.bias, self.params, h, c, out, gates)
        return out.reshape((n,) + tuple(self.tensor(0, output=True).shape[1:]))

    def compute(self, x, h=None, c=None):
        """int8[N, T, I] (batch-major) or int8[N, B, I] (time-major, one step) -> int8[N, ..., S].

        ``h`` int8 and ``c`` int16, the N streams' states as the model holds them (``[N, ...]``, the
        file's shape with dimension 0 per stream), are updated in place (TFLM's state carried from
        one invocation to the next); without them every sample starts from the reset state."""
        if h is None or c is None:
            h, c = self.reset_state(x.shape[0])
            return self.compute_with_state(x, h, c)
        n = x.shape[0]
        hv, cv = h.reshape(n, self.b_dim, self.s_dim), c.reshape(n, self.b_dim, self.s_dim)
        if not (np.shares_memory(hv, h) and np.shares_memory(cv, c)):
            raise InputError(f"operator {self.index} (UNIDIRECTIONAL_SEQUENCE_LSTM): the states must be contiguous "
                             "arrays the model updates in place")
        return self.compute_with_state(x, hv, cv)

    def buffer_bytes(self, n: int) -> dict:
        """The output and the states for a batch of ``n``, and the gates' work rows."""
        states = n * self.b_dim * self.s_dim
        return {"output": n * self.t_steps * self.b_dim * self.s_dim, "hidden state": states,
                "cell state": 2 * states, "gate rows": 4 * self.s_dim * 2}

    def macs(self):
        """Multiply-accumulates per sample: the eight fully connected layers of every step."""
        return self.t_steps * self.b_dim * 4 * self.s_dim * (self.i_dim + self.s_dim)
