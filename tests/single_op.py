"""Random one-operator int8 (and int16) models, for comparing tinyzo with TFLite Micro operator by operator.

``CASES[opcode](rng)`` builds a random, valid :class:`tinyzo.graph.Model` with one operator
(random shapes, strides, paddings, dilations, activations, scales and zero points);
``CASES_INT16[opcode](rng)`` the same with int16 activations (16x8 quantization: zero point 0),
the generators called with ``dtype=np.int16``;
:func:`compare_with_tflm` writes it to ``.tflite``, runs it in TFLM and in tinyzo on random inputs
and returns the number of elements compared and how many differ. Used by tests/test_ops_tflm.py
and scripts/bit_exactness.py.
"""

from __future__ import annotations

import numpy as np

from tinyzo.graph import Model, Operator, Tensor
from tinyzo.quant import QuantParams
from tinyzo.spec.conv import compute_out_size

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def _q(rng, scale_lo=0.005, scale_hi=0.2):
    return QuantParams([np.float32(np.exp(rng.uniform(np.log(scale_lo), np.log(scale_hi))))], [int(rng.integers(-128, 128))])


def _i8(rng, shape, lo=-128):
    return rng.integers(lo, 128, size=shape, dtype=np.int8)


INT16 = np.dtype(np.int16)


def _is16(dtype) -> bool:
    return np.dtype(dtype) == INT16


def _q16(rng, scale_lo=1e-5, scale_hi=1e-2):
    """int16 (16x8) quantization: a log-uniform scale in [scale_lo, scale_hi], zero point 0."""
    return QuantParams([np.float32(_log_uniform(rng, scale_lo, scale_hi))], [0])


def _i16(rng, shape):
    return rng.integers(-32768, 32768, size=shape, dtype=np.int16)


#: tensor types of the convolution family's random models (``types=`` of conv2d, depthwise_conv2d,
#: fully_connected): int8; INT4 weights with int8 activations; 16x8 (int16 activations, int8 weights)
#: with an int64 bias or with an int32 bias (int32 accumulator; CONV_2D and FULLY_CONNECTED only)
CONV_TYPES = ("int8", "int4", "16x8", "16x8_bias32")


def _types16(rng, types, cout, dot_len, s_in, s_w):
    """16x8 tensors: int16 input/output quantization (zero point 0) and the bias (int64, int32 or absent).

    The output scale puts a typical accumulator (std ~ sqrt(K) * 73 * 18900) at 3000 output steps
    times e^U(-3, 2); one case in eight instead draws an effective scale up to 2**13 (shifts up to
    14, outputs mostly saturated). The int32 bias spans up to the whole int32 range (the int32
    accumulator wraps as C's does). Returns (qx, qy, bias tensor or None, options).
    """
    qx = QuantParams([np.float32(s_in)], [0])
    if rng.integers(0, 8) == 0:  # the largest channel's effective scale in [1, 2**13]; s_out >= 1e-8 keeps
        # a fused RELU6's 6 / s_out in int32 (TFLite refuses the model otherwise)
        s_out = max(s_in * float(np.max(s_w)) / _log_uniform(rng, 1.0, 2.0**13), 1e-8)
    else:
        s_out = s_in * float(np.median(s_w)) * np.sqrt(dot_len) * 73 * 18900 / (3000.0 * float(np.exp(rng.uniform(-3, 2))))
    qy = QuantParams([np.float32(s_out)], [0])
    acc_scale = np.sqrt(dot_len) * 73 * 18900
    opts = {}
    bq = QuantParams(np.float32(s_in) * s_w, np.zeros(s_w.size))
    if rng.integers(0, 6) == 0:  # no bias: the options' quantized_bias_type picks the accumulator
        if types == "16x8_bias32":
            opts["quantized_bias_type"] = "INT32"
        return qx, qy, None, opts
    if types == "16x8_bias32":
        hi = int(min(2**31 - 1, acc_scale * float(np.exp(rng.uniform(-4, 2)))))
        return qx, qy, Tensor("b", (cout,), np.int32, bq, rng.integers(-hi, hi + 1, size=cout).astype(np.int32)), opts
    # mostly biases of the accumulators' size; one in eight up to 2**45 (the int64 range TFLite's
    # requantization takes is |acc| < 2**47)
    hi = 2**45 if rng.integers(0, 8) == 0 else int(acc_scale * float(np.exp(rng.uniform(-4, 1))))
    return qx, qy, Tensor("b", (cout,), np.int64, bq, rng.integers(-hi, hi + 1, size=cout).astype(np.int64)), opts


def _conv_like(rng, depthwise: bool, rounding: str, types: str = "int8", groups: bool = False):
    h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    cin = int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID" and ((kh - 1) * dh + 1 > h or (kw - 1) * dw + 1 > w):
        padding = "SAME"
    dm = int(rng.integers(1, 4)) if depthwise else 1
    cout = cin * dm if depthwise else int(rng.integers(1, 17))
    filter_c = cin
    if groups:  # input depth = groups * filter depth, output channels = groups * filters per group
        g = int(rng.integers(2, 5))
        filter_c = int(rng.integers(1, 4))
        cin, cout = g * filter_c, g * int(rng.integers(1, 5))
    qx, qy = _q(rng, 0.005, 0.1), _q(rng, 0.01, 0.5)
    per_channel = bool(rng.integers(0, 2)) or depthwise
    sw_ = np.exp(rng.uniform(np.log(0.001), np.log(0.05), size=cout if per_channel else 1)).astype(np.float32)
    wshape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, filter_c)
    wt = rng.integers(-8, 8, size=wshape).astype(np.int8) if types == "int4" else _i8(rng, wshape, lo=-127)
    bias_t = Tensor("b", (cout,), np.int32, QuantParams(qx.scale[0] * sw_, np.zeros(sw_.size)),
                    rng.integers(-20000, 20000, size=cout).astype(np.int32))
    oh = compute_out_size(padding, h, kh, sh, dh)
    ow = compute_out_size(padding, w, kw, sw, dw)
    act = np.int8
    extra = {}
    if types in ("16x8", "16x8_bias32"):
        act = np.int16
        qx, qy, bias_t, extra = _types16(rng, types, cout, kh * kw * (1 if depthwise else filter_c),
                                         float(qx.scale[0]), sw_)
    tensors = [
        Tensor("x", (1, h, w, cin), act, qx),
        Tensor("w", wshape, np.int8, QuantParams(sw_, np.zeros(sw_.size), 3 if depthwise else 0), wt,
               int4=types == "int4"),
    ] + ([bias_t] if bias_t is not None else []) + [Tensor("y", (1, oh, ow, cout), act, qy)]
    opts = dict(padding=padding, stride_h=sh, stride_w=sw, dilation_h_factor=dh, dilation_w_factor=dw,
                fused_activation_function=str(rng.choice(ACTS)))
    opts.update(extra)
    if depthwise:
        opts["depth_multiplier"] = dm
    y = len(tensors) - 1
    # no bias: CONV_2D gets an absent input (-1); DEPTHWISE_CONV_2D two inputs (TFLM's depthwise Prepare
    # crashes on a -1 bias: it frees the bias it did not allocate when the node lists three inputs)
    ins = (0, 1, 2) if bias_t is not None else ((0, 1) if depthwise else (0, 1, -1))
    op = Operator("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", ins, (y,), opts)
    return Model(tensors, [op], (0,), (y,), rounding=rounding)


def conv2d(rng, rounding="double", types="int8", groups=False):
    """A random CONV_2D; ``types`` one of :data:`CONV_TYPES`, ``groups`` for a grouped filter (2..4 groups)."""
    return _conv_like(rng, False, rounding, types, groups)


def depthwise_conv2d(rng, rounding="double", types="int8"):
    """A random DEPTHWISE_CONV_2D; ``types`` one of :data:`CONV_TYPES` except "16x8_bias32" (TFLM reads int64)."""
    return _conv_like(rng, True, rounding, types)


def fully_connected(rng, rounding="double", types="int8"):
    """A random FULLY_CONNECTED; ``types`` one of :data:`CONV_TYPES` (INT4: per-tensor weights, as TFLM needs)."""
    k = int(rng.choice([1, 7, 64, 300, 1100]))
    n_out = int(rng.integers(1, 20))
    per_channel = bool(rng.integers(0, 2)) and types != "int4"
    qx, qy = _q(rng, 0.005, 0.1), _q(rng, 0.01, 1.0)
    sw_ = np.exp(rng.uniform(np.log(0.0005), np.log(0.02), size=n_out if per_channel else 1)).astype(np.float32)
    # per-tensor weights: an asymmetric zero point one time in three (TFLM's per-tensor kernel applies it)
    wzp = [int(rng.integers(-128, 128))] if not per_channel and rng.integers(0, 3) == 0 else np.zeros(sw_.size)
    wt = rng.integers(-8, 8, size=(n_out, k)).astype(np.int8) if types == "int4" else _i8(rng, (n_out, k), lo=-127)
    bias_t = Tensor("b", (n_out,), np.int32, QuantParams(qx.scale[0] * sw_, np.zeros(sw_.size)),
                    rng.integers(-50000, 50000, size=n_out).astype(np.int32))
    act = np.int8
    extra = {}
    if types in ("16x8", "16x8_bias32"):
        act = np.int16
        qx, qy, bias_t, extra = _types16(rng, types, n_out, k, float(qx.scale[0]), sw_)
    tensors = [
        Tensor("x", (1, k), act, qx),
        Tensor("w", (n_out, k), np.int8, QuantParams(sw_, wzp), wt, int4=types == "int4"),
    ] + ([bias_t] if bias_t is not None else []) + [Tensor("y", (1, n_out), act, qy)]
    opts = {"fused_activation_function": str(rng.choice(ACTS))}
    opts.update(extra)
    y = len(tensors) - 1
    op = Operator("FULLY_CONNECTED", (0, 1, 2 if bias_t is not None else -1), (y,), opts)
    return Model(tensors, [op], (0,), (y,), rounding=rounding)


def add(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        return _add_sub16(rng, "ADD", rounding)
    shape = (1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 9)))
    other = tuple(d if rng.integers(0, 3) else 1 for d in shape)
    other = (1,) + other[1:]
    tensors = [Tensor("a", shape, np.int8, _q(rng)), Tensor("b", other, np.int8, _q(rng)),
               Tensor("y", shape, np.int8, _q(rng, 0.01, 0.4))]
    op = Operator("ADD", (0, 1), (2,), {"fused_activation_function": str(rng.choice(ACTS))})
    return Model(tensors, [op], (0, 1), (2,), rounding=rounding)


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _binary(rng, opcode, q1, q2, qo, options, rounding, dtype=np.int8):
    """A one-operator model ``y = opcode(a, b)`` on random broadcasting shapes (rank 2..5), int8 or int16.

    Each input keeps every dimension of the output or has some set to 1 (either side may
    broadcast); with probability 1/3 input 2 is a constant, with leading dimensions dropped at random.
    """
    rank = int(rng.integers(2, 6))
    full = (1,) + tuple(int(v) for v in rng.integers(1, 6, size=rank - 1))
    a = (1,) + tuple(d if rng.integers(0, 4) else 1 for d in full[1:])
    b = (1,) + tuple(d if rng.integers(0, 3) else 1 for d in full[1:])
    const = rng.integers(0, 3) == 0
    data = None
    if const:
        b = b[int(rng.integers(0, rank)):] or (1,)
        data = _i16(rng, b) if _is16(dtype) else _i8(rng, b)
    out = tuple(np.broadcast_shapes(a, b))
    dt = np.dtype(dtype)
    tensors = [Tensor("a", a, dt, q1), Tensor("b", b, dt, q2, data), Tensor("y", out, dt, qo)]
    inputs = (0,) if const else (0, 1)
    return Model(tensors, [Operator(opcode, (0, 1), (2,), options)], inputs, (2,), rounding=rounding)


def _add_sub16(rng, opcode, rounding):
    """int16 ADD/SUB: input scales 1e-5..0.1; output multiplier 2 s_max / (2**15 s_out) from 2**-4 down to
    2**-17 (s_out >= 1e-8 keeps a fused RELU6's bound in int32)."""
    q1, q2 = _q16(rng, 1e-5, 0.1), _q16(rng, 1e-5, 0.1)
    s_max = max(float(q1.scale[0]), float(q2.scale[0]))
    qo = QuantParams([np.float32(max(s_max * _log_uniform(rng, 2.0**-13, 8.0), 1e-8))], [0])
    return _binary(rng, opcode, q1, q2, qo, {"fused_activation_function": str(rng.choice(ACTS))}, rounding, INT16)


def mul(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):  # product multiplier s1 s2 / s_out from 1e-6 (shift -19) to 300 (+9)
        q1, q2 = _q16(rng, 1e-5, 0.1), _q16(rng, 1e-5, 0.1)
        s_out = max(float(q1.scale[0]) * float(q2.scale[0]) / _log_uniform(rng, 1e-6, 300.0), 1e-8)
        qo = QuantParams([np.float32(s_out)], [0])
        return _binary(rng, "MUL", q1, q2, qo, {"fused_activation_function": str(rng.choice(ACTS))}, rounding, INT16)
    q1, q2 = _q(rng, 1e-3, 1.0), _q(rng, 1e-3, 1.0)
    real = _log_uniform(rng, 1e-5, 300.0)  # s1 * s2 / s_out: tiny multipliers up to shifts of +9
    qo = QuantParams([np.float32(q1.scale[0] * q2.scale[0] / real)], [int(rng.integers(-128, 128))])
    return _binary(rng, "MUL", q1, q2, qo, {"fused_activation_function": str(rng.choice(ACTS))}, rounding)


def sub(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        return _add_sub16(rng, "SUB", rounding)
    q1, q2 = _q(rng, 1e-4, 1.0), _q(rng, 1e-4, 1.0)  # input multipliers down to 1e-4 / 2
    s_max = max(float(q1.scale[0]), float(q2.scale[0]))
    # output multiplier 2 s_max / (2**20 s_out) up to 2**-1; s_out >= 1e-8 keeps a fused RELU6's 6 / s_out in
    # int32 (TFLite refuses the model otherwise, and so does tinyzo: tests/test_binary.py)
    s_out = max(s_max * _log_uniform(rng, 2.0**-18, 8.0), 1e-8)
    qo = QuantParams([np.float32(s_out)], [int(rng.integers(-128, 128))])
    return _binary(rng, "SUB", q1, q2, qo, {"fused_activation_function": str(rng.choice(ACTS))}, rounding)


def maximum(rng, rounding="double"):
    q = _q(rng)
    return _binary(rng, "MAXIMUM", q, q, q, {}, rounding)


def minimum(rng, rounding="double"):
    q = _q(rng)
    return _binary(rng, "MINIMUM", q, q, q, {}, rounding)


def prelu(rng, rounding="double"):
    q_in, q_alpha = _q(rng, 1e-3, 0.5), _q(rng, 1e-3, 0.05)
    qo = QuantParams([np.float32(q_in.scale[0] * _log_uniform(rng, 0.05, 4.0))], [int(rng.integers(-128, 128))])
    return _binary(rng, "PRELU", q_in, q_alpha, qo, {}, rounding)


def _unary(rng, opcode, q_in, q_out, options, rounding, dtype=np.int8):
    """A one-operator model ``y = opcode(x)`` on a random shape of rank 2..4 (int8 or int16 in and out)."""
    rank = int(rng.integers(2, 5))
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 9, size=rank - 1))
    tensors = [Tensor("x", shape, np.dtype(dtype), q_in), Tensor("y", shape, np.dtype(dtype), q_out)]
    return Model(tensors, [Operator(opcode, (0,), (1,), options)], (0,), (1,), rounding=rounding)


def _scaled(rng, q, lo, hi):
    """Quantization with scale ``q.scale * U(lo, hi)`` (log-uniform) and a random zero point."""
    return QuantParams([np.float32(q.scale[0] * _log_uniform(rng, lo, hi))], [int(rng.integers(-128, 128))])


def _scaled16(rng, q, lo, hi):
    """int16 quantization with scale ``q.scale * U(lo, hi)`` (log-uniform), zero point 0."""
    return QuantParams([np.float32(q.scale[0] * _log_uniform(rng, lo, hi))], [0])


def relu(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        q_in = _q16(rng, 1e-5, 0.1)
        return _unary(rng, "RELU", q_in, _scaled16(rng, q_in, 0.01, 100.0), {}, rounding, INT16)
    q_in = _q(rng, 1e-3, 1.0)
    return _unary(rng, "RELU", q_in, _scaled(rng, q_in, 0.01, 100.0), {}, rounding)


def relu6(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):  # 6 / scale from 600 to 6e5: the upper bound inside int16 or clamped at 32767
        q = _q16(rng, 1e-5, 1e-2)
        return _unary(rng, "RELU6", q, q, {}, rounding, INT16)
    q = _q(rng, 1e-3, 1.0)  # 6 / scale from 6 to 6000: the upper bound inside int8 or clamped at 127
    return _unary(rng, "RELU6", q, q, {}, rounding)


def leaky_relu(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        q_in = _q16(rng, 1e-5, 0.1)
        alpha = float(rng.choice([0.01, 0.1, 0.2, 0.3, 1.5, -0.5, 0.0, float(rng.uniform(-2, 2))]))
        return _unary(rng, "LEAKY_RELU", q_in, _scaled16(rng, q_in, 0.05, 20.0), {"alpha": alpha}, rounding, INT16)
    q_in = _q(rng, 1e-3, 1.0)
    alpha = float(rng.choice([0.01, 0.1, 0.2, 0.3, 1.5, -0.5, 0.0, float(rng.uniform(-2, 2))]))
    return _unary(rng, "LEAKY_RELU", q_in, _scaled(rng, q_in, 0.05, 20.0), {"alpha": alpha}, rounding)


def hard_swish(rng, rounding="double"):
    q_in = _q(rng, 1e-3, 1.0)
    return _unary(rng, "HARD_SWISH", q_in, _scaled(rng, q_in, 0.02, 50.0), {}, rounding)


def _logistic_tanh16_input(rng):
    """int16 LOGISTIC/TANH input quantization: a power-of-two scale 2**-13..2**-9 (TFLM's power-of-two
    paths at 2**-12 and, for TANH, 2**-11) half of the time, else log-uniform in [1e-5, 2.5]; zero point 0."""
    if rng.integers(0, 2):
        return QuantParams([np.float32(2.0 ** -int(rng.integers(9, 14)))], [0])
    return _q16(rng, 1e-5, 2.5)


def logistic(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        return _unary(rng, "LOGISTIC", _logistic_tanh16_input(rng), QuantParams([2.0**-15], [0]), {}, rounding, INT16)
    return _unary(rng, "LOGISTIC", _q(rng, 1e-3, 2.0), QuantParams([1 / 256], [-128]), {}, rounding)


def tanh(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        return _unary(rng, "TANH", _logistic_tanh16_input(rng), QuantParams([2.0**-15], [0]), {}, rounding, INT16)
    return _unary(rng, "TANH", _q(rng, 1e-3, 2.0), QuantParams([1 / 128], [0]), {}, rounding)


def _pool(rng, opcode, rounding, dtype=np.int8):
    h, w, c = int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 6))
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID" and (fh > h or fw > w):
        padding = "SAME"
    oh, ow = compute_out_size(padding, h, fh, sh, 1), compute_out_size(padding, w, fw, sw, 1)
    q = _q16(rng, 1e-5, 1e-2) if _is16(dtype) else _q(rng)
    dt = np.dtype(dtype)
    tensors = [Tensor("x", (1, h, w, c), dt, q), Tensor("y", (1, oh, ow, c), dt, q)]
    op = Operator(opcode, (0,), (1,), dict(padding=padding, stride_h=sh, stride_w=sw, filter_height=fh,
                                           filter_width=fw, fused_activation_function=str(rng.choice(ACTS[:3]))))
    return Model(tensors, [op], (0,), (1,), rounding=rounding)


def average_pool2d(rng, rounding="double", dtype=np.int8):
    return _pool(rng, "AVERAGE_POOL_2D", rounding, dtype)


def max_pool2d(rng, rounding="double", dtype=np.int8):
    return _pool(rng, "MAX_POOL_2D", rounding, dtype)


def mean(rng, rounding="double"):
    shape = (1, int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 9)))
    axes = sorted(rng.choice([1, 2, 3], size=int(rng.integers(1, 3)), replace=False).tolist())
    keep = bool(rng.integers(0, 2))
    out = tuple((1 if i in axes else d) for i, d in enumerate(shape)) if keep else tuple(
        d for i, d in enumerate(shape) if i not in axes)
    tensors = [Tensor("x", shape, np.int8, _q(rng)), Tensor("axes", (len(axes),), np.int32, None, np.int32(axes)),
               Tensor("y", out, np.int8, _q(rng))]
    return Model(tensors, [Operator("MEAN", (0, 1), (2,), {"keep_dims": keep})], (0,), (2,), rounding=rounding)


def softmax(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):  # beta * s_in from 5e-7 to 0.2 (TFLM's table spans exp(-10)..1 over 65535 steps)
        depth = int(rng.choice([1, 2, 3, 10, 100, 400, 1000]))
        shape = (1, depth) if rng.integers(0, 2) else (1, int(rng.integers(1, 4)), depth)
        tensors = [Tensor("x", shape, INT16, _q16(rng, 1e-6, 0.1)),
                   Tensor("y", shape, INT16, QuantParams([1 / 32768], [0]))]
        beta = float(rng.choice([1.0, 0.5, 2.0]))
        return Model(tensors, [Operator("SOFTMAX", (0,), (1,), {"beta": beta})], (0,), (1,), rounding=rounding)
    depth = int(rng.choice([2, 3, 10, 100, 400]))
    tensors = [Tensor("x", (1, depth), np.int8, _q(rng, 0.01, 0.5)),
               Tensor("y", (1, depth), np.int8, QuantParams([1 / 256], [-128]))]
    beta = float(rng.choice([1.0, 0.5, 2.0]))
    return Model(tensors, [Operator("SOFTMAX", (0,), (1,), {"beta": beta})], (0,), (1,), rounding=rounding)


def reshape(rng, rounding="double"):
    a, b, c = (int(v) for v in rng.integers(1, 6, size=3))
    q = _q(rng)
    tensors = [Tensor("x", (1, a, b, c), np.int8, q), Tensor("s", (2,), np.int32, None, np.int32([1, a * b * c])),
               Tensor("y", (1, a * b * c), np.int8, q)]
    return Model(tensors, [Operator("RESHAPE", (0, 1), (2,), {"new_shape": [1, a * b * c]})], (0,), (2,),
                 rounding=rounding)


def pad(rng, rounding="double"):
    shape = (1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 5)))
    pads = np.zeros((4, 2), np.int32)
    pads[1:] = rng.integers(0, 3, size=(3, 2))
    out = tuple(int(d + p0 + p1) for d, (p0, p1) in zip(shape, pads))
    q = _q(rng)
    tensors = [Tensor("x", shape, np.int8, q), Tensor("p", (4, 2), np.int32, None, pads), Tensor("y", out, np.int8, q)]
    return Model(tensors, [Operator("PAD", (0, 1), (2,))], (0,), (2,), rounding=rounding)


def concatenation(rng, rounding="double"):
    axis = int(rng.integers(1, 4))
    base = [1, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 5))]
    shapes = []
    for _ in range(int(rng.integers(2, 4))):
        s = list(base)
        s[axis] = int(rng.integers(1, 4))
        shapes.append(tuple(s))
    out = list(base)
    out[axis] = sum(s[axis] for s in shapes)
    q = _q(rng)
    tensors = [Tensor(f"x{k}", s, np.int8, q) for k, s in enumerate(shapes)] + [Tensor("y", tuple(out), np.int8, q)]
    n = len(shapes)
    op = Operator("CONCATENATION", tuple(range(n)), (n,), {"axis": axis, "fused_activation_function": "NONE"})
    return Model(tensors, [op], tuple(range(n)), (n,), rounding=rounding)


def _quantize16(rng, rounding):
    """One of TFLM's int16 QUANTIZE pairs: float32 -> int16, int8 -> int16, int16 -> int8, int16 -> int16."""
    shape = (1, int(rng.integers(1, 40)))
    pair = int(rng.integers(0, 4))
    if pair == 0:  # model inputs ~ N(0, 100): scales 1e-3..0.1 keep most values inside int16, some saturate
        src = Tensor("x", shape, np.float32)
        dst = Tensor("y", shape, INT16, _q16(rng, 1e-3, 0.1))
    elif pair == 1:  # int8 -> int16: s_in / s_out from 1 to 2**14
        q_in = _q(rng)
        src, dst = Tensor("x", shape, np.int8, q_in), Tensor("y", shape, INT16, _scaled16(rng, q_in, 2.0**-14, 1.0))
    elif pair == 2:  # int16 -> int8: s_in / s_out from 2**-16 to 1
        q_in = _q16(rng, 1e-5, 1e-2)
        q_out = QuantParams([np.float32(q_in.scale[0] * _log_uniform(rng, 1.0, 2.0**16))], [int(rng.integers(-128, 128))])
        src, dst = Tensor("x", shape, INT16, q_in), Tensor("y", shape, np.int8, q_out)
    else:
        q_in = _q16(rng, 1e-5, 1e-2)
        src, dst = Tensor("x", shape, INT16, q_in), Tensor("y", shape, INT16, _scaled16(rng, q_in, 0.1, 10.0))
    return Model([src, dst], [Operator("QUANTIZE", (0,), (1,))], (0,), (1,), rounding=rounding)


def quantize(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        return _quantize16(rng, rounding)
    shape = (1, int(rng.integers(1, 20)))
    tensors = [Tensor("x", shape, np.int8, _q(rng)), Tensor("y", shape, np.int8, _q(rng))]
    return Model(tensors, [Operator("QUANTIZE", (0,), (1,))], (0,), (1,), rounding=rounding)


def dequantize(rng, rounding="double", dtype=np.int8):
    if _is16(dtype):
        shape = (1, int(rng.integers(1, 40)))
        tensors = [Tensor("x", shape, INT16, _q16(rng, 1e-6, 1.0)), Tensor("y", shape, np.float32)]
        return Model(tensors, [Operator("DEQUANTIZE", (0,), (1,))], (0,), (1,), rounding=rounding)
    shape = (1, int(rng.integers(1, 20)))
    tensors = [Tensor("x", shape, np.int8, _q(rng)), Tensor("y", shape, np.float32)]
    return Model(tensors, [Operator("DEQUANTIZE", (0,), (1,))], (0,), (1,), rounding=rounding)


def _copy_dtype(rng, dtypes=(np.int8, np.int16, np.int32)):
    """A dtype for a copying operator (int8 half of the time) and matching quantization (int16: symmetric)."""
    dt = np.dtype(np.int8) if rng.integers(0, 2) or len(dtypes) == 1 else np.dtype(rng.choice(dtypes[1:]))
    if dt == np.int8:
        return dt, _q(rng)
    return dt, (QuantParams([np.float32(_log_uniform(rng, 1e-4, 1e-2))], [0]) if rng.integers(0, 2) else None)


def squeeze(rng, rounding="double"):
    """Listed size-1 dimensions after the batch (an empty list would squeeze the batch dimension too)."""
    rank = int(rng.integers(2, 6))
    shape = [1] + [int(v) if rng.integers(0, 2) else 1 for v in rng.integers(2, 5, size=rank - 1)]
    if 1 not in shape[1:]:
        shape[int(rng.integers(1, rank))] = 1
    ones = [k for k in range(1, rank) if shape[k] == 1]
    dims = rng.choice(ones, size=int(rng.integers(1, len(ones) + 1)), replace=False).tolist()
    out = tuple(d for k, d in enumerate(shape) if k not in dims)
    dims = [d - rank if rng.integers(0, 2) else d for d in dims]
    dt, q = _copy_dtype(rng)
    tensors = [Tensor("x", tuple(shape), dt, q), Tensor("y", out, dt, q)]
    return Model(tensors, [Operator("SQUEEZE", (0,), (1,), {"squeeze_dims": dims})], (0,), (1,), rounding=rounding)


def expand_dims(rng, rounding="double"):
    """A new dimension anywhere, the axis given as a positive or a negative number."""
    rank = int(rng.integers(1, 5))
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 6, size=rank - 1))
    a = int(rng.integers(0, rank + 1))
    axis = a if rng.integers(0, 2) else a - rank - 1
    out = shape[:a] + (1,) + shape[a:]
    dt, q = _copy_dtype(rng, (np.int8, np.int16))
    tensors = [Tensor("x", shape, dt, q), Tensor("a", (1,), np.int32, None, np.int32([axis])), Tensor("y", out, dt, q)]
    return Model(tensors, [Operator("EXPAND_DIMS", (0, 1), (2,))], (0,), (2,), rounding=rounding)


def transpose(rng, rounding="double"):
    rank = int(rng.integers(2, 6))
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 6, size=rank - 1))
    perm = [0] + (1 + rng.permutation(rank - 1)).tolist()
    out = tuple(shape[p] for p in perm)
    dt, q = _copy_dtype(rng, (np.int8, np.int16))
    tensors = [Tensor("x", shape, dt, q), Tensor("p", (rank,), np.int32, None, np.int32(perm)), Tensor("y", out, dt, q)]
    return Model(tensors, [Operator("TRANSPOSE", (0, 1), (2,))], (0,), (2,), rounding=rounding)


def strided_slice(rng, rounding="double"):
    """Random begin/end (negative, out of range), strides (negative too) and begin/end/shrink masks, rank 1..4."""
    from tinyzo.spec.strided_slice import prepare_shape

    rank = int(rng.integers(1, 5))
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 8, size=rank - 1))
    for _ in range(100):
        begin = [0] + [int(rng.integers(-d - 2, d + 3)) for d in shape[1:]]
        end = [1] + [int(rng.integers(-d - 2, d + 3)) for d in shape[1:]]
        strides = [1] + [int(rng.choice([-3, -2, -1, 1, 1, 2, 3])) for _ in shape[1:]]
        bm, em = (int(rng.integers(0, 2**rank)) & ~1 for _ in range(2))
        sm = 0
        for k in range(1, rank):  # shrink an axis whose begin is in range
            if rng.integers(0, 4) == 0 and -shape[k] <= begin[k] < shape[k] and strides[k] > 0:
                sm |= 1 << k
        if rank > 1 and rng.integers(0, 8) == 0:  # shrink the batch axis itself (dimension 1 then leads)
            sm |= 1
        out = prepare_shape(shape, begin, end, strides, bm, em, sm)
        if out and out[0] == 1 and 0 not in out:
            break
    dt, q = _copy_dtype(rng)
    tensors = [Tensor("x", shape, dt, q), Tensor("b", (rank,), np.int32, None, np.int32(begin)),
               Tensor("e", (rank,), np.int32, None, np.int32(end)), Tensor("s", (rank,), np.int32, None, np.int32(strides)),
               Tensor("y", out, dt, q)]
    opts = {"begin_mask": bm, "end_mask": em, "shrink_axis_mask": sm}
    return Model(tensors, [Operator("STRIDED_SLICE", (0, 1, 2, 3), (4,), opts)], (0,), (4,), rounding=rounding)


def _split(rng, opcode, rounding):
    rank = int(rng.integers(2, 5))
    shape = [1] + [int(v) for v in rng.integers(1, 5, size=rank - 1)]
    axis = int(rng.integers(1, rank))
    n = int(rng.integers(1, 4))
    if opcode == "SPLIT":
        shape[axis] *= n
        sizes = [shape[axis] // n] * n
    else:
        sizes = [int(v) for v in rng.integers(1, 4, size=n)]
        shape[axis] = sum(sizes)
    dt, q = _copy_dtype(rng)
    outs = []
    for s in sizes:
        o = list(shape)
        o[axis] = s
        outs.append(Tensor(f"y{len(outs)}", tuple(o), dt, q))
    a = axis - rank if rng.integers(0, 2) else axis
    x = Tensor("x", tuple(shape), dt, q)
    ax = Tensor("axis", (1,), np.int32, None, np.int32([a]))
    if opcode == "SPLIT":
        tensors, ins = [ax, x], (0, 1)
    else:
        spl = list(sizes)
        if rng.integers(0, 2):
            spl[int(rng.integers(0, n))] = -1
        tensors, ins = [x, Tensor("sizes", (n,), np.int32, None, np.int32(spl)), ax], (0, 1, 2)
    k0 = len(tensors)
    tensors += outs
    op = Operator(opcode, ins, tuple(range(k0, k0 + n)), {"num_splits": n})
    return Model(tensors, [op], (ins[1] if opcode == "SPLIT" else 0,), tuple(range(k0, k0 + n)), rounding=rounding)


def split(rng, rounding="double"):
    return _split(rng, "SPLIT", rounding)


def split_v(rng, rounding="double"):
    return _split(rng, "SPLIT_V", rounding)


def gather(rng, rounding="double"):
    """int8 params (run-time or constant) by int32 indices (constant or run-time), axis and batch_dims."""
    from tinyzo.spec.layout import gather_shape

    rank = int(rng.integers(2, 5))
    pshape = (1,) + tuple(int(v) for v in rng.integers(1, 6, size=rank - 1))
    mode = int(rng.integers(0, 3))  # 0: run-time params, constant indices; 1: constant params (a table); 2: both run-time
    bd = int(rng.integers(0, 2)) if mode != 1 else 0
    axis = int(rng.integers(max(bd, 1), rank))
    ishape = tuple(pshape[:bd]) + tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(0 if bd else 1, 3))))
    if mode != 0 and (not ishape or ishape[0] != 1):
        ishape = (1,) + ishape[1:] if ishape else (1,)
    q = _q(rng)
    out = gather_shape(pshape, ishape, axis, bd)
    if mode == 1:  # a constant table gathered by run-time indices along its axis 0 (embedding lookup)
        pshape = tuple(int(v) for v in rng.integers(2, 8, size=int(rng.integers(1, 3))))
        axis, bd = 0, 0
        out = gather_shape(pshape, ishape, 0, 0)
    idx = rng.integers(0, pshape[axis], size=ishape).astype(np.int32)
    tensors = [Tensor("p", pshape, np.int8, q, _i8(rng, pshape) if mode == 1 else None),
               Tensor("i", ishape, np.int32, None, idx if mode == 0 else None), Tensor("y", out, np.int8, q)]
    opts = {"axis": axis - len(pshape) if rng.integers(0, 2) else axis, "batch_dims": bd}
    inputs = {0: (0,), 1: (1,), 2: (0, 1)}[mode]
    return Model(tensors, [Operator("GATHER", (0, 1), (2,), opts)], inputs, (2,), rounding=rounding)


def cast(rng, rounding="double"):
    """A random (input, output) type pair of TFLM's CAST; float32 only as the model's input or output."""
    types = [np.int8, np.int16, np.int32, np.uint32, np.float32]
    src = np.dtype(types[int(rng.integers(0, 5))])
    dst = np.dtype(types[int(rng.integers(0, 4 if src == np.float32 else 5))])
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 9, size=int(rng.integers(1, 3))))
    q_in = _q(rng) if src == np.int8 else None
    q_out = _q(rng) if dst == np.int8 else None
    tensors = [Tensor("x", shape, src, q_in), Tensor("y", shape, dst, q_out)]
    return Model(tensors, [Operator("CAST", (0,), (1,))], (0,), (1,), rounding=rounding)


def batch_matmul(rng, rounding="double"):
    """Random ranks 2..5, broadcast batch dimensions, adj_x/adj_y, a constant operand one time in three.

    Shapes are drawn until they suit a batch of samples (dimension 0 of the run-time operands and of
    the output is 1).
    """
    from tinyzo.spec.batch_matmul import batch_matmul_shape

    const = int(rng.integers(0, 3))  # 0: both run-time, 1: constant rhs (weights), 2: constant lhs
    for _ in range(200):
        r = int(rng.integers(2, 6))
        batch = [int(v) for v in rng.integers(1, 4, size=r - 2)]
        m_, k_, p_ = (int(v) for v in rng.integers(1, 9, size=3))
        if rng.integers(0, 4) == 0:
            k_ = int(rng.choice([64, 300]))
        adj_x, adj_y = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        lshape = tuple(d if rng.integers(0, 3) else 1 for d in batch) + ((k_, m_) if adj_x else (m_, k_))
        rshape = tuple(d if rng.integers(0, 3) else 1 for d in batch) + ((p_, k_) if adj_y else (k_, p_))
        if const == 1:
            rshape = rshape[int(rng.integers(0, r - 1)):]
        if const == 2:
            lshape = lshape[int(rng.integers(0, r - 1)):]
        out = batch_matmul_shape(lshape, rshape, adj_x, adj_y)
        if out[0] == 1 and (const == 2 or lshape[0] == 1) and (const == 1 or rshape[0] == 1):
            break
    ql, qr = _q(rng, 0.005, 0.1), _q(rng, 0.002, 0.05)
    qo = QuantParams([np.float32(ql.scale[0] * qr.scale[0] * np.sqrt(k_) * _log_uniform(rng, 5, 200))],
                     [int(rng.integers(-128, 128))])
    tensors = [Tensor("lhs", lshape, np.int8, ql, _i8(rng, lshape) if const == 2 else None),
               Tensor("rhs", rshape, np.int8, qr, _i8(rng, rshape) if const == 1 else None),
               Tensor("y", out, np.int8, qo)]
    inputs = {0: (0, 1), 1: (0,), 2: (1,)}[const]
    op = Operator("BATCH_MATMUL", (0, 1), (2,), {"adj_x": adj_x, "adj_y": adj_y})
    return Model(tensors, [op], inputs, (2,), rounding=rounding)


def svdf(rng, rounding="double"):
    """TFLM's integer SVDF: int8 in and out, int8 or int16 activation state (a variable tensor) and
    weights_time; random rank, filters, memory, scales and zero points. The state and output scales
    are set from the weights so that values spread over their type (times a random factor in
    [0.3, 3]: some saturation); an int8 state's zero point is random, so the stored state value
    wraps now and then, as in TFLM.

    The model is stateful: :func:`compare_with_tflm` runs the samples as one sequence.
    """
    n_input = int(rng.choice([1, 3, 8, 20, 64, 300]))
    rank = int(rng.integers(1, 4))
    n_unit = int(rng.integers(1, 9))
    n_filter, n_memory = n_unit * rank, int(rng.integers(1, 11))
    state_t = np.dtype(np.int16) if rng.integers(0, 2) else np.dtype(np.int8)
    t_max = np.iinfo(state_t).max
    qx = _q(rng, 0.005, 0.5)
    s_wf = np.float32(_log_uniform(rng, 0.001, 0.05))
    wf = _i8(rng, (n_filter, n_input), lo=-127)
    if state_t == np.int8:
        wt = _i8(rng, (n_filter, n_memory), lo=-127)
        s_wt = np.float32(_log_uniform(rng, 0.002, 0.05))
        zp_state = int(rng.integers(-128, 128))
    else:
        w_max = 1 << int(rng.integers(7, 16))  # int16 time weights of various magnitudes
        wt = rng.integers(-w_max + 1, w_max, size=(n_filter, n_memory)).astype(np.int16)
        s_wt = np.float32(_log_uniform(rng, 1e-5, 2e-4))
        zp_state = 0 if rng.integers(0, 3) else int(rng.integers(-300, 300))
    # spread of the feature accumulators (in input * weight units) and of the time dot products
    x_spread = float(np.sqrt(74.0**2 + float(qx.zero_point[0]) ** 2))
    acc_spread = x_spread * float(np.sqrt(np.mean(np.sum(wf.astype(np.float64) ** 2, axis=1)))) + 1.0
    q_state = QuantParams([np.float32(float(qx.scale[0]) * float(s_wf) * acc_spread / (0.5 * t_max)
                                      * _log_uniform(rng, 0.3, 3))], [zp_state])
    s_bias = np.float32(q_state.scale[0] * s_wt)
    time_spread = 0.5 * t_max * float(np.sqrt(rank * np.mean(np.sum(wt.astype(np.float64) ** 2, axis=1)))) + 1.0
    s_out = np.float32(float(s_bias) * time_spread / 64 * _log_uniform(rng, 0.3, 3))
    tensors = [
        Tensor("x", (1, n_input), np.int8, qx),
        Tensor("wf", (n_filter, n_input), np.int8, QuantParams([s_wf], [0]), wf),
        Tensor("wt", (n_filter, n_memory), state_t, QuantParams([s_wt], [0]), wt),
        Tensor("b", (n_unit,), np.int32, QuantParams([s_bias], [0]),
               rng.integers(-20000, 20000, size=n_unit).astype(np.int32)),
        Tensor("state", (1, n_filter * n_memory), state_t, q_state, None, True),
        Tensor("y", (1, n_unit), np.int8, QuantParams([s_out], [int(rng.integers(-128, 128))])),
    ]
    op = Operator("SVDF", (0, 1, 2, 3, 4), (5,), {"rank": rank, "fused_activation_function": str(rng.choice(ACTS))})
    return Model(tensors, [op], (0,), (5,), rounding=rounding)


def quantize_int16(rng, rounding="double"):
    """QUANTIZE from int16 to int8 or int32 (TFLM's keyword model: its input and output)."""
    shape = (1, int(rng.integers(1, 20)))
    out_t = np.dtype(np.int8) if rng.integers(0, 2) else np.dtype(np.int32)
    q_in = QuantParams([np.float32(_log_uniform(rng, 1e-5, 1e-2))], [0 if rng.integers(0, 2) else int(rng.integers(-999, 999))])
    if out_t == np.int8:
        q_out = _q(rng, 0.005, 0.5)
    else:
        q_out = QuantParams([np.float32(_log_uniform(rng, 1e-6, 1e-2))], [int(rng.integers(-10**6, 10**6))])
    tensors = [Tensor("x", shape, np.int16, q_in), Tensor("y", shape, out_t, q_out)]
    return Model(tensors, [Operator("QUANTIZE", (0,), (1,))], (0,), (1,), rounding=rounding)


def softmax_int16_out(rng, rounding="double"):
    """SOFTMAX with int8 input and int16 output (scale 1/65536, zero point -32768; TFLM's keyword model)."""
    depth = int(rng.choice([2, 3, 10, 100, 400]))
    tensors = [Tensor("x", (1, depth), np.int8, _q(rng, 0.01, 0.5)),
               Tensor("y", (1, depth), np.int16, QuantParams([np.float32(1 / 65536)], [-32768]))]
    beta = float(rng.choice([1.0, 0.5, 2.0]))
    return Model(tensors, [Operator("SOFTMAX", (0,), (1,), {"beta": beta})], (0,), (1,), rounding=rounding)


def _transpose_conv(rng, int16: bool, rounding: str):
    """Random TRANSPOSE_CONV: output size, filter, stride, SAME/VALID, per-tensor/per-channel weights, bias
    present (int32; for 16x8 int64 or int16), absent or given as index -1, fused activation.

    The input size is the forward convolution's output size for the drawn output (TensorFlow's
    conv2d_transpose shapes) five times in six; otherwise any size (TFLM's kernel is defined for it).
    """
    from tinyzo.spec.transpose_conv import transpose_conv_out_size

    oh, ow = int(rng.integers(1, 13)), int(rng.integers(1, 13))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    padding = str(rng.choice(["SAME", "VALID"]))
    ih, iw = (transpose_conv_out_size(padding, oh, kh, sh), transpose_conv_out_size(padding, ow, kw, sw))
    if rng.integers(0, 6) == 0 or not ih or not iw:
        ih, iw = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    cin, cout = int(rng.integers(1, 9)), int(rng.integers(1, 13))
    per_channel = bool(rng.integers(0, 2))
    sw_ = np.exp(rng.uniform(np.log(0.001), np.log(0.05), size=cout if per_channel else 1)).astype(np.float32)
    taps = cin * kh * kw
    if int16:
        dt = np.int16
        qx = QuantParams([np.float32(_log_uniform(rng, 1e-4, 1e-2))], [0])
        # the accumulator is about 2**15 * 2**6 * sqrt(taps) times s_x * s_w: output scales around that range
        s_y = float(qx.scale[0]) * float(np.median(sw_)) * 64 * np.sqrt(taps) * _log_uniform(rng, 0.05, 8.0)
        qy = QuantParams([np.float32(s_y)], [0])
        bias_dt = np.dtype(rng.choice([np.int64, np.int64, np.int16]))
        lim = 2**15 - 1 if bias_dt == np.int16 else 2**36
        bias = rng.integers(-lim, lim, size=cout, endpoint=True).astype(bias_dt)
    else:
        dt = np.int8
        qx = _q(rng, 0.005, 0.1)
        qy = QuantParams([np.float32(float(qx.scale[0]) * float(np.median(sw_)) * np.sqrt(taps)
                                     * _log_uniform(rng, 2.0, 300.0))], [int(rng.integers(-128, 128))])
        bias_dt = np.dtype(np.int32)
        bias = rng.integers(-20000, 20000, size=cout).astype(np.int32)
    tensors = [
        Tensor("output_shape", (4,), np.int32, None, np.int32([1, oh, ow, cout])),
        Tensor("w", (cout, kh, kw, cin), np.int8, QuantParams(sw_, np.zeros(sw_.size), 0),
               _i8(rng, (cout, kh, kw, cin), lo=-127)),
        Tensor("x", (1, ih, iw, cin), dt, qx),
        Tensor("b", (cout,), bias_dt, QuantParams(qx.scale[0] * sw_, np.zeros(sw_.size)), bias),
        Tensor("y", (1, oh, ow, cout), dt, qy),
    ]
    bias_mode = int(rng.integers(0, 4))  # 0: no bias input, 1: bias index -1, 2-3: a bias
    inputs = (0, 1, 2) if bias_mode == 0 else (0, 1, 2, -1) if bias_mode == 1 else (0, 1, 2, 3)
    opts = {"padding": padding, "stride_h": sh, "stride_w": sw, "fused_activation_function": str(rng.choice(ACTS))}
    return Model(tensors, [Operator("TRANSPOSE_CONV", inputs, (4,), opts)], (2,), (4,), rounding=rounding)


def transpose_conv(rng, rounding="double"):
    return _transpose_conv(rng, False, rounding)


def transpose_conv_16x8(rng, rounding="double"):
    return _transpose_conv(rng, True, rounding)


def _float_lstm(x, w_in, w_rec, bias):
    """Keras' LSTM in float64 over x [n, T, I] from zero states: (h of every step [n, T, S], c of every step).

    Gate order of the stacked weights: forget, input, cell, output.
    """
    n, t_steps, _ = x.shape
    s_dim = w_in.shape[1]
    h, c = np.zeros((n, s_dim)), np.zeros((n, s_dim))
    hs, cs = [], []
    for t in range(t_steps):
        pre = [x[:, t] @ w_in[g].T + h @ w_rec[g].T + bias[g] for g in range(4)]
        f, i, o = (1 / (1 + np.exp(-pre[k])) for k in (0, 1, 3))
        c = f * c + i * np.tanh(pre[2])
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, 1), np.stack(cs, 1)


def _asymmetric_int8(lo: float, hi: float) -> QuantParams:
    """TFLite's asymmetric int8 parameters of a calibrated range (``GetAsymmetricQuantizationParams``)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QuantParams([np.float32(scale)], [zp])


def unidirectional_sequence_lstm(rng, rounding="double"):
    """A random integer LSTM quantized as TFLite's post-training quantizer does it (8x8->16, no layer norm).

    A float Keras LSTM (random weights, forget bias +1) is calibrated on random sequences; then
    input and output: asymmetric int8 from the calibrated ranges (the hidden state shares the
    output's parameters); weights: symmetric int8, one scale per tensor (max |w| / 127); biases:
    int32 at s_input * s_weights of the gate's input weights; cell state: int16 at the power-of-two
    scale 2**(pot - 15) with pot the smallest integer in [0, 10] such that 2**pot >= max |c|. For
    coverage, one model in three moves pot by -2..+5 (a saturating or a coarse cell: every branch of
    the cell tanh's rescaling) and one in three has a ``cell_clip`` inside the calibrated cell range. Batch-major [1, T, I] two times in three,
    else time-major [1, B, I].
    """
    s_dim, i_dim = int(rng.integers(1, 17)), int(rng.integers(1, 13))
    time_major = rng.integers(0, 3) == 0
    t_steps, b_dim = (1, 1) if time_major else (int(rng.integers(1, 11)), 1)  # states [1, S]: one per stream
    w_in = rng.uniform(-1, 1, size=(4, s_dim, i_dim)) * _log_uniform(rng, 0.3, 4.0) / np.sqrt(i_dim)
    w_rec = rng.uniform(-1, 1, size=(4, s_dim, s_dim)) * _log_uniform(rng, 0.3, 4.0) / np.sqrt(s_dim)
    bias = rng.normal(0, 0.5, size=(4, s_dim))
    bias[0] += 1.0
    x_cal = rng.normal(rng.normal(0, 0.5), _log_uniform(rng, 0.2, 3.0), size=(64, max(t_steps, 4), i_dim))
    h_cal, c_cal = _float_lstm(x_cal, w_in, w_rec, bias)
    q_x = _asymmetric_int8(float(x_cal.min()), float(x_cal.max()))
    q_h = _asymmetric_int8(float(h_cal.min()), float(h_cal.max()))
    c_max = float(np.abs(c_cal).max())
    pot = next((p for p in range(11) if 2.0**p >= c_max), 10)
    if rng.integers(0, 3) == 0:
        pot = int(np.clip(pot + rng.integers(-2, 6), 0, 10))
    q_c = QuantParams([np.float32(2.0 ** (pot - 15))], [0])
    cell_clip = float(rng.uniform(0.3, 1.0) * c_max) if rng.integers(0, 3) == 0 else 0.0
    tensors = [Tensor("x", (1, b_dim, i_dim) if time_major else (1, t_steps, i_dim), np.int8, q_x)]
    inputs = [0] + [-1] * 23
    for g, (ki, kr, kb) in enumerate(zip((2, 1, 3, 4), (6, 5, 7, 8), (13, 12, 14, 15))):
        for k, w in ((ki, w_in[g]), (kr, w_rec[g])):
            s_w = float(np.abs(w).max()) / 127 or 1.0
            q = np.clip(np.round(w / np.float32(s_w)), -127, 127).astype(np.int8)
            inputs[k] = len(tensors)
            tensors.append(Tensor(f"w{k}", w.shape, np.int8, QuantParams([np.float32(s_w)], [0]), q))
        s_b = float(q_x.scale[0]) * float(tensors[inputs[ki]].quant.scale[0])
        inputs[kb] = len(tensors)
        tensors.append(Tensor(f"b{kb}", (s_dim,), np.int32, QuantParams([np.float32(s_b)], [0]),
                              np.clip(np.round(bias[g] / s_b), -(2**31), 2**31 - 1).astype(np.int32)))
    inputs[18] = len(tensors)
    tensors.append(Tensor("hidden_state", (b_dim, s_dim), np.int8, q_h, is_variable=True))
    inputs[19] = len(tensors)
    tensors.append(Tensor("cell_state", (b_dim, s_dim), np.int16, q_c, is_variable=True))
    y = len(tensors)
    tensors.append(Tensor("y", (1, b_dim, s_dim) if time_major else (1, t_steps, s_dim), np.int8, q_h))
    opts = {"fused_activation_function": "TANH", "cell_clip": cell_clip, "time_major": bool(time_major)}
    op = Operator("UNIDIRECTIONAL_SEQUENCE_LSTM", tuple(inputs), (y,), opts)
    return Model(tensors, [op], (0,), (y,), rounding=rounding)


CASES = {
    "CONV_2D": conv2d,
    "DEPTHWISE_CONV_2D": depthwise_conv2d,
    "FULLY_CONNECTED": fully_connected,
    "ADD": add,
    "SUB": sub,
    "MUL": mul,
    "MAXIMUM": maximum,
    "MINIMUM": minimum,
    "PRELU": prelu,
    "RELU": relu,
    "RELU6": relu6,
    "LEAKY_RELU": leaky_relu,
    "HARD_SWISH": hard_swish,
    "LOGISTIC": logistic,
    "TANH": tanh,
    "AVERAGE_POOL_2D": average_pool2d,
    "MAX_POOL_2D": max_pool2d,
    "MEAN": mean,
    "SOFTMAX": softmax,
    "RESHAPE": reshape,
    "PAD": pad,
    "CONCATENATION": concatenation,
    "QUANTIZE": quantize,
    "DEQUANTIZE": dequantize,
    "SQUEEZE": squeeze,
    "EXPAND_DIMS": expand_dims,
    "TRANSPOSE": transpose,
    "STRIDED_SLICE": strided_slice,
    "SPLIT": split,
    "SPLIT_V": split_v,
    "GATHER": gather,
    "CAST": cast,
    "BATCH_MATMUL": batch_matmul,
    "SVDF": svdf,
    "QUANTIZE_INT16": quantize_int16,
    "SOFTMAX_INT16_OUT": softmax_int16_out,
    "TRANSPOSE_CONV": transpose_conv,
    "TRANSPOSE_CONV_16x8": transpose_conv_16x8,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": unidirectional_sequence_lstm,
}


def _int16_case(build):
    """``build`` with ``dtype=np.int16``, as a one-argument builder like the entries of :data:`CASES`."""

    def make(rng, rounding="double"):
        return build(rng, rounding, dtype=INT16)

    make.__name__ = f"{build.__name__}_int16"
    return make


#: The int16 (16x8) paths of TFLM that tinyzo implements: opcode -> random int16 one-operator model.
CASES_INT16 = {
    "ADD": _int16_case(add),
    "SUB": _int16_case(sub),
    "MUL": _int16_case(mul),
    "RELU": _int16_case(relu),
    "RELU6": _int16_case(relu6),
    "LEAKY_RELU": _int16_case(leaky_relu),
    "LOGISTIC": _int16_case(logistic),
    "TANH": _int16_case(tanh),
    "AVERAGE_POOL_2D": _int16_case(average_pool2d),
    "MAX_POOL_2D": _int16_case(max_pool2d),
    "SOFTMAX": _int16_case(softmax),
    "QUANTIZE": _int16_case(quantize),
    "DEQUANTIZE": _int16_case(dequantize),
}


#: the convolution family's other tensor types and grouped CONV_2D: name -> builder(rng, rounding)
TYPED_CASES = {
    "CONV_2D 16x8": lambda rng, rounding="double": conv2d(rng, rounding, "16x8"),
    "CONV_2D 16x8 int32 bias": lambda rng, rounding="double": conv2d(rng, rounding, "16x8_bias32"),
    "CONV_2D int4": lambda rng, rounding="double": conv2d(rng, rounding, "int4"),
    "CONV_2D grouped": lambda rng, rounding="double": conv2d(rng, rounding, "int8", groups=True),
    "CONV_2D grouped 16x8": lambda rng, rounding="double": conv2d(rng, rounding, "16x8", groups=True),
    "DEPTHWISE_CONV_2D 16x8": lambda rng, rounding="double": depthwise_conv2d(rng, rounding, "16x8"),
    "DEPTHWISE_CONV_2D int4": lambda rng, rounding="double": depthwise_conv2d(rng, rounding, "int4"),
    "FULLY_CONNECTED 16x8": lambda rng, rounding="double": fully_connected(rng, rounding, "16x8"),
    "FULLY_CONNECTED 16x8 int32 bias": lambda rng, rounding="double": fully_connected(rng, rounding, "16x8_bias32"),
    "FULLY_CONNECTED int4": lambda rng, rounding="double": fully_connected(rng, rounding, "int4"),
}


def random_inputs(model, n, rng):
    """Random inputs of each model input's dtype (full integer range) with a leading batch of ``n``."""
    xs = []
    index_range = {op.inputs[1]: prep.axis_size for op, prep in zip(model.operators, model.prepared)
                   if op.opcode == "GATHER"}  # run-time GATHER indices: valid positions only
    cast_target = {op.inputs[0]: model.tensors[op.outputs[0]].dtype for op in model.operators
                   if op.opcode == "CAST" and model.tensors[op.outputs[0]].dtype.kind != "f"}
    for i in model.inputs:
        t = model.tensors[i]
        shape = (n,) + t.shape[1:]
        if i in index_range:
            xs.append(rng.integers(0, index_range[i], size=shape).astype(t.dtype))
        elif t.dtype.kind == "f" and i in cast_target:  # values whose truncation fits (C: undefined otherwise)
            info = np.iinfo(cast_target[i])
            lo, hi = max(info.min, -(2**20)), min(info.max, 2**20)
            x = rng.uniform(lo - 0.999, hi + 0.999, size=shape).astype(t.dtype)
            x[rng.random(shape) < 0.2] = np.float32(rng.choice([lo, hi, 0.5, -0.5, -0.0]))
            xs.append(x)
        elif t.dtype.kind == "f":
            xs.append(rng.normal(0, 100, size=shape).astype(t.dtype))
        else:
            info = np.iinfo(t.dtype)
            xs.append(rng.integers(info.min, info.max, size=shape, dtype=t.dtype, endpoint=True))
    return xs


def compare_with_tflm(model, n=8, seed=0):
    """Run ``model`` in TFLM (written to .tflite) and in tinyzo on ``n`` random samples.

    Returns ``(elements_compared, elements_different)`` over all outputs. Float outputs
    (DEQUANTIZE) are compared bit for bit too.
    """
    from oracle import tflm_run

    from tinyzo.io import write_tflite

    rng = np.random.default_rng(seed)
    xs = random_inputs(model, n, rng)
    outs, _ = tflm_run(write_tflite(model), xs)
    if model.variables:  # stateful: TFLM ran the n samples as one sequence (state carried), so does tinyzo
        model.reset_state()
        steps = [model(*(x[b:b + 1] for x in xs)) for b in range(n)]
        steps = [y if isinstance(y, tuple) else (y,) for y in steps]
        ys = tuple(np.concatenate([s[k] for s in steps]) for k in range(len(steps[0])))
    else:
        ys = model(*xs)
    ys = ys if isinstance(ys, tuple) else (ys,)
    total = diff = 0
    for y, o in zip(ys, outs):
        o = o.reshape(y.shape)
        total += y.size
        assert y.dtype == o.dtype, (y.dtype, o.dtype)
        raw = np.dtype(f"u{y.dtype.itemsize}")
        diff += int(np.count_nonzero(y.view(raw) != o.view(raw)))
    return total, diff
