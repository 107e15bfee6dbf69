"""Binary element-wise operators with broadcasting, prepared and run as TFLite Micro does.

* ADD (``micro/kernels/add.cc``, ``add_common.cc`` ``CalculateOpDataAdd``): TFLite's
  general rescaling (``left_shift = 20``; multipliers from
  ``QuantizeMultiplierSmallerThanOneExp`` of double-precision ratios), fused activation.
* SUB (``sub.cc``, ``sub_common.cc`` ``CalculateOpDataSub``): ADD's parameters
  (:func:`add_params`, see there for float32 vs double) and ADD's input rescaling, with
  the difference of the scaled inputs in place of their sum.
* MUL (``mul.cc``, ``mul_common.cc`` ``CalculateOpDataMul``): one multiplier
  ``QuantizeMultiplier(s1 * s2 / s_out)`` (double), fused activation.
* MAXIMUM, MINIMUM (``maximum_minimum.cc``): raw int8 max/min, no Prepare in TFLM;
  inputs and output must share scale and zero point here (the TFLite converter
  guarantees it; TFLM would silently reinterpret otherwise).
* PRELU (``prelu.cc``, ``prelu_common.cc`` ``CalculatePreluParams``): two multipliers
  ``s_in / s_out`` (x >= 0) and ``s_in * s_alpha / s_out`` (x < 0), double precision;
  alpha (input 2) broadcasts, constant or not; output clamped to the int8 range.

int16 (16x8: int16 inputs and output, zero points 0; dtype dispatch in prepare, the int8 paths
are unchanged): ADD, SUB, MUL. TFLM's int16 ADD always takes the general path
(``AddGeneralParamScale``/``BroadcastAdd6DSlow``: ``reference_ops::Add(..., pot_scale = false)``),
never the power-of-two one (``pot_scale_int16`` is ignored, as in TFLM): :func:`add_params` with
``left_shift = 15``, so that ``65535 << 15`` still fits int32. SUB: the same (``sub_common.cc``).
MUL: :func:`mul_params` unchanged; the product of two int16 values fits int32. MAXIMUM, MINIMUM
and PRELU stay int8-only.

Broadcasting as TFLM's ``BroadcastBinaryOpSimple``/``BroadcastAdd6DSlow`` (numpy rules),
up to rank 6 here. Either operand may be a constant, shared by every sample of the batch
(its dimension 0, if it has the output's rank, must be 1). Run-time arrays carry a leading
batch dimension N in place of the file's dimension 0; every sample gives what TFLM gives
for it alone. The kernels are :mod:`tinyzo.kernels.binary`, the definitions :mod:`tinyzo.spec.binary`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError, InputError
from tinyzo.kernels.binary import (
    add_s8,
    add_s16,
    add_s32,
    binary_pairs_s8,
    div_s32,
    lookup_s8,
    make_binary_params,
    maximum_s8,
    maximum_s32,
    minimum_s8,
    minimum_s32,
    mul_s8,
    mul_s16,
    mul_s32,
    prelu_s8,
    sub_s8,
    sub_s16,
)
from tinyzo.kernels.binary_simd import (
    add_sub_s8_lut,
    add_sub_s8_simd,
    simd_params,
    simd_tables,
    vbmi_available,
)
from tinyzo.kernels.conv_vnni import vnni_available
from tinyzo.ops.base import PreparedOp, register
from tinyzo.ops.int16 import INT16, require_int8_or_int16, require_int16

INT32 = np.dtype(np.int32)
#: an int8 operator on two same-shape run-time inputs looks its outputs up in a table of every input pair
#: (:meth:`_BinaryOp.table`) once the elements it has computed directly, this call's included, exceed
#: the table's entries: building the table costs one call of that size, so an operator called again
#: and again (inference, ZO training) pays at most twice the direct cost before every call becomes a
#: lookup (about 1.5 ns per element against 10-11 ns computed directly for ADD, measured here)
TABLE_MIN_ELEMENTS = 65536
from tinyzo.quant import quantize_multiplier, quantize_multiplier_smaller_than_one_exp, rounding_code

__all__ = [
    "Add",
    "Div",
    "Maximum",
    "Minimum",
    "Mul",
    "Prelu",
    "Sub",
    "add_params",
    "broadcast_strides",
    "fuse_broadcast_dims",
    "mul_params",
    "prelu_params",
]

#: TFLM's ``left_shift`` for int8 ADD and SUB (15 for int16).
ADD_LEFT_SHIFT_INT8 = 20
#: TFLM's ``left_shift`` for int16 ADD and SUB.
ADD_LEFT_SHIFT_INT16 = 15
#: TFLM's ADD broadcasting handles up to 6 dimensions (``BroadcastBinaryOpSimple`` up to 8); tinyzo 6 for all.
MAX_BROADCAST_RANK = 6


def add_params(s1: float, z1: int, s2: float, z2: int, s_out: float, z_out: int, rounding: str = "double",
               dtype=np.int8) -> dict:
    """TFLM ``CalculateOpDataAdd`` / ``CalculateOpDataSub``: the integer parameters of ADD and SUB.

    ``twice_max = 2 * max(s1, s2)`` (float32 scales widened to double);
    input k multiplier ``s_k / twice_max``; output multiplier
    ``twice_max / (2**left_shift * s_out)``; each through
    ``QuantizeMultiplierSmallerThanOneExp``. ``left_shift`` is 20 for int8 and 15 for int16 (``dtype``).

    SUB: the tflite-micro source read (``sub_common.cc`` at 90b983c, Aug 2026) forms these ratios
    in float32, but the TFLM interpreter used as the oracle (tflite-micro 0.dev20261023) computes
    them in double, as ADD: on scales where the two differ, TFLM's outputs match double
    (tests/test_binary.py). tinyzo follows the oracle.

    Returns a dict with the field names of :data:`tinyzo.kernels.binary.BINARY_PARAM_FIELDS`
    (without ``act_min``/``act_max``/``rounding``).

    Raises:
        ArithmeticContractError: if the output multiplier is not below 1
            (TFLite's ``TFLITE_CHECK_LT`` aborts), i.e. ``s_out <= max(s1, s2) / 2**(left_shift - 1)``.
    """
    left_shift = ADD_LEFT_SHIFT_INT16 if np.dtype(dtype) == INT16 else ADD_LEFT_SHIFT_INT8
    f1, f2, fo = float(np.float32(s1)), float(np.float32(s2)), float(np.float32(s_out))
    twice_max_input_scale = 2.0 * max(f1, f2)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(f1 / twice_max_input_scale, rounding)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(f2 / twice_max_input_scale, rounding)
    real_out = twice_max_input_scale / (float(1 << left_shift) * fo)
    mo, sho = quantize_multiplier_smaller_than_one_exp(real_out, rounding)
    return {
        "input1_offset": -int(z1),
        "input1_multiplier": m1,
        "input1_shift": sh1,
        "input2_offset": -int(z2),
        "input2_multiplier": m2,
        "input2_shift": sh2,
        "left_shift": left_shift,
        "output_multiplier": mo,
        "output_shift": sho,
        "output_offset": int(z_out),
    }


def mul_params(s1: float, z1: int, s2: float, z2: int, s_out: float, z_out: int, rounding: str = "double") -> dict:
    """TFLM ``CalculateOpDataMul`` for int8: ``QuantizeMultiplier(double(s1) * double(s2) / double(s_out))``.

    Returns a dict of :data:`~tinyzo.kernels.binary.BINARY_PARAM_FIELDS` fields (offsets, output
    multiplier and shift; the shift may be positive, saturated at 30 in single rounding).
    """
    real = float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(s_out))
    m, sh = quantize_multiplier(real, rounding)
    return {"input1_offset": -int(z1), "input2_offset": -int(z2), "output_multiplier": m, "output_shift": sh,
            "output_offset": int(z_out)}


def prelu_params(s_in: float, z_in: int, s_alpha: float, z_alpha: int, s_out: float, z_out: int,
                 rounding: str = "double") -> dict:
    """TFLM ``CalculatePreluParams`` for int8: two ``QuantizeMultiplier`` of double ratios.

    ``output_multiplier/_shift`` = ``s_in / s_out`` (TFLM's ``output_multiplier_1``, x >= 0);
    ``output_multiplier_2/_shift_2`` = ``s_in * s_alpha / s_out`` (x < 0). Offsets: ``-z_in``
    (input 1), ``-z_alpha`` (input 2), ``z_out``. Returns a dict of
    :data:`~tinyzo.kernels.binary.BINARY_PARAM_FIELDS` fields.
    """
    fi, fa, fo = float(np.float32(s_in)), float(np.float32(s_alpha)), float(np.float32(s_out))
    m1, sh1 = quantize_multiplier(fi / fo, rounding)
    m2, sh2 = quantize_multiplier(fi * fa / fo, rounding)
    return {"input1_offset": -int(z_in), "input2_offset": -int(z_alpha), "output_multiplier": m1,
            "output_shift": sh1, "output_multiplier_2": m2, "output_shift_2": sh2, "output_offset": int(z_out)}


def broadcast_strides(shape, out_shape) -> np.ndarray:
    """Element strides of a C-contiguous ``shape`` read as ``out_shape`` (TFLM ``NdArrayDesc``).

    ``shape`` is extended with leading 1s to ``len(out_shape)``; the stride is 0
    on each dimension where it is 1 and the output is larger. Returns int64[len(out_shape)].
    """
    r = len(out_shape)
    ext = (1,) * (r - len(shape)) + tuple(shape)
    strides = np.zeros(r, dtype=np.int64)
    step = 1
    for d in range(r - 1, -1, -1):
        strides[d] = 0 if (ext[d] == 1 and out_shape[d] != 1) else step
        step *= ext[d]
    return strides


def fuse_broadcast_dims(shape1, shape2, out_shape) -> tuple:
    """Merge adjacent dimensions along which both inputs broadcast the same way (TFLM ``CanFuseLoops``).

    ``shape1``, ``shape2`` broadcast to ``out_shape`` (numpy rules, already checked). Dimensions of
    output size 1 are dropped; neighbouring dimensions where each input is either full-size on both
    or size 1 on both become one. Returns ``(fused1, fused2, fused_out)``, tuples of equal length
    (1..len(out_shape)) describing the same element order: a same-shape pair becomes one flat run.
    """
    r = len(out_shape)
    e1 = (1,) * (r - len(shape1)) + tuple(shape1)
    e2 = (1,) * (r - len(shape2)) + tuple(shape2)
    groups, prev = [], None  # [out, in1, in2] sizes, from the last dimension backwards
    for d in range(r - 1, -1, -1):
        o = int(out_shape[d])
        if o == 1:
            continue
        status = (e1[d] == o, e2[d] == o)
        if groups and status == prev:
            groups[-1] = [groups[-1][0] * o, groups[-1][1] * int(e1[d]), groups[-1][2] * int(e2[d])]
        else:
            groups.append([o, int(e1[d]), int(e2[d])])
            prev = status
    groups = groups[::-1] or [[1, 1, 1]]
    return tuple(g[1] for g in groups), tuple(g[2] for g in groups), tuple(g[0] for g in groups)


def _same_quant(a, b) -> bool:
    return np.float32(a.quant.scale[0]) == np.float32(b.quant.scale[0]) and int(a.quant.zero_point[0]) == int(
        b.quant.zero_point[0])


class _BinaryOp(PreparedOp):
    """Shared prepare and compute of the broadcasting binary operators.

    Subclasses set ``kernel`` (a :mod:`tinyzo.kernels.binary` kernel), ``kernel_s16`` (the int16
    kernel, None for an int8-only operator), ``fused_activation`` (whether the op has a
    ``fused_activation_function`` option) and ``quant_fn`` (the op's prepare-time integer
    parameters from the per-tensor scales and zero points ``(s1, zp1, s2, zp2, s_out, zp_out,
    rounding)``, as a dict of :data:`~tinyzo.kernels.binary.BINARY_PARAM_FIELDS` fields), or
    override :meth:`quant_params` (``self.dtype`` tells int8 from int16).
    """

    #: 0 (ADD) or 1 (SUB) for the 16-lane int8 kernel of :mod:`tinyzo.kernels.binary_simd`; None: not offered
    simd_sub = None
    #: the vector kernels' parameters and tables (made by the int8 prepare where they apply)
    _simd = None
    _simd_tables = None

    kernel = None
    kernel_s16 = None
    kernel_s32 = None
    fused_activation = True
    quant_fn = None
    #: int32: apply the fused activation (TFLM's int32 ADD does not: it clamps to the int32 range)
    int32_activation = True

    def quant_params(self, a, b, out) -> dict:
        """The kernel parameters of this operator for inputs ``a``, ``b`` and output ``out``."""
        return type(self).quant_fn(a.quant.scale[0], a.quant.zero_point[0], b.quant.scale[0], b.quant.zero_point[0],
                                   out.quant.scale[0], out.quant.zero_point[0], self.model.rounding)

    def prepare(self):
        a, b, out = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        if a.dtype == INT32 and type(self).kernel_s32 is not None:
            return self._prepare_int32(a, b, out)
        self.dtype = require_int8_or_int16(self, a, "input 1")
        if self.dtype == INT16:
            if type(self).kernel_s16 is None:
                self.fail("int16 is not supported here (int8 only)")
            require_int16(self, b, "input 2")
            require_int16(self, out, "output")
        else:
            self.require_int8(b, "input 2")
            self.require_int8(out, "output")
        self._check_shapes(a, b, out)
        try:
            fields = self.quant_params(a, b, out)
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")
        if self.fused_activation:
            self.act_min, self.act_max = self.activation(out)
        else:
            self.act_min, self.act_max = -128, 127
        self._kernel = type(self).kernel_s16 if self.dtype == INT16 else type(self).kernel
        self.rounding = rounding_code(self.model.rounding)
        self.params = fields
        self.kernel_params = make_binary_params(**fields, act_min=self.act_min, act_max=self.act_max,
                                                rounding=self.rounding)
        self._a, self._b, self._out = a, b, out
        self._consts = {k: np.ascontiguousarray(t.data, dtype=self.dtype) for k, t in enumerate((a, b))
                        if t.is_constant}
        self._table = None  # int8: every input pair's output, tabulated once calls add up (table())
        self._direct = 0  # elements computed directly so far (TABLE_MIN_ELEMENTS)
        self._simd = self.simd_params()  # int8 ADD/SUB on AVX-512: computed in vector registers instead
        # and with AVX512-VBMI, each input's rescaling looked up in a 256-entry table (binary_simd.add_sub_s8_lut)
        self._simd_tables = simd_tables(self.kernel_params) if self._simd is not None and vbmi_available() else None

    def _prepare_int32(self, a, b, out):
        """The unquantized int32 path (TFLM's ``kTfLiteInt32`` cases): values combined as C ``int32_t``;
        scales and zero points are not read. The fused activation clamps to TFLM's
        ``CalculateActivationRange<int32_t>`` bounds (NONE: the int32 range, RELU: [0, max], RELU6:
        [0, 6], RELU_N1_TO_1: [-1, 1]), except for ADD, whose int32 case ignores it."""
        self.dtype = INT32
        for t, role in ((b, "input 2"), (out, "output")):
            if t.dtype != INT32:
                self.fail(f"{role} {t.name!r} is {t.dtype}; with an int32 input 1 every tensor must be int32")
        self._check_shapes(a, b, out)
        act = self.option("fused_activation_function", "NONE") if self.fused_activation else "NONE"
        if not isinstance(act, str):
            self.bad_option("fused_activation_function", act, "an activation name")
        ranges = {"NONE": (-(2**31), 2**31 - 1), "RELU": (0, 2**31 - 1), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}
        if act not in ranges:
            self.fail(f"fused activation {act} is not supported")
        self.act_min, self.act_max = ranges[act] if type(self).int32_activation else ranges["NONE"]
        self._kernel = type(self).kernel_s32
        self.rounding = rounding_code(self.model.rounding)
        self.params = {}
        self.kernel_params = make_binary_params(act_min=self.act_min, act_max=self.act_max, rounding=self.rounding)
        self._a, self._b, self._out = a, b, out
        self._consts = {k: np.ascontiguousarray(t.data, dtype=INT32) for k, t in enumerate((a, b)) if t.is_constant}

    def _check_shapes(self, a, b, out):
        """Ranks and broadcasting of the two inputs and the output (constants shared by every sample)."""
        rank = len(out.shape)
        if rank < 1 or rank > MAX_BROADCAST_RANK:
            self.fail(f"output rank {rank} is not supported (1..{MAX_BROADCAST_RANK})")
        for t, role in ((a, "input 1"), (b, "input 2")):
            if len(t.shape) > rank:
                self.fail(f"{role} {t.name!r} has rank {len(t.shape)} > output rank {rank}")
            if t.is_constant:
                if len(t.shape) == rank and t.shape[0] != 1:
                    self.fail(f"constant {role} {t.name!r} has {t.shape[0]} in the batch dimension; "
                              "only 1 is supported")
            elif len(t.shape) != rank:
                self.fail(f"run-time {role} {t.name!r} must have the output's rank {rank} (leading batch dimension)")
        try:
            expected = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        except ValueError:
            self.fail(f"input shapes {a.shape} and {b.shape} do not broadcast")
        if tuple(expected[1:]) != tuple(out.shape[1:]) or len(expected) != rank:
            self.fail(f"output shape {out.shape} differs from the broadcast input shape {tuple(expected)}")

    def _operands(self, inputs):
        it = iter(inputs)
        n = None
        arrays = []
        for k in range(2):
            if k in self._consts:
                arrays.append(self._consts[k])
            else:
                x = np.ascontiguousarray(next(it), dtype=self.dtype)
                n = x.shape[0]
                arrays.append(x)
        return arrays, n

    def simd_params(self):
        """The parameter vector of the 16-lane int8 kernel (:mod:`tinyzo.kernels.binary_simd`) for same-shape
        inputs, or None where it does not apply (operators other than ADD and SUB, int16, a CPU without
        AVX-512 and VNNI, ``NUMBA_DISABLE_JIT``)."""
        if type(self).simd_sub is None or self.dtype != np.int8 or not vnni_available():
            return None
        return simd_params(self.kernel_params)

    def table(self) -> np.ndarray:
        """int8[65536]: this int8 operator's output for every input pair (:func:`tinyzo.kernels.binary.lookup_s8`'s
        order), computed once by the operator's own kernel."""
        if self._table is None:
            x1, x2 = binary_pairs_s8()
            table = np.empty(x1.size, np.int8)
            ext = (1,) * (MAX_BROADCAST_RANK - 1) + (x1.size,)
            st = broadcast_strides(ext, ext)
            self._kernel(x1, st, x2, st, self.kernel_params, table.reshape(ext))
            self._table = table
        return self._table

    def compute(self, *inputs):
        """int8[N, ...] (+ int8[N, ...]) -> int8[N, out_shape[1:]] (a constant operand has no batch); int16 alike."""
        (x1, x2), n = self._operands(inputs)
        out_shape = (n,) + tuple(self._out.shape[1:])
        out = np.empty(out_shape, dtype=self.dtype)
        if self.dtype == np.int8 and x1.shape == x2.shape == out_shape:
            if self._simd_tables is not None:  # ADD/SUB with the inputs' rescaling looked up (bit-identical)
                add_sub_s8_lut(x1.reshape(-1), x2.reshape(-1), self._simd, self._simd_tables, type(self).simd_sub,
                               out.reshape(-1))
                return out
            if self._simd is not None:  # ADD/SUB in vector registers (bit-identical)
                add_sub_s8_simd(x1.reshape(-1), x2.reshape(-1), self._simd, type(self).simd_sub, out.reshape(-1))
                return out
            if self._table is not None or self._direct + out.size > TABLE_MIN_ELEMENTS:
                # same shapes, many elements over the calls: look the outputs up in the table (bit-identical)
                lookup_s8(x1.reshape(-1), x2.reshape(-1), self.table(), out.reshape(-1))
                return out
            self._direct += out.size  # threads may race here: a lost count only delays the table
        f1, f2, fo = fuse_broadcast_dims(x1.shape, x2.shape, out_shape)
        ext = (1,) * (MAX_BROADCAST_RANK - len(fo)) + fo
        s1, s2 = broadcast_strides(f1, ext), broadcast_strides(f2, ext)
        self._kernel(x1.reshape(-1), s1, x2.reshape(-1), s2, self.kernel_params, out.reshape(ext))
        return out


class _AddSub(_BinaryOp):
    """ADD and SUB: :func:`add_params` of the operand dtype (``left_shift`` 20 for int8, 15 for int16)."""

    def quant_params(self, a, b, out):
        return add_params(a.quant.scale[0], a.quant.zero_point[0], b.quant.scale[0], b.quant.zero_point[0],
                          out.quant.scale[0], out.quant.zero_point[0], self.model.rounding, self.dtype)


@register("ADD")
class Add(_AddSub):
    """TFLite ``ADD`` on int8 with rescaling, fused activation and broadcasting (TFLM ``add.cc``).

    Options: ``fused_activation_function`` (NONE, RELU, RELU6, RELU_N1_TO_1); ``pot_scale_int16`` is
    ignored (TFLM's int16 ADD always takes the general path). int16: ``left_shift`` 15.
    """

    kernel = add_s8
    kernel_s16 = add_s16
    kernel_s32 = add_s32
    int32_activation = False
    simd_sub = 0


@register("SUB")
class Sub(_AddSub):
    """TFLite ``SUB`` on int8 (input 1 - input 2): ADD's rescaling, fused activation, broadcasting (TFLM ``sub.cc``).

    Options: ``fused_activation_function``; ``pot_scale_int16`` is ignored (TFLM's int16 SUB takes the general
    path too). int16: ``left_shift`` 15.
    """

    kernel = sub_s8
    kernel_s16 = sub_s16
    simd_sub = 1


@register("MUL")
class Mul(_BinaryOp):
    """TFLite ``MUL`` on int8 or int16 with one requantization, fused activation and broadcasting (TFLM ``mul.cc``)."""

    kernel = mul_s8
    kernel_s16 = mul_s16
    kernel_s32 = mul_s32
    quant_fn = staticmethod(mul_params)


@register("DIV")
class Div(_BinaryOp):
    """TFLite ``DIV`` on int32 (unquantized, TFLM ``div.cc``): ``clamp(x1 / x2)``, C's truncating division,
    fused activation, broadcasting. TFLM's int8 DIV (quantized reciprocal) is not implemented here.

    A zero divisor (and ``INT32_MIN / -1``) is undefined in C: a constant divisor holding one is
    refused when the model is loaded, a run-time one with :class:`tinyzo.errors.InputError`.
    """

    kernel_s32 = div_s32

    def prepare(self):
        a, b = self.tensor(0), self.tensor(1)
        if a.dtype != INT32:
            self.fail(f"input 1 {a.name!r} is {a.dtype}; tinyzo runs int32 DIV only (TFLM's int8 DIV is not "
                      "implemented)")
        for t, role in ((a, "input 1"), (b, "input 2")):
            if t.quant is not None:
                self.fail(f"{role} {t.name!r} is quantized; TFLM's int32 DIV takes unquantized tensors only")
        super().prepare()
        if b.is_constant and np.any(self._consts[1] == 0):
            self.fail(f"the constant divisor {b.name!r} holds 0 (division by zero is undefined in C)")

    def compute(self, *inputs):
        """int32[N, ...] / int32 -> int32[N, out_shape[1:]]; a zero divisor or INT32_MIN / -1 is refused."""
        (x1, x2), _ = self._operands(inputs)
        if np.any(x2 == 0):
            raise InputError(f"operator {self.index} (DIV): the divisor holds 0 (division by zero is undefined "
                             "in C); keep zeros out of the divisor")
        x1b, x2b = np.broadcast_arrays(x1, x2)
        if np.any((x1b == -(2**31)) & (x2b == -1)):
            raise InputError(f"operator {self.index} (DIV): INT32_MIN / -1 overflows int32 (undefined in C)")
        return super().compute(*inputs)


class _MaximumMinimum(_BinaryOp):
    """MAXIMUM/MINIMUM: raw int8 comparison; both inputs must have the output's scale and zero point."""

    fused_activation = False

    def quant_params(self, a, b, out):
        for t, role in ((a, "input 1"), (b, "input 2")):
            if not _same_quant(t, out):
                self.fail(f"{role} {t.name!r} has a scale or zero point different from the output's; TFLM compares "
                          "raw int8 values without requantizing, which is not supported")
        return {}


@register("MAXIMUM")
class Maximum(_MaximumMinimum):
    """TFLite ``MAXIMUM`` on int8 with broadcasting (TFLM ``maximum_minimum.cc``, reference kernel)."""

    kernel = maximum_s8
    kernel_s32 = maximum_s32


@register("MINIMUM")
class Minimum(_MaximumMinimum):
    """TFLite ``MINIMUM`` on int8 with broadcasting (TFLM ``maximum_minimum.cc``, reference kernel)."""

    kernel = minimum_s8
    kernel_s32 = minimum_s32


@register("PRELU")
class Prelu(_BinaryOp):
    """TFLite ``PRELU`` on int8: ``x >= 0 ? x : x * alpha``, alpha (input 2, per tensor) broadcast (``prelu.cc``)."""

    kernel = prelu_s8
    fused_activation = False
    quant_fn = staticmethod(prelu_params)
