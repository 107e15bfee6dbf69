"""Pure-Python specification of TFLite's int16 look-up tables (SOFTMAX, LOGISTIC and TANH on int16).

* :func:`lut_populate_int16`: TFLite's ``LUTPopulate<int16_t>`` (``kernels/internal/common.h``,
  ``detail::LUTPopulateInt16<float>``): 513 int16 samples of a float function over the whole
  int16 input range, each corrected by half the error of linear interpolation at the midpoint of
  its interval. Every step is a C ``float`` operation, reproduced here with numpy float32 scalars
  (IEEE single, round to nearest even, no fused multiply-add: TFLM's x86 build has none).
* :func:`lut_lookup_int16`: ``LUTLookup(int16_t, const int16_t*)``: the top 9 bits of the value
  pick an interval, the low 7 bits interpolate linearly (int16 slope, rounded shift).
* :func:`softmax_exp_lut`, :func:`softmax_one_over_one_plus_x_lut`: the two tables TFLM's int16
  SOFTMAX fills in prepare (``softmax_common.cc``, ``InitializeLutForInt16``): ``exp(x)`` on
  [-10, 0] and ``1 / (1 + x)`` on [0, 1], both with output scale 2 / 65535. They depend on nothing
  in the model. ``std::exp(float)`` is the C library's ``expf``; here it is the double ``exp``
  rounded once to float32 (:func:`expf`), equal to glibc's ``expf`` on every argument these
  tables use (tests/test_ops16.py checks it against the C library when one can be loaded).
* :data:`SIGMOID_TABLE_UINT16`: the constant table of int16 LOGISTIC and TANH
  (``sigmoid_table_uint16``, ``common.h``): ``sigmoid(i / 24)`` in 0.16 fixed point, i = 0..255.
  It is not a plain rounding of the function (44 of its 256 entries differ from
  ``round(65536 * sigmoid(i / 24))``), so its values are data of the specification, copied from
  TensorFlow Lite Micro (Apache License 2.0, as tinyzo).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LUT_SIZE_INT16",
    "SIGMOID_TABLE_UINT16",
    "expf",
    "lut_lookup_int16",
    "lut_populate_int16",
    "softmax_exp_lut",
    "softmax_one_over_one_plus_x_lut",
]

#: Entries of an int16 table: 512 intervals of the int16 range plus the end point (``LUTSize<int16_t>``).
LUT_SIZE_INT16 = 513
_NB_STEPS = 512
INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1
_F = np.float32

#: TFLite Micro's ``sigmoid_table_uint16`` (uint16[256], ``tensorflow/lite/kernels/internal/common.h``, Apache-2.0, The
#: TensorFlow Authors): sigmoid(i / 24) in unsigned 0.16 fixed point, i = 0..255, the table that the
#: int16 Logistic and Tanh kernels interpolate. These values define TFLite's arithmetic (they are
#: not round(65536 * sigmoid(i / 24)) everywhere), so they are data here, not recomputed; tests check
#: the int16 functions built on them against TFLM's LOGISTIC/TANH for every int16 input.
SIGMOID_TABLE_UINT16 = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
)


def interpolate_sigmoid_table(a: int, frac_bits: int, saturated: int) -> int:
    """TFLite's int16 LOGISTIC/TANH table step: ``a >> frac_bits`` indexes :data:`SIGMOID_TABLE_UINT16`
    (``saturated`` from interval 255 on), the low ``frac_bits`` bits interpolate linearly to the next entry.

    ``a`` >= 0 (``|v|`` of the rescaled int32 input); ``frac_bits`` 9 (LOGISTIC) or 8 (TANH). The result is
    below 2**26 (no wrapping needed).
    """
    uh = a >> frac_bits
    if uh >= 255:
        return saturated
    ua, ub = SIGMOID_TABLE_UINT16[uh], SIGMOID_TABLE_UINT16[uh + 1]
    return (ua << frac_bits) + (a & ((1 << frac_bits) - 1)) * (ub - ua)


def expf(x) -> np.float32:
    """C ``expf`` of a float32: the double ``exp`` rounded once to float32 (0 below the float32 range)."""
    with np.errstate(over="ignore", under="ignore"):
        return _F(math.exp(float(x))) if float(x) < 89.0 else _F(np.inf)


def _roundf(v: np.float32) -> np.float32:
    """C ``roundf`` (``TfLiteRound`` on a float): nearest integer, ties away from zero, exact."""
    t = _F(np.trunc(v))
    if _F(abs(_F(v - t))) >= _F(0.5):
        t = _F(t + (_F(1.0) if v > 0 else _F(-1.0)))
    return t


def lut_populate_int16(transform, input_scale, input_zero_point: int, output_scale,
                       output_zero_point: int) -> np.ndarray:
    """TFLite ``LUTPopulate<int16_t>`` (float version): an int16[513] table of ``transform``.

    ``transform`` maps a float32 to a float32 (the C function TFLM passes). The table samples
    the real input range ``input_scale * ([-32768, 32767] - input_zero_point)`` at 512 equal steps
    plus the end; entry ``i`` is ``round(f(x_i) * inv) - round(err_i / 2)`` clamped to int16, where
    ``inv = 65536 / (output range)`` and ``err_i`` is the interpolated minus the sampled value at the
    interval's midpoint (both rounded); the last entry is ``round(f(x_max) * inv)`` clamped.
    All arithmetic is float32, in TFLM's order of operations.
    """
    s_in, s_out = _F(input_scale), _F(output_scale)
    input_min = _F(s_in * _F(INT16_MIN - int(input_zero_point)))
    input_max = _F(s_in * _F(INT16_MAX - int(input_zero_point)))
    output_min = _F(s_out * _F(INT16_MIN - int(output_zero_point)))
    output_max = _F(s_out * _F(INT16_MAX - int(output_zero_point)))
    step = _F(_F(input_max - input_min) / _F(_NB_STEPS))
    half_step = _F(step / _F(2))
    inv = _F(_F(65536) / _F(output_max - output_min))
    lo, hi = _F(INT16_MIN), _F(INT16_MAX)

    def clamp16(v):
        return int(min(max(v, lo), hi))

    lut = np.empty(LUT_SIZE_INT16, dtype=np.int16)
    for i in range(_NB_STEPS):
        x = _F(input_min + _F(_F(i) * step))
        val = _F(transform(x))
        val_midpoint = _F(transform(_F(x + half_step)))
        val_next = _F(transform(_F(input_min + _F(_F(i + 1) * step))))
        sample_val = _roundf(_F(val * inv))
        midpoint_interp_val = _roundf(_F(_F(_F(val_next * inv) + _roundf(_F(val * inv))) / _F(2)))
        midpoint_val = _roundf(_F(val_midpoint * inv))
        midpoint_err = _F(midpoint_interp_val - midpoint_val)
        bias = _roundf(_F(midpoint_err / _F(2)))
        lut[i] = clamp16(_F(sample_val - bias))
    lut[_NB_STEPS] = clamp16(_roundf(_F(_F(transform(input_max)) * inv)))
    return lut


def lut_lookup_int16(value: int, lut) -> int:
    """TFLite ``LUTLookup(int16_t value, const int16_t* lut)``: interpolated table value, int16.

    ``index = 256 + (value >> 7)`` (arithmetic shift), ``offset = value & 0x7f``;
    ``slope = int16(lut[index + 1] - lut[index])``; result ``int16(lut[index] + ((slope * offset + 64) >> 7))``.
    """
    v = int(value)
    index = 256 + (v >> 7)
    offset = v & 0x7F
    base = int(lut[index])
    slope = _wrap16(int(lut[index + 1]) - base)
    delta = (slope * offset + 64) >> 7
    return _wrap16(base + delta)


def _wrap16(x: int) -> int:
    return ((x + 2**15) % 2**16) - 2**15


def _exp_transform(x: np.float32) -> np.float32:
    return expf(x)


def _one_over_one_plus_x(x: np.float32) -> np.float32:
    return _F(_F(1.0) / _F(_F(1.0) + x))


#: ``int16 max - int16 min`` as TFLM's softmax prepare writes it (``range``).
_RANGE = INT16_MAX - INT16_MIN


def softmax_exp_lut() -> np.ndarray:
    """TFLM's int16 SOFTMAX ``exp_lut``: ``LUTPopulate<int16_t>(10/65535, 32767, 2/65535, 0, expf)``.

    Input ``10/65535 * (q - 32767)``: [-10, 0] over the int16 range; output scale 2/65535 (1.0 is
    32768, clamped to 32767). The quotients are float32 (``10.0f / range``).
    """
    return lut_populate_int16(_exp_transform, _F(_F(10.0) / _F(_RANGE)), INT16_MAX, _F(_F(2.0) / _F(_RANGE)), 0)


def softmax_one_over_one_plus_x_lut() -> np.ndarray:
    """TFLM's int16 SOFTMAX ``one_over_one_plus_x_lut``: ``LUTPopulate<int16_t>(1/65535, -32768, 2/65535, 0, 1/(1+x))``.

    Input ``(q + 32768) / 65535``: [0, 1] over the int16 range; output scale 2/65535.
    """
    return lut_populate_int16(_one_over_one_plus_x, _F(_F(1.0) / _F(_RANGE)), INT16_MIN, _F(_F(2.0) / _F(_RANGE)), 0)
