"""One-layer local backward on the int8 graph: output gradient -> weight and bias gradients.

Node perturbation estimates ``dL/dy`` for a layer's int8 output ``y``; this module turns it into the
gradient of that layer's integer weights and biases with the kernels of :mod:`tinyzo.kernels.local_grad`,
whose summation order is defined (a C port reproduces the bits; the float trainer's BLAS products
would not allow that). For an int8 conv / depthwise / fully-connected layer

    acc[c] = sum w[c, k] * (x[k] - zp_x) + b[c]                      (int32)
    y[c]   = clamp(round(acc[c] * s_x * s_w[c] / s_y) + zp_y, lo, hi)   (int8)

so, straight through the rounding and zero outside the clamp,

    dL/dacc[c] = dL/dy[c] * (s_x * s_w[c] / s_y) * [lo < y[c] < hi]
    dL/dw[c,k] = sum dL/dacc[c] * (x[k] - zp_x)      dL/db[c] = sum dL/dacc[c]

The gradients are per *integer unit* of the weights and biases (what the integer update of
:mod:`tinyzo.training.update` divides by ``s_w**2`` or ``(s_x s_w)**2``). The back-propagation engine uses the
same chain rule (:func:`output_grad_to_acc_grad`) with the float trainer's kernels; the two agree to
float32 rounding.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import InputError
from tinyzo.kernels import local_grad
from tinyzo.kernels.zo import masked_scale


def _weight_scales(model, op_index: int) -> np.ndarray:
    op = model.operators[op_index]
    w_t = model.tensors[op.inputs[1]]
    n_out = model.prepared[op_index].n_out
    s = w_t.quant.scale.astype(np.float64)
    return np.full(n_out, s[0]) if s.size == 1 else s


def acc_grad_scale(model, op_index: int) -> tuple:
    """``(scale float32[C], act_min, act_max)`` of operator ``op_index``'s chain rule through its output:
    ``dL/dacc[c] = dL/dy[c] * scale[c] * [act_min < y[c] < act_max]`` with ``scale = s_x s_w[c] / s_y``
    (:func:`output_grad_to_acc_grad`; fixed for a layer, so a trainer may compute it once)."""
    prep = model.prepared[op_index]
    op = model.operators[op_index]
    s_x = float(model.tensors[op.inputs[0]].quant.scale[0])
    s_y = float(model.tensors[op.outputs[0]].quant.scale[0])
    scale = (s_x * _weight_scales(model, op_index) / s_y).astype(np.float32)
    return scale, int(prep.act_min), int(prep.act_max)


def output_grad_to_acc_grad(model, op_index: int, y, g_y) -> np.ndarray:
    """``dL/dacc`` (float32, y's shape) from ``dL/dy`` for operator ``op_index``'s int8 output ``y``.

    ``y``: int8[N, ..., C] the operator's output; ``g_y``: float32 of the same shape, the gradient
    of the loss per integer unit of ``y``. Applies the requantization scale ``s_x s_w[c] / s_y``
    per output channel (last axis) and the clamp mask of the fused activation (gradient only where
    ``act_min < y < act_max``).
    """
    y = np.asarray(y)
    g_y = np.asarray(g_y, dtype=np.float32)
    if y.shape != g_y.shape:
        raise InputError(f"output gradient shape {g_y.shape} differs from the output's {y.shape}")
    scale, lo, hi = acc_grad_scale(model, op_index)
    if y.ndim < 1 or y.shape[-1] != scale.size:
        raise InputError(f"output {y.shape} of operator {op_index} must end in its {scale.size} output channels")

    # (g_y * [act_min < y < act_max]) * scale[c] in float32, one fused loop
    out = np.empty(g_y.shape, np.float32)
    masked_scale(np.ascontiguousarray(g_y), np.ascontiguousarray(y), lo, hi, scale, out)
    return out


def local_backward(model, op_index: int, x, y, g_y):
    """Gradients of the integer weights and bias of operator ``op_index`` from its output gradient.

    Args:
        model: a :class:`tinyzo.Model`.
        op_index: a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED operator.
        x: int8 input of the operator (with leading batch), as in the forward pass.
        y: int8 output of the operator.
        g_y: float32, ``dL/dy`` per integer unit of ``y`` (same shape as ``y``).

    Returns:
        ``(g_w, g_b)``: float32 arrays of the weights' and bias's shapes, ``dL/dw`` and ``dL/db`` per
        integer unit.
    """
    if op_index not in model.trainable_ops():
        raise InputError(f"operator {op_index} ({model.operators[op_index].opcode}) has no trainable weights")
    return local_backward_from_acc(model, op_index, x, output_grad_to_acc_grad(model, op_index, y, g_y))


def local_backward_from_acc(model, op_index: int, x, d_acc):
    """:func:`local_backward` from ``d_acc`` = ``dL/dacc`` (float32, the output's shape, as
    :func:`output_grad_to_acc_grad` makes it): ``(g_w, g_b)`` float32 of the weights' and bias's shapes."""
    op = model.operators[op_index]
    prep = model.prepared[op_index]
    zp_x = int(model.tensors[op.inputs[0]].quant.zero_point[0])
    w_shape = model.tensors[op.inputs[1]].shape
    x = np.ascontiguousarray(x, dtype=np.int8)
    # defined summation order (double accumulator, C order over samples and positions): a firmware
    # port reproduces these bits, which a BLAS product would not allow (tinyzo/kernels/local_grad.py)
    if op.opcode == "DEPTHWISE_CONV_2D":
        gw = np.zeros(w_shape[1:], np.float64)
        gb = np.zeros(w_shape[3], np.float64)
        local_grad.depthwise_weight_grad(np.ascontiguousarray(d_acc), x, zp_x, prep.stride_h, prep.stride_w,
                                         prep.dil_h, prep.dil_w, prep.pad_h, prep.pad_w, prep.depth_multiplier,
                                         gw, gb)
    else:
        n_out = w_shape[0]
        k_len = int(np.prod(w_shape[1:]))
        dacc = np.ascontiguousarray(d_acc.reshape(-1, n_out), dtype=np.float32)
        if op.opcode == "FULLY_CONNECTED" or (prep.kh == prep.kw == 1 and prep.stride_h == prep.stride_w == 1
                                              and prep.pad_h == prep.pad_w == 0):
            cols = x.reshape(-1, k_len).astype(np.float32) - np.float32(zp_x)
        else:
            cols = np.empty((dacc.shape[0], k_len), np.float32)
            local_grad.im2col_f32(x, zp_x, prep.kw, prep.stride_h, prep.stride_w, prep.dil_h, prep.dil_w,
                                  prep.pad_h, prep.pad_w, prep.out_h, prep.out_w, cols)
        gw = np.zeros((n_out, k_len), np.float64)
        gb = np.zeros(n_out, np.float64)
        local_grad.rows_weight_grad(dacc, cols, gw, gb)
    return gw.reshape(w_shape).astype(np.float32), gb.astype(np.float32)
