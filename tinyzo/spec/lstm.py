"""Pure-Python specification of TFLite Micro's integer UNIDIRECTIONAL_SEQUENCE_LSTM (8x8->16).

TFLM's kernel (``micro/kernels/unidirectional_sequence_lstm.cc``, ``lstm_eval.h``/``.cc``,
``lstm_eval_common.cc``) runs the standard LSTM (no peephole, no projection, no layer norm, no CIFG)
with int8 input/hidden state/output, int8 weights, int32 biases and an int16 cell state. Per time
step, for each gate ``G`` in forget, input, cell, output (in that order, the output gate after the
cell update)::

    pre_G  = sat16(FC(x_t, W_G, bias_G) + FC(h_{t-1}, R_G))       # int16, Q3.12 (scale 2**-12)
    FC(v, W[, b])[j] = clamp16(MBQM(wrap32(sum_k W[j, k] * (v[k] + v_offset) + b[j]), m, s))
    f, i, o = sigmoid16(pre_f), sigmoid16(pre_i), sigmoid16(pre_o)  # Q0.15 (scale 2**-15)
    g = tanh16(pre_g)                                              # the option's TANH, Q0.15
    c_t = sat16(mul16(f, c_{t-1}) + mul16(i, g))                  # the cell scale; clipped if cell_clip > 0
    h_t = mul8(tanh16_cell(c_t), o)                                # int8, the hidden state's scale/zero point
    out_t = h_t

where ``mul16``/``mul8`` are ``reference_integer_ops::MulElementwise`` (``MBQM(a * b) + zero point``,
clamped to int16/int8) with the multipliers of :func:`lstm_mul_multiplier`, ``sigmoid16`` and
``tanh16`` the table-interpolating int16 ``reference_integer_ops::Logistic``/``Tanh``
(:func:`logistic_int16`, :func:`tanh_int16`, TFLite's 256-entry ``sigmoid_table_uint16``) and
``tanh16_cell`` the same tanh with its input rescaled from the cell scale ``2**p`` to Q3.12
(:func:`lstm_tanh_params`). All of it in C semantics (arithmetic right shifts, uint32
interpolation, int32 wraps, truncating int16 stores). Slow; for tests only.
"""

from __future__ import annotations

from tinyzo.spec.arith import DOUBLE_ROUNDING, multiply_by_quantized_multiplier, wrap_int32
from tinyzo.spec.lut import SIGMOID_TABLE_UINT16, interpolate_sigmoid_table

__all__ = [
    "SIGMOID_TABLE_UINT16",
    "logistic_int16",
    "lstm_s8",
    "lstm_tanh_params",
    "tanh_int16",
]


INT16_MIN, INT16_MAX = -32768, 32767


def _int16(v: int) -> int:
    """C's conversion of an int to int16_t (two's-complement wrap)."""
    return ((v + 32768) % 65536) - 32768


def _scaled_input(x: int, input_multiplier: int, input_left_shift: int) -> int:
    """The int16 kernels' input rescaling: ``(x * multiplier + round) >> shift`` in int32.

    A zero multiplier means a power-of-two scale: the multiplier becomes ``3 << shift`` and the shift 0
    (3/4 scaling of the table's [-8, 8] to [-10.7, 10.7]).
    """
    if input_multiplier == 0:
        input_multiplier, input_left_shift = 3 << input_left_shift, 0
    rnd = (1 << (input_left_shift - 1)) if input_left_shift > 0 else 0
    return wrap_int32(x * input_multiplier + rnd) >> input_left_shift


def logistic_int16(x: int, input_multiplier: int = 0, input_left_shift: int = 0) -> int:
    """TFLite ``reference_integer_ops::Logistic`` on int16 (the LSTM gates: multiplier 0, shift 0).

    Input Q3.12 (for multiplier 0 / shift 0), output Q0.15 in [0, 32767]: table interpolation on the
    absolute value (9 fractional bits), mirrored for negative inputs, in uint32.
    """
    v = _scaled_input(x, input_multiplier, input_left_shift)
    a = abs(v) & 0xFFFFFFFF
    result = interpolate_sigmoid_table(a, 9, 0x7FFF << 10) & 0xFFFFFFFF
    if v >= 0:
        result = (result + (1 << 9)) & 0xFFFFFFFF
    else:
        result = ((1 << (16 + 9)) - result + (1 << 9) - 1) & 0xFFFFFFFF
    return _int16(result >> 10)


def tanh_int16(x: int, input_multiplier: int = 0, input_left_shift: int = 0) -> int:
    """TFLite ``reference_integer_ops::Tanh`` on int16: tanh(v) = 2 sigmoid(2v) - 1 on the same table.

    Input Q3.12 for multiplier 0 / shift 0, output Q0.15: interpolation with 8 fractional bits (uint32,
    stored in an int32), then ``(result -/+ 2**23 + 2**7 [- 1]) >> 8`` (arithmetic shift), int16 store.
    """
    v = _scaled_input(x, input_multiplier, input_left_shift)
    a = abs(v) & 0xFFFFFFFF
    result = wrap_int32(interpolate_sigmoid_table(a, 8, 0xFFFF << 8))
    if v >= 0:
        result = result - (1 << (14 + 9)) + (1 << (9 - 2))
    else:
        result = -result + (1 << (14 + 9)) + (1 << (9 - 2)) - 1
    return _int16(wrap_int32(result) >> (9 - 1))


def lstm_tanh_params(cell_state_scale_power: int) -> tuple[int, int]:
    """``(input_multiplier, input_left_shift)`` of TFLM's ``lstm_internal::Tanh`` for a cell scale 2**p.

    ``shift = 15 + p - 3`` (Q3.12 wants p = -12: shift 0); a negative shift becomes its magnitude
    with multiplier 3 (a right shift of ``3 x``), a non-negative one keeps multiplier 0 (``3 << shift``).
    """
    shift = (15 + cell_state_scale_power) - 3
    if shift < 0:
        return 3, -shift
    return 0, shift


def _fc16(v, w, bias, offset, m, s, rounding):
    """One gate's fully connected part: int16 results of ``MBQM(sum w * (v + offset) + bias)`` (zero point 0)."""
    out = []
    for j, row in enumerate(w):
        acc = sum(int(wk) * (int(vk) + offset) for wk, vk in zip(row, v))
        if bias is not None:
            acc += int(bias[j])
        out.append(min(max(multiply_by_quantized_multiplier(wrap_int32(acc), m, s, rounding), INT16_MIN), INT16_MAX))
    return out


def _mul(a, b, m, s, offset, lo, hi, rounding):
    """``reference_integer_ops::MulElementwise`` of int16 vectors (input offsets 0): clamp(MBQM(a * b) + offset)."""
    return [min(max(multiply_by_quantized_multiplier(int(p) * int(q), m, s, rounding) + offset, lo), hi)
            for p, q in zip(a, b)]


def lstm_s8(x, w_in, w_rec, bias, *, input_offset, hidden_offset, fc_in, fc_rec, forget_mul, input_mul,
            output_mul, cell_tanh, cell_clip, h0, c0, rounding=DOUBLE_ROUNDING):
    """One invocation of TFLM's integer LSTM on a time-major sequence; the module docstring's formulas.

    Args:
        x: int8[T, B, I] (a batch-major [B, T, I] model's invocation with B = 1 is the same data).
        w_in: four int8[S, I] input weights, gate order forget, input, cell, output; w_rec: four
            int8[S, S] recurrent weights; bias: four int32[S] (the input FC's bias).
        input_offset: minus the input zero point; hidden_offset: minus the hidden state's zero point.
        fc_in, fc_rec: four (multiplier, shift) each, of ``s_x * s_w / 2**-12`` and ``s_h * s_r / 2**-12``.
        forget_mul, input_mul: (multiplier, shift) of ``2**-15 * s_c / s_c`` and ``2**-30 / s_c``;
            output_mul: of ``2**-30 / s_h``.
        cell_tanh: (input_multiplier, input_left_shift) from :func:`lstm_tanh_params`.
        cell_clip: the quantized clip (> 0), or 0 for none.
        h0: int8[B, S] initial hidden state; c0: int16[B, S] initial cell state.
        rounding: requantization rounding of every MBQM ("double": TFLM).

    Returns:
        ``(out int8[T, B, S], h int8[B, S], c int16[B, S])`` as nested lists of ints.
    """
    h = [[int(v) for v in row] for row in h0]
    c = [[int(v) for v in row] for row in c0]
    zh = -hidden_offset
    out = []
    for xt in x:
        step = []
        for b, xb in enumerate(xt):
            def gate(k, xb=xb, b=b):
                a = _fc16(xb, w_in[k], bias[k], input_offset, *fc_in[k], rounding)
                r = _fc16(h[b], w_rec[k], None, hidden_offset, *fc_rec[k], rounding)
                return [min(max(p + q, INT16_MIN), INT16_MAX) for p, q in zip(a, r)]

            f = [logistic_int16(v) for v in gate(0)]
            i = [logistic_int16(v) for v in gate(1)]
            g = [tanh_int16(v) for v in gate(2)]
            fc = _mul(f, c[b], *forget_mul, 0, INT16_MIN, INT16_MAX, rounding)
            ig = _mul(i, g, *input_mul, 0, INT16_MIN, INT16_MAX, rounding)
            cb = [min(max(p + q, INT16_MIN), INT16_MAX) for p, q in zip(fc, ig)]
            if cell_clip > 0:
                cb = [max(min(cell_clip, v), -cell_clip) for v in cb]
            o = [logistic_int16(v) for v in gate(3)]
            t = [tanh_int16(v, *cell_tanh) for v in cb]
            h[b] = _mul(t, o, *output_mul, zh, -128, 127, rounding)
            c[b] = cb
            step.append(list(h[b]))
        out.append(step)
    return out, h, c
