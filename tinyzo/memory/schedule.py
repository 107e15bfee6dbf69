"""The static execution schedule of a model on a microcontroller: steps, buffers, lifetimes.

A :class:`Schedule` is what a memory planner needs and nothing more: the ordered steps an MCU
executes (for inference, one step per operator), every buffer that lives in SRAM with its size in
bytes and its lifetime in steps, and the bytes that live in Flash.

Conventions (batch 1, the shapes stored in the model):

* A buffer's size is ``elements * itemsize`` of its tensor: int8 is 1 byte per element, int32 4,
  float32 4. No alignment here; the arena planner rounds sizes up (see :mod:`tinyzo.memory.arena`).
* Lifetimes are inclusive step ranges ``[first, last]``. ``first`` is the step that writes the
  buffer, ``last`` the last step that reads it. A model input has ``first = -1`` (it is written
  before step 0, by the application); a model output has ``last = n_steps - 1`` (the application
  reads it after the last step). Two buffers may share memory only if their ranges are disjoint:
  the input and the output of one step are alive together at that step. This is TFLite Micro's
  rule (``micro_allocation_info.cc``: inputs created at scope 0, operator ``i`` at scope ``i + 1``,
  outputs last used at the final scope), shifted by one.
* Constant tensors (weights, biases, shape operands) live in Flash and are not buffers.
* Variable tensors (model state, e.g. SVDF's activation state) live for the whole run, from one
  inference to the next. TFLM allocates them once in the *persistent* tail of its arena
  (``MicroAllocator::AllocateVariables``), never in the planned head, so they are not planned
  buffers here either: :attr:`Schedule.persistent` lists them (kind ``"state"``, lifetime
  ``[-1, n_steps - 1]``) and :meth:`Schedule.persistent_bytes` sums them; the device needs the
  planned arena plus these bytes.
* Scratch buffers: TFLM's *reference* kernels request arena scratch for few operators. Of the
  operators tinyzo supports, ``MEAN`` does (:func:`scratch_bytes`: an int32 accumulator per
  output for int8/int16 input, plus two small index arrays) and ``SVDF`` (int32[filters] and
  int32[units]), ``TRANSPOSE_CONV`` (one
  output's accumulators, int32 or, for 16x8, int64, plus a 16x8 int16 bias widened to int64) and
  ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (four int16 buffers of batch x state elements; its hidden and
  cell states are variable tensors, which TFLM keeps in its persistent tail: no buffer here),
  alive during their own step only; checked against TFLM's measured arena on
  random one-operator models; so do CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with INT4
  weights (one byte per weight, the unpacked filter). CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED
  (int8 or 16x8 weights), the
  pools, SOFTMAX, ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU, RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC,
  TANH, PAD, CONCATENATION, RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, STRIDED_SLICE, SPLIT, SPLIT_V,
  GATHER, CAST, BATCH_MATMUL, QUANTIZE and DEQUANTIZE request none (their per-channel multipliers,
  BATCH_MATMUL's transposed operand copies and similar live in TFLM's *persistent* tail, not in the
  planned head, and are not counted here). Optimized kernel libraries (CMSIS-NN im2col buffers) would need more.
  The int16 (16x8) paths of ADD, SUB, MUL, the pools, SOFTMAX, RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH,
  QUANTIZE and DEQUANTIZE request none either (int16 SOFTMAX's two 513-entry tables are persistent);
  checked against TFLM's measured arena in tests/test_ops16.py.
* TFLM's signal operators (the audio front end) declare their buffers themselves: SignalRfft an
  arena scratch of ``fft_length`` int16 (``tflm_scratch``); SignalFilterBankSpectralSubtraction its
  noise estimate (a per-stream state, ``state_buffers``), SignalRfft its KISS FFT state and
  SignalFilterBank its uint64 work area (``tflm_persistent``), all in :attr:`Schedule.persistent`.
* In-place candidates (:class:`InPlace`) record where a step may write its output over an input
  (TinyEngine style); whether a candidate is legal and taken is the planner's decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.graph import Model
from tinyzo.spec.conv import compute_out_size, compute_padding

__all__ = [
    "ELEMENTWISE_INPLACE_OPS",
    "Buffer",
    "InPlace",
    "Schedule",
    "ScheduleError",
    "Step",
    "inference_schedule",
    "scratch_bytes",
]


class ScheduleError(TinyzoError):
    """A schedule is inconsistent (a buffer read before it is written, a bad lifetime, ...)."""


# operators whose output element i depends only on input element i (and, for SOFTMAX, on row
# statistics computed before any write of that row), so the output may overwrite the input
# (RESHAPE, SQUEEZE and EXPAND_DIMS copy the bytes unchanged: output element i is input element i; CAST
# converts element i alone, in place only when the output's item size is not larger: see _inplace_candidates)
ELEMENTWISE_INPLACE_OPS = frozenset({"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "PRELU", "RELU", "RELU6", "LEAKY_RELU",
                                     "HARD_SWISH", "LOGISTIC", "TANH", "QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE",
                                     "EXPAND_DIMS", "CAST", "SOFTMAX"})


@dataclass(frozen=True)
class Buffer:
    """One SRAM buffer of a schedule.

    Attributes:
        name: a label (the tensor's name, or ``"<opcode>#<op>/scratch"``).
        kind: what it holds: ``"activation"`` or ``"scratch"`` (training schedules add
            ``"gradient"``, ``"param_copy"``, ``"mask"``, ``"optimizer"``).
        nbytes: size in bytes (>= 0; no alignment applied).
        first: the step that writes it (-1: written before step 0, e.g. a model input).
        last: the last step that reads it (>= first; ``n_steps - 1`` for model outputs).
        tensor: the model tensor index, or None (scratch).
        pinned: True for buffers the application reads after the last step (model outputs):
            no step may overwrite them in place.
    """

    name: str
    kind: str
    nbytes: int
    first: int
    last: int
    tensor: int | None = None
    pinned: bool = False


@dataclass(frozen=True)
class InPlace:
    """A step may write buffer ``out`` over buffer ``src`` if ``src`` dies at that step.

    ``scratch_bytes`` is the extra scratch the in-place kernel needs during the step (TinyEngine's
    in-place depthwise copies one padded input channel aside: ``(H + pads) * (W + pads)`` bytes);
    it is charged only when the planner takes the candidate.
    """

    out: int
    src: int
    scratch_bytes: int = 0


@dataclass
class Step:
    """One step of a schedule (for inference: one operator).

    Attributes:
        index: the step number (0-based, the order of execution).
        kind: ``"forward"`` (training schedules add ``"backward"`` and ``"update"``).
        opcode: the TFLite operator name.
        op: the model operator index this step runs (or derives from).
        reads: buffer ids read (activations only; constants live in Flash).
        writes: buffer ids written.
        scratch: buffer ids of the step's scratch buffers.
        inplace: in-place candidates.
    """

    index: int
    kind: str
    opcode: str
    op: int
    reads: tuple = ()
    writes: tuple = ()
    scratch: tuple = ()
    inplace: tuple = ()


@dataclass
class Schedule:
    """A static schedule: steps in execution order, SRAM buffers with lifetimes, Flash contents.

    Attributes:
        steps: list of :class:`Step`.
        buffers: list of :class:`Buffer`; a buffer id is its index in this list.
        flash: ``{part: bytes}`` of what is stored in Flash (``"weights"``: int8 constant tensors,
            ``"bias"``: int32 quantized constants, ``"other_constants"``: shape/axis operands and
            any other constant data). Data bytes only: the model file's metadata (flatbuffer
            tables, quantization scales, operator options) and the code are not counted.
        method: ``"inference"`` (training schedules set their method).
        name: the model's name.
        info: what a training schedule trains (:func:`tinyzo.memory.training_schedule`: trained
            layers, parameter counts, optimizer, batch); empty for a plain inference schedule.
        persistent: :class:`Buffer` s of the model's variable tensors (kind ``"state"``, lifetime
            the whole run): kept between inferences, outside the planned arena (TFLM's persistent
            tail); empty for a stateless model.
    """

    steps: list
    buffers: list
    flash: dict = field(default_factory=dict)
    method: str = "inference"
    name: str = ""
    info: dict = field(default_factory=dict)
    persistent: list = field(default_factory=list)

    def persistent_bytes(self, align: int = 16) -> int:
        """Bytes of the :attr:`persistent` buffers, each rounded up to ``align`` (TFLM aligns every
        persistent allocation to 16 bytes)."""
        return int(sum(_align(b.nbytes, align) for b in self.persistent))

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def flash_bytes(self) -> int:
        """Total Flash bytes (sum of :attr:`flash`)."""
        return int(sum(self.flash.values()))

    def live(self, step: int) -> list:
        """Ids of the buffers alive at ``step`` (``first <= step <= last``)."""
        return [i for i, b in enumerate(self.buffers) if b.first <= step <= b.last]

    def live_bytes(self, step: int, align: int = 1) -> int:
        """Sum of the sizes (each rounded up to ``align``) of the buffers alive at ``step``."""
        return int(sum(_align(self.buffers[i].nbytes, align) for i in self.live(step)))

    def validate(self) -> None:
        """Check lifetimes against the steps; raise :class:`ScheduleError` when inconsistent."""
        n = self.n_steps
        for i, b in enumerate(self.buffers):
            if b.nbytes < 0:
                raise ScheduleError(f"buffer {i} ({b.name}) has negative size {b.nbytes}")
            if not -1 <= b.first <= b.last <= max(n - 1, 0):
                raise ScheduleError(f"buffer {i} ({b.name}) has lifetime [{b.first}, {b.last}] outside "
                                    f"[-1, {n - 1}] or reversed")
        for s in self.steps:
            for i in s.reads + s.writes + s.scratch:
                if not 0 <= i < len(self.buffers):
                    raise ScheduleError(f"step {s.index} names buffer {i}, out of range")
                b = self.buffers[i]
                if not b.first <= s.index <= b.last:
                    raise ScheduleError(f"step {s.index} ({s.opcode}) uses buffer {i} ({b.name}) outside its "
                                        f"lifetime [{b.first}, {b.last}]")


def _align(n: int, a: int) -> int:
    return -(-int(n) // a) * a if a > 1 else int(n)


def scratch_bytes(model, op_index: int) -> list:
    """Arena scratch buffers (bytes each, in request order) TFLM's reference kernel requests for operator ``op_index``.

    MEAN (``reduce_common.cc``, TFLM as installed by ``pip install tflite-micro``): for int8/int16
    input an int32 accumulator per output element, then ``sizeof(int) * input rank`` (an index
    iterator) and ``sizeof(int) * number of axes`` (the resolved axes). SVDF (``svdf_common.cc``,
    integer path): ``batch * num_filters * 4`` (the time dot products) then
    ``batch * num_units * 4`` (the reduced outputs), batch being the file's dimension 0 (1). TRANSPOSE_CONV: see
    :func:`_transpose_conv_scratch`. UNIDIRECTIONAL_SEQUENCE_LSTM: four buffers of
    ``batch * state * sizeof(cell state)``. CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with INT4
    weights: the filter's element count (``conv_common.cc`` etc. request it in Prepare and unpack the
    filter into it in Eval). Every other operator: ``[]``.
    """
    op = model.operators[op_index]
    prepared = getattr(model, "prepared", None)
    if prepared is not None and hasattr(prepared[op_index], "tflm_scratch"):  # ops that declare it (signal ops)
        return list(prepared[op_index].tflm_scratch())
    if op.opcode == "SVDF":
        batch = model.tensors[op.inputs[0]].shape[0]
        n_filter = model.tensors[op.inputs[1]].shape[0]
        n_unit = n_filter // int(op.options.get("rank", 1))
        return [b for b in (4 * batch * n_filter, 4 * batch * n_unit) if b > 0]
    if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
        w = model.tensors[op.inputs[1]]
        return [int(np.prod(w.shape, dtype=np.int64))] if getattr(w, "int4", False) else []
    if op.opcode == "MEAN":
        x, y = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
        axes = model.tensors[op.inputs[1]]
        out = []
        if x.dtype in (np.int8, np.int16):
            out.append(int(np.prod(y.shape, dtype=np.int64)) * 4)
        out.append(4 * len(x.shape))
        out.append(4 * int(np.prod(axes.shape, dtype=np.int64)))
        return [b for b in out if b > 0]
    if op.opcode == "TRANSPOSE_CONV":
        return _transpose_conv_scratch(model, op)
    if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        # unidirectional_sequence_lstm.cc: four buffers of batch * state cell-state elements (int16)
        x, h = model.tensors[op.inputs[0]], model.tensors[op.inputs[18]]
        batch = x.shape[1] if op.options.get("time_major", False) else x.shape[0]
        cell = model.tensors[op.inputs[19]]
        return [batch * h.shape[-1] * cell.dtype.itemsize] * 4
    return []


def _transpose_conv_scratch(model, op) -> list:
    """TRANSPOSE_CONV (``transpose_conv.cc``): one output's accumulators, int32 for int8 input, int64 for
    int16 (16x8); then, for 16x8 with an int16 bias, the bias widened to int64."""
    x, y = model.tensors[op.inputs[2]], model.tensors[op.outputs[0]]
    n_out = int(np.prod(y.shape, dtype=np.int64))
    if x.dtype == np.int8:
        return [4 * n_out]
    out = [8 * n_out]
    bias = model.tensors[op.inputs[3]] if len(op.inputs) > 3 and op.inputs[3] != -1 else None
    if bias is not None and bias.dtype == np.int16:
        out.append(8 * int(np.prod(bias.shape, dtype=np.int64)))
    return out


def _dw_plane_bytes(model, op_index: int) -> int:
    """One padded input channel plane of a depthwise conv: TinyEngine's in-place buffer (int8)."""
    op = model.operators[op_index]
    x, w = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    _, h, wd, _ = x.shape
    kh, kw = w.shape[1], w.shape[2]
    o = op.options
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    pad = o.get("padding", "VALID")
    oh, ow = compute_out_size(pad, h, kh, sh, dh), compute_out_size(pad, wd, kw, sw, dw)
    ph, pw = compute_padding(sh, dh, h, kh, oh), compute_padding(sw, dw, wd, kw, ow)
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, h + ph)  # rows the kernel reads, leading padding included
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, wd + pw)
    return int(hp * wp) * x.dtype.itemsize


def _inplace_candidates(model, op_index: int, tensor_to_buf: dict) -> tuple:
    """In-place candidates of one operator (legality of lifetimes is checked by the planner).

    * DEPTHWISE_CONV_2D with depth multiplier 1 and an output no larger than its input (channels
      are independent: TinyEngine copies channel c's padded plane aside, then writes channel c of
      the output over the input; needs that plane as scratch).
    * element-wise operators (:data:`ELEMENTWISE_INPLACE_OPS`) when an activation input has the
      output's element count and an item size >= the output's (writing element i never clobbers
      an input element not yet read).
    """
    op = model.operators[op_index]
    if len(op.outputs) != 1:
        return ()
    y = model.tensors[op.outputs[0]]
    out_buf = tensor_to_buf[op.outputs[0]]
    acts = [t for t in op.inputs if t != -1 and not model.tensors[t].is_constant]
    cands = []
    if op.opcode == "DEPTHWISE_CONV_2D":
        x = model.tensors[op.inputs[0]]
        if op.inputs[0] in tensor_to_buf and x.shape[-1] == y.shape[-1] and y.nbytes <= x.nbytes and x.dtype.itemsize >= y.dtype.itemsize:
            cands.append(InPlace(out_buf, tensor_to_buf[op.inputs[0]], _dw_plane_bytes(model, op_index)))
    elif op.opcode in ELEMENTWISE_INPLACE_OPS:
        n_out = int(np.prod(y.shape, dtype=np.int64))
        for t in dict.fromkeys(t for t in acts if t in tensor_to_buf):
            x = model.tensors[t]
            if int(np.prod(x.shape, dtype=np.int64)) == n_out and x.dtype.itemsize >= y.dtype.itemsize:
                cands.append(InPlace(out_buf, tensor_to_buf[t], 0))
    return tuple(cands)


def flash_contents(model) -> dict:
    """``{"weights", "bias", "other_constants"}`` data bytes of the model's constant tensors."""
    parts = {"weights": 0, "bias": 0, "other_constants": 0}
    for t in model.tensors:
        if not t.is_constant:
            continue
        if t.quant is not None and t.dtype == np.int8:
            parts["weights"] += int(t.nbytes)  # INT4: packed, two per byte
        elif t.quant is not None and t.dtype in (np.int32, np.int64):  # int64: 16x8 biases
            parts["bias"] += int(t.data.nbytes)
        else:
            parts["other_constants"] += int(t.data.nbytes)
    return parts


def inference_schedule(model) -> Schedule:
    """The inference schedule of ``model``: one step per operator, in the model's order.

    Buffers (ids in this order, like TFLM's planner input): every non-constant tensor that is a
    model input or output or that an operator reads or writes, by tensor index, except variable
    tensors (:attr:`Schedule.persistent`); then one scratch buffer per operator that needs one
    (:func:`scratch_bytes`), in operator order. Zero-size tensors are skipped.

    Args:
        model: a :class:`tinyzo.graph.Model`.

    Returns:
        A validated :class:`Schedule` with ``method="inference"``.
    """
    if not isinstance(model, Model):
        raise ScheduleError(f"inference_schedule needs a tinyzo Model (tinyzo.load(path)), got {type(model).__name__}")
    n = len(model.operators)
    first: dict = {}
    last: dict = {}
    for t in model.inputs:
        first[t] = -1
        last[t] = -1
    for k, op in enumerate(model.operators):
        for t in op.outputs:
            if t not in first:
                first[t] = k
            last[t] = max(last.get(t, k), k)
        for t in op.inputs:
            if t != -1 and not model.tensors[t].is_constant:
                last[t] = max(last.get(t, k), k)
    for t in model.outputs:
        last[t] = max(n - 1, first.get(t, -1))
    buffers = []
    tensor_to_buf = {}
    for t in sorted(first):
        ten = model.tensors[t]
        if ten.is_constant or ten.is_variable or ten.nbytes == 0:
            continue
        tensor_to_buf[t] = len(buffers)
        buffers.append(Buffer(ten.name or f"t{t}", "activation", ten.nbytes, first[t], last[t], tensor=t,
                              pinned=t in model.outputs))
    scratch_of: dict = {}
    for k, op in enumerate(model.operators):
        for j, nb in enumerate(scratch_bytes(model, k)):
            scratch_of.setdefault(k, []).append(len(buffers))
            buffers.append(Buffer(f"{op.opcode}#{k}/scratch{j}", "scratch", nb, k, k))
    steps = []
    for k, op in enumerate(model.operators):
        reads = tuple(dict.fromkeys(tensor_to_buf[t] for t in op.inputs if t in tensor_to_buf))
        writes = tuple(tensor_to_buf[t] for t in op.outputs if t in tensor_to_buf)
        steps.append(Step(k, "forward", op.opcode, k, reads, writes,
                          tuple(scratch_of.get(k, ())), _inplace_candidates(model, k, tensor_to_buf)
                          if len(op.outputs) == 1 and op.outputs[0] in tensor_to_buf else ()))
    # variable tensors: persistent, the whole run (TFLM's tail), not planned
    persistent = [Buffer(model.tensors[t].name or f"t{t}", "state", model.tensors[t].nbytes, -1, max(n - 1, -1),
                         tensor=t, pinned=True) for t in getattr(model, "variables", ())]
    # operators' own persistent buffers: per-stream state (e.g. a noise estimate, kept between
    # inferences and cleared by TFLM's Reset) and work areas/tables TFLM allocates once in Init
    for k, prep in enumerate(getattr(model, "prepared", ())):
        for name, (shape, dtype) in prep.state_buffers().items():
            persistent.append(Buffer(f"{prep.op.opcode}#{k}/{name}", "state",
                                     int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, -1,
                                     max(n - 1, -1), pinned=True))
        for name, nbytes in getattr(prep, "tflm_persistent", dict)().items():
            persistent.append(Buffer(f"{prep.op.opcode}#{k}/{name}", "state", int(nbytes), -1, max(n - 1, -1),
                                     pinned=True))
    sched = Schedule(steps, buffers, flash_contents(model), "inference", model.name, persistent=persistent)
    sched.validate()
    return sched
