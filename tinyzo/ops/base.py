"""Base class and shared helpers of the prepared operators."""

from __future__ import annotations

import math
import threading

import numpy as np

from tinyzo import limits
from tinyzo.errors import ArithmeticContractError, ModelFormatError, UnsupportedOperatorError
from tinyzo.quant import activation_range

REGISTRY: dict = {}

#: Integer tensor types that the copying operators (SQUEEZE, STRIDED_SLICE, SPLIT, ...) may move.
COPY_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))


def quant_key(t):
    """``None`` for an unquantized tensor, else its (float32 scales, zero points) as hashable tuples."""
    if t.quant is None:
        return None
    return (tuple(np.asarray(t.quant.scale, np.float32).tolist()), tuple(np.asarray(t.quant.zero_point).tolist()))

INT32_MAX = (1 << 31) - 1

#: Inputs and outputs each operator takes: opcode -> (fewest inputs, most inputs, outputs). An absent
#: optional input (index -1, e.g. no bias) counts, as in TFLite's ``NumInputs``. Checked before
#: ``prepare`` so that no operator ever sees more (or fewer) tensors than its kernel takes.
OPERATOR_ARITY = {
    "CONV_2D": (2, 3, 1),
    "DEPTHWISE_CONV_2D": (2, 3, 1),
    "FULLY_CONNECTED": (2, 3, 1),
    "ADD": (2, 2, 1),
    "QUANTIZE": (1, 1, 1),
    "DEQUANTIZE": (1, 1, 1),
    "AVERAGE_POOL_2D": (1, 1, 1),
    "MAX_POOL_2D": (1, 1, 1),
    "MEAN": (2, 2, 1),
    "SOFTMAX": (1, 1, 1),
    "RESHAPE": (1, 2, 1),
    "PAD": (2, 3, 1),
    "PADV2": (2, 3, 1),
    "CONCATENATION": (1, 10, 1),
    "SUB": (2, 2, 1),
    "MUL": (2, 2, 1),
    "DIV": (2, 2, 1),
    "MAXIMUM": (2, 2, 1),
    "MINIMUM": (2, 2, 1),
    "PRELU": (2, 2, 1),
    "RELU": (1, 1, 1),
    "RELU6": (1, 1, 1),
    "LEAKY_RELU": (1, 1, 1),
    "HARD_SWISH": (1, 1, 1),
    "LOGISTIC": (1, 1, 1),
    "TANH": (1, 1, 1),
    "SQUEEZE": (1, 1, 1),
    "EXPAND_DIMS": (2, 2, 1),
    "TRANSPOSE": (2, 2, 1),
    "STRIDED_SLICE": (4, 4, 1),
    "SPLIT": (2, 2, None),      # None: one output per split (num_splits, checked by the operator)
    "SPLIT_V": (3, 3, None),
    "GATHER": (2, 2, 1),
    "CAST": (1, 1, 1),
    "BATCH_MATMUL": (2, 2, 1),
    "SVDF": (5, 5, 1),
    "TRANSPOSE_CONV": (3, 4, 1),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (24, 24, 1),
}

#: The fused activations tinyzo implements (TFLite ``ActivationFunctionType`` names).
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def register(*opcodes):
    """Class decorator: register a :class:`PreparedOp` subclass under TFLite builtin names."""

    def deco(cls):
        for name in opcodes:
            if name not in OPERATOR_ARITY:
                raise KeyError(f"operator {name}: add its input/output counts to tinyzo.ops.base.OPERATOR_ARITY")
            REGISTRY[name] = cls
        return cls

    return deco


class PreparedOp:
    """An operator of a model with its integer parameters computed once.

    Subclasses implement :meth:`prepare` (read tensors and options from
    ``self.model``/``self.op``, validate, store parameters) and
    :meth:`compute` (take the run-time input arrays, in operator input order
    with constants left out, and return the output array(s)). Before ``prepare`` runs, the
    constructor has checked the numbers of inputs and outputs (:data:`OPERATOR_ARITY`) and that
    at least one input is computed at run time (an operator of constants is refused), so
    ``prepare`` checks neither.
    """

    def __init__(self, model, index: int, op):
        self.model = model
        self.index = index
        self.op = op
        lo, hi, n_out = OPERATOR_ARITY[op.opcode]
        if not lo <= len(op.inputs) <= hi or (len(op.outputs) != n_out if n_out is not None else not op.outputs):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            outs = "one or more" if n_out is None else f"{n_out}"
            self.fail(f"takes {want} input(s) and {outs} output(s), the model gives {len(op.inputs)} and "
                      f"{len(op.outputs)}; the file is corrupt")
        self.runtime_inputs = tuple(i for i in op.inputs if i != -1 and not model.tensors[i].is_constant)
        if not self.runtime_inputs:
            self.fail("every input is a constant; fold the constant operator before conversion")
        self._scratch = {}  # (thread id, name) -> work array, see scratch()
        self.prepare()
        self.check_buffers(1)

    # --- helpers for subclasses -------------------------------------------------
    def fail(self, msg: str):
        """Raise :class:`UnsupportedOperatorError` naming this operator."""
        raise UnsupportedOperatorError(f"operator {self.index} ({self.op.opcode}): {msg}")

    def tensor(self, k: int, *, output: bool = False, optional: bool = False):
        """The k-th input (or output) :class:`Tensor`, None for an absent optional input."""
        idxs = self.op.outputs if output else self.op.inputs
        if k >= len(idxs) or idxs[k] == -1:
            if optional:
                return None
            self.fail(f"missing {'output' if output else 'input'} {k}")
        return self.model.tensors[idxs[k]]

    def require_int8(self, t, role: str, per_tensor: bool = True):
        """Check that ``t`` is an int8 quantized tensor (per-tensor unless told)."""
        if t.dtype != np.int8:
            self.fail(f"{role} {t.name!r} is {t.dtype}; only int8 is supported")
        if t.quant is None:
            self.fail(f"{role} {t.name!r} has no quantization parameters")
        if per_tensor and t.quant.per_channel:
            self.fail(f"{role} {t.name!r} must be quantized per tensor")
        if not -128 <= int(t.quant.zero_point[0]) <= 127:
            self.fail(f"{role} {t.name!r} has zero point {int(t.quant.zero_point[0])} outside [-128, 127]")
        if not (np.all(np.isfinite(t.quant.scale)) and np.all(t.quant.scale > 0)):
            self.fail(f"{role} {t.name!r} has a non-positive or non-finite scale")

    def require_copyable(self, t, role: str, dtypes=COPY_DTYPES):
        """Check that ``t`` has one of ``dtypes`` (an operator that copies values without arithmetic).

        int8 tensors must be quantized per tensor (:meth:`require_int8`); int16/int32 tensors may be
        quantized or not (the values are copied bit for bit).
        """
        if t.dtype not in dtypes:
            names = ", ".join(np.dtype(d).name for d in dtypes)
            self.fail(f"{role} {t.name!r} is {t.dtype}; {self.op.opcode} supports {names} here")
        if t.dtype == np.int8:
            self.require_int8(t, role)

    def require_same_type(self, src, dst, src_role: str = "input", dst_role: str = "output"):
        """Check that ``dst`` has ``src``'s dtype and quantization (TFLM copies raw values, never requantizes)."""
        if src.dtype != dst.dtype:
            self.fail(f"{dst_role} {dst.name!r} is {dst.dtype}, {src_role} {src.name!r} is {src.dtype}; they must match")
        if quant_key(src) != quant_key(dst):
            self.fail(f"{dst_role} {dst.name!r} has a different scale/zero point from {src_role} {src.name!r}; "
                      "TFLite Micro copies values without requantizing, which is not supported")

    def copy_io(self, dtypes=COPY_DTYPES) -> tuple:
        """Input 0 and output 0 of an operator that copies values: the input of one of ``dtypes``
        (:meth:`require_copyable`), the output of its type (:meth:`require_same_type`), both with
        batch 1 (:meth:`require_batch_one`)."""
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.require_copyable(inp, "input", dtypes)
        self.require_same_type(inp, out)
        self.require_batch_one(inp, "input")
        self.require_batch_one(out, "output")
        return inp, out

    def checked(self, fn, *args):
        """``fn(*args)`` (a shape function of :mod:`tinyzo.spec`); its ValueError becomes this operator's
        :class:`UnsupportedOperatorError` with the same message."""
        try:
            return fn(*args)
        except ValueError as e:
            self.fail(str(e))

    def require_output_shape(self, out, want) -> None:
        """Check that output tensor ``out`` has the shape the operator computes, ``want``."""
        if tuple(out.shape) != tuple(want):
            self.fail(f"output shape {list(out.shape)} differs from the computed {list(want)}")

    def require_batch_one(self, t, role: str):
        """Check that a run-time tensor has 1 in dimension 0 (the batch, ``N`` at run time).

        Every sample is then computed on the file's full shape, as TFLM computes it alone.
        """
        if len(t.shape) < 1 or t.shape[0] != 1:
            self.fail(f"{role} {t.name!r} has shape {list(t.shape)}; dimension 0 is the batch and must be 1 "
                      "(the operator would move data across samples)")

    def activation(self, out_tensor, dtype=None) -> tuple[int, int]:
        """Clamp bounds (``dtype``'s range; default int16 for an int16 output, else int8) of the fused activation option on ``out_tensor``.

        Raises UnsupportedOperatorError for an activation other than :data:`ACTIVATIONS` and
        ArithmeticContractError for an output scale whose bounds are not int32 (a tiny scale).
        """
        act = self.option("fused_activation_function", "NONE")
        if not isinstance(act, str):
            self.bad_option("fused_activation_function", act, "an activation name")
        if act not in ACTIVATIONS:
            self.fail(f"fused activation {act} is not supported")
        try:
            return activation_range(act, out_tensor.quant, dtype if dtype is not None else (np.int16 if out_tensor.dtype == np.int16 else np.int8))
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")

    def option(self, name, default=None):
        """An option value (schema field name), unchecked; prefer the typed accessors below."""
        return self.op.options.get(name, default)

    def bad_option(self, name, value, what: str):
        """Raise :class:`ModelFormatError`: option ``name`` holds ``value``, not ``what``."""
        raise ModelFormatError(
            f"operator {self.index} ({self.op.opcode}): option {name} = {value!r} is not {what}; the file is corrupt"
        )

    def int_option(self, name: str, default: int, lo: int = 1, hi: int = INT32_MAX) -> int:
        """An integer option in ``[lo, hi]`` (schema type int32: ``hi`` at most 2**31 - 1).

        A value of another type (a string, a bool, a float, a list) raises ModelFormatError; an
        integer outside the range raises UnsupportedOperatorError.
        """
        v = self.option(name, default)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            self.bad_option(name, v, "an integer")
        v = int(v)
        if not lo <= v <= hi:
            self.fail(f"option {name} = {v} is outside [{lo}, {hi}]")
        return v

    def bool_option(self, name: str, default: bool = False) -> bool:
        """A boolean option; any other type raises ModelFormatError."""
        v = self.option(name, default)
        if not isinstance(v, (bool, np.bool_)):
            self.bad_option(name, v, "true or false")
        return bool(v)

    def float_option(self, name: str, default: float) -> float:
        """A finite float32 option as a Python float; another type or a non-finite value is refused."""
        v = self.option(name, default)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            self.bad_option(name, v, "a number")
        try:
            with np.errstate(over="ignore"):
                v32 = float(np.float32(v))
        except OverflowError:  # a Python int beyond float range
            v32 = math.inf
        if not math.isfinite(v32):
            self.fail(f"option {name} = {v!r} is not a finite float32")
        return v32

    def enum_option(self, name: str, default: str, allowed: tuple) -> str:
        """A string option among ``allowed``: another type raises ModelFormatError, another name UnsupportedOperatorError."""
        v = self.option(name, default)
        if not isinstance(v, str):
            self.bad_option(name, v, "a name")
        if v not in allowed:
            self.fail(f"option {name} = {v} is not supported ({', '.join(allowed)})")
        return v

    def int_list_option(self, name: str, default, lo: int = -INT32_MAX - 1, hi: int = INT32_MAX) -> list:
        """A list of integers in ``[lo, hi]`` (e.g. RESHAPE's ``new_shape``); None counts as the default."""
        v = self.option(name, default)
        if v is None:
            v = default
        if not isinstance(v, (list, tuple, np.ndarray)):
            self.bad_option(name, v, "a list of integers")
        out = []
        for d in v:
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
                self.bad_option(name, v, "a list of integers")
            if not lo <= int(d) <= hi:
                self.fail(f"option {name} = {list(v)} holds {int(d)}, outside [{lo}, {hi}]")
            out.append(int(d))
        return out

    # --- memory ------------------------------------------------------------------
    def buffer_bytes(self, n: int) -> dict:
        """Bytes of each array :meth:`compute` allocates (and :meth:`prepare` keeps) for a batch of ``n``.

        ``{name: bytes}`` with Python ints; the default counts the outputs, their dimension 0
        being the batch. Operators with work arrays (im2col columns, GEMM operands, padded rows)
        add them, as CMSIS-NN pairs each kernel with its buffer-size function.
        """
        out = {}
        for k, t in enumerate(self.op.outputs):
            ten = self.model.tensors[t]
            out[f"output {k}"] = n * math.prod(ten.shape[1:]) * ten.dtype.itemsize
        return out

    def check_buffers(self, n: int = 1) -> None:
        """Raise :class:`tinyzo.errors.MemoryLimitError` if any buffer for a batch of ``n`` exceeds
        :data:`tinyzo.limits.MAX_BUFFER_BYTES` (checked before anything is allocated).

        Every buffer grows with the batch, so a batch no larger than one already accepted under the same
        limit passes without recomputing the sizes (at batch 1 the check cost more than many kernels);
        :meth:`forget_buffer_check` starts over after a change of the operator's work arrays.
        """
        limit = limits.MAX_BUFFER_BYTES
        ok = getattr(self, "_buffers_ok", None)
        if ok is not None and ok[0] == limit and n <= ok[1]:
            return
        for name, nbytes in self.buffer_bytes(n).items():
            limits.check_buffer(nbytes, f"operator {self.index} ({self.op.opcode}): its {name}", n)
        self._buffers_ok = (limit, n if ok is None or ok[0] != limit else max(n, ok[1]))

    def forget_buffer_check(self) -> None:
        """Make the next :meth:`check_buffers` compute the sizes again (call after changing a kernel path)."""
        self._buffers_ok = None

    def scratch(self, key: str, shape: tuple, dtype) -> np.ndarray:
        """A reusable work array of this operator (contents undefined), one per thread.

        Large temporary arrays allocated on every call cost page faults; an
        operator keeps its scratch arrays between calls instead. Never return
        a scratch array as an output.
        """
        cache_key = (threading.get_ident(), key)
        a = self._scratch.get(cache_key)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = np.empty(shape, dtype=dtype)
            self._scratch[cache_key] = a
        return a

    # --- interface ---------------------------------------------------------------
    def prepare(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, *inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_buffers(self) -> dict:
        """The persistent state of one stream this operator keeps between calls (TFLM's
        ``AllocatePersistentBuffer`` data that its ``Reset`` clears): ``{name: (shape, dtype)}``.

        The :class:`tinyzo.Model` holds one zeroed array ``[N, *shape]`` per name for N streams,
        passes them to :meth:`compute` as ``state={name: array}`` (updated in place), and zeroes
        them in ``reset_state``. Default: none.
        """
        return {}

    def run(self, env: dict) -> None:
        """Compute this operator's outputs from ``env`` (tensor index -> array) and store them there.

        The buffers for the batch are checked against :data:`tinyzo.limits.MAX_BUFFER_BYTES` first.
        A stateful operator (:meth:`state_buffers`) finds its streams' state in ``env`` under
        ``("state", index, name)``.
        """
        args = [env[i] for i in self.runtime_inputs]
        self.check_buffers(args[0].shape[0])
        names = self.state_buffers()
        if names:
            outs = self.compute(*args, state={k: env[("state", self.index, k)] for k in names})
        else:
            outs = self.compute(*args)
        if not isinstance(outs, tuple):
            outs = (outs,)
        for i, a in zip(self.op.outputs, outs):
            env[i] = a

    def load_params(self) -> None:
        """Recompute whatever depends on the operator's constant tensors (weights, biases).

        Called by :meth:`tinyzo.Model.set_params` after a training update; operators without
        trainable parameters have nothing to do.
        """

    def macs(self) -> int:
        """Multiply-accumulates per sample: convolutions and fully connected only.

        Additions, pooling and means count 0, the convention of the MCU papers (MCUNet,
        tiny-training) so that totals compare with their tables.
        """
        return 0

    def out_shape(self, k: int = 0) -> tuple:
        """Shape of output k as stored in the model (batch 1)."""
        return self.model.tensors[self.op.outputs[k]].shape
