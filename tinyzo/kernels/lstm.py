"""Jitted integer UNIDIRECTIONAL_SEQUENCE_LSTM kernel (TFLite Micro's 8x8->16 ``EvalLstm``).

Equal to :func:`tinyzo.spec.lstm.lstm_s8` (property-tested); the int16 sigmoid/tanh equal
:func:`tinyzo.spec.lstm.logistic_int16`/:func:`~tinyzo.spec.lstm.tanh_int16` for every int16 input.
The scalars travel in one :data:`LSTM_PARAMS` record (as the C port's op struct would).
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import multiply_by_quantized_multiplier, wrap_int32
from tinyzo.spec.lstm import SIGMOID_TABLE_UINT16

#: TFLite's sigmoid table (see :data:`tinyzo.spec.lstm.SIGMOID_TABLE_UINT16`) as a uint32 array.
SIGMOID_TABLE = np.array(SIGMOID_TABLE_UINT16, dtype=np.int64)

#: The LSTM's scalar parameters. Gate order of the [4] fields: forget, input, cell, output.
LSTM_PARAMS = np.dtype([
    ("input_offset", np.int32), ("hidden_offset", np.int32), ("hidden_zero_point", np.int32),
    ("fc_in_multiplier", np.int32, (4,)), ("fc_in_shift", np.int32, (4,)),
    ("fc_rec_multiplier", np.int32, (4,)), ("fc_rec_shift", np.int32, (4,)),
    ("forget_mul_multiplier", np.int32), ("forget_mul_shift", np.int32),
    ("input_mul_multiplier", np.int32), ("input_mul_shift", np.int32),
    ("output_mul_multiplier", np.int32), ("output_mul_shift", np.int32),
    ("cell_tanh_multiplier", np.int32), ("cell_tanh_shift", np.int32),
    ("cell_clip", np.int32), ("rounding", np.int32),
])


@njit(cache=True, inline="always")
def _scaled_input(x, input_multiplier, input_left_shift):
    """``(x * multiplier + round) >> shift`` in int32 (multiplier 0: ``3 << shift``, shift 0)."""
    m = np.int64(input_multiplier)
    s = np.int64(input_left_shift)
    if m == 0:
        m = np.int64(3) << s
        s = np.int64(0)
    rnd = (np.int64(1) << (s - np.int64(1))) if s > 0 else np.int64(0)
    return wrap_int32(np.int64(x) * m + rnd) >> s


@njit(cache=True, inline="always")
def _int16(v):
    """C's int16_t conversion (two's-complement wrap) of an int64."""
    return ((v + np.int64(32768)) & np.int64(0xFFFF)) - np.int64(32768)


@njit(cache=True, inline="always")
def _interpolate_sigmoid_table(a, frac_bits, saturated):
    """:func:`tinyzo.spec.lut.interpolate_sigmoid_table`: ``SIGMOID_TABLE[a >> frac_bits]`` interpolated with the
    low ``frac_bits`` bits of ``a`` (int64 >= 0), ``saturated`` from interval 255 on; below 2**26."""
    uh = a >> frac_bits
    if uh >= 255:
        return saturated
    ua = SIGMOID_TABLE[uh]
    ub = SIGMOID_TABLE[uh + 1]
    return (ua << frac_bits) + (a & ((np.int64(1) << frac_bits) - np.int64(1))) * (ub - ua)


@njit(cache=True, inline="always")
def logistic_int16(x, input_multiplier, input_left_shift):
    """TFLite's int16 ``reference_integer_ops::Logistic`` (table interpolation; Q3.12 -> Q0.15 for 0, 0)."""
    v = _scaled_input(x, input_multiplier, input_left_shift)
    a = v if v >= 0 else -v
    result = _interpolate_sigmoid_table(a, np.int64(9), np.int64(0x7FFF) << np.int64(10)) & np.int64(0xFFFFFFFF)
    if v >= 0:
        result = (result + np.int64(512)) & np.int64(0xFFFFFFFF)
    else:
        result = ((np.int64(1) << np.int64(25)) - result + np.int64(511)) & np.int64(0xFFFFFFFF)
    return _int16(result >> np.int64(10))


@njit(cache=True, inline="always")
def tanh_int16(x, input_multiplier, input_left_shift):
    """TFLite's int16 ``reference_integer_ops::Tanh`` (the same table; Q3.12 -> Q0.15 for 0, 0)."""
    v = _scaled_input(x, input_multiplier, input_left_shift)
    a = v if v >= 0 else -v
    result = wrap_int32(_interpolate_sigmoid_table(a, np.int64(8), np.int64(0xFFFF) << np.int64(8)))
    if v >= 0:
        result = result - np.int64(1 << 23) + np.int64(1 << 7)
    else:
        result = -result + np.int64(1 << 23) + np.int64(1 << 7) - np.int64(1)
    return _int16(wrap_int32(result) >> np.int64(8))


@njit(cache=True, nogil=True)
def activation_int16(x, kind, input_multiplier, input_left_shift, out):
    """``out[i] = logistic_int16(x[i])`` (kind 0) or ``tanh_int16(x[i])`` (kind 1): int16[n] -> int16[n]."""
    for i in range(x.size):
        if kind == 0:
            out[i] = logistic_int16(x[i], input_multiplier, input_left_shift)
        else:
            out[i] = tanh_int16(x[i], input_multiplier, input_left_shift)


@njit(cache=True, inline="always")
def _gate(xv, hv, w_in, w_rec, bias, k, p, rounding, out):
    """``out = sat16(FC(x) + FC(h))`` for gate k: int32 dot products (wrapping), MBQM, clamp to int16."""
    s_dim, i_dim = w_in.shape[1], w_in.shape[2]
    xo = np.int64(p["input_offset"])
    ho = np.int64(p["hidden_offset"])
    for j in range(s_dim):
        acc = np.int64(0)
        for q in range(i_dim):
            acc += np.int64(w_in[k, j, q]) * (np.int64(xv[q]) + xo)
        acc = wrap_int32(acc + np.int64(bias[k, j]))
        a = multiply_by_quantized_multiplier(acc, p["fc_in_multiplier"][k], p["fc_in_shift"][k], rounding)
        a = min(max(a, np.int64(-32768)), np.int64(32767))
        acc = np.int64(0)
        for q in range(s_dim):
            acc += np.int64(w_rec[k, j, q]) * (np.int64(hv[q]) + ho)
        r = multiply_by_quantized_multiplier(wrap_int32(acc), p["fc_rec_multiplier"][k], p["fc_rec_shift"][k],
                                             rounding)
        r = min(max(r, np.int64(-32768)), np.int64(32767))
        out[j] = min(max(a + r, np.int64(-32768)), np.int64(32767))


@njit(cache=True, nogil=True)
def lstm_s8(x, w_in, w_rec, bias, params, h, c, out, gates):
    """TFLM's integer LSTM over each sample's time-major sequence, states carried through the steps.

    Per step and batch row: the four gates (forget, input, cell with tanh, output; sigmoid for the
    others) from ``sat16(FC(x_t) + FC(h))`` at scale 2**-12, then
    ``c = clip(sat16(mul16(f, c) + mul16(i, g)))`` and ``h = mul8(tanh(c), o)``; ``out[t] = h``
    (see :mod:`tinyzo.spec.lstm`). Double or single rounding (``params.rounding``).

    Args:
        x: int8[N, T, B, I] (time-major per sample).
        w_in: int8[4, S, I]; w_rec: int8[4, S, S]; bias: int32[4, S] (gate order forget, input, cell, output).
        params: :data:`LSTM_PARAMS` [1].
        h: int8[N, B, S] hidden state, read (initial) and written (final).
        c: int16[N, B, S] cell state, read and written.
        out: int8[N, T, B, S], written.
        gates: int16[4, S] scratch (TFLM's four int16 scratch buffers for one batch row).
    """
    p = params[0]
    rounding = p["rounding"]
    n, t_steps, b_dim, _ = x.shape
    s_dim = w_in.shape[1]
    clip = np.int64(p["cell_clip"])
    for s in range(n):
        for t in range(t_steps):
            for b in range(b_dim):
                hv = h[s, b]
                _gate(x[s, t, b], hv, w_in, w_rec, bias, 0, p, rounding, gates[0])
                _gate(x[s, t, b], hv, w_in, w_rec, bias, 1, p, rounding, gates[1])
                _gate(x[s, t, b], hv, w_in, w_rec, bias, 2, p, rounding, gates[2])
                _gate(x[s, t, b], hv, w_in, w_rec, bias, 3, p, rounding, gates[3])
                for j in range(s_dim):
                    f = logistic_int16(gates[0, j], 0, 0)
                    i = logistic_int16(gates[1, j], 0, 0)
                    g = tanh_int16(gates[2, j], 0, 0)
                    o = logistic_int16(gates[3, j], 0, 0)
                    fc = multiply_by_quantized_multiplier(f * np.int64(c[s, b, j]), p["forget_mul_multiplier"],
                                                          p["forget_mul_shift"], rounding)
                    fc = min(max(fc, np.int64(-32768)), np.int64(32767))
                    ig = multiply_by_quantized_multiplier(i * g, p["input_mul_multiplier"], p["input_mul_shift"],
                                                          rounding)
                    ig = min(max(ig, np.int64(-32768)), np.int64(32767))
                    cv = min(max(fc + ig, np.int64(-32768)), np.int64(32767))
                    if clip > 0:
                        cv = max(min(clip, cv), -clip)
                    c[s, b, j] = cv
                    th = tanh_int16(cv, p["cell_tanh_multiplier"], p["cell_tanh_shift"])
                    hv_new = multiply_by_quantized_multiplier(th * o, p["output_mul_multiplier"],
                                                              p["output_mul_shift"], rounding)
                    gates[0, j] = min(max(hv_new + np.int64(p["hidden_zero_point"]), np.int64(-128)), np.int64(127))
                for j in range(s_dim):
                    h[s, b, j] = gates[0, j]
                    out[s, t, b, j] = gates[0, j]
