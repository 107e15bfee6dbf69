"""Jitted int8 binary element-wise kernels with broadcasting: ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU;
int16 (16x8) ADD, SUB, MUL (``<op>_s16``).

Each operator is one inlined element function ``<op>_func(x, y, p)`` (TFLM's
per-element lambda) and one kernel ``<op>_s8`` that runs it over a 6-D output
with broadcasting strides, the way TFLM's ``BroadcastBinaryOpSimple`` /
``BroadcastAdd6DSlow`` run the lambda (the non-broadcast case is the same loop
with contiguous strides; the result of each element does not depend on the
order). The int8 and int16 kernels share one loop (:func:`_broadcast`), compiled once per
operator and dtype with only that operator's element function inlined. ``p`` is one
:class:`BinaryParams`, TFLM's ``ArithmeticParams``
(field meanings: :mod:`tinyzo.spec.binary`). Equal, element by element, to
:mod:`tinyzo.spec.binary` (property-tested); outputs are written into
caller-provided arrays; nothing is validated here (:mod:`tinyzo.ops.binary` does).

The operator is chosen at compile time (a Numba ``overload`` on a constant operator code):
a loop that tested an operator code per element was tried and dropped (with the six element
functions inlined each kernel took ~40 s to compile, without inlining ADD no longer vectorized,
10x slower; measured here), and so was passing the element function as an argument (the kernels
could not be cached).
"""

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import overload

from tinyzo.kernels.arith import multiply_by_quantized_multiplier, wrap_int32

#: Field names of :class:`BinaryParams`, TFLM's ``ArithmeticParams`` (meanings: :mod:`tinyzo.spec.binary`).
BINARY_PARAM_FIELDS = (
    "input1_offset", "input1_multiplier", "input1_shift",
    "input2_offset", "input2_multiplier", "input2_shift",
    "left_shift", "output_multiplier", "output_shift", "output_multiplier_2", "output_shift_2",
    "output_offset", "act_min", "act_max", "rounding",
)  # fmt: skip

#: The parameter record of every binary kernel: an immutable tuple of int32 values (a C struct
#: passed by value). PRELU reads input 2 as alpha and ``output_multiplier``/``output_shift`` as
#: its ``output_multiplier_1``/``output_shift_1``. A namedtuple rather than a numpy record: Numba
#: keeps it in registers, while a record is read through a pointer that every int8 store may alias
#: (no hoisting, no vectorization: 60x slower measured here).
BinaryParams = namedtuple("BinaryParams", BINARY_PARAM_FIELDS)

def make_binary_params(**fields) -> BinaryParams:
    """A :class:`BinaryParams`; fields not given are 0. Values must fit int32."""
    values = dict.fromkeys(BINARY_PARAM_FIELDS, 0)
    for name, value in fields.items():
        if name not in values:
            raise KeyError(f"{name!r} is not a field of BinaryParams")
        v = int(value)
        if not -(2**31) <= v < 2**31:
            raise OverflowError(f"{name} = {v} does not fit int32")
        values[name] = v
    return BinaryParams(**values)


@njit(cache=True, inline="always")
def _clamp(v, p):
    if v < p.act_min:
        return np.int64(p.act_min)
    if v > p.act_max:
        return np.int64(p.act_max)
    return v


@njit(cache=True, inline="always")
def _output(raw, p):
    """``clamp(MBQM(raw, output_multiplier, output_shift) + output_offset, act_min, act_max)``."""
    v = multiply_by_quantized_multiplier(raw, p.output_multiplier, p.output_shift, p.rounding)
    return _clamp(v + np.int64(p.output_offset), p)


@njit(cache=True, inline="always")
def _scaled_input(x, offset, multiplier, shift, p):
    """ADD/SUB input rescaling: ``MBQM((offset + x) << left_shift, multiplier, shift)`` (int32 wrap on the shift)."""
    shifted = wrap_int32((np.int64(offset) + np.int64(x)) * (np.int64(1) << np.int64(p.left_shift)))
    return multiply_by_quantized_multiplier(shifted, multiplier, shift, p.rounding)


@njit(cache=True)
def scaled_inputs_s8(p, out):
    """ADD/SUB's rescaled inputs for every int8 value: ``out[k, u]`` (int32[2, 256]) is input ``k + 1``'s
    :func:`_scaled_input` of the int8 whose byte is ``u`` (``u`` for 0..127, ``u - 256`` after)."""
    for u in range(256):
        x = u if u < 128 else u - 256
        out[0, u] = _scaled_input(x, p.input1_offset, p.input1_multiplier, p.input1_shift, p)
        out[1, u] = _scaled_input(x, p.input2_offset, p.input2_multiplier, p.input2_shift, p)


@njit(cache=True, inline="always")
def add_func(x, y, p):
    """One output of TFLM's int8 ADD (``AddFunc``); see :func:`tinyzo.spec.binary.add_func`."""
    s1 = _scaled_input(x, p.input1_offset, p.input1_multiplier, p.input1_shift, p)
    s2 = _scaled_input(y, p.input2_offset, p.input2_multiplier, p.input2_shift, p)
    return _output(wrap_int32(s1 + s2), p)


@njit(cache=True, inline="always")
def sub_func(x, y, p):
    """One output of TFLM's int8 SUB (``SubElementwise``); see :func:`tinyzo.spec.binary.sub_func`."""
    s1 = _scaled_input(x, p.input1_offset, p.input1_multiplier, p.input1_shift, p)
    s2 = _scaled_input(y, p.input2_offset, p.input2_multiplier, p.input2_shift, p)
    return _output(wrap_int32(s1 - s2), p)


@njit(cache=True, inline="always")
def mul_func(x, y, p):
    """One output of TFLM's int8 MUL (``MulElementwise``); see :func:`tinyzo.spec.binary.mul_func`."""
    prod = (np.int64(p.input1_offset) + np.int64(x)) * (np.int64(p.input2_offset) + np.int64(y))
    return _output(prod, p)


@njit(cache=True, inline="always")
def prelu_func(x, alpha, p):
    """One output of TFLM's int8 PRELU (``BroadcastPrelu4DSlow``); see :func:`tinyzo.spec.binary.prelu_func`."""
    v = np.int64(p.input1_offset) + np.int64(x)
    if v >= 0:
        r = multiply_by_quantized_multiplier(v, p.output_multiplier, p.output_shift, p.rounding)
    else:
        va = v * (np.int64(p.input2_offset) + np.int64(alpha))
        r = multiply_by_quantized_multiplier(va, p.output_multiplier_2, p.output_shift_2, p.rounding)
    return _clamp(r + np.int64(p.output_offset), p)


@njit(cache=True, inline="always")
def _row_offsets(r, shape, strides1, strides2):
    """Element offsets into x1 and x2 of the first element of row ``r`` of a 6-D output of ``shape``.

    Row ``r`` is the output index ``(a, b, c, d, e, 0)`` in row-major order; an input's offset is
    ``sum(index[k] * strides[k])`` (TFLM's ``SubscriptToIndex`` with broadcast strides of 0).
    """
    o1 = np.int64(0)
    o2 = np.int64(0)
    rem = np.int64(r)
    for k in range(4, -1, -1):
        i = rem % shape[k]
        rem = rem // shape[k]
        o1 += i * strides1[k]
        o2 += i * strides2[k]
    return o1, o2


@njit(cache=True, inline="always")
def maximum_func(x, y, p):
    """One output of TFLM's MAXIMUM (``MaximumOp``): the larger raw value; ``p`` unused."""
    return max(x, y)


@njit(cache=True, inline="always")
def minimum_func(x, y, p):
    """One output of TFLM's MINIMUM (``MinimumOp``): the smaller raw value; ``p`` unused."""
    return min(x, y)


@njit(cache=True, inline="always")
def add32_func(x, y, p):
    """One output of TFLM's int32 ADD (``AddElementwise<int32_t>``/``WrappingAdd``): the sum modulo 2**32.

    TFLM's int32 ADD sets the activation range to the whole int32 range (its fused activation is
    not applied), so ``p`` is unused."""
    return wrap_int32(np.int64(x) + np.int64(y))


@njit(cache=True, inline="always")
def mul32_func(x, y, p):
    """One output of TFLM's int32 MUL (``reference_ops::Mul``): ``clamp(int32(x * y), act_min, act_max)``,
    the product modulo 2**32 (C's overflow, as the compilers do)."""
    v = wrap_int32(np.int64(x) * np.int64(y))
    return min(max(v, p.act_min), p.act_max)


@njit(cache=True, inline="always")
def div32_func(x, y, p):
    """One output of TFLM's int32 DIV (``reference_ops::BroadcastDivSlow``): ``clamp(x / y, act_min, act_max)``
    with C's division truncating toward zero. ``y == 0`` and ``INT32_MIN / -1`` are undefined in C (a
    crash on most CPUs): the operator refuses them before the kernel runs; here they give 0."""
    a = np.int64(x)
    b = np.int64(y)
    if b == 0 or (a == -2147483648 and b == -1):
        return 0
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return min(max(q, p.act_min), p.act_max)


#: Operator codes of :func:`_broadcast`, and their element functions.
ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU, ADD32, MUL32, DIV32 = range(9)
_ELEMENT_FUNCS = (add_func, sub_func, mul_func, maximum_func, minimum_func, prelu_func, add32_func, mul32_func,
                  div32_func)


def _loop(element):
    """The loop every binary kernel runs, for one element function: ``out[i] = element(x1[o1], x2[o2], p)``."""

    def loop(op, x1, strides1, x2, strides2, p, out):
        rows = out.reshape(-1, out.shape[5])
        st1, st2 = strides1[5], strides2[5]  # locals: an int8 store may alias the strides array otherwise
        for r in range(rows.shape[0]):
            o1, o2 = _row_offsets(r, out.shape, strides1, strides2)
            for f in range(rows.shape[1]):
                rows[r, f] = element(x1[o1 + f * st1], x2[o2 + f * st2], p)

    return loop


def _broadcast(op, x1, strides1, x2, strides2, p, out):
    """Operator ``op``'s element function over the 6-D output (arguments as the kernels below).

    This body runs without the JIT (``NUMBA_DISABLE_JIT=1``). In jitted code ``op`` is a
    compile-time constant and the overload below compiles :func:`_loop` of that operator's element
    function alone, inlined: one specialized loop per operator (and per int8/int16 array type),
    nothing decided per element.
    """
    _loop(_ELEMENT_FUNCS[op])(op, x1, strides1, x2, strides2, p, out)


@overload(_broadcast)
def _broadcast_jit(op, x1, strides1, x2, strides2, p, out):
    if not isinstance(op, types.IntegerLiteral):
        raise TypingError("the binary operator code must be a compile-time constant")
    return _loop(_ELEMENT_FUNCS[op.literal_value])


# Every kernel below has the same arguments:
#     x1, x2: int8[n1], int8[n2] flat C-contiguous inputs (PRELU: x2 is alpha);
#     strides1, strides2: int64[6] element strides into x1/x2 read as the 6-D output (0 = broadcast,
#         TFLM's NdArrayDescsForElementwiseBroadcast; tinyzo.ops.binary.broadcast_strides);
#     p: a BinaryParams; out: int8[d0, d1, d2, d3, d4, d5], C-contiguous, written in row-major order.
# The non-broadcast case is the same call with out reshaped to (1, 1, 1, 1, 1, n) and strides 1.


@njit(cache=True, nogil=True)
def add_s8(x1, strides1, x2, strides2, p, out):
    """Int8 ADD with broadcasting (TFLM ``reference_integer_ops::Add`` / ``BroadcastAdd6DSlow``).

    ``out = clamp(MBQM(MBQM((x1 + in1_off) << left_shift, m1, s1) + MBQM((x2 + in2_off) << left_shift, m2, s2),
    m_out, s_out) + out_off, act_min, act_max)``; ``left_shift`` 20, multipliers from
    ``QuantizeMultiplierSmallerThanOneExp`` (shifts <= 0); double (TFLM) or single rounding per ``p.rounding``.
    """
    _broadcast(ADD, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def sub_s8(x1, strides1, x2, strides2, p, out):
    """Int8 SUB with broadcasting (TFLM ``reference_ops::Sub`` / ``BroadcastQuantSubSlow``): as :func:`add_s8`
    with ``scaled1 - scaled2`` in place of the sum."""
    _broadcast(SUB, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def mul_s8(x1, strides1, x2, strides2, p, out):
    """Int8 MUL with broadcasting (TFLM ``reference_integer_ops::Mul`` / ``BroadcastMul6DSlow``).

    ``out = clamp(MBQM((x1 + in1_off) * (x2 + in2_off), m_out, s_out) + out_off, act_min, act_max)``,
    ``(m_out, s_out) = QuantizeMultiplier(s1 * s2 / s_out)`` (shift may be > 0).
    """
    _broadcast(MUL, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def maximum_s8(x1, strides1, x2, strides2, p, out):
    """Int8 MAXIMUM with broadcasting (TFLM ``MaximumMinimumBroadcastSlow``, ``MaximumOp``), ``p`` unused."""
    _broadcast(MAXIMUM, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def minimum_s8(x1, strides1, x2, strides2, p, out):
    """Int8 MINIMUM with broadcasting (TFLM ``MaximumMinimumBroadcastSlow``, ``MinimumOp``), ``p`` unused."""
    _broadcast(MINIMUM, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def prelu_s8(x1, strides1, x2, strides2, p, out):
    """Int8 PRELU with a broadcast alpha ``x2`` (TFLM ``reference_ops::BroadcastPrelu4DSlow``).

    ``v = x1 + in1_off``; ``out = clamp((v >= 0 ? MBQM(v, m1, s1) : MBQM(v * (x2 + alpha_off), m2, s2))
    + out_off, -128, 127)`` with ``m1 = s_in / s_out``, ``m2 = s_in * s_alpha / s_out`` from ``QuantizeMultiplier``.
    """
    _broadcast(PRELU, x1, strides1, x2, strides2, p, out)


# int16 (16x8) kernels: TFLM runs the same element functions on int16 (``BroadcastAdd6DSlow<int16_t>``,
# ``AddElementwise<int16_t>`` via ``AddGeneralParamScale``, ``BroadcastQuantSubSlow<int16_t>``,
# ``SubElementwise<int16_t>``, ``BroadcastMul6DSlow<int16_t>``, ``MulElementwise<int16_t>``) with
# ``left_shift`` 15 for ADD/SUB, zero points 0 and the int16 clamp in ``p``. Same arguments as above,
# with int16 arrays.


@njit(cache=True, nogil=True)
def add_s16(x1, strides1, x2, strides2, p, out):
    """Int16 ADD with broadcasting (TFLM's general int16 path, never the power-of-two one): :func:`add_s8`'s
    formula with ``left_shift`` 15; ``(x + 0) * 2**15`` fits int32 for every int16 ``x``."""
    _broadcast(ADD, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def sub_s16(x1, strides1, x2, strides2, p, out):
    """Int16 SUB with broadcasting: :func:`sub_s8`'s formula with ``left_shift`` 15."""
    _broadcast(SUB, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def mul_s16(x1, strides1, x2, strides2, p, out):
    """Int16 MUL with broadcasting: :func:`mul_s8`'s formula; the product of two int16 values fits int32 (<= 2**30)."""
    _broadcast(MUL, x1, strides1, x2, strides2, p, out)


# int32 (unquantized) kernels: x1, x2, out int32; p's act_min/act_max the activation range.
@njit(cache=True, nogil=True)
def add_s32(x1, strides1, x2, strides2, p, out):
    """Int32 ADD with broadcasting (TFLM ``add.cc``, int32 case): the wrapped sum, no activation."""
    _broadcast(ADD32, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def mul_s32(x1, strides1, x2, strides2, p, out):
    """Int32 MUL with broadcasting (TFLM ``mul_common.cc``, int32 case): the wrapped product, clamped."""
    _broadcast(MUL32, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def div_s32(x1, strides1, x2, strides2, p, out):
    """Int32 DIV with broadcasting (TFLM ``div.cc``, int32 case): the truncated quotient, clamped."""
    _broadcast(DIV32, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def maximum_s32(x1, strides1, x2, strides2, p, out):
    """Int32 MAXIMUM with broadcasting (TFLM ``maximum_minimum.cc``, int32 case)."""
    _broadcast(MAXIMUM, x1, strides1, x2, strides2, p, out)


@njit(cache=True, nogil=True)
def minimum_s32(x1, strides1, x2, strides2, p, out):
    """Int32 MINIMUM with broadcasting (TFLM ``maximum_minimum.cc``, int32 case)."""
    _broadcast(MINIMUM, x1, strides1, x2, strides2, p, out)


# A same-shape int8 operation is a function of the pair (x1, x2) alone: 65536 possible inputs. The
# operator tabulates its own kernel once (every pair, the kernel's own arithmetic, so the table is the
# kernel bit for bit) and then looks every output up: one load per element instead of three
# requantizations for ADD (about 5x faster on the 196608-element residual ADD of the digits model).


@njit(cache=True, nogil=True)
def lookup_s8(x1, x2, table, out):
    """``out[i] = table[(x1[i] + 128) * 256 + (x2[i] + 128)]`` (a tabulated int8 binary operator).

    ``x1``, ``x2``: int8[n]; ``table``: int8[65536] (:func:`binary_pairs_s8` run through a kernel);
    ``out``: int8[n], written. All C-contiguous and 1-D.
    """
    for i in range(out.shape[0]):
        out[i] = table[((np.int32(x1[i]) + np.int32(128)) << np.int32(8)) | (np.int32(x2[i]) + np.int32(128))]


def binary_pairs_s8():
    """``(x1, x2)``: int8[65536] each, every pair of int8 values in :func:`lookup_s8`'s table order."""
    v = np.arange(-128, 128, dtype=np.int8)
    return np.repeat(v, 256), np.tile(v, 256)
