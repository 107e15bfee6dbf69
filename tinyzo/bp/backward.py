"""Gradients of the int8 parameters by back propagation through the int8 graph.

Every gradient is *per integer unit* of the tensor it belongs to: ``g_t = dL / d q_t`` for an int8
tensor ``q_t``, ``dL / d w_int`` and ``dL / d b_int`` for weights and biases (what the QAS-scaled
updates divide by ``s_w**2`` and ``(s_x s_w)**2``). Rounding is passed straight through; every clamp
(fused ReLU/ReLU6 and int8 saturation) masks the gradient. Per operator, with ``m = s_in / s_out``:

* CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: ``dL/dacc = g_y * s_x s_w[c] / s_y * mask``
  (:func:`tinyzo.training.local_backward.output_grad_to_acc_grad`), then the float trainer's backward
  kernels give ``dL/dw``, ``dL/db`` and ``dL/dx = W^T dL/dacc`` (acc is linear in ``x - zp_x``);
* ADD: ``g_x1 = g_y * mask * s_1 / s_y`` (summed over broadcast dimensions), likewise ``g_x2``;
* AVERAGE_POOL_2D: ``avgpool_backward(g_y * mask)`` (same scale in and out); MAX_POOL_2D: to the
  window's maximum; MEAN: ``g_y * mask * (s_x / s_y) / count`` spread over the reduced axes;
* RESHAPE: reshaped; QUANTIZE (int8 -> int8): ``g_y * mask * s_in / s_out``.

The loss is the mean cross-entropy of the batch on the dequantized logits (the tensor before a final
SOFTMAX, if the model ends with one): ``g_logits = s (softmax(s (q - zp)) - onehot) / N``.
Operators before the earliest trained layer get no gradient work at all.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.fp import kernels as float_nn
from tinyzo.quant import activation_range
from tinyzo.training.local_backward import output_grad_to_acc_grad


class BackwardError(TinyzoError):
    """The model contains an operator the backward pass does not support, or bad arguments."""


def logits_gradient(model, logits, y) -> np.ndarray:
    """``dL/dq`` (float32, logits' shape) of the mean cross-entropy of int8 ``logits`` [N, ...] with labels ``y``."""
    s, zp = model.loss_quant()
    q = np.asarray(logits)
    n = q.shape[0]
    z = (q.reshape(n, -1).astype(np.float64) - zp) * s
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), np.asarray(y, dtype=np.int64)] -= 1.0
    return (p * s / n).astype(np.float32).reshape(q.shape)


def _mask(model, t_index, q, act="NONE"):
    t = model.tensors[t_index]
    lo, hi = activation_range(act, t.quant, np.int8)
    return (q > lo) & (q < hi)


def _unbroadcast(g, shape):
    """Sum ``g`` over the dimensions that were broadcast from ``shape`` (batch dimension kept)."""
    while g.ndim > len(shape):
        g = g.sum(axis=1)
    for ax in range(1, g.ndim):
        if shape[ax] == 1 and g.shape[ax] != 1:
            g = g.sum(axis=ax, keepdims=True)
    return g


def backward(model, env: dict, y, *, layers=None, weights=None, tensor_grads: dict | None = None) -> dict:
    """Gradients of the trained layers' int8 weights and int32 biases for the batch in ``env``.

    Args:
        model: a :class:`tinyzo.Model`.
        env: ``model(xq, intermediates=True)[1]`` for the batch (every activation).
        y: int labels [N].
        layers: trainable operator indices to return gradients for (default: all).
        weights: the subset of ``layers`` whose weight gradient is wanted (default: all of ``layers``);
            the others (bias-only layers) get ``g_w = None`` and no weight-gradient work.
        tensor_grads: if a dict is given, it receives ``{tensor index: dL/dq}`` for every activation
            tensor the backward pass reached (float32, the tensor's shape).

    Returns:
        ``{op index: (g_w float32[w.shape] or None, g_b float32[O] or None)}``.
    """
    trainable = model.trainable_ops()
    layers = sorted(trainable if layers is None else layers)
    bad = [k for k in layers if k not in trainable]
    if bad or not layers:
        raise BackwardError(f"layers {bad or layers} are not trainable operators; trainable: {trainable}")
    want_w = set(layers) if weights is None else set(weights)
    if not want_w <= set(layers):
        raise BackwardError(f"weights {sorted(want_w - set(layers))} are not among the trained layers {layers}")
    first = layers[0]
    logits_t = model.loss_tensor
    grads_t = {logits_t: logits_gradient(model, env[logits_t], y)}
    out = {}
    for k in range(len(model.operators) - 1, first - 1, -1):
        op = model.operators[k]
        prep = model.prepared[k]
        t_out = op.outputs[0]
        g = grads_t.pop(t_out, None)
        if g is None:
            continue
        if tensor_grads is not None:
            tensor_grads[t_out] = g  # nothing downstream of this operator reaches the loss (e.g. the final SOFTMAX)
        need_dx = k > first
        need_dw = k in want_w
        x_t = op.inputs[0]
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            d_acc = output_grad_to_acc_grad(model, k, env[t_out], g)
            zp_x = int(model.tensors[x_t].quant.zero_point[0])
            xf = env[x_t].astype(np.float32) - np.float32(zp_x)
            w = model.tensors[op.inputs[1]].data.astype(np.float32)
            if op.opcode == "FULLY_CONNECTED":
                dx, dw, db = float_nn.fc_backward(d_acc.reshape(-1, w.shape[0]), xf.reshape(-1, w.shape[1]), w,
                                                  need_dx=need_dx, need_dw=need_dw)
                dx = dx.reshape(xf.shape) if dx is not None else None
            elif op.opcode == "CONV_2D":
                dx, dw, db = float_nn.conv2d_backward(d_acc, xf, w, (prep.stride_h, prep.stride_w),
                                                      (prep.dil_h, prep.dil_w), (prep.pad_h, prep.pad_w), need_dx=need_dx,
                                                      need_dw=need_dw)
            else:
                dx, dw, db = float_nn.depthwise_backward(d_acc, xf, w, (prep.stride_h, prep.stride_w),
                                                         (prep.dil_h, prep.dil_w), (prep.pad_h, prep.pad_w),
                                                         prep.depth_multiplier, need_dx=need_dx, need_dw=need_dw)
            if k in layers:
                has_b = len(op.inputs) > 2 and op.inputs[2] != -1
                out[k] = (dw.astype(np.float32) if dw is not None else None, db.astype(np.float32) if has_b else None)
            contributions = [(x_t, dx)] if need_dx else []
        elif op.opcode == "ADD":
            s_y = float(model.tensors[t_out].quant.scale[0])
            gm = g * _mask(model, t_out, env[t_out], op.options.get("fused_activation_function", "NONE"))
            contributions = []
            for t in op.inputs:
                if model.tensors[t].is_constant:
                    continue
                s = float(model.tensors[t].quant.scale[0])
                contributions.append((t, _unbroadcast(gm * np.float32(s / s_y), env[t].shape)))
        elif op.opcode in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            gm = g * _mask(model, t_out, env[t_out], op.options.get("fused_activation_function", "NONE"))
            kernel, stride, pad = (prep.filter_h, prep.filter_w), (prep.stride_h, prep.stride_w), (prep.pad_h, prep.pad_w)
            if op.opcode == "AVERAGE_POOL_2D":
                dx = float_nn.avgpool_backward(gm.astype(np.float32), env[x_t].shape, kernel, stride, pad)
            else:
                _, argmax = float_nn.maxpool_forward(env[x_t].astype(np.float32), kernel, stride, pad, g.shape[1:3])
                dx = float_nn.maxpool_backward(gm.astype(np.float32), argmax, env[x_t].shape)
            contributions = [(x_t, dx)]
        elif op.opcode == "MEAN":
            s_x = float(model.tensors[x_t].quant.scale[0])
            s_y = float(model.tensors[t_out].quant.scale[0])
            gm = (g * _mask(model, t_out, env[t_out])).astype(np.float32) * np.float32(s_x / s_y / prep.count)
            shape = [1 if a in prep.reduce_axes else d for a, d in enumerate(env[x_t].shape)]
            dx = np.broadcast_to(gm.reshape(shape), env[x_t].shape).astype(np.float32)
            contributions = [(x_t, dx)]
        elif op.opcode == "RESHAPE":
            contributions = [(x_t, g.reshape(env[x_t].shape))]
        elif op.opcode == "QUANTIZE" and model.tensors[x_t].dtype == np.int8:
            m = float(model.tensors[x_t].quant.scale[0]) / float(model.tensors[t_out].quant.scale[0])
            contributions = [(x_t, (g * _mask(model, t_out, env[t_out])).astype(np.float32) * np.float32(m))]
        else:
            raise BackwardError(f"operator {k} ({op.opcode}) has no backward in tinyzo yet; it lies between a "
                                "trained layer and the loss")
        for t, d in contributions:
            if d is None or model.tensors[t].is_constant:
                continue
            grads_t[t] = grads_t[t] + d if t in grads_t else d.astype(np.float32)
    if tensor_grads is not None:
        tensor_grads.update(grads_t)
    return out
