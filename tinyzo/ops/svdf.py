"""SVDF (integer: int8 input and output, int8 or int16 activation state) as TFLite Micro runs it.

Prepare follows TFLM's ``PrepareSvdf`` (``micro/kernels/svdf_common.cc``): five inputs (input
``[1, I]``, weights_feature ``[F, I]``, weights_time ``[F, M]``, bias ``[F / rank]``, activation
state ``[1, F * M]``, a *variable* tensor) and one output ``[1, F / rank]``. The int8 path takes
int8 weights_feature, weights_time of the state's type (int8 or int16), an int32 bias whose scale
is within 1e-5 of ``s_state * s_weights_time`` (TFLM's check), and an int8 output. Its two
multipliers are ``QuantizeMultiplier(s_input * s_weights_feature / s_state)`` and
``QuantizeMultiplier(s_state * s_weights_time / s_output)``, formed in double as the TFLM oracle
does (the source writes ``float``: :func:`svdf_multipliers`).

What TFLM's integer kernel does and tinyzo therefore does too: it applies no fused activation
(the option is read, not applied: the output is only clamped to int8), it ignores the weights'
zero points, and it adds the state's zero point after clamping the new state value to T's range,
so the stored value wraps (:mod:`tinyzo.spec.svdf`).

Refused with a one-line error: float and hybrid SVDF (float input or float weights), a missing bias
(TFLM's Prepare dereferences it), a state that is not variable or whose type differs from
weights_time's (TFLM would read it as weights_time's type), per-channel quantization (TFLM reads
the first scale only), rank < 1 or not dividing F, and a batch other than 1 in the file (at run
time sample i is stream i: see :class:`tinyzo.graph.Model`).

Memory: TFLM requests two arena scratch buffers, int32[F] and int32[F / rank] per batch row
(:func:`tinyzo.memory.schedule.scratch_bytes`); the state is a persistent (variable) tensor.
Definition: :mod:`tinyzo.spec.svdf`; kernel: :func:`tinyzo.kernels.svdf.svdf_s8`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError, InputError
from tinyzo.kernels.svdf import SvdfParams, svdf_s8
from tinyzo.ops.base import PreparedOp, register
from tinyzo.quant import check_multiplier_shift, quantize_multiplier, rounding_code

__all__ = ["Svdf", "svdf_multipliers"]

#: Activation-state (and weights_time) types of TFLM's integer SVDF.
STATE_DTYPES = (np.dtype(np.int8), np.dtype(np.int16))


def svdf_multipliers(s_input, s_weights_feature, s_weights_time, s_state, s_output, rounding: str = "double"):
    """TFLM's two SVDF multipliers ``((multiplier_1, shift_1), (multiplier_2, shift_2))``.

    ``effective_scale_1 = s_input * s_weights_feature / s_state`` and
    ``effective_scale_2 = s_state * s_weights_time / s_output``, formed in double from the float32
    scales, then ``QuantizeMultiplier``. The tflite-micro source read (``svdf_common.cc`` at 90b983c,
    Aug 2026) writes both products and quotients in ``float``; the TFLM interpreter used as the
    oracle (tflite-micro 0.dev20261023) computes them in double: on scales where the two (and a
    float product divided in double) give different outputs, TFLM matched double every time
    (tests/test_svdf.py). tinyzo follows the oracle.

    Raises:
        ArithmeticContractError: a shift the requantization cannot apply (extreme scales).
    """
    d = [float(np.float32(v)) for v in (s_input, s_weights_feature, s_weights_time, s_state, s_output)]
    e1 = d[0] * d[1] / d[3]
    e2 = d[3] * d[2] / d[4]
    return (check_multiplier_shift(*quantize_multiplier(e1, rounding), rounding),
            check_multiplier_shift(*quantize_multiplier(e2, rounding), rounding))


@register("SVDF")
class Svdf(PreparedOp):
    """TFLite ``SVDF``, integer (module docstring). Input 4, the activation state, is updated in place.

    Options: ``rank`` (>= 1); ``fused_activation_function`` and ``asymmetric_quantize_inputs`` are
    read by TFLM's float/hybrid paths only.
    """

    #: Position in ``op.inputs`` of the variable tensor this operator updates in place (TFLM's
    #: ``GetMutableEvalInput``); the graph hands it the streams' state and keeps the result.
    state_input = 4

    def prepare(self):
        x, wf, wt, s, y = self.tensor(0), self.tensor(1), self.tensor(2), self.tensor(4), self.tensor(0, output=True)
        bias = self.tensor(3, optional=True)
        if x.dtype != np.int8 or wf.dtype != np.int8:
            self.fail(f"input {x.name!r} is {x.dtype} and weights_feature {wf.dtype}: tinyzo runs the integer SVDF "
                      "(int8 input and weights_feature); float and hybrid SVDF are not supported")
        self.require_int8(x, "input")
        self.require_int8(y, "output")
        self.require_int8(wf, "weights_feature")
        for t, role in ((wf, "weights_feature"), (wt, "weights_time")):
            if not t.is_constant:
                self.fail(f"{role} {t.name!r} must be a constant tensor")
        if wt.dtype not in STATE_DTYPES:
            self.fail(f"weights_time {wt.name!r} is {wt.dtype}; the integer SVDF takes int8 or int16")
        if not s.is_variable:
            self.fail(f"activation state {s.name!r} (input 4) is not a variable tensor; TFLite Micro requires it")
        if s.dtype != wt.dtype:
            self.fail(f"activation state {s.name!r} is {s.dtype} but weights_time {wt.name!r} is {wt.dtype}; "
                      "TFLite Micro reads the state as weights_time's type, so they must match")
        for t, role in ((wt, "weights_time"), (s, "activation state")):
            if t.quant is None or t.quant.per_channel:
                self.fail(f"{role} {t.name!r} must be quantized per tensor")
            if not (np.isfinite(t.quant.scale[0]) and t.quant.scale[0] > 0):
                self.fail(f"{role} {t.name!r} has a non-positive or non-finite scale")
        if bias is None:
            self.fail("the bias (input 3) is missing; TFLite Micro's integer SVDF needs one (its Prepare reads it)")
        if bias.dtype != np.int32 or not bias.is_constant:
            self.fail(f"bias {bias.name!r} must be a constant int32 tensor")
        # shapes (TFLM: input, output, weights and state are 2-D; dimension 0 is the batch)
        for t, role in ((x, "input"), (wf, "weights_feature"), (wt, "weights_time"), (s, "activation state"),
                        (y, "output")):
            if len(t.shape) != 2:
                self.fail(f"{role} {t.name!r} has shape {list(t.shape)}; it must be 2-D")
        for t, role in ((x, "input"), (s, "activation state"), (y, "output")):
            self.require_batch_one(t, role)
        self.rank = self.int_option("rank", 0, lo=1)
        n_filter, n_input = wf.shape
        n_memory = wt.shape[1]
        if n_input != x.shape[1] or n_filter < 1 or n_input < 1:
            self.fail(f"weights_feature shape {list(wf.shape)} does not match input shape {list(x.shape)}")
        if wt.shape[0] != n_filter or n_memory < 1:
            self.fail(f"weights_time shape {list(wt.shape)} must be [{n_filter}, memory_size >= 1]")
        if n_filter % self.rank:
            self.fail(f"rank {self.rank} does not divide the {n_filter} filters")
        n_unit = n_filter // self.rank
        if tuple(y.shape) != (1, n_unit):
            self.fail(f"output shape {list(y.shape)} must be [1, {n_unit}] (filters / rank)")
        if len(bias.shape) != 1 or bias.shape[0] != n_unit:
            self.fail(f"bias shape {list(bias.shape)} must be [{n_unit}]")
        if s.shape[1] != n_filter * n_memory:
            self.fail(f"activation state shape {list(s.shape)} must be [1, {n_filter * n_memory}] "
                      "(memory_size * filters)")
        info = np.iinfo(s.dtype)
        state_zp = int(s.quant.zero_point[0])
        if not info.min <= state_zp <= info.max:
            self.fail(f"activation state {s.name!r} has zero point {state_zp} outside [{info.min}, {info.max}]")
        # TFLM: |s_bias - s_state * s_weights_time| < 1e-5 (float product widened to double)
        bias_scale = float(np.float32(bias.quant.scale[0])) if bias.quant is not None else 0.0
        want = float(np.float32(s.quant.scale[0]) * np.float32(wt.quant.scale[0]))
        if not abs(bias_scale - want) < 1e-5:
            self.fail(f"bias scale {bias_scale!r} differs from state scale * weights_time scale ({want!r}) by 1e-5 "
                      "or more; TFLite Micro refuses it")
        try:
            (m1, sh1), (m2, sh2) = svdf_multipliers(x.quant.scale[0], wf.quant.scale[0], wt.quant.scale[0],
                                                    s.quant.scale[0], y.quant.scale[0], self.model.rounding)
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")
        self.n_filter, self.n_input, self.n_memory, self.n_unit = n_filter, n_input, n_memory, n_unit
        self.state_dtype = s.dtype
        self.params = SvdfParams(
            rank=self.rank, input_zero_point=int(x.quant.zero_point[0]), state_zero_point=state_zp,
            output_zero_point=int(y.quant.zero_point[0]), multiplier_1=int(m1), shift_1=int(sh1),
            multiplier_2=int(m2), shift_2=int(sh2), state_min=int(info.min), state_max=int(info.max),
            rounding=rounding_code(self.model.rounding),
        )
        self.weights_feature = np.ascontiguousarray(wf.data, dtype=np.int8)
        self.weights_time = np.ascontiguousarray(wt.data, dtype=s.dtype)
        self.bias = np.ascontiguousarray(bias.data, dtype=np.int32)

    def buffer_bytes(self, n: int) -> dict:
        """The int8 output [n, F / rank] and the int32[F] time-weights scratch (one per thread)."""
        out = super().buffer_bytes(n)
        out["scratch"] = 4 * self.n_filter
        return out

    def compute(self, x, state):
        """int8[N, I] and the streams' state T[N, F * M] (updated in place) -> int8[N, F / rank]."""
        if (state.dtype != self.state_dtype or state.shape != (x.shape[0], self.n_filter * self.n_memory)
                or not state.flags.c_contiguous or not state.flags.writeable):
            raise InputError(f"operator {self.index} (SVDF): the state must be a writable C-contiguous "
                             f"{self.state_dtype}[{x.shape[0]}, {self.n_filter * self.n_memory}] array (one row per "
                             f"stream), got {state.dtype}{list(state.shape)}")
        out = np.empty((x.shape[0], self.n_unit), dtype=np.int8)
        scratch = self.scratch("time", (self.n_filter,), np.int32)
        svdf_s8(np.ascontiguousarray(x, dtype=np.int8), self.weights_feature, self.weights_time, self.bias, state,
                self.params, scratch, out)
        return out

    def macs(self) -> int:
        """Multiply-accumulates per sample: the feature matmul (F * I) and the time weights (F * M)."""
        return self.n_filter * (self.n_input + self.n_memory)
