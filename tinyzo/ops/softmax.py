"""SOFTMAX (int8 in, int8 or int16 out; int16 in, int16 out) as TFLite Micro prepares and runs it.

Prepare (``tensorflow/lite/micro/kernels/softmax_common.cc``,
``CalculateSoftmaxParams``), by input type:

* int8: the output must be int8 with scale exactly 1/256 and zero point -128;
  ``beta * input_scale`` becomes a Q5.26 input multiplier
  (:func:`preprocess_softmax_scaling`) and a cut-off ``diff_min``
  (:func:`calculate_input_radius`). Run: :func:`tinyzo.kernels.softmax.softmax_s8`.
* int16 (16x8): input and output zero point 0, output scale 1/32768 (within
  0.1 %, TFLM's ``TF_LITE_ENSURE_NEAR``); the input multiplier maps ``beta * s_in *
  (x - max)`` onto TFLM's exp table (:func:`softmax_s16_params`); the two tables
  (``exp`` on [-10, 0], ``1 / (1 + x)`` on [0, 1]) are TFLM's ``LUTPopulate<int16_t>``
  (:mod:`tinyzo.spec.lut`), computed once. Run: :func:`tinyzo.kernels.softmax.softmax_s16`.
  * int8 -> int16 (TFLM's ``Softmax<int8_t, int16_t>``): output zero point -32768, scale 1/65536;
  the int8 parameters, run by :func:`tinyzo.kernels.softmax_s16.softmax_s8_s16`.

The softmax is taken over the last axis.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tinyzo.errors import ArithmeticContractError, InputError
from tinyzo.kernels.softmax import softmax_s8, softmax_s16
from tinyzo.kernels.softmax_s16 import softmax_s8_s16
from tinyzo.ops.base import PreparedOp, register
from tinyzo.ops.int16 import INT16, require_int16
from tinyzo.quant import DOUBLE_ROUNDING, SINGLE_ROUNDING, quantize_multiplier, rounding_code
from tinyzo.spec.lut import softmax_exp_lut, softmax_one_over_one_plus_x_lut

#: TFLite's ``kScaledDiffIntegerBits``: the input difference is rescaled to Q5.26.
SCALED_DIFF_INTEGER_BITS = 5


def preprocess_softmax_scaling(
    beta: float, input_scale: float, input_integer_bits: int, rounding: str = DOUBLE_ROUNDING
) -> tuple[int, int]:
    """TFLite ``PreprocessSoftmaxScaling`` (quantization_util.cc, without ``TFLITE_EMULATE_FLOAT``).

    ``real = min(beta * input_scale * 2**(31 - input_integer_bits), max_real)``
    in double precision, with ``max_real = 2**31 - 1`` (double-rounding build,
    TFLM's default) or ``2**30 - 1`` (``TFLITE_SINGLE_ROUNDING``), then
    ``QuantizeMultiplierGreaterThanOne(real)``.

    Args:
        beta, input_scale: Python floats; pass the float32 values stored in the
            model (TFLM widens its float32 fields to double).
        input_integer_bits: 5 for softmax.
        rounding: ``"double"`` or ``"single"``.

    Returns:
        ``(quantized_multiplier, left_shift)``: int32 in [2**30, 2**31 - 1] and
        a shift >= 1.

    Raises:
        ArithmeticContractError: when ``real <= 1`` (``beta * input_scale <=
        2**-26`` for softmax), where TFLite's ``TFLITE_CHECK_GT`` aborts.
    """
    max_real_multiplier = float((1 << 30) - 1) if rounding == SINGLE_ROUNDING else float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - input_integer_bits)), max_real_multiplier)
    if not real > 1.0:
        raise ArithmeticContractError(
            f"softmax: beta * input_scale * 2**{31 - input_integer_bits} = {real!r} must be > 1 "
            "(TFLite's QuantizeMultiplierGreaterThanOne aborts otherwise)"
        )
    multiplier, left_shift = quantize_multiplier(real, rounding)
    return multiplier, left_shift


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite ``CalculateInputRadius`` (double-precision build).

    ``floor((2**input_integer_bits - 1) * 2**(total_signed_bits - input_integer_bits) / 2**input_left_shift)``:
    the largest input difference whose rescaled value still fits in int32.
    """
    max_input_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / float(1 << input_left_shift)
    )
    return math.floor(max_input_rescaled)


def softmax_params(beta: float, input_scale: float, rounding: str = DOUBLE_ROUNDING) -> tuple[int, int, int]:
    """TFLite Micro's ``CalculateSoftmaxParams`` for int8 input and int8 output.

    ``beta`` and ``input_scale`` are taken as float32 (as stored in the
    model) and widened to double, as TFLM does; ``kScaledDiffIntegerBits = 5``.

    Returns:
        ``(input_multiplier, input_left_shift, diff_min)``: the Q31 multiplier
        (int32), its left shift (1..31 for double rounding) and
        ``diff_min = -calculate_input_radius(5, input_left_shift)`` (<= 0).

    Raises:
        ArithmeticContractError: if ``beta * input_scale <= 2**-26`` or either is not finite.
    """
    beta32 = float(np.float32(beta))
    scale32 = float(np.float32(input_scale))
    if not (math.isfinite(beta32) and math.isfinite(scale32)):
        raise ArithmeticContractError(f"softmax: beta ({beta}) and input scale ({input_scale}) must be finite")
    multiplier, left_shift = preprocess_softmax_scaling(beta32, scale32, SCALED_DIFF_INTEGER_BITS, rounding)
    diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift)
    return multiplier, left_shift, diff_min


#: int16 SOFTMAX: the largest row length whose int32 sum of exponentials (each <= 32767) cannot overflow.
SOFTMAX_S16_MAX_DEPTH = (2**31 - 1) // 32767
#: ... and the largest input shift: ``(x - max) * 2**shift`` with ``x - max`` down to -65535 must fit int32.
SOFTMAX_S16_MAX_SHIFT = 15


def softmax_s16_params(beta: float, input_scale: float, rounding: str = DOUBLE_ROUNDING) -> tuple[int, int]:
    """TFLM's ``CalculateSoftmaxParams`` for int16 input: ``QuantizeMultiplier(s_in * beta / (10 / 65535))``.

    The product is double (float32 ``s_in`` and ``beta`` widened), so that an input difference of
    -65535 after rescaling means exp(-10), the start of TFLM's exp table. Returns
    ``(input_multiplier, input_left_shift)``, the shift in [-31, 15].

    Raises:
        ArithmeticContractError: ``beta * s_in`` is not finite and positive, or the shift exceeds 15
            (``beta * s_in`` >= ~5: the left shift of ``x - max`` overflows int32, undefined in C).
    """
    beta32, scale32 = float(np.float32(beta)), float(np.float32(input_scale))
    real = scale32 * beta32 / (10.0 / 65535.0)
    if not (math.isfinite(real) and real > 0):
        raise ArithmeticContractError(f"softmax: beta ({beta}) * input scale ({input_scale}) must be finite and > 0")
    multiplier, shift = quantize_multiplier(real, rounding)
    if shift > SOFTMAX_S16_MAX_SHIFT:
        raise ArithmeticContractError(
            f"softmax: beta * input scale = {beta32 * scale32:g} needs a left shift of {shift} > "
            f"{SOFTMAX_S16_MAX_SHIFT}: the input difference overflows int32 in TFLite Micro (undefined in C)")
    return multiplier, shift


@lru_cache(maxsize=1)
def _softmax_s16_luts() -> tuple:
    """TFLM's two int16 softmax tables (they depend on nothing in the model): computed once, read-only."""
    exp_lut, recip_lut = softmax_exp_lut(), softmax_one_over_one_plus_x_lut()
    exp_lut.flags.writeable = False
    recip_lut.flags.writeable = False
    return exp_lut, recip_lut


@register("SOFTMAX")
class Softmax(PreparedOp):
    """TFLite ``SOFTMAX`` over the last axis: int8 -> int8 (output scale 1/256, zero point -128) , int8 -> int16
    (output scale 1/65536, zero point -32768) or int16 -> int16 (output scale 1/32768, zero point 0).

    Options: ``beta`` (float, default 1.0). Matches TFLite Micro's
    ``SoftmaxPrepare`` / ``SoftmaxEval`` (reference kernels ``Softmax<int8_t, int8_t>``, ``Softmax<int8_t, int16_t>``, ``SoftmaxInt16``).
    """

    def prepare(self):
        inp = self.tensor(0)
        out = self.tensor(0, output=True)
        self.dtype = inp.dtype
        if inp.dtype == INT16:
            self._prepare_s16(inp, out)
            return
        self.require_int8(inp, "input")
        self.int16_output = out.dtype == np.int16  # int8 -> int16: TFLM's Softmax<int8_t, int16_t>
        if self.int16_output:
            self._check_int16_output(out)
        else:
            self.require_int8(out, "output")
        if len(inp.shape) < 1:
            self.fail(f"input {inp.name!r} must have at least one dimension")
        if tuple(out.shape) != tuple(inp.shape):
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        if not self.int16_output and (int(out.quant.zero_point[0]) != -128
                                      or np.float32(out.quant.scale[0]) != np.float32(1.0 / 256)):
            self.fail(
                f"int8 output {out.name!r} must have scale 1/256 and zero point -128 (TFLite Micro requires it), "
                f"got scale {float(out.quant.scale[0])!r} and zero point {int(out.quant.zero_point[0])}"
            )
        self.beta = self.float_option("beta", 1.0)
        rounding = getattr(self.model, "rounding", DOUBLE_ROUNDING)
        self.rounding = rounding_code(rounding)
        try:
            self.input_multiplier, self.input_left_shift, self.diff_min = softmax_params(
                self.beta, float(inp.quant.scale[0]), rounding
            )
        except ArithmeticContractError as e:
            self.fail(str(e))

    def _prepare_s16(self, inp, out):
        """TFLM's int16 checks and parameters (``CalculateSoftmaxParams``, ``InitializeLutForInt16``)."""
        require_int16(self, inp, "input")
        require_int16(self, out, "output")
        self.int16_output = True
        if len(inp.shape) < 1:
            self.fail(f"input {inp.name!r} must have at least one dimension")
        if tuple(out.shape) != tuple(inp.shape):
            self.fail(f"output shape {out.shape} differs from input shape {inp.shape}")
        if inp.shape[-1] > SOFTMAX_S16_MAX_DEPTH:
            self.fail(f"int16 rows of {inp.shape[-1]} values overflow TFLite Micro's int32 sum of exponentials "
                      f"(at most {SOFTMAX_S16_MAX_DEPTH})")
        # TF_LITE_ENSURE_NEAR(output scale, 1.f / 32768, 0.001f * 1.f / 32768), in float32
        s_out, want = np.float32(out.quant.scale[0]), np.float32(1.0) / np.float32(32768.0)
        delta = np.float32(s_out - want) if s_out > want else np.float32(want - s_out)
        if delta > np.float32(np.float32(0.001) * np.float32(1.0) / np.float32(32768.0)):
            self.fail(f"int16 output {out.name!r} must have scale 1/32768 (within 0.1 %, TFLite Micro requires it), "
                      f"got {float(s_out)!r}")
        self.beta = self.float_option("beta", 1.0)
        rounding = getattr(self.model, "rounding", DOUBLE_ROUNDING)
        self.rounding = rounding_code(rounding)
        try:
            self.input_multiplier, self.input_left_shift = softmax_s16_params(
                self.beta, float(inp.quant.scale[0]), rounding)
        except ArithmeticContractError as e:
            self.fail(str(e))
        self.exp_lut, self.one_over_one_plus_x_lut = _softmax_s16_luts()

    def _check_int16_output(self, out):
        """TFLM's int16 output of an int8 softmax: zero point -32768 and a scale within 0.001/65536 of
        1/65536 (``TF_LITE_ENSURE_NEAR`` in float32)."""
        if out.quant is None or out.quant.per_channel:
            self.fail(f"int16 output {out.name!r} must be quantized per tensor")
        scale = np.float32(out.quant.scale[0])
        want, eps = np.float32(1.0) / np.float32(65536), np.float32(0.001) * np.float32(1.0) / np.float32(65536)
        if int(out.quant.zero_point[0]) != -32768 or not abs(scale - want) <= eps:
            self.fail(f"int16 output {out.name!r} must have scale 1/65536 (within 0.1%) and zero point -32768 "
                      f"(TFLite Micro requires it), got scale {float(scale)!r} and zero point "
                      f"{int(out.quant.zero_point[0])}")

    def compute(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != self.dtype:
            raise InputError(f"operator {self.index} (SOFTMAX) takes an {self.dtype} array, "
                             f"got {getattr(x, 'dtype', type(x))}")
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape, dtype=np.int16 if self.int16_output else np.int8)
        if x.size == 0:
            return out
        depth = x.shape[-1]
        if self.dtype == INT16:
            softmax_s16(x.reshape(-1, depth), self.input_multiplier, self.input_left_shift, self.exp_lut,
                        self.one_over_one_plus_x_lut, out.reshape(-1, depth), self.rounding)
            return out
        if self.int16_output:  # the sum of exponentials never makes TFLM abort here (spec.softmax_s16)
            softmax_s8_s16(x.reshape(-1, depth), self.input_multiplier, self.input_left_shift, self.diff_min,
                           out.reshape(-1, depth), self.rounding)
            return out
        bad = softmax_s8(
            x.reshape(-1, depth),
            self.input_multiplier,
            self.input_left_shift,
            self.diff_min,
            out.reshape(-1, depth),
            self.rounding,
        )
        if bad:
            raise ArithmeticContractError(
                f"operator {self.index} (SOFTMAX): on {bad} row(s) the sum of exponentials reaches 512, where "
                "TFLite Micro aborts (TFLITE_CHECK on the output shift); the input has too many values near its maximum"
            )
        return out

    def macs(self) -> int:
        """Softmax has no multiply-accumulates."""
        return 0
