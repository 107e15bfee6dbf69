"""Pure-Python specification of the int8 (and int16: ADD, SUB, MUL) binary element-wise operators with broadcasting.

ADD, SUB, MUL, MAXIMUM, MINIMUM and PRELU, each written as the per-element
function of TFLite Micro's reference kernel over Python ``int`` (C int32
semantics spelled out), plus one broadcasting loop (:func:`broadcast_binary_s8`)
that applies any of them as TFLM's ``BroadcastBinaryOpSimple`` /
``BroadcastAdd6DSlow`` do. The jitted kernels in :mod:`tinyzo.kernels.binary`
are property-tested to be equal.

Every element function takes ``(x, y, p)``: two int8 values and a mapping ``p``
(a dict) with the fields of TFLM's ``ArithmeticParams`` (the names of
:data:`tinyzo.kernels.binary.BINARY_PARAM_FIELDS`):

* ``input1_offset``, ``input2_offset``: minus the input zero points (for
  PRELU, input 2 is alpha);
* ``input1_multiplier``/``input1_shift``, ``input2_multiplier``/``input2_shift``,
  ``left_shift`` (ADD, SUB): the input rescaling;
* ``output_multiplier``/``output_shift``: the output requantization (PRELU:
  TFLM's ``output_multiplier_1``, the ``x >= 0`` branch);
  ``output_multiplier_2``/``output_shift_2``: PRELU's ``x * alpha`` branch;
* ``output_offset``: the output zero point; ``act_min``/``act_max``: the clamp;
* ``rounding``: 0 = double rounding (TFLM's default), 1 = single
  (``TFLITE_SINGLE_ROUNDING``), as :func:`tinyzo.quant.rounding_code`.

int16 (16x8): TFLM runs the same element functions on int16 values for ADD, SUB and MUL
(``left_shift`` 15 instead of 20 for ADD and SUB, zero points 0, the int16 clamp);
:func:`broadcast_binary_s16` applies them.
"""

from __future__ import annotations

import itertools

import numpy as np

from tinyzo.spec.arith import ROUNDING_MODES, multiply_by_quantized_multiplier, wrap_int32

__all__ = [
    "add_func",
    "broadcast_binary_s8",
    "broadcast_binary_s16",
    "maximum_func",
    "minimum_func",
    "mul_func",
    "prelu_func",
    "sub_func",
]


def _mbqm(x: int, multiplier, shift, p) -> int:
    """``MultiplyByQuantizedMultiplier`` with the rounding mode named by ``p["rounding"]``."""
    return multiply_by_quantized_multiplier(x, int(multiplier), int(shift), ROUNDING_MODES[int(p["rounding"])])


def _clamp(v: int, p) -> int:
    return min(int(p["act_max"]), max(int(p["act_min"]), v))


def _scaled_inputs(x, y, p) -> tuple[int, int]:
    """ADD/SUB's input rescaling: ``MBQM((offset + x) << left_shift, multiplier, shift)`` for each input.

    The left shift is an int32 multiplication by ``1 << left_shift`` (wrapping as C does);
    the shifts are <= 0 (``MultiplyByQuantizedMultiplierSmallerThanOneExp``).
    """
    ls = 1 << int(p["left_shift"])
    v1 = wrap_int32((int(p["input1_offset"]) + int(x)) * ls)
    v2 = wrap_int32((int(p["input2_offset"]) + int(y)) * ls)
    s1 = _mbqm(v1, p["input1_multiplier"], p["input1_shift"], p)
    s2 = _mbqm(v2, p["input2_multiplier"], p["input2_shift"], p)
    return s1, s2


def _output(raw: int, p) -> int:
    """``clamp(MBQM(raw, output_multiplier, output_shift) + output_offset, act_min, act_max)``."""
    return _clamp(_mbqm(raw, p["output_multiplier"], p["output_shift"], p) + int(p["output_offset"]), p)


def add_func(x, y, p) -> int:
    """One output of TFLM's int8 ADD (``reference_integer_ops::AddFunc``).

    Both inputs are offset, shifted left by ``left_shift`` (20 for int8) and
    scaled to a common scale; their int32 sum is requantized to the output.
    """
    s1, s2 = _scaled_inputs(x, y, p)
    return _output(wrap_int32(s1 + s2), p)


def sub_func(x, y, p) -> int:
    """One output of TFLM's int8 SUB (``reference_ops::SubElementwise`` / ``BroadcastQuantSubSlow``).

    As :func:`add_func` with the int32 difference ``scaled1 - scaled2`` in place of the sum.
    """
    s1, s2 = _scaled_inputs(x, y, p)
    return _output(wrap_int32(s1 - s2), p)


def mul_func(x, y, p) -> int:
    """One output of TFLM's int8 MUL (``reference_integer_ops::MulElementwise``).

    ``clamp(MBQM((x + input1_offset) * (y + input2_offset), output_multiplier, output_shift)
    + output_offset, act_min, act_max)``; the product fits int32 (|.| <= 256 * 256); the
    multiplier comes from ``QuantizeMultiplier(s1 * s2 / s_out)`` and its shift may be positive.
    """
    prod = (int(p["input1_offset"]) + int(x)) * (int(p["input2_offset"]) + int(y))
    return _output(prod, p)


def maximum_func(x, y, p) -> int:
    """TFLM MAXIMUM on int8 (``MaximumOp``): the larger raw value (no requantization)."""
    return max(int(x), int(y))


def minimum_func(x, y, p) -> int:
    """TFLM MINIMUM on int8 (``MinimumOp``): the smaller raw value (no requantization)."""
    return min(int(x), int(y))


def prelu_func(x, alpha, p) -> int:
    """One output of TFLM's int8 PRELU (``reference_ops::BroadcastPrelu4DSlow``).

    ``v = x + input1_offset``; ``v >= 0``: ``MBQM(v, output_multiplier, output_shift)``
    (TFLM's ``output_multiplier_1`` = ``s_in / s_out``); else
    ``MBQM(v * (alpha + input2_offset), output_multiplier_2, output_shift_2)``
    (``s_in * s_alpha / s_out``); then ``+ output_offset`` and the clamp (the int8 range).
    """
    v = int(p["input1_offset"]) + int(x)
    if v >= 0:
        r = _mbqm(v, p["output_multiplier"], p["output_shift"], p)
    else:
        r = _mbqm(v * (int(p["input2_offset"]) + int(alpha)), p["output_multiplier_2"], p["output_shift_2"], p)
    return _clamp(r + int(p["output_offset"]), p)


def broadcast_binary_s8(func, x1, x2, out_shape, p) -> np.ndarray:
    """Apply an element function to two int8 arrays with numpy-style broadcasting.

    ``x1``, ``x2``: int8 arrays whose shapes broadcast to ``out_shape`` (the
    shorter one is extended with leading 1s; a dimension of size 1 is repeated),
    ``func`` one of the ``*_func`` above, ``p`` its parameters. Returns
    int8[out_shape]. A loop over every output index, reading each input at the
    index clamped to 0 on its size-1 dimensions (TFLM's ``NdArrayDesc`` strides of 0).
    """
    return _broadcast_binary(func, x1, x2, out_shape, p, np.int8)


def broadcast_binary_s16(func, x1, x2, out_shape, p) -> np.ndarray:
    """:func:`broadcast_binary_s8` on int16 arrays (ADD, SUB, MUL): returns int16[out_shape]."""
    return _broadcast_binary(func, x1, x2, out_shape, p, np.int16)


def _broadcast_binary(func, x1, x2, out_shape, p, dtype) -> np.ndarray:
    out_shape = tuple(int(d) for d in out_shape)
    r = len(out_shape)
    a = np.asarray(x1).reshape((1,) * (r - np.ndim(x1)) + np.shape(x1))
    b = np.asarray(x2).reshape((1,) * (r - np.ndim(x2)) + np.shape(x2))
    out = np.zeros(out_shape, dtype=dtype)
    for idx in itertools.product(*(range(d) for d in out_shape)):
        ia = tuple(i if a.shape[k] > 1 else 0 for k, i in enumerate(idx))
        ib = tuple(i if b.shape[k] > 1 else 0 for k, i in enumerate(idx))
        out[idx] = func(int(a[ia]), int(b[ib]), p)
    return out
