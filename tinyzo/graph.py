"""The model graph: tensors, operators in execution order, prepare and run.

A :class:`Model` is plain data (tensors with shapes, dtypes, quantization and
constant buffers; operators with their inputs, outputs and options) plus a
prepared operator list. Preparing computes, once, everything that depends only
on the parameters (multipliers, shifts, offsets, clamps), like TFLite Micro's
``Prepare``; running a batch only calls the jitted kernels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from tinyzo.errors import InputError, TinyzoError, UnsupportedModelError
from tinyzo.limits import check_buffer
from tinyzo.quant import DOUBLE_ROUNDING, ROUNDING_MODES, QuantParams, dequantize, quantize

# the model writer, set by tinyzo.io at import (register_saver): graph does not depend on io
_SAVER = None


def register_saver(fn) -> None:
    """Set the function ``fn(model, path)`` that :meth:`Model.save` calls (tinyzo.io registers ``save``)."""
    global _SAVER
    _SAVER = fn

__all__ = ["CHUNK_ACTIVATION_BYTES", "MAX_INTERMEDIATES_BYTES", "Model", "Operator", "Tensor"]

#: A batch runs in chunks whose activation tensors (every tensor the model computes, summed over the
#: chunk's samples) take about this many bytes: ``model(x)``'s working memory does not grow with the
#: batch. ``Model.chunk_size`` overrides the derived number of samples per chunk.
CHUNK_ACTIVATION_BYTES = 16 << 20
#: Default ``Model.max_intermediates_bytes``: the largest set of tensors ``model(x, intermediates=True)``
#: and :meth:`Model.forward_from` return (2 GiB); a larger request is refused before any work.
MAX_INTERMEDIATES_BYTES = 2 << 30
#: Model input dtypes accepted before the operators are prepared; each reading operator's prepare then
#: refuses a dtype it does not take (e.g. CONV_2D takes int8 only, STRIDED_SLICE int8/int16/int32).
INTEGER_INPUT_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.uint32))
#: Operators that may read a float32 model input (the model's float interface).
FLOAT_INPUT_READERS = ("QUANTIZE", "CAST")


def _saturating_add_int8(a: np.ndarray, delta) -> np.ndarray:
    """``clamp(a + delta, -128, 127)`` as int8 (node perturbation of an int8 activation).

    ``delta``: an integer array broadcastable to ``a`` (e.g. per sample, ``a``'s shape). The sum is
    formed in int64 by :func:`tinyzo.kernels.elementwise.saturating_add_s8`, so every delta saturates
    exactly, without wrap-around.
    """
    from tinyzo.kernels.elementwise import saturating_add_s8

    out = np.empty(a.shape, np.int8)
    if (type(delta) is np.ndarray and delta.shape == a.shape and a.dtype == np.int8 and delta.dtype == np.int8
            and a.flags.c_contiguous and delta.flags.c_contiguous):  # a ZO query's node perturbation
        saturating_add_s8(a, delta, out)
        return out
    a = np.ascontiguousarray(a)
    delta = np.ascontiguousarray(np.broadcast_to(np.asarray(delta), a.shape))
    if delta.dtype.kind not in "iu" or a.dtype != np.int8:
        raise InputError(f"node perturbation must add an integer array to an int8 tensor, got {delta.dtype} to {a.dtype}")
    saturating_add_s8(a, delta, out)
    return out


def initial_state(tensor) -> np.ndarray:
    """The value TFLite Micro gives a variable tensor when it allocates or resets it.

    TFLM's ``MicroInterpreterGraph::ResetTensorData`` (run by ``AllocateTensors`` and by
    ``Reset``) ignores any buffer stored in the file and ``memset``s the tensor: an int8 tensor with
    a zero point to the low byte of its first zero point (so every element equals that zero point),
    every other tensor to zero bytes (an int16 state starts at raw 0 whatever its zero point).

    Args:
        tensor: a :class:`Tensor` (normally one with ``is_variable``).

    Returns:
        A new array of the tensor's dtype and file shape (dimension 0 the batch, 1).
    """
    value = 0
    if tensor.dtype == np.int8 and tensor.quant is not None and len(tensor.quant.zero_point) > 0:
        value = (int(tensor.quant.zero_point[0]) + 128) % 256 - 128  # memset stores the low byte
    return np.full(tensor.shape, value, dtype=tensor.dtype)


@dataclass
class Tensor:
    """One tensor of a model.

    Attributes:
        name: the tensor's name in the model file.
        shape: the shape stored in the file; for activations dimension 0 is the
            batch (1 in the file, any size at run time).
        dtype: numpy dtype (int8 activations/weights, int32 bias, int32/int64 shapes).
        quant: quantization parameters, or None for unquantized tensors.
        data: the constant value (weights, bias, shape operands) or None for
            tensors computed at run time.
        is_variable: the file's ``is_variable`` flag: the tensor is model state (e.g. SVDF's
            activation state, an LSTM's hidden and cell state) that operators update in place and that keeps its value from one
            call to the next (:meth:`Model.reset_state`). A variable tensor is never a constant,
            even with a stored buffer: TFLM ignores that buffer (see :func:`initial_state`).
        int4: True for a constant stored in the file as TFLite ``INT4`` (two values per byte, low
            nibble first); ``dtype`` is then int8 and ``data`` holds the unpacked values in [-8, 7],
            as TFLM unpacks them (``UnpackDenseInt4IntoInt8``) before its int8 kernels run.
    """

    name: str
    shape: tuple
    dtype: np.dtype
    quant: QuantParams | None = None
    data: np.ndarray | None = None
    is_variable: bool = False
    int4: bool = False

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.dtype = np.dtype(self.dtype)
        self.is_variable = bool(self.is_variable)

    @property
    def is_constant(self) -> bool:
        """True for tensors with a stored value (weights, biases, shape operands); False for variable tensors."""
        return self.data is not None and not self.is_variable

    @property
    def nbytes(self) -> int:
        """Bytes of one instance (batch 1) of this tensor (INT4: two values per byte, rounded up)."""
        n = int(np.prod(self.shape, dtype=np.int64))
        return (n + 1) // 2 if self.int4 else n * self.dtype.itemsize


@dataclass
class Operator:
    """One operator: a TFLite builtin name, tensor indices and normalized options.

    Attributes:
        opcode: TFLite builtin operator name, e.g. ``"CONV_2D"``.
        inputs: tensor indices; -1 marks an absent optional input (e.g. no bias).
        outputs: tensor indices.
        options: the builtin options with TFLite schema field names
            (``stride_w``, ``padding`` as ``"SAME"``/``"VALID"``,
            ``fused_activation_function`` as ``"NONE"``/``"RELU"``/... ).
    """

    opcode: str
    inputs: tuple
    outputs: tuple
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        self.inputs = tuple(int(i) for i in self.inputs)
        self.outputs = tuple(int(i) for i in self.outputs)


class Model:
    """An int8 model that runs exactly as TFLite Micro runs it.

    Build one with :func:`tinyzo.load`. Call it on a batch::

        y = model(x)                       # int8[N, ...] in, int8[N, ...] out
        y, acts = model(x, intermediates=True)   # acts: {tensor index: int8[N, ...]}

    Stateful models: tensors marked variable in the file (:attr:`variables`, e.g. SVDF's activation
    state) keep their values from one call to the next, as TFLM keeps them between invocations:
    calling ``model(x_t)`` on a sequence of batch-1 inputs gives, call by call, what TFLM's
    interpreter gives on the same sequence. The state starts as TFLM initializes it
    (:func:`initial_state`) and :meth:`reset_state` starts over. A batch of N inputs is N
    independent streams with N states: sample i's state advances with sample i's input only, so
    successive calls must keep the batch size (and the order of the streams) until
    :meth:`reset_state`; another batch size is refused with :class:`InputError`. The state is
    committed only when a call succeeds. Two threads must not call one stateful model at once.

    Args:
        tensors: list of :class:`Tensor`.
        operators: list of :class:`Operator` in execution order.
        inputs: indices of the model's input tensors.
        outputs: indices of the model's output tensors.
        name: a label (file name or description).
        rounding: requantization rounding, ``"double"`` (TFLM's default) or ``"single"``.

    Attributes:
        chunk_size: samples per chunk when a batch is run (int >= 1), or None (default) for
            ``max(1, CHUNK_ACTIVATION_BYTES // sample_bytes)``. Outputs do not depend on it.
        max_intermediates_bytes: the largest ``N * sample_bytes`` that ``intermediates=True`` (and
            :meth:`forward_from`) may return (default :data:`MAX_INTERMEDIATES_BYTES`); None: no limit.
        variables: indices of the variable tensors (model state), in index order; ``()`` for a
            stateless model.
        op_states: the operators' own persistent buffers (TFLM's ``AllocatePersistentBuffer`` state,
            e.g. the spectral-subtraction noise estimate of the audio front end), one per stream:
            ``{(operator index, name): (shape of one stream, dtype)}``. They are model state like
            the variable tensors: kept between calls, zeroed by :meth:`reset_state` (TFLM's
            ``Reset``), one row per stream.
        lifted: True when the file had run-time tensors without a batch dimension and tinyzo gave
            each a leading dimension of 1 (:mod:`tinyzo.ops.lift`; the inputs then take
            ``(N,) + file shape``).
    """

    def __init__(self, tensors, operators, inputs, outputs, name: str = "", rounding: str = DOUBLE_ROUNDING):
        if rounding not in ROUNDING_MODES:
            raise InputError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, got {rounding!r}")
        self.inputs = tuple(int(i) for i in inputs)
        self.outputs = tuple(int(i) for i in outputs)
        from tinyzo.ops.lift import lift_unbatched

        self.tensors, self.operators, self.lifted = lift_unbatched(list(tensors), list(operators), self.inputs,
                                                                   self.outputs)
        self.tensors = list(self.tensors)
        self.operators = list(self.operators)
        self.name = name
        self.rounding = rounding
        self.variables = tuple(i for i, t in enumerate(self.tensors) if t.is_variable)
        self._state = None  # {variable tensor index: array [N, ...]} of N streams, or None (initial)
        self._check_graph()
        from tinyzo.ops import prepare_operator

        self.prepared = [prepare_operator(self, i, op) for i, op in enumerate(self.operators)]
        #: per-stream operator state: ``{(op index, name): (shape of one stream, dtype)}``
        self.op_states = {(i, name): spec for i, prep in enumerate(self.prepared)
                          for name, spec in prep.state_buffers().items()}
        self.chunk_size = None
        self.max_intermediates_bytes = MAX_INTERMEDIATES_BYTES

    # ------------------------------------------------------------------ structure
    def _check_graph(self):
        n = len(self.tensors)
        if not self.inputs or not self.outputs:
            raise UnsupportedModelError("the model has no inputs or no outputs")
        for role, idxs in (("input", self.inputs), ("output", self.outputs)):
            for t in idxs:
                if not 0 <= t < n:
                    raise UnsupportedModelError(f"model {role} tensor index {t} is out of range (0..{n - 1})")
        for t in self.inputs:
            ten = self.tensors[t]
            readers = [op.opcode for op in self.operators if t in op.inputs]
            float_interface = ten.dtype == np.float32 and readers and all(r in FLOAT_INPUT_READERS for r in readers)
            if ten.dtype not in INTEGER_INPUT_DTYPES and not float_interface:
                raise UnsupportedModelError(
                    f"input tensor {ten.name!r} is {ten.dtype}: tinyzo runs integer-quantized models (int8 inputs; "
                    "int16/int32/uint32 inputs for the operators that take them; a float32 input only when QUANTIZE "
                    "or CAST operators alone read it); convert the model with full-integer post-training quantization"
                )
        for t in self.variables:
            ten = self.tensors[t]
            if t in self.inputs:
                raise UnsupportedModelError(f"input tensor {t} ({ten.name!r}) is a variable tensor (model state); "
                                            "the file is corrupt")
            if len(ten.shape) < 1 or ten.shape[0] != 1:
                raise UnsupportedModelError(f"variable tensor {t} ({ten.name!r}) has shape {list(ten.shape)}; "
                                            "dimension 0 is the batch (one state per stream) and must be 1")
        # variable tensors hold a value before the first operator runs (the state)
        available = set(self.inputs) | set(self.variables) | {i for i, t in enumerate(self.tensors) if t.is_constant}
        written = set()
        for k, op in enumerate(self.operators):
            for t in op.inputs + op.outputs:
                if t != -1 and not 0 <= t < n:
                    raise UnsupportedModelError(f"operator {k} ({op.opcode}) names tensor {t}, out of range (0..{n - 1})")
            for t in op.inputs:
                if t != -1 and t not in available:
                    raise UnsupportedModelError(
                        f"operator {k} ({op.opcode}) reads tensor {t} ({self.tensors[t].name!r}) before any operator writes it"
                    )
            for t in op.outputs:
                what = ("a constant" if self.tensors[t].is_constant else "a model input" if t in self.inputs
                        else "a variable tensor (model state, updated in place by the operators that read it)"
                        if self.tensors[t].is_variable
                        else "already written by an earlier operator" if t in written else None)
                if what is not None:
                    raise UnsupportedModelError(
                        f"operator {k} ({op.opcode}) writes tensor {t} ({self.tensors[t].name!r}), which is {what}; "
                        "the file is corrupt"
                    )
                written.add(t)
            available.update(op.outputs)
        for t in self.outputs:
            if t not in available:
                raise UnsupportedModelError(f"output tensor {t} is never computed")

    @property
    def input_details(self) -> list[Tensor]:
        """The input tensors."""
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_details(self) -> list[Tensor]:
        """The output tensors."""
        return [self.tensors[i] for i in self.outputs]

    # ------------------------------------------------------------------ run
    def _check_input(self, k: int, x) -> np.ndarray:
        t = self.tensors[self.inputs[k]]
        if not isinstance(x, np.ndarray):
            raise InputError(f"input {k} must be a numpy array, got {type(x).__name__}")
        if x.dtype != t.dtype:
            hint = "; quantize float data with model.quantize_input(x)" if t.dtype == np.int8 else ""
            raise InputError(f"input {k} ({t.name!r}) must be {t.dtype}, got {x.dtype}{hint}")
        want = t.shape[1:]
        if x.ndim != len(t.shape) or tuple(x.shape[1:]) != want:
            raise InputError(
                f"input {k} ({t.name!r}) must have shape (N, {', '.join(map(str, want))}) with a leading batch "
                f"dimension, got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise InputError(f"input {k} ({t.name!r}) has an empty batch")
        return np.ascontiguousarray(x)

    def __call__(self, *xs, intermediates: bool = False):
        """Run a batch.

        The batch runs in chunks of :attr:`chunk_size` samples (spread over the threads of
        :mod:`tinyzo.runtime`), each written into the preallocated result: the working memory
        beyond the returned arrays is that of one chunk per thread, whatever N is (a few times
        :data:`CHUNK_ACTIVATION_BYTES`; docs/reliability.md). Every sample is computed by the same
        integer code, so the result is bit-identical for any chunk size and thread count.

        A stateful model (:attr:`variables`) reads each stream's state and stores the updated
        state (see the class doc: sample i of the batch is stream i).

        Args:
            *xs: one int8 array per model input, each ``(N,) + input_shape[1:]``
                (N >= 1, the same for every input).
            intermediates: also return every tensor computed (a dict from
                tensor index to int8/int32 array with leading batch dimension; a variable tensor
                holds its value after this call, as TFLM's tensor after ``invoke``). Refused with
                :class:`InputError` when ``N * sample_bytes`` exceeds :attr:`max_intermediates_bytes`.

        Returns:
            The int8 output (an array, or a tuple of arrays for several outputs),
            and with ``intermediates=True`` a pair ``(outputs, {index: array})``.
        """
        if len(xs) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} input(s), got {len(xs)}")
        arrays = [self._check_input(k, x) for k, x in enumerate(xs)]
        if len({a.shape[0] for a in arrays}) != 1:
            raise InputError("all inputs must have the same batch size")
        env = self._run_batch(arrays, keep_all=intermediates)
        outs = tuple(env[i] for i in self.outputs)
        result = outs[0] if len(outs) == 1 else outs
        if intermediates:
            return result, env
        return result

    def _run_ops(self, env: dict, start: int, keep_all: bool, add=None, outputs=None) -> dict:
        """Run operators ``start:`` on ``env``; return every tensor (``keep_all``) or only ``outputs``
        (default: the model outputs)."""
        add = add or {}
        for prep in self.prepared[start:]:
            prep.run(env)
            for t in prep.op.outputs:
                if t in add:
                    env[t] = _saturating_add_int8(env[t], add[t])
        self._constant_outputs(env)
        return env if keep_all else {i: env[i] for i in (self.outputs if outputs is None else outputs)}

    @functools.cached_property
    def sample_bytes(self) -> int:
        """Bytes of every tensor the model computes (and its inputs) for one sample: what
        ``intermediates=True`` returns per sample (computed once: shapes never change)."""
        return sum(t.nbytes for t in self.tensors if not t.is_constant)

    @property
    def chunk_size(self):
        """Samples per chunk of a batch run (int >= 1), or None for the automatic size; see the class doc."""
        return getattr(self, "_chunk_size", None)

    @chunk_size.setter
    def chunk_size(self, value):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise InputError(f"chunk_size must be None (automatic) or an integer >= 1, got {value!r}")
        self._chunk_size = None if value is None else int(value)

    def chunk_samples(self) -> int:
        """The samples per chunk in force: :attr:`chunk_size`, else ``CHUNK_ACTIVATION_BYTES // sample_bytes`` (>= 1)."""
        size = getattr(self, "_chunk_size", None)
        if size is not None:
            return size
        return max(1, CHUNK_ACTIVATION_BYTES // max(1, self.sample_bytes))

    def _check_keep_all(self, n: int) -> None:
        limit = getattr(self, "max_intermediates_bytes", MAX_INTERMEDIATES_BYTES)
        need = n * self.sample_bytes
        if limit is not None and need > limit:
            fit = max(1, limit // max(1, self.sample_bytes))
            raise InputError(f"keeping every tensor of {n:,} samples needs {need:,} bytes ({self.sample_bytes:,} per "
                             f"sample), over model.max_intermediates_bytes = {limit:,}; run batches of at most {fit:,} "
                             "samples, or raise the limit (None: no limit)")

    def _constant_outputs(self, env: dict) -> None:
        """Put each constant model output in ``env``: its stored value once per sample, as TFLM returns it.

        The samples are concatenated along dimension 0, as for every output (a constant of shape
        ``(1, ...)`` becomes ``(N, ...)``, one of shape ``(16, 16)`` becomes ``(16 N, 16)``, a scalar ``(N,)``).
        """
        missing = [t for t in self.outputs if t not in env]
        if not missing:
            return
        n = next(iter(env.values())).shape[0] if env else 1
        for t in missing:
            data = self.tensors[t].data  # outputs are computed or constant (checked in _check_graph)
            check_buffer(n * data.nbytes, f"constant output tensor {t} ({self.tensors[t].name!r})", n)
            env[t] = np.tile(data.reshape(data.shape or (1,)), (n,) + (1,) * max(data.ndim - 1, 0))

    def _run_split(self, env: dict, start: int, keep_all: bool, add=None, outputs=None) -> dict:
        """Run operators ``start:`` on a batch held in ``env``, in chunks spread over threads (see :mod:`tinyzo.runtime`).

        The batch is cut into equal chunks of at most :meth:`chunk_samples` samples (at least one per
        thread); the threads (the calling one included, :func:`tinyzo.runtime.share_tasks`) take chunks
        in turn and copy each chunk's result into arrays allocated once for the whole batch.
        """
        import threading

        from tinyzo import runtime

        n = next(iter(env.values())).shape[0]
        if keep_all:
            self._check_keep_all(n)
        threads = runtime.get_num_threads()
        runtime.limit_blas_threads()
        runtime.keep_freed_memory()
        parts = max(-(-n // self.chunk_samples()), min(threads, n))
        if parts == 1:
            return self._run_ops(dict(env), start, keep_all, add, outputs)
        size = -(-n // parts)
        slices = [slice(s, min(s + size, n)) for s in range(0, n, size)]

        def part(s):
            sub_add = {k: (v[s] if np.ndim(v) and np.shape(v)[0] == n else v) for k, v in (add or {}).items()}
            return self._run_ops({k: v[s] for k, v in env.items()}, start, keep_all, sub_add, outputs)

        lock = threading.Lock()
        out: dict = {}

        def merge(i):  # each chunk's result copied into the whole batch's arrays as it comes (bounded memory)
            s = slices[i]
            res = part(s)
            m = s.stop - s.start
            with lock:  # rows per sample: 1, except a constant output stacked per sample (F3)
                if not out:
                    out.update({k: np.empty((n * (a.shape[0] // m),) + a.shape[1:], a.dtype) for k, a in res.items()})
            for k, a in res.items():
                r = a.shape[0] // m
                out[k][s.start * r:s.stop * r] = a

        runtime.share_tasks(len(slices), merge)
        return out

    def _run_batch(self, arrays, keep_all: bool) -> dict:
        env = dict(zip(self.inputs, arrays))
        if not self.variables and not self.op_states:
            return self._run_split(env, 0, keep_all)
        # stateful: the operators update a copy of the streams' state in place (each chunk its own
        # rows, views of these arrays); the copy becomes the model's state once every chunk succeeded
        state = {t: a.copy() for t, a in self._stream_state(arrays[0].shape[0]).items()}
        env.update(state)
        out = self._run_split(env, 0, keep_all)
        self._state = state
        for t in state:
            if t in out:  # returned (intermediates, or a model output): a snapshot, not the live state
                out[t] = out[t].copy()
        for key in [k for k in out if not isinstance(k, (int, np.integer))]:
            del out[key]  # operator state (keys ("state", op, name)) is not a tensor
        return out

    # ------------------------------------------------------------------ state
    def _stream_state(self, n: int) -> dict:
        """The current state of ``n`` streams: ``{variable tensor: array [n, ...]}`` (the model's own arrays)."""
        if self._state is None:
            state = {t: np.repeat(initial_state(self.tensors[t]), n, axis=0) for t in self.variables}
            state.update({("state",) + key: np.zeros((n,) + tuple(shape), dtype)
                          for key, (shape, dtype) in self.op_states.items()})
            return state
        m = next(iter(self._state.values())).shape[0]
        if m != n:
            raise InputError(f"the model holds the state of {m} stream(s) (the batch size of earlier calls), got a "
                             f"batch of {n}; call model.reset_state() before running another batch size")
        return self._state

    def reset_state(self) -> None:
        """Start over: every variable tensor takes its initial value again and every operator state
        (:attr:`op_states`) is zeroed (TFLM's ``Reset``); the next call may have any batch size.
        Nothing to do for a stateless model."""
        self._state = None

    @property
    def state(self) -> dict:
        """A copy of the current state: ``{variable tensor index: array [N, ...]}`` (and
        ``{("state", operator index, name): array [N, ...]}`` for :attr:`op_states`) for the N streams of
        the last calls, or the initial value of one stream (``[1, ...]``) before the first call or
        after :meth:`reset_state`; ``{}`` for a stateless model."""
        if self._state is None:
            state = {t: initial_state(self.tensors[t]) for t in self.variables}
            state.update({("state",) + key: np.zeros((1,) + tuple(shape), dtype)
                          for key, (shape, dtype) in self.op_states.items()})
            return state
        return {t: a.copy() for t, a in self._state.items()}

    # ------------------------------------------------------------------ training hooks
    def trainable_ops(self) -> list:
        """Indices of the operators with trainable int8 weights (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED).

        A FULLY_CONNECTED with asymmetric weights (non-zero weight zero point, which TFLM's per-tensor
        kernel accepts) is left out: the training code takes real weights as ``scale * w``. So are
        16x8 layers (int16 activations, int64 biases), INT4 weights and grouped CONV_2D (the
        prepared op's ``trainable`` is False): the training code takes int8 weights, int32 biases
        and dense filters.
        """
        return list(self._trainable_set[0])

    @functools.cached_property
    def _trainable_set(self) -> tuple:
        """``(tuple, frozenset)`` of :meth:`trainable_ops` (operators and their prepared form are fixed
        once the model is loaded, so computed once: every get/set_params checks it)."""
        ops = tuple(i for i, op in enumerate(self.operators)
                    if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                    and getattr(self.prepared[i], "weights_offset", 0) == 0
                    and getattr(self.prepared[i], "trainable", True))
        return ops, frozenset(ops)

    def out_channel_axis(self, op_index: int) -> int:
        """Axis of operator ``op_index``'s weight tensor that indexes its output channels: 3 for
        DEPTHWISE_CONV_2D (filters 1HWC), 0 for CONV_2D (OHWI) and FULLY_CONNECTED ([O, I]). The one
        definition the trainers' per-channel scales and masks, layer selection and schemes use."""
        self._trainable(op_index)
        return 3 if self.operators[op_index].opcode == "DEPTHWISE_CONV_2D" else 0

    def get_params(self, op_index: int):
        """``(weights int8 array, bias int32[O] or None)`` of operator ``op_index`` (copies)."""
        op = self._trainable(op_index)
        w = self.tensors[op.inputs[1]].data.copy()
        b = self.tensors[op.inputs[2]].data.copy() if len(op.inputs) > 2 and op.inputs[2] != -1 else None
        return w, b

    def set_params(self, op_index: int, w=None, b=None) -> None:
        """Replace the int8 weights and/or int32 bias of operator ``op_index`` and re-prepare it.

        ``w``: int8 array of the weights' shape (values in [-128, 127]; the TFLite spec keeps
        weights in [-127, 127], which the training updates clamp to); ``b``: int32[O]. The arrays
        are copied. Quantization parameters (scales, multipliers) do not change.
        """
        op = self._trainable(op_index)
        for k, new, dtype, what in ((1, w, np.int8, "weights"), (2, b, np.int32, "bias")):
            if new is None:
                continue
            if len(op.inputs) <= k or op.inputs[k] == -1:
                raise InputError(f"operator {op_index} ({op.opcode}) has no {what} tensor")
            t = self.tensors[op.inputs[k]]
            new = np.asarray(new)
            if new.dtype != dtype or new.shape != t.data.shape:
                raise InputError(f"operator {op_index} ({op.opcode}) {what} must be {np.dtype(dtype).name}"
                                 f"{list(t.data.shape)}, got {new.dtype}{list(new.shape)}")
            t.data = new.copy()
        self.prepared[op_index].load_params()

    def _trainable(self, op_index: int):
        if not isinstance(op_index, (int, np.integer)) or not 0 <= op_index < len(self.operators):
            raise InputError(f"operator index must be in 0..{len(self.operators) - 1}, got {op_index!r}")
        op = self.operators[op_index]
        if getattr(self.prepared[op_index], "weights_offset", 0) != 0:
            raise InputError(f"operator {op_index} ({op.opcode}) has asymmetric weights (zero point "
                             f"{-self.prepared[op_index].weights_offset}); tinyzo trains symmetric weights only")
        if op_index not in self._trainable_set[1]:
            raise InputError(f"operator {op_index} is {op.opcode}, which has no trainable weights; "
                             f"trainable operators: {self.trainable_ops()}")
        return op

    @property
    def loss_tensor(self) -> int:
        """Index of the tensor every trainer takes its loss on: the logits.

        That is the input of the SOFTMAX that computes the model's first output (looking through a
        trailing DEQUANTIZE of a float interface), else the first output itself. ZO and BP training,
        their diagnostics, the memory planner and the golden vectors all use this one definition, so
        every method optimizes the same cross-entropy on the same int8 tensor.
        """
        producer = {t: op for op in self.operators for t in op.outputs}
        t = self.outputs[0]
        op = producer.get(t)
        if op is not None and op.opcode == "DEQUANTIZE":
            t = op.inputs[0]
            op = producer.get(t)
        if op is not None and op.opcode == "SOFTMAX":
            return op.inputs[0]
        return t if self.tensors[t].dtype == np.int8 else self.outputs[0]

    def loss_quant(self) -> tuple:
        """``(scale: float, zero_point: int)`` of :attr:`loss_tensor` (per-tensor int8 quantization)."""
        t = self.tensors[self.loss_tensor]
        if t.quant is None:
            raise UnsupportedModelError(f"the loss tensor {self.loss_tensor} ({t.name!r}) is not quantized")
        return float(t.quant.scale[0]), int(t.quant.zero_point[0])

    def forward_from(self, env: dict, start: int = 0, *, add=None, intermediates: bool = False, output=None):
        """Run operators ``start:`` on tensors already computed, e.g. by ``model(x, intermediates=True)``.

        Layer-wise reuse for zeroth-order training: after perturbing operator ``start``'s
        parameters only the operators from ``start`` on need to run again. Operators that read a
        variable tensor (model state) are refused with :class:`InputError`: re-running them would
        advance the state a second time.

        Args:
            env: ``{tensor index: array with a leading batch}`` holding every tensor that operators
                ``start:`` read and that earlier operators (or the model inputs) produce.
            start: index of the first operator to run (0 runs the whole model).
            add: ``{tensor index: int array}``: node perturbation. Right after a tensor is computed,
                the (broadcastable, e.g. per-sample ``[N, ...]``) integer array is added to it with
                int8 saturation, before any later operator reads it.
            intermediates: also return the updated tensor dict.
            output: a tensor index to return instead of the model's outputs (e.g. :attr:`loss_tensor`).

        Returns:
            The model output(s) as ``model(x)`` returns them (or tensor ``output``), and with
            ``intermediates=True`` a pair ``(outputs, env)``.
        """
        if not isinstance(start, (int, np.integer)) or not 0 <= start < len(self.operators):
            raise InputError(f"start must be an operator index in 0..{len(self.operators) - 1}, got {start}")
        stateful, produced_later, needed = self._segment(int(start))
        if stateful:
            raise InputError(f"operators {start}.. read variable tensors {stateful} (model state, advanced by every "
                             "run); forward_from cannot re-run them: run the stateful model with model(x)")
        missing = sorted(t for t in needed if t not in env)
        if missing:
            raise InputError(f"env lacks tensors {missing} that operators {start}.. read; "
                             "run the model with intermediates=True first")
        for t in (add or {}):
            if t not in produced_later:
                raise InputError(f"add: tensor {t} is not computed by operators {start}..")
        sizes = {env[t].shape[0] for t in needed}
        if len(sizes) > 1:
            raise InputError(f"env arrays disagree on the batch size: {sorted(sizes)}")
        want = list(self.outputs) if output is None else [output]
        if output is not None and output not in produced_later and output not in env:
            raise InputError(f"output: tensor {output} is neither in env nor computed by operators {start}..")
        # without intermediates only the wanted tensors are kept (each query of a ZO step runs here)
        compute = tuple(t for t in want if t in produced_later or t not in env)
        if not compute and not intermediates:  # everything wanted is already in env: nothing to run
            out_env = {}
        else:
            out_env = self._run_split({t: env[t] for t in needed}, start, intermediates, add, outputs=compute)
        merged = {**env, **out_env} if intermediates else None
        pick = merged.get if intermediates else (lambda t: out_env[t] if t in out_env else env[t])
        if output is not None:
            result = pick(output)
        else:
            outs = tuple(pick(i) for i in self.outputs)
            result = outs[0] if len(outs) == 1 else outs
        return (result, merged) if intermediates else result

    def inputs_from(self, start: int) -> list:
        """The tensors operators ``start:`` read that earlier operators (or the model inputs) produce:
        what :meth:`forward_from` needs in its ``env`` (sorted tensor indices)."""
        if not isinstance(start, (int, np.integer)) or not 0 <= start < len(self.operators):
            raise InputError(f"start must be an operator index in 0..{len(self.operators) - 1}, got {start}")
        return sorted(self._segment(int(start))[2])

    def _segment(self, start: int) -> tuple:
        """``(stateful, produced_later, needed)`` of the operators ``start:`` (:meth:`forward_from`'s checks;
        the graph never changes, so made once per start: every query of a ZO step runs from the same one).
        ``stateful``: the variable tensors and stateful operators they read (a list for the message);
        ``produced_later``: the tensors they compute; ``needed``: the non-constant tensors they read and
        earlier operators (or the model inputs) produce."""
        cache = self.__dict__.setdefault("_segments", {})
        if start in cache:
            return cache[start]
        stateful = sorted({t for op in self.operators[start:] for t in op.inputs if t in self.variables})
        stateful += sorted({f"operator {i}" for i, _ in self.op_states if i >= start})
        produced_later = frozenset(t for op in self.operators[start:] for t in op.outputs)
        needed = frozenset(t for op in self.operators[start:] for t in op.inputs
                           if t != -1 and not self.tensors[t].is_constant and not self.tensors[t].is_variable
                           and t not in produced_later)
        cache[start] = (stateful, produced_later, needed)
        return cache[start]

    # ------------------------------------------------------------------ float helpers
    def _io_tensor(self, index, role: str) -> Tensor:
        idxs = self.inputs if role == "input" else self.outputs
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(idxs):
            raise InputError(f"{role} index must be an integer in 0..{len(idxs) - 1} (the model has {len(idxs)} "
                             f"{role}{'s' if len(idxs) > 1 else ''}), got {index!r}")
        return self.tensors[idxs[index]]

    def quantize_input(self, x, index: int = 0) -> np.ndarray:
        """Quantize float data with input ``index``'s scale and zero point (float -> int8, TFLite rounding).

        An int16/int32 quantized input is quantized to its own dtype the same way; an unquantized
        integer input is refused (:class:`InputError`: its data is passed to the model as is).

        Args:
            x: real numbers: a number, a (nested) sequence of numbers or an array of a float or
                integer dtype, any shape.
            index: which model input, an integer in ``0..len(model.inputs) - 1``.

        Returns:
            int8 array of ``x``'s shape: ``clamp(round_half_away(float32(x) / scale) + zero_point,
            -128, 127)``, TFLite's ``AffineQuantize``. For a model with a float32 input (read by its
            own QUANTIZE operator) the data is returned as float32 instead.

        The rule for values (one rule, :func:`tinyzo.quant.quantize`): NaN and +-inf are refused
        (:class:`InputError` saying how many and where the first is); every finite value is
        quantized, whatever its magnitude: values beyond float32's range (e.g. ``1e300``) are first
        clipped to +-3.4028235e38, and anything past the int8 range saturates to -128 or 127.
        Strings, None, complex numbers and ragged sequences are refused with :class:`InputError`.
        """
        from tinyzo.quant import as_real_float32

        t = self._io_tensor(index, "input")
        if t.dtype == np.float32:  # the model quantizes its float input itself (QUANTIZE operator)
            return as_real_float32(x)
        if t.quant is None or t.quant.per_channel:
            raise InputError(f"input {index} ({t.name!r}) is {t.dtype} without per-tensor quantization parameters; "
                             f"pass {t.dtype} data to the model directly")
        return quantize(x, t.quant, t.dtype)

    def dequantize_output(self, y, index: int = 0) -> np.ndarray:
        """Dequantize an int8 output with output ``index``'s parameters (-> float32).

        Args:
            y: integer array (any integer dtype, any shape) with values in the output's int8 range
                [-128, 127], e.g. ``model(x)``; floats and out-of-range values are refused
                (:class:`InputError`), nothing is cast silently.
            index: which model output, an integer in ``0..len(model.outputs) - 1``.

        Returns:
            float32 array of ``y``'s shape, ``scale * (y - zero_point)``. For a model whose output is
            already float32 (its own DEQUANTIZE operator) ``y`` is returned as float32.
        """
        t = self._io_tensor(index, "output")
        if t.dtype == np.float32:  # already dequantized by the model's DEQUANTIZE operator
            from tinyzo.quant import as_real_float32

            return as_real_float32(y)
        from tinyzo.quant import _describe

        try:
            arr = np.asarray(y)
        except ValueError:  # ragged nested sequences
            arr = np.asarray(None)
        if arr.dtype.kind not in "iu":
            raise InputError(f"dequantize_output: expected an integer array (the model's {t.dtype} output), "
                             f"got {_describe(y)}")
        info = np.iinfo(t.dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise InputError(f"dequantize_output: values must be in [{info.min}, {info.max}] (the model's {t.dtype} "
                             f"output), got {arr.min()}..{arr.max()}")
        return dequantize(arr, t.quant)

    # ------------------------------------------------------------------ io
    def save(self, path) -> None:
        """Write the model: ``.npz`` (tinyzo's native format) or ``.tflite`` (:func:`tinyzo.io.save`,
        which :mod:`tinyzo.io` registers here when it is imported, so this module does not import it)."""
        if _SAVER is None:
            raise TinyzoError("no model writer registered: import tinyzo (or tinyzo.io) first")
        _SAVER(self, path)

    def __repr__(self):
        return (
            f"Model({self.name!r}, {len(self.operators)} operators, "
            f"inputs={[self.tensors[i].shape for i in self.inputs]}, outputs={[self.tensors[i].shape for i in self.outputs]})"
        )
