"""Prepare-time checks shared by the int16 (16x8) operator paths.

TFLite's 16x8 quantization: int16 activations, quantized per tensor, symmetric (zero point 0),
int8 weights. Every int16 path of TFLite Micro that tinyzo implements (ADD, SUB, MUL, the pools,
SOFTMAX, LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, QUANTIZE, DEQUANTIZE) is run on such tensors;
some of TFLM's prepares check the zero point (MUL, SOFTMAX, LOGISTIC, TANH, RELU), the others
assume it (SUB's ``TFLITE_DCHECK_EQ(input1_offset, 0)``). tinyzo requires it everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INT16", "require_int8_or_int16", "require_int16"]

INT16 = np.dtype(np.int16)


def require_int16(op, t, role: str) -> None:
    """Check that ``t`` is int16, quantized per tensor with zero point 0 and a positive finite scale.

    ``op`` is the :class:`~tinyzo.ops.base.PreparedOp` whose ``fail`` names the operator.
    """
    if t.dtype != INT16:
        op.fail(f"{role} {t.name!r} is {t.dtype}; the int16 path needs every activation in int16")
    if t.quant is None:
        op.fail(f"{role} {t.name!r} has no quantization parameters")
    if t.quant.per_channel:
        op.fail(f"{role} {t.name!r} must be quantized per tensor")
    if int(t.quant.zero_point[0]) != 0:
        op.fail(f"int16 {role} {t.name!r} has zero point {int(t.quant.zero_point[0])}; int16 tensors must have "
                "zero point 0 (TFLite's 16x8 quantization)")
    if not (np.all(np.isfinite(t.quant.scale)) and np.all(t.quant.scale > 0)):
        op.fail(f"{role} {t.name!r} has a non-positive or non-finite scale")


def require_int8_or_int16(op, t, role: str) -> np.dtype:
    """Validate ``t`` as an int8 (:meth:`~tinyzo.ops.base.PreparedOp.require_int8`) or int16 activation; its dtype."""
    if t.dtype == INT16:
        require_int16(op, t, role)
    elif t.dtype == np.int8:
        op.require_int8(t, role)
    else:
        op.fail(f"{role} {t.name!r} is {t.dtype}; {op.op.opcode} supports int8 and int16 here")
    return t.dtype
