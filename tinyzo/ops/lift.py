"""Give a model without a batch dimension one: every run-time tensor gets a leading dimension of 1.

tinyzo runs a batch of N samples (or N streams) by giving every run-time tensor a leading
dimension N in place of the file's dimension 0, which must therefore be 1 (the batch). Some TFLM
models have no batch dimension: TFLM's audio front end (``audio_preprocessor_int8.tflite``)
reshapes its ``[1, 480]`` input to ``[480]`` and works on rank-1 tensors (``[257]``, ``[40]``,
scalars). :func:`lift_unbatched` rewrites such a model once, when it is loaded, so that it follows
the convention: every tensor computed at run time, the model inputs and outputs included, gets a
leading dimension of 1 (``[480]`` -> ``[1, 480]``, ``[1, 480]`` -> ``[1, 1, 480]``, a scalar ``[]``
-> ``[1]``), and the operators that name axes or shapes are rewritten to match:

* RESHAPE: a 1 in front of its new shape (constant input 1 or the ``new_shape`` option);
* CONCATENATION: ``axis + 1`` (a negative axis is unchanged); constant inputs get the leading 1;
* STRIDED_SLICE: begin 0, end 1, stride 1 in front; every mask shifted left by one bit.

Element-wise operators (CAST, the binary operators, QUANTIZE/DEQUANTIZE, the activations) and
TFLM's signal operators need no change (a constant operand broadcasts from the right as before).
Any other operator in a model without a batch dimension is refused with a one-line error. The
bytes of every tensor are unchanged (the memory planner's numbers do not move); the values of
sample i at run time are the file's tensors of one TFLM invocation, in the file's layout.

Only models of TFLM's signal library (with a ``CUSTOM:Signal*`` operator) are lifted; any other
model, or one whose run-time tensors all start with a dimension of 1, is returned unchanged (its
operators refuse a reshape or concatenation across the batch dimension, as before).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyzo.errors import UnsupportedModelError

__all__ = ["LIFT_NEUTRAL", "is_unbatched", "lift_unbatched"]

#: Operators that take a lifted model as it is (element-wise, or signal ops working per sample).
LIFT_NEUTRAL = frozenset({
    "CAST", "QUANTIZE", "DEQUANTIZE", "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6",
    "LOGISTIC", "TANH",
})


def _runtime_tensors(tensors, operators, inputs, outputs) -> list:
    ids = set(inputs) | set(outputs)
    for op in operators:
        ids.update(t for t in op.inputs + op.outputs if t != -1)
    return sorted(t for t in ids if not tensors[t].is_constant)


def is_unbatched(tensors, operators, inputs, outputs) -> bool:
    """True for a model of TFLM's signal library (it has a ``CUSTOM:Signal*`` operator) in which some
    run-time tensor is a scalar or does not start with a dimension of 1.

    Other models keep tinyzo's rule (dimension 0 is the batch; an operator that would move data
    across it is refused), so that their inputs keep the shape ``(N,) + file shape[1:]``.
    """
    if not any(op.opcode.startswith("CUSTOM:Signal") for op in operators):
        return False
    return any(len(tensors[t].shape) == 0 or tensors[t].shape[0] != 1
               for t in _runtime_tensors(tensors, operators, inputs, outputs))


def _with_leading_one(t):
    data = None if t.data is None else np.asarray(t.data).reshape((1,) + tuple(t.shape))
    return dataclasses.replace(t, shape=(1,) + tuple(t.shape), data=data)


def lift_unbatched(tensors, operators, inputs, outputs) -> tuple:
    """``(tensors, operators, lifted)``: the model rewritten with a leading batch dimension (module doc),
    or the arguments unchanged and ``lifted=False`` when it already has one.

    Raises:
        UnsupportedModelError: an operator that cannot be lifted (one naming axes or shapes other
            than RESHAPE, CONCATENATION, STRIDED_SLICE), or a constant operand of a rewritten
            operator that is not a constant of the expected type.
    """
    if not is_unbatched(tensors, operators, inputs, outputs):
        return tensors, operators, False
    tensors = list(tensors)
    operators = [dataclasses.replace(op, options=dict(op.options)) for op in operators]
    for t in _runtime_tensors(tensors, operators, inputs, outputs):
        tensors[t] = _with_leading_one(tensors[t])

    def new_constant(op, k, data):
        """Input k of ``op`` holds ``data``: the constant is replaced where it stands when this is its only
        use, else a new constant tensor is appended (the old one stays for its other readers)."""
        idx = op.inputs[k]
        old = tensors[idx]
        new = dataclasses.replace(old, shape=tuple(np.shape(data)), data=np.asarray(data, old.dtype))
        uses = sum(o.inputs.count(idx) for o in operators) + (idx in outputs)
        if uses == 1:
            tensors[idx] = new
            return
        tensors.append(new)
        ins = list(op.inputs)
        ins[k] = len(tensors) - 1
        op.inputs = tuple(ins)

    for i, op in enumerate(operators):
        name = op.opcode
        if name in LIFT_NEUTRAL or name.startswith("CUSTOM:Signal"):
            continue
        where = f"operator {i} ({name})"
        if name == "RESHAPE":
            if len(op.inputs) > 1 and op.inputs[1] != -1:
                shape_t = tensors[op.inputs[1]]
                if not shape_t.is_constant or shape_t.dtype not in (np.int32, np.int64):
                    raise UnsupportedModelError(f"{where}: the shape input must be a constant int32/int64 tensor")
                new_constant(op, 1, np.concatenate([[1], np.asarray(shape_t.data).reshape(-1)]))
            if op.options.get("new_shape"):
                op.options["new_shape"] = [1] + list(op.options["new_shape"])
        elif name == "CONCATENATION":
            axis = op.options.get("axis", 0)
            if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and axis >= 0:
                op.options["axis"] = int(axis) + 1
            for k, t in enumerate(op.inputs):
                if t != -1 and tensors[t].is_constant:
                    new_constant(op, k, np.asarray(tensors[t].data).reshape((1,) + tuple(tensors[t].shape)))
        elif name == "STRIDED_SLICE":
            for k, first in ((1, 0), (2, 1), (3, 1)):
                t = tensors[op.inputs[k]] if k < len(op.inputs) and op.inputs[k] != -1 else None
                if t is None or not t.is_constant or t.dtype != np.int32:
                    raise UnsupportedModelError(f"{where}: begin, end and strides must be constant int32 tensors")
                new_constant(op, k, np.concatenate([[first], np.asarray(t.data).reshape(-1)]))
            for mask in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
                v = op.options.get(mask, 0)
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                    op.options[mask] = (int(v) << 1) & 0xFFFFFFFF
        else:
            raise UnsupportedModelError(
                f"{where}: the model has tensors without a batch dimension (e.g. rank 1 after a RESHAPE, as in "
                f"TFLM's audio front end) and tinyzo adds one only around element-wise operators, RESHAPE, "
                f"CONCATENATION, STRIDED_SLICE and the signal operators; {name} is not among them")
    return tensors, operators, True
