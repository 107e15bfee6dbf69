"""Base class and shared helpers of the prepared operators."""

from __future__ import annotations

import threading

import numpy as np

from tinyzo.errors import ArithmeticContractError, UnsupportedOperatorError
from tinyzo.quant import activation_range

REGISTRY: dict = {}

#: Integer tensor types that the copying operators (SQUEEZE, STRIDED_SLICE, SPLIT, ...) may move.
COPY_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))


def quant_key(t):
    """``None`` for an unquantized tensor, else its (float32 scales, zero points) as hashable tuples."""
    if t.quant is None:
        return None
    return (tuple(np.asarray(t.quant.scale, np.float32).tolist()), tuple(np.asarray(t.quant.zero_point).tolist()))


def register(*opcodes):
    """Class decorator: register a :class:`PreparedOp` subclass under TFLite builtin names."""

    def deco(cls):
        for name in opcodes:
            REGISTRY[name] = cls
        return cls

    return deco


class PreparedOp:
    """An operator of a model with its integer parameters computed once.

    Subclasses implement :meth:`prepare` (read tensors and options from
    ``self.model``/``self.op``, validate, store parameters) and
    :meth:`compute` (take the run-time input arrays, in operator input order
    with constants left out, and return the output array(s)).
    """

    def __init__(self, model, index: int, op):
        self.model = model
        self.index = index
        self.op = op
        self.runtime_inputs = tuple(i for i in op.inputs if i != -1 and not model.tensors[i].is_constant)
        self._scratch = {}  # (thread id, name) -> work array, see scratch()
        self.prepare()

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

    def require_batch_one(self, t, role: str):
        """Check that a run-time tensor has 1 in dimension 0 (the batch, ``N`` at run time).

        Every sample is then computed on the file's full shape, as TFLM computes it alone.
        """
        if len(t.shape) < 1 or t.shape[0] != 1:
            self.fail(f"{role} {t.name!r} has shape {list(t.shape)}; dimension 0 is the batch and must be 1 "
                      "(the operator would move data across samples)")

    def activation(self, out_tensor) -> tuple[int, int]:
        """Clamp bounds of the fused activation option on ``out_tensor``."""
        act = self.op.options.get("fused_activation_function", "NONE")
        if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            self.fail(f"fused activation {act} is not supported")
        try:
            return activation_range(act, out_tensor.quant, np.int8)
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")

    def option(self, name, default=None):
        """An option value (schema field name)."""
        return self.op.options.get(name, default)

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

    def run(self, env: dict) -> None:
        """Compute this operator's outputs from ``env`` (tensor index -> array) and store them there."""
        outs = self.compute(*(env[i] for i in self.runtime_inputs))
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
