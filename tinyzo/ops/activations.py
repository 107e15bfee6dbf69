"""Activation operators: RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, as TFLite Micro runs them on int8.

* RELU (``micro/kernels/activations.cc``, ``activations_common.cc`` ``CalculateReluOpData``):
  requantizes from the input to the output scale, ``QuantizeMultiplier(s_in / s_out)``,
  clamped to ``[output zero point, 127]``.
* RELU6 (``Relu6Prepare``): no requantization; the raw input is clamped to the input's
  zero point and quantized 6.0. TFLM ignores the output's quantization, so tinyzo
  requires it to equal the input's (what the converter writes) rather than silently
  reinterpret.
* LEAKY_RELU (``leaky_relu.cc``, ``leaky_relu_common.cc``): two multipliers,
  ``s_in / s_out`` (x >= 0) and ``s_in * alpha / s_out`` (x < 0; alpha may be negative).
* HARD_SWISH (``hard_swish.cc``, ``hard_swish_common.cc``): TFLite's int16 fixed-point
  reference kernel (``reference_ops::HardSwish<int8_t>``).
* LOGISTIC (``logistic.cc``, ``logistic_common.cc``) and TANH (``tanh.cc``): TFLM's int8
  path is ``reference_integer_ops::Logistic`` / ``Tanh``, gemmlowp's fixed-point
  functions on a Q4.27 input, not a look-up table (TFLite's optimized int8 kernels and
  TFLM's int16 path use tables). The output must be scale 1/256, zero point -128
  (LOGISTIC; TFLM checks the zero point) and scale 1/128, zero point 0 (TANH; TFLM
  checks neither), the only quantization these kernels produce.

int16 (16x8: zero points 0, dtype dispatch in prepare; the int8 paths are unchanged):

* RELU, RELU6, LEAKY_RELU: TFLM's templates on int16 (``ReluQuantized<int16_t>``,
  ``Relu6Quantized<int16_t>``, ``QuantizeLeakyRelu<int16_t>``), the int8 parameters with int16 bounds.
* LOGISTIC, TANH (``logistic_common.cc``, ``tanh.cc``; ``reference_integer_ops::Logistic`` /
  ``Tanh`` int16 overloads): a 256-entry sigmoid table interpolated linearly, the input rescaled to
  1/(3 * 4096) per unit (:func:`logistic_tanh_s16_params`); the output scale must be 2**-15
  (``CheckedLog2``), zero point 0.
* HARD_SWISH: refused (TFLM's kernel takes float32 and int8 only).

Scale arithmetic in prepare: the tflite-micro sources read (90b983c, Aug 2026) form the
RELU, LEAKY_RELU and HARD_SWISH ratios as C ``float`` expressions widened to double, but the
TFLM interpreter used as the oracle (tflite-micro 0.dev20261023) computes them in double:
on scales where the two give different outputs, TFLM matches double every time
(tests/test_activations.py), as for SUB (:func:`tinyzo.ops.binary.add_params`). tinyzo
follows the oracle: these ratios are double quotients of the float32 scales. RELU6's
``6.0f / scale`` is float32 in both (checked the same way). Every operator maps each
element independently; a batch is flattened. Kernels: :mod:`tinyzo.kernels.activations`;
definitions: :mod:`tinyzo.spec.activations`.
"""

from __future__ import annotations

import math

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels.activations import (
    hard_swish_s8,
    leaky_relu_s8,
    leaky_relu_s16,
    logistic_s8,
    logistic_s16,
    relu6_s8,
    relu6_s16,
    relu_s8,
    relu_s16,
    tanh_s8,
    tanh_s16,
)
from tinyzo.ops.base import PreparedOp, register
from tinyzo.ops.int16 import INT16, require_int8_or_int16, require_int16
from tinyzo.ops.softmax import calculate_input_radius
from tinyzo.quant import quantize_multiplier, rounding_code
from tinyzo.spec.lut import SIGMOID_TABLE_UINT16

__all__ = [
    "HardSwish",
    "LeakyRelu",
    "Logistic",
    "Relu",
    "Relu6",
    "Tanh",
    "checked_log2",
    "down_scale_int32_to_int16_multiplier",
    "hard_swish_params",
    "leaky_relu_params",
    "logistic_tanh_params",
    "logistic_tanh_s16_params",
    "relu6_bounds",
    "relu_params",
]

#: ``kInputIntegerBits`` of the int8 LOGISTIC and TANH kernels (Q4.27 input).
LOGISTIC_TANH_INPUT_INTEGER_BITS = 4
#: ``kInputIntegerBits`` of the int16 LOGISTIC and TANH kernels (Q3.12 input for a power-of-two scale).
LOGISTIC_TANH_S16_INPUT_INTEGER_BITS = 3
#: ``kOutputFractionalBits`` of the int16 LOGISTIC and TANH kernels: output scale 2**-15.
LOGISTIC_TANH_S16_OUTPUT_FRACTIONAL_BITS = 15
#: TFLM's int16 sigmoid table as the kernels read it.
_SIGMOID_TABLE = np.array(SIGMOID_TABLE_UINT16, dtype=np.uint16)
_SIGMOID_TABLE.flags.writeable = False


def _f32_ratio(num, den) -> float:
    """``num / den`` of two C floats evaluated in float32 (the quotient rounded to float32), widened."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float32(np.float32(num) / np.float32(den)))


def _ratio(num, den) -> float:
    """``num / den`` of two float32 values in double (the oracle's prepare arithmetic, see the module)."""
    return float(np.float32(num)) / float(np.float32(den))


def _round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def relu_params(s_in, s_out, z_out, rounding: str = "double", dtype=np.int8) -> tuple[int, int, int, int]:
    """TFLM ``CalculateReluOpData<T>`` (T int8 or int16): ``(output_multiplier, output_shift, act_min, act_max)``.

    ``QuantizeMultiplier(s_in / s_out)`` (double, see the module); ``act_min = max(T min, z_out +
    roundf(0 / s_out))`` = ``z_out``; ``act_max`` = T max (the upper bound is infinite).
    """
    info = np.iinfo(dtype)
    m, sh = quantize_multiplier(_ratio(s_in, s_out), rounding)
    return m, sh, max(int(info.min), int(z_out)), int(info.max)


def relu6_bounds(s_in, z_in, dtype=np.int8) -> tuple[int, int]:
    """TFLM ``Relu6Prepare``: ``(lower, upper) = (z_in, FloatToQuantizedType<T>(6.0f, s_in, z_in))``, T int8 or int16.

    ``upper = clamp(round(6.0f / s_in) + z_in, T min, T max)``, the quotient in float32, rounded half
    away from zero.

    Raises:
        ArithmeticContractError: if ``6 / s_in`` does not fit int32 (undefined behaviour in TFLM's cast).
    """
    info = np.iinfo(dtype)
    q = _round_half_away(_f32_ratio(6.0, s_in))
    if not -(2.0**31) <= q < 2.0**31:
        raise ArithmeticContractError(f"6 / input scale = {q:g} does not fit int32 (input scale {float(s_in):g})")
    return int(z_in), min(int(info.max), max(int(info.min), int(q) + int(z_in)))


def leaky_relu_params(s_in, s_out, alpha, rounding: str = "double") -> tuple[int, int, int, int]:
    """TFLM ``CalculateOpDataLeakyRelu`` for int8: ``(mult_identity, shift_identity, mult_alpha, shift_alpha)``.

    ``QuantizeMultiplier(s_in / s_out)`` and ``QuantizeMultiplier(s_in * alpha / s_out)``, double
    arithmetic on the float32 values (see the module); a negative alpha gives a negative multiplier.
    """
    alpha_real = float(np.float32(s_in)) * float(np.float32(alpha)) / float(np.float32(s_out))
    mi, si = quantize_multiplier(_ratio(s_in, s_out), rounding)
    ma, sa = quantize_multiplier(alpha_real, rounding)
    return mi, si, ma, sa


def down_scale_int32_to_int16_multiplier(m: int) -> int:
    """TFLite ``DownScaleInt32ToInt16Multiplier``: a Q31 multiplier (>= 0) as Q15, rounded; saturates at 32767."""
    if m >= (2**31 - 1) - (1 << 15):
        return 2**15 - 1
    return (m + (1 << 15)) >> 16


def hard_swish_params(s_in, s_out, rounding: str = "double") -> dict:
    """TFLM ``HardSwishPrepare`` for int8: the int16 multipliers and exponents of
    :func:`~tinyzo.spec.activations.hard_swish_s8`.


    ``hires_input_scale = s_in / 128`` (exact in float32); output multiplier ``hires / s_out``,
    reluish multiplier ``hires / (3 / 32768)`` (double quotients, see the module); each
    ``QuantizeMultiplier`` then ``DownScaleInt32ToInt16Multiplier``.

    Raises:
        ArithmeticContractError: output exponent > 0 (TFLM's ``TF_LITE_ENSURE``: ``s_out < s_in / 128``)
            or < -15, reluish exponent outside [-15, 31] (int16 shifts TFLM's code leaves ill-defined).
    """
    hires_input_scale = np.float32(np.float32(1.0 / 128.0) * np.float32(s_in))
    reluish_scale = np.float32(np.float32(3.0) / np.float32(32768.0))
    mo, eo = quantize_multiplier(_ratio(hires_input_scale, s_out), rounding)
    mr, er = quantize_multiplier(_ratio(hires_input_scale, reluish_scale), rounding)
    if eo > 0:
        raise ArithmeticContractError(f"output multiplier exponent {eo} > 0: output scale below input scale / 128")
    if eo < -15:
        raise ArithmeticContractError(f"output multiplier exponent {eo} < -15: output scale above ~2**9 x input scale")
    if not -15 <= er <= 31:
        raise ArithmeticContractError(f"reluish multiplier exponent {er} outside [-15, 31] (input scale {s_in:g})")
    return {
        "reluish_multiplier_fixedpoint_int16": down_scale_int32_to_int16_multiplier(mr),
        "reluish_multiplier_exponent": er,
        "output_multiplier_fixedpoint_int16": down_scale_int32_to_int16_multiplier(mo),
        "output_multiplier_exponent": eo,
    }


def logistic_tanh_params(s_in) -> tuple[int, int, int]:
    """TFLM's int8 LOGISTIC/TANH prepare: ``(input_multiplier, input_left_shift, input_range_radius)``.

    ``frexp(double(s_in) * 2**27)`` gives ``(q, input_left_shift)``; ``input_multiplier =
    round(q * 2**31)`` (exact for a float32 scale); ``input_range_radius =
    CalculateInputRadius(4, input_left_shift, 31)``.

    Raises:
        ArithmeticContractError: a non-positive left shift below 0 (``s_in < 2**-28``, a negative shift in
            ``CalculateInputRadius`` is undefined in C) or above 62.
    """
    real = float(np.float32(s_in)) * float(1 << (31 - LOGISTIC_TANH_INPUT_INTEGER_BITS))
    q, shift = math.frexp(real)
    multiplier = int(_round_half_away(q * (1 << 31)))
    if not 0 <= shift <= 62 or not 0 < multiplier < 2**31:
        raise ArithmeticContractError(f"input scale {float(s_in):g} gives input_left_shift {shift} outside [0, 62]")
    return multiplier, shift, calculate_input_radius(LOGISTIC_TANH_INPUT_INTEGER_BITS, shift, 31)


def checked_log2(x) -> tuple[bool, int]:
    """TFLite ``CheckedLog2(float x, int* log2_result)``: ``(is a power of two, round(log2(x)))``.

    ``x_log2 = logf(x) * (1.0f / logf(2.0f))`` in float32 (``logf`` as the double ``log`` rounded to
    float32), rounded half away from zero; a power of two when the fractional part is below 1e-3f.
    """
    f = np.float32
    with np.errstate(all="ignore"):
        x_log2 = f(f(math.log(float(f(x)))) * f(f(1.0) / f(math.log(2.0))))
    rounded = f(_round_half_away(float(x_log2)))
    return bool(abs(f(x_log2 - rounded)) < f(1e-3)), int(rounded)


def logistic_tanh_s16_params(s_in, s_out, pot_shifts: tuple) -> tuple[int, int]:
    """TFLM's int16 LOGISTIC (``pot_shifts`` (0,)) / TANH ((0, 1)) prepare: ``(input_multiplier, input_left_shift)``.

    The kernels read the input on a scale of 1/(3 * 4096) per unit. A power-of-two input scale
    (``CheckedLog2``) with ``input_left_shift = 12 + log2(s_in)`` in ``pot_shifts`` gives TFLM's
    multiplier 0, which its kernel turns into ``(3 << shift, 0)``: returned here in that form.
    Otherwise ``m = s_in * 4096 * 3`` (double) is doubled while ``m <= 32767 / 2`` and the shift
    ``<= 30``; ``input_multiplier = int(m)`` (truncated).

    Raises:
        ArithmeticContractError: the multiplier exceeds 32767 (``s_in > 32767 / 12288``, TFLM's
            ``TFLITE_DCHECK_LE``), or ``s_out`` is not 2**-15 (TFLM's ``CheckedLog2`` check).
    """
    pot, log2_in = checked_log2(s_in)
    shift = (15 - LOGISTIC_TANH_S16_INPUT_INTEGER_BITS) + log2_in
    if pot and shift in pot_shifts:
        multiplier, shift = 3 << shift, 0
    else:
        m = float(np.float32(s_in)) * 4096.0 * 3.0
        shift = 0
        while m <= 32767.0 / 2.0 and shift <= 30:
            shift += 1
            m *= 2.0
        multiplier = int(m)
    if multiplier > 32767:
        raise ArithmeticContractError(f"input scale {float(s_in):g} gives an input multiplier {multiplier} > 32767 "
                                      "(TFLite Micro's TFLITE_DCHECK_LE; input scales up to 32767 / 12288 are supported)")
    pot_out, log2_out = checked_log2(s_out)
    if not pot_out or log2_out != -LOGISTIC_TANH_S16_OUTPUT_FRACTIONAL_BITS:
        raise ArithmeticContractError(f"output scale {float(s_out):g}: the int16 kernel produces scale 2**-15 only")
    return multiplier, shift


class _Unary(PreparedOp):
    """Shared prepare of the one-input activations: arity, int8 per-tensor input/output, same shape."""

    def prepare(self):
        inp, out = self.tensor(0), self.tensor(0, output=True)
        self.dtype = require_int8_or_int16(self, inp, "input")
        if out.dtype != inp.dtype:
            self.fail(f"output {out.name!r} is {out.dtype}, input {inp.name!r} is {inp.dtype}; they must match")
        if self.dtype == INT16:
            require_int16(self, out, "output")
        else:
            self.require_int8(out, "output")
        if len(inp.shape) < 1 or len(inp.shape) != len(out.shape) or tuple(inp.shape[1:]) != tuple(out.shape[1:]):
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        self._out = out
        self.s_in, self.z_in = np.float32(inp.quant.scale[0]), int(inp.quant.zero_point[0])
        self.s_out, self.z_out = np.float32(out.quant.scale[0]), int(out.quant.zero_point[0])
        self.rounding = rounding_code(self.model.rounding)
        try:
            if self.dtype == INT16:
                self.prepare_params_s16()
            else:
                self.prepare_params()
        except ArithmeticContractError as e:
            self.fail(f"quantization not supported: {e}")

    def prepare_params(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare_params_s16(self):
        """The int16 parameters (subclasses with an int16 path override this)."""
        self.fail("int16 is not supported: TFLite Micro's kernel takes float32 and int8 only")

    def kernel(self, x, out):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, x):
        """int8[N, ...] -> int8[N, ...] (int16 -> int16 on the int16 path) of the same shape."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        out = np.empty((x.shape[0],) + tuple(self._out.shape[1:]), dtype=self.dtype)
        self.kernel(x.reshape(-1), out.reshape(-1))
        return out


@register("RELU")
class Relu(_Unary):
    """TFLite ``RELU`` on int8 with requantization (TFLM ``ReluQuantized``)."""

    def prepare_params(self):
        self.output_multiplier, self.output_shift, self.act_min, self.act_max = relu_params(
            self.s_in, self.s_out, self.z_out, self.model.rounding)

    def prepare_params_s16(self):
        self.output_multiplier, self.output_shift, self.act_min, self.act_max = relu_params(
            self.s_in, self.s_out, self.z_out, self.model.rounding, np.int16)

    def kernel(self, x, out):
        fn = relu_s16 if self.dtype == INT16 else relu_s8
        fn(x, self.z_in, self.output_multiplier, self.output_shift, self.z_out, self.act_min, self.act_max,
           self.rounding, out)


@register("RELU6")
class Relu6(_Unary):
    """TFLite ``RELU6`` on int8: a clamp of raw values to [zero, quantized 6] (TFLM ``Relu6Quantized``)."""

    def prepare_params(self):
        if self.s_in != self.s_out or self.z_in != self.z_out:
            self.fail("output scale or zero point differs from the input's; TFLM's RELU6 clamps raw int8 values "
                      "without requantizing, which is not supported")
        self.lower, self.upper = relu6_bounds(self.s_in, self.z_in)

    def prepare_params_s16(self):
        if self.s_in != self.s_out:
            self.fail("output scale differs from the input's; TFLM's RELU6 clamps raw int16 values without "
                      "requantizing, which is not supported")
        self.lower, self.upper = relu6_bounds(self.s_in, self.z_in, np.int16)

    def kernel(self, x, out):
        fn = relu6_s16 if self.dtype == INT16 else relu6_s8
        fn(x, self.lower, self.upper, out)


@register("LEAKY_RELU")
class LeakyRelu(_Unary):
    """TFLite ``LEAKY_RELU`` on int8 (TFLM ``QuantizeLeakyRelu``). Option ``alpha`` (float32, any sign)."""

    def prepare_params_s16(self):
        self.prepare_params()  # the same multipliers; the int16 kernel clamps to int16

    def prepare_params(self):
        alpha = np.float32(self.option("alpha", 0.0))
        if not np.isfinite(alpha):
            self.fail(f"alpha {alpha} is not finite")
        self.alpha = alpha
        self.multiplier_identity, self.shift_identity, self.multiplier_alpha, self.shift_alpha = leaky_relu_params(
            self.s_in, self.s_out, alpha, self.model.rounding)

    def kernel(self, x, out):
        fn = leaky_relu_s16 if self.dtype == INT16 else leaky_relu_s8
        fn(x, self.z_in, self.z_out, self.multiplier_identity, self.shift_identity, self.multiplier_alpha,
           self.shift_alpha, self.rounding, out)


@register("HARD_SWISH")
class HardSwish(_Unary):
    """TFLite ``HARD_SWISH`` on int8 (TFLM ``reference_ops::HardSwish<int8_t>``, int16 fixed point)."""

    def prepare_params(self):
        self.params = hard_swish_params(self.s_in, self.s_out, self.model.rounding)

    def kernel(self, x, out):
        p = self.params
        hard_swish_s8(x, self.z_in, self.z_out, p["reluish_multiplier_fixedpoint_int16"],
                      p["reluish_multiplier_exponent"], p["output_multiplier_fixedpoint_int16"],
                      p["output_multiplier_exponent"], out)


class _LogisticTanh(_Unary):
    """LOGISTIC / TANH: the fixed output quantization, the Q4.27 input multiplier and radius (int8);
    the table input multiplier and shift (int16)."""

    output_scale = None
    output_zero_point = None
    kernel_fn = None
    kernel_s16 = None
    #: input left shifts of TFLM's power-of-two int16 case
    pot_shifts = ()

    def prepare_params_s16(self):
        self.input_multiplier, self.input_left_shift = logistic_tanh_s16_params(self.s_in, self.s_out,
                                                                                type(self).pot_shifts)

    def prepare_params(self):
        if self.s_out != np.float32(self.output_scale) or self.z_out != self.output_zero_point:
            self.fail(f"output scale {float(self.s_out):g} and zero point {self.z_out}: the int8 kernel produces "
                      f"scale {self.output_scale:g} and zero point {self.output_zero_point} only")
        self.input_multiplier, self.input_left_shift, self.input_range_radius = logistic_tanh_params(self.s_in)

    def kernel(self, x, out):
        if self.dtype == INT16:
            type(self).kernel_s16(x, self.input_multiplier, self.input_left_shift, _SIGMOID_TABLE, out)
            return
        type(self).kernel_fn(x, self.z_in, self.input_range_radius, self.input_multiplier, self.input_left_shift,
                             self.rounding, out)


@register("LOGISTIC")
class Logistic(_LogisticTanh):
    """TFLite ``LOGISTIC`` on int8 (TFLM ``reference_integer_ops::Logistic``); output 1/256, zero point -128.

    int16: the sigmoid table (``Logistic`` int16 overload), output 2**-15, zero point 0.
    """

    output_scale = 1.0 / 256.0
    output_zero_point = -128
    kernel_fn = logistic_s8
    kernel_s16 = logistic_s16
    pot_shifts = (0,)


@register("TANH")
class Tanh(_LogisticTanh):
    """TFLite ``TANH`` on int8 (TFLM ``reference_integer_ops::Tanh``); output 1/128, zero point 0.

    int16: the sigmoid table (``Tanh`` int16 overload), output 2**-15, zero point 0.
    """

    output_scale = 1.0 / 128.0
    output_zero_point = 0
    kernel_fn = tanh_s8
    kernel_s16 = tanh_s16
    pot_shifts = (0, 1)
