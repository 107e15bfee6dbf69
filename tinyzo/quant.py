"""The TFLite int8 quantization scheme and the prepare-time arithmetic.

Scheme (TFLite's int8 spec, which TFLite Micro runs):

* activations: asymmetric int8, ``real = scale * (q - zero_point)``, one
  scale/zero point per tensor, ``zero_point`` in [-128, 127];
* weights: symmetric int8 (``zero_point == 0``), values in [-127, 127],
  per channel (conv: axis 0 of OHWI, depthwise: axis 3 of 1HWC) or per tensor;
* bias: int32 with ``scale = s_input * s_weight`` and zero point 0.

Everything in this module runs once per model ("prepare"), in Python on
Python floats/ints; the jitted kernels only consume its integer results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyzo.errors import ArithmeticContractError, InputError
from tinyzo.spec.arith import DOUBLE_ROUNDING, ROUNDING_MODES, SINGLE_ROUNDING

__all__ = [
    "DOUBLE_ROUNDING",
    "ROUNDING_MODES",
    "SINGLE_ROUNDING",
    "QuantParams",
    "activation_range",
    "as_real_float32",
    "check_multiplier_shift",
    "dequantize",
    "quantize",
    "quantize_multiplier",
    "quantize_multiplier_greater_than_one",
    "quantize_multiplier_smaller_than_one_exp",
    "rounding_code",
]


def rounding_code(rounding: str) -> int:
    """Integer code of a rounding mode for the jitted kernels: 0 = double (TFLM), 1 = single."""
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    return 0 if rounding == DOUBLE_ROUNDING else 1


def _round_half_away(x: float) -> float:
    """C's ``std::round``: nearest integer, ties away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real_multiplier: float, rounding: str = DOUBLE_ROUNDING) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: a real multiplier as a Q31 significand and a shift.

    Returns ``(quantized_multiplier, shift)`` with ``real ~= qm * 2**(shift - 31)``;
    ``qm`` int32 in [2**30, 2**31 - 1] (or 0 for a zero multiplier), ``shift`` an
    int. ``frexp`` then ``std::round`` of the significand times 2**31; a
    significand rounding up to 2**31 is halved and the shift incremented; a
    shift below -31 flushes to (0, 0). With ``rounding="single"`` a shift
    above 30 saturates to ``(2**31 - 1, 30)`` as ``TFLITE_SINGLE_ROUNDING`` does.
    """
    real_multiplier = float(real_multiplier)
    if not math.isfinite(real_multiplier):
        raise ArithmeticContractError(f"multiplier must be finite, got {real_multiplier}")
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    q_fixed = int(_round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if rounding_code(rounding) == 1 and shift > 30:
        shift = 30
        q_fixed = (1 << 31) - 1
    return q_fixed, shift


def check_multiplier_shift(multiplier: int, shift: int, rounding: str = DOUBLE_ROUNDING) -> tuple[int, int]:
    """Return ``(multiplier, shift)`` if the requantization kernels can apply it, else raise.

    ``MultiplyByQuantizedMultiplier`` shifts an int32 left by ``shift`` (double rounding) or right by
    ``31 - shift`` (single rounding): a shift above 31 (above 30 for single rounding, where
    :func:`quantize_multiplier` saturates it) is undefined behaviour in C. Such a shift comes from a
    real multiplier of 2**31 or more, i.e. scales whose ratio no real model has.

    Raises:
        ArithmeticContractError: the shift is out of range.
    """
    top = 31 if rounding_code(rounding) == 0 else 30
    if shift > top:
        raise ArithmeticContractError(
            f"requantization multiplier 2**{shift - 31} * {multiplier} needs a left shift of {shift} > {top}, "
            "which TFLite's MultiplyByQuantizedMultiplier cannot apply; the scales are corrupt or extreme"
        )
    return multiplier, shift


def quantize_multiplier_greater_than_one(real_multiplier: float, rounding: str = DOUBLE_ROUNDING) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplierGreaterThanOne``: as :func:`quantize_multiplier`, for a multiplier > 1 (shift >= 0)."""
    if not real_multiplier > 1.0:
        raise ArithmeticContractError(f"multiplier must be > 1, got {real_multiplier}")
    return quantize_multiplier(real_multiplier, rounding)


def quantize_multiplier_smaller_than_one_exp(real_multiplier: float, rounding: str = DOUBLE_ROUNDING) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplierSmallerThanOneExp``: for a multiplier in (0, 1); shift <= 0."""
    if not 0.0 < real_multiplier < 1.0:
        raise ArithmeticContractError(f"multiplier must be in (0, 1), got {real_multiplier}")
    return quantize_multiplier(real_multiplier, rounding)


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of one tensor: ``real = scale[c] * (q - zero_point[c])``.

    Attributes:
        scale: float32[n], n == 1 (per tensor) or the size of ``axis``.
        zero_point: int64[n], same length as ``scale``.
        axis: the quantized dimension for per-channel parameters (0 for per tensor).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    def __post_init__(self):
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point, dtype=np.int64).reshape(-1))
        if self.scale.shape != self.zero_point.shape or self.scale.size == 0:
            raise ArithmeticContractError(
                f"quantization needs as many zero points as scales (>= 1), got {self.scale.size} and {self.zero_point.size}"
            )

    @property
    def per_channel(self) -> bool:
        """True when there is more than one scale."""
        return self.scale.size > 1

    def __eq__(self, other):
        return (
            isinstance(other, QuantParams)
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
            and self.axis == other.axis
        )

    def __hash__(self):
        return hash((self.scale.tobytes(), self.zero_point.tobytes(), self.axis))


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _describe(x) -> str:
    """A short description of a value for error messages: ``None``, ``str 'abc'``, ``an array of dtype <U3``."""
    if x is None:
        return "None"
    if isinstance(x, np.ndarray):
        return f"an array of dtype {x.dtype}"
    return f"{type(x).__name__} {x!r:.40}"


def as_real_float32(x, what: str = "values") -> np.ndarray:
    """``x`` as a float32 array under tinyzo's rule for float data handed to a quantizer.

    Args:
        x: a number, a (nested, rectangular) sequence of numbers, or an array of a float or
            integer dtype; any shape.
        what: how the data is named in messages.
    Returns:
        float32 array of ``x``'s shape. Finite values beyond float32's range (float64 ``1e300``)
        are clipped to +-3.4028235e38 (they would become inf), every other value is rounded to
        the nearest float32.
    Raises:
        InputError: None, strings, bool, complex or object data, a ragged sequence, or any NaN
            or +-inf value (the message gives how many and the index of the first).
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except ValueError as e:  # ragged nested sequences
            raise InputError(f"cannot quantize {what}: not a rectangular array of numbers ({e})") from None
    if arr.dtype.kind not in "fiu":
        got = _describe(x)
        raise InputError(f"cannot quantize {what}: expected real numbers (a float or integer array or number), "
                         f"got {got}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
            where = f" (first at index {first[0] if len(first) == 1 else first})" if arr.ndim else ""
            raise InputError(f"cannot quantize NaN or infinite values: {int(bad.sum()):,} of {arr.size:,} {what} "
                             f"are NaN or inf{where}; replace or drop them first")
        if arr.dtype.itemsize > 4:
            arr = np.clip(arr, -_FLOAT32_MAX, _FLOAT32_MAX)
    return arr.astype(np.float32)


def quantize(x, params: QuantParams, dtype=np.int8) -> np.ndarray:
    """Quantize float values with per-tensor ``params``: ``clamp(round(x / scale) + zero_point)``.

    As TFLite's reference ``AffineQuantize``: the division is done in float32,
    rounded half away from zero (C ``roundf``), then the zero point is added and
    the result clamped to ``dtype``'s range. ``x``: real numbers of any shape
    (:func:`as_real_float32`: NaN and +-inf are refused with :class:`InputError`;
    every finite value is quantized, values past float32's range are clipped to it
    first). Quotients beyond the int32 range, an infinite quotient of a huge finite
    value included (undefined behaviour in C), saturate. Returns ``dtype`` of ``x``'s shape.
    """
    if params.per_channel:
        raise ValueError("quantize() takes per-tensor parameters")
    x = as_real_float32(x)
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = x / np.float32(params.scale[0])
        # C roundf on float32: trunc, then step away from zero when the (exactly representable)
        # fractional part is >= 0.5. floor(v + 0.5) would round 0.49999997 up in float32.
        # An infinite quotient stays infinite (inf - inf is NaN, which is not >= 0.5).
        t = np.trunc(v)
        r = t + np.where(np.abs(v - t) >= np.float32(0.5), np.sign(v), np.float32(0)).astype(np.float32)
    # values beyond int32 are undefined behaviour in C; here they saturate
    q = np.clip(r, -(2.0**31), 2.0**31 - 1).astype(np.int64) + int(params.zero_point[0])
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, params: QuantParams) -> np.ndarray:
    """Dequantize integers: ``float32(scale) * (q - zero_point)`` (float32 result, TFLite's formula)."""
    q = np.asarray(q)
    if params.per_channel:
        shape = [1] * q.ndim
        shape[params.axis] = -1
        s = params.scale.reshape(shape)
        z = params.zero_point.reshape(shape)
    else:
        s = params.scale[0]
        z = params.zero_point[0]
    return (s * (q.astype(np.int64) - z).astype(np.float32)).astype(np.float32)


def activation_range(activation: str, params: QuantParams, dtype=np.int8) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized``: the clamp of a fused activation.

    ``activation`` is "NONE", "RELU", "RELU6" or "RELU_N1_TO_1"; the bound
    ``q = zero_point + round(bound / scale)`` (``TfLiteRound`` of a float32
    division) is intersected with ``dtype``'s range.

    Raises:
        ArithmeticContractError: ``round(bound / scale)`` (float32 division, as TFLite) is not finite or
            outside int32 (a tiny, zero or non-finite output scale, e.g. below ~6 / 2**31 with RELU6):
            TFLite's ``static_cast<int32_t>`` is undefined there and its prepare check
            (``no_integer_overflow_from_quantization``) fails the model.
    """
    info = np.iinfo(dtype)
    qmin, qmax = int(info.min), int(info.max)
    scale = np.float32(params.scale[0])
    zp = int(params.zero_point[0])

    def q(v: float) -> int:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            r = float(np.float32(np.float32(v) / scale))
        tmp = _round_half_away(r) if math.isfinite(r) else math.inf
        if not (-(2.0**31) <= tmp < 2.0**31 and -(2**31) <= zp + int(tmp) < 2**31):
            raise ArithmeticContractError(
                f"fused {activation}: bound {v} / output scale {float(scale)!r} = {r!r} overflows int32 (not "
                "representable in int32, where TFLite computes it); TFLite refuses the model"
            )
        return zp + int(tmp)

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"unknown fused activation {activation!r}")
