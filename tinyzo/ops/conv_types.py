"""Tensor-type rules of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (TFLM's Prepare and Eval switches).

TFLM (``conv.cc``, ``depthwise_conv.cc``, ``fully_connected.cc`` and their ``*_common.cc``) runs
these operators on three type combinations, and tinyzo on the same ones:

* int8 activations, int8 weights, int32 bias (the int8 path);
* int8 activations, INT4 weights (packed in the file, unpacked by ``UnpackDenseInt4IntoInt8``
  into an arena scratch buffer before every call, then the int8 kernel), int32 bias; TFLM's
  FULLY_CONNECTED refuses per-channel INT4 weights (``CalculateOpDataFullyConnected``);
* 16x8: int16 activations, int8 weights, int64 bias (int64 accumulator) or, for CONV_2D and
  FULLY_CONNECTED, an int32 bias (int32 accumulator; without a bias the options'
  ``quantized_bias_type`` decides). DEPTHWISE_CONV_2D reads the bias as int64 whatever its type.

Everything else (INT4 weights with int16 activations, hybrid or float models) TFLM refuses, and
so does tinyzo, with a one-line error. tinyzo also requires the 16x8 activations' zero points to
be 0 (TFLite's 16x8 scheme; TFLM's 16x8 CONV_2D ignores them while its FULLY_CONNECTED applies
them, so a non-zero one would give two semantics).
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.ops.int16 import require_int16
from tinyzo.spec.arith import INT64_MBQM_MAX_ABS_X, INT64_MBQM_MAX_SHIFT

INT16 = np.dtype(np.int16)
INT8 = np.dtype(np.int8)


def check_activations(op, x, y) -> np.dtype:
    """The activation dtype (int8 or int16) of input ``x`` and output ``y``, validated.

    int8 tensors as :meth:`PreparedOp.require_int8`; int16 tensors quantized per tensor with zero
    point 0 and a positive finite scale. The output must have the input's dtype.
    """
    if x.dtype == INT16:
        for t, role in ((x, "input"), (y, "output")):
            if t.dtype != INT16:
                op.fail(f"{role} {t.name!r} is {t.dtype}; with an int16 input the output must be int16 (16x8)")
            require_int16(op, t, role)
        return INT16
    if x.dtype != INT8:
        op.fail(f"input {x.name!r} is {x.dtype}; only int8 and int16 (16x8) activations are supported")
    op.require_int8(x, "input")
    op.require_int8(y, "output")
    return INT8


def check_int4_weights(op, w, act_dtype) -> bool:
    """True for INT4 weights; refuses them with int16 activations (TFLM has no 16x4 kernel).

    INT4 data are held unpacked (int8 in [-8, 7]); a value outside that range (e.g. written by a
    training update) cannot be stored back and is refused.
    """
    if not getattr(w, "int4", False):
        return False
    if act_dtype == INT16:
        op.fail("INT4 weights with int16 activations are not supported (TFLite Micro's 16x8 kernels take int8 "
                "weights; INT4 needs int8 activations)")
    if w.data is not None and w.data.size and (int(w.data.min()) < -8 or int(w.data.max()) > 7):
        op.fail(f"INT4 weights {w.name!r} hold values outside [-8, 7]")
    return True


def accumulator_bits(op, b, act_dtype, n_out: int, int32_allowed: bool = True) -> int:
    """The accumulator width TFLM's Eval picks (32 or 64), after checking the bias tensor.

    int8 activations: an int32 bias (or none), accumulator 32. int16: an int64 bias gives 64, an
    int32 bias 32 (if ``int32_allowed``: CONV_2D and FULLY_CONNECTED), no bias 32 when the options'
    ``quantized_bias_type`` is INT32, else 64.
    """
    if b is not None and (not b.is_constant or b.data.size != n_out):
        op.fail(f"bias must be a constant tensor of {n_out} values")
    if act_dtype == INT8:
        if b is not None and b.dtype != np.int32:
            op.fail(f"bias is {b.dtype}; int8 activations take an int32 bias")
        return 32
    if b is None:
        qbt = op.option("quantized_bias_type", "FLOAT32")
        return 32 if int32_allowed and qbt == "INT32" else 64
    if b.dtype == np.int64:
        return 64
    if b.dtype == np.int32 and int32_allowed:
        return 32
    want = "an int64 or int32" if int32_allowed else "an int64 (TFLite Micro reads it as int64)"
    op.fail(f"bias is {b.dtype}; int16 activations (16x8) take {want} bias")


def check_int64_requant(op, shift, w2_eff, bias) -> None:
    """Refuse a 16x8 layer outside the int64 ``MultiplyByQuantizedMultiplier`` contract.

    Its right shift ``15 - shift`` must be >= 1 (shift <= 14, an effective scale below 2**14), and its
    accumulator must stay in TFLite's documented ``|x| < 2**47`` for every int16 input:
    ``sum_k |w[o, k]| * 2**15 + |bias[o]|`` below 2**47 for each output channel ``o``
    (``w2_eff``: int64[O, K], the weights as the kernel multiplies them; ``bias``: int64[O]).
    """
    s = np.asarray(shift)
    if s.size and int(s.max()) > INT64_MBQM_MAX_SHIFT:
        c = int(np.argmax(s))
        raise ArithmeticContractError(
            f"operator {op.index} ({op.op.opcode}), channel {c}: effective scale 2**{int(s[c]) - 1} or more needs "
            f"a shift of {int(s[c])} > {INT64_MBQM_MAX_SHIFT}, which TFLite's int64 MultiplyByQuantizedMultiplier "
            "cannot apply; the scales are corrupt or extreme")
    bound = np.abs(w2_eff).astype(np.int64).sum(axis=1) * (1 << 15) + np.abs(bias.astype(np.int64))
    if bound.size and int(bound.max()) >= INT64_MBQM_MAX_ABS_X:
        c = int(np.argmax(bound))
        raise ArithmeticContractError(
            f"operator {op.index} ({op.op.opcode}), channel {c}: the int64 accumulator can reach {int(bound[c])} "
            ">= 2**47, outside TFLite's MultiplyByQuantizedMultiplier contract; the bias is corrupt or extreme")


def expand_groups(w: np.ndarray, groups: int) -> np.ndarray:
    """A grouped OHWI filter [O, KH, KW, C/G] as the dense [O, KH, KW, C] filter that computes the same sums.

    Output channel ``o`` (group ``o // (O / G)``) keeps its weights at input channels
    ``g * C/G ... (g + 1) * C/G - 1`` and gets zeros elsewhere: a zero weight adds
    ``0 * (x + input_offset) = 0`` to TFLM's accumulator, so the dense kernels give TFLM's grouped
    result exactly (computing ``G`` times the necessary multiply-accumulates).
    """
    if groups == 1:
        return w
    o, kh, kw, cg = w.shape
    per_group = o // groups
    dense = np.zeros((o, kh, kw, cg * groups), dtype=w.dtype)
    for g in range(groups):
        dense[g * per_group:(g + 1) * per_group, :, :, g * cg:(g + 1) * cg] = w[g * per_group:(g + 1) * per_group]
    return dense
