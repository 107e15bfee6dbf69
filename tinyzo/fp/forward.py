"""Float executor of a :class:`tinyzo.nn.Net`: forward, backward, per-layer activations, evaluation.

The executor is an interpreter: it walks ``net.layers`` in order and calls one kernel of
:mod:`tinyzo.fp.kernels` per step, so each layer reads as a C port would write it:

* ``conv`` / ``depthwise``: convolution (bias only without batch norm) -> batch norm (if ``bn``)
  -> activation;
* ``fc``: flatten the input, matrix product + bias -> activation;
* ``add``: elementwise sum of the two inputs -> activation;
* ``avgpool``, ``maxpool``, ``gap``, ``flatten``, ``upsample``: the layer alone.

SAME padding is TensorFlow's (the int8 graph's): the leading padding is
:func:`tinyzo.spec.conv.compute_padding`, the odd extra row/column goes at the bottom/right.

Batch norm: in training mode (``training=True``) the batch statistics over (N, H, W) normalize the
layer, and the forward pass leaves the running statistics alone (it is a pure function, which the
gradient check relies on); :func:`update_bn_stats` folds the batch statistics of a cache into the
running ``mean``/``var`` (the trainer calls it once per step). In eval mode the running statistics
are used: the same affine map that quantization folds into the preceding layer's weights and bias.

Arrays: activations are NHWC with a leading batch; float32 (float64 is passed through unchanged when
the input ``x`` is float64 and the parameters are float64, which the gradient check uses).
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.fp import kernels as K
from tinyzo.spec.conv import compute_padding

BN_EPS = 1e-3
"""Batch-norm epsilon (Keras' default; the value is folded into the int8 weights at quantization)."""


class FloatNetError(TinyzoError):
    """Bad input to the float executor (input shape/dtype, labels, parameters that do not fit the net)."""


# --------------------------------------------------------------------------------------------------
# validation


def _check_input(net, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise FloatNetError(f"{net.name}: the input must be a float array (float32 NHWC), got dtype {x.dtype}; "
                            "convert images first, e.g. x.astype(np.float32) / 255")
    if x.ndim != len(net.input_shape) + 1 or tuple(x.shape[1:]) != tuple(net.input_shape):
        raise FloatNetError(f"{net.name}: the input must have shape (N, {', '.join(map(str, net.input_shape))}), "
                            f"got {x.shape}; resize the images (or build the net for this size)")
    if x.dtype != np.float64:
        x = np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(x)


def _check_params(net, params) -> None:
    if not isinstance(params, dict):
        raise FloatNetError(f"params must be a dict {{layer name: {{array name: array}}}} (tinyzo.nn.init_params), "
                            f"got {type(params).__name__}")
    for lay in net.layers:
        if not lay.has_weights:
            continue
        p = params.get(lay.name)
        if p is None:
            raise FloatNetError(f"params has no entry for layer {lay.name!r}; build them with tinyzo.nn.init_params(net)")
        names = ("w", "gamma", "beta", "mean", "var") if lay.bn else (("w", "b") if lay.bias else ("w",))
        for k in names:
            if k not in p:
                raise FloatNetError(f"params[{lay.name!r}] has no {k!r}; expected {names}")
        if tuple(p["w"].shape) != tuple(lay.weight_shape()):
            raise FloatNetError(f"params[{lay.name!r}]['w'] has shape {p['w'].shape}, the net needs {lay.weight_shape()}")
        for k in names[1:]:
            if tuple(p[k].shape) != (lay.out_channels,):
                raise FloatNetError(f"params[{lay.name!r}][{k!r}] has shape {p[k].shape}, the net needs ({lay.out_channels},)")


def _check_labels(net, logits_shape, y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != logits_shape[0]:
        raise FloatNetError(f"labels must be a 1-D integer array with one label per sample ({logits_shape[0]}), "
                            f"got shape {y.shape}")
    if y.size and y.dtype.kind not in "iu":
        raise FloatNetError(f"labels must be integers, got dtype {y.dtype}")
    if len(logits_shape) != 2:
        raise FloatNetError(f"{net.name}: the output has shape {logits_shape[1:]} per sample; classification needs "
                            "a vector of logits (end the net with gap/flatten + fc)")
    n_cls = logits_shape[1]
    if y.size and (y.min() < 0 or y.max() >= n_cls):
        raise FloatNetError(f"labels must be in [0, {n_cls - 1}] for this {n_cls}-class net, "
                            f"got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


# --------------------------------------------------------------------------------------------------
# geometry


def _window(lay):
    """(stride, dilation, pad, out_hw) of a conv/depthwise/pool layer, pad = leading (top, left)."""
    h, w = lay.in_shape[0], lay.in_shape[1]
    oh, ow = lay.out_shape[0], lay.out_shape[1]
    kh, kw = lay.kernel
    sh, sw = lay.stride
    dh, dw = lay.dilation if lay.kind in ("conv", "depthwise") else (1, 1)
    pad = (compute_padding(sh, dh, h, kh, oh), compute_padding(sw, dw, w, kw, ow))
    return (sh, sw), (dh, dw), pad, (oh, ow)


def _needs_grad(net) -> dict:
    """{layer name: True if the loss gradient with respect to its output is needed by some parameter}."""
    need = {"input": False}
    for lay in net.layers:
        need[lay.name] = lay.has_weights or any(need[i] for i in lay.inputs)
    return need


# --------------------------------------------------------------------------------------------------
# forward


def _run(net, params, x, training: bool, keep_aux: bool):
    """Run every layer; returns ({name: output}, {name: aux for backward})."""
    out = {"input": x}
    aux = {}
    for lay in net.layers:
        xs = [out[i] for i in lay.inputs]
        a = {}
        kind = lay.kind
        if kind in ("conv", "depthwise"):
            p = params[lay.name]
            stride, dil, pad, out_hw = _window(lay)
            b = None if lay.bn else p.get("b")
            if kind == "conv":
                z = K.conv2d_forward(xs[0], p["w"], b, stride, dil, pad, out_hw)
            else:
                z = K.depthwise_forward(xs[0], p["w"], b, stride, dil, pad, out_hw, lay.depth_multiplier)
            if lay.bn:
                z, a["bn"] = K.batchnorm_forward(z, p["gamma"], p["beta"], p["mean"], p["var"], BN_EPS, training)
            y = K.activation_forward(z, lay.activation)
        elif kind == "fc":
            p = params[lay.name]
            x2d = xs[0].reshape(xs[0].shape[0], -1)
            y = K.activation_forward(K.fc_forward(x2d, p["w"], p.get("b")), lay.activation)
        elif kind == "add":
            y = K.activation_forward(xs[0] + xs[1], lay.activation)
        elif kind == "avgpool":
            stride, _, pad, out_hw = _window(lay)
            y = K.avgpool_forward(xs[0], lay.kernel, stride, pad, out_hw)
        elif kind == "maxpool":
            stride, _, pad, out_hw = _window(lay)
            y, a["argmax"] = K.maxpool_forward(xs[0], lay.kernel, stride, pad, out_hw)
        elif kind == "gap":
            y = K.gap_forward(xs[0])
        elif kind == "flatten":
            y = xs[0].reshape(xs[0].shape[0], -1)
        elif kind == "upsample":
            y = K.upsample_forward(xs[0], lay.factor)
        else:  # pragma: no cover - Layer validates kinds
            raise FloatNetError(f"layer {lay.name!r}: the float executor does not know kind {kind!r}")
        out[lay.name] = y
        if keep_aux and a:
            aux[lay.name] = a
    return out, aux


def forward(net, params: dict, x, training: bool = False):
    """Run ``net`` on a batch.

    Args:
        net: a :class:`tinyzo.nn.Net`.
        params: ``{layer name: {"w", "b" | "gamma", "beta", "mean", "var"}}`` float32 arrays
            (:func:`tinyzo.nn.init_params`), in the int8 engine's layouts.
        x: float32[N, H, W, C] (NHWC) matching ``net.input_shape`` (float64 stays float64 for
            gradient checks; other float dtypes are converted to float32).
        training: batch norm uses the batch statistics (True) or the running ones (False).

    Returns:
        ``(logits, cache)``: the last layer's output float32[N, ...] (N x classes for a classifier)
        and the cache :func:`backward` needs (every layer's output, batch-norm caches, max-pool
        argmax). The running statistics are not touched (see :func:`update_bn_stats`).

    Raises:
        FloatNetError: the input's shape or dtype does not fit the net, or params are missing.
    """
    x = _check_input(net, x)
    _check_params(net, params)
    out, aux = _run(net, params, x, bool(training), keep_aux=True)
    cache = {"out": out, "aux": aux, "training": bool(training)}
    return out[net.layers[-1].name], cache


def update_bn_stats(net, params: dict, cache: dict, momentum: float = 0.1, layers=None) -> None:
    """Fold a training-mode cache's batch statistics into the running ``mean``/``var`` in place.

    ``running = (1 - momentum) * running + momentum * batch``; the batch variance is the biased one
    (over N*H*W values) times ``n / (n - 1)`` (the unbiased estimate, as PyTorch/Keras keep it).
    Layers without batch norm are skipped, and with ``layers`` (a collection of layer names) every
    layer not in it (frozen layers keep their statistics). ``momentum`` in [0, 1].
    """
    if not cache.get("training"):
        raise FloatNetError("update_bn_stats needs the cache of a forward pass with training=True")
    m = float(momentum)
    for lay in net.layers:
        if not lay.bn or (layers is not None and lay.name not in layers):
            continue
        bn = cache["aux"][lay.name]["bn"]
        p = params[lay.name]
        count = int(bn["count"])  # values per channel in the batch (N*H*W)
        unbias = count / (count - 1) if count > 1 else 1.0
        mean = np.asarray(bn["mean"], dtype=np.float64)
        var = np.asarray(bn["var"], dtype=np.float64) * unbias
        p["mean"][...] = ((1.0 - m) * p["mean"] + m * mean).astype(p["mean"].dtype)
        p["var"][...] = ((1.0 - m) * p["var"] + m * var).astype(p["var"].dtype)


# --------------------------------------------------------------------------------------------------
# backward


def backward(net, params: dict, cache: dict, dlogits) -> dict:
    """Back-propagate ``dlogits`` (d loss / d logits, same shape as the logits) through ``net``.

    Args:
        net, params: as given to :func:`forward`.
        cache: the cache :func:`forward` returned for this batch.
        dlogits: float32[N, ...] gradient of the (mean) loss with respect to the logits, e.g. the
            ``dlogits`` of :func:`tinyzo.fp.kernels.softmax_cross_entropy` (already / N).

    Returns:
        ``{layer name: {"w": dw, "b": db}}`` or ``{"w", "gamma", "beta"}`` for batch-norm layers:
        the same nested structure and shapes as ``params`` (no entries for the running ``mean``/``var``).
        With batch norm in training mode the gradient flows through the batch statistics; in eval
        mode through the fixed affine map.
    """
    out, aux = cache["out"], cache["aux"]
    last = net.layers[-1].name
    dlogits = np.asarray(dlogits)
    if dlogits.shape != out[last].shape:
        raise FloatNetError(f"dlogits has shape {dlogits.shape}, the logits have {out[last].shape}")
    need = _needs_grad(net)
    dout = {last: dlogits.astype(out[last].dtype, copy=False)}
    grads = {}
    for lay in reversed(net.layers):
        dy = dout.pop(lay.name, None)
        if dy is None:  # the output does not reach the loss: zero gradients
            if lay.has_weights:
                grads[lay.name] = {k: np.zeros_like(v) for k, v in params[lay.name].items() if k not in ("mean", "var")}
            continue
        xs = [out[i] for i in lay.inputs]
        need_dx = any(need[i] for i in lay.inputs)
        kind = lay.kind
        dxs = None
        if kind in ("conv", "depthwise", "fc", "add") and lay.activation != "none":
            dy = K.activation_backward(dy, out[lay.name], lay.activation)
        if kind in ("conv", "depthwise"):
            p = params[lay.name]
            g = {}
            if lay.bn:
                dy, g["gamma"], g["beta"] = K.batchnorm_backward(dy, aux[lay.name]["bn"])
            stride, dil, pad, _ = _window(lay)
            if kind == "conv":
                dx, g["w"], db = K.conv2d_backward(dy, xs[0], p["w"], stride, dil, pad, need_dx=need_dx)
            else:
                dx, g["w"], db = K.depthwise_backward(dy, xs[0], p["w"], stride, dil, pad, lay.depth_multiplier,
                                                      need_dx=need_dx)
            if not lay.bn and "b" in p:
                g["b"] = db
            grads[lay.name] = g
            dxs = [dx]
        elif kind == "fc":
            p = params[lay.name]
            x2d = xs[0].reshape(xs[0].shape[0], -1)
            dx2d, dw, db = K.fc_backward(dy, x2d, p["w"], need_dx=need_dx)
            grads[lay.name] = {"w": dw, "b": db} if "b" in p else {"w": dw}
            dxs = [None if dx2d is None else dx2d.reshape(xs[0].shape)]
        elif not need_dx:
            continue
        elif kind == "add":
            dxs = [dy, dy]
        elif kind == "avgpool":
            stride, _, pad, _ = _window(lay)
            dxs = [K.avgpool_backward(dy, xs[0].shape, lay.kernel, stride, pad)]
        elif kind == "maxpool":
            dxs = [K.maxpool_backward(dy, aux[lay.name]["argmax"], xs[0].shape)]
        elif kind == "gap":
            dxs = [K.gap_backward(dy, xs[0].shape)]
        elif kind == "flatten":
            dxs = [dy.reshape(xs[0].shape)]
        elif kind == "upsample":
            dxs = [K.upsample_backward(dy, lay.factor)]
        if not need_dx:
            continue
        for name, dx in zip(lay.inputs, dxs):
            if not need[name] or dx is None:
                continue
            dout[name] = dx if name not in dout else dout[name] + dx
    return grads


# --------------------------------------------------------------------------------------------------
# batched helpers


def _batches(n: int, batch_size: int):
    if int(batch_size) < 1:
        raise FloatNetError(f"batch_size must be >= 1, got {batch_size}")
    for s in range(0, n, int(batch_size)):
        yield slice(s, min(s + int(batch_size), n))


def activations(net, params: dict, x, batch_size: int = 256) -> dict:
    """Eval-mode outputs of every layer (after batch norm and activation), run in batches.

    For post-training quantization calibration. Args: ``x`` float32[N, H, W, C] matching
    ``net.input_shape``; ``batch_size`` >= 1. Returns ``{layer name: float32[N, ...]}`` in the order
    of ``net.layers`` (the input itself is not included).
    """
    x = _check_input(net, x)
    _check_params(net, params)
    parts = {lay.name: [] for lay in net.layers}
    for sl in _batches(x.shape[0], batch_size):
        out, _ = _run(net, params, x[sl], False, keep_aux=False)
        for lay in net.layers:
            parts[lay.name].append(out[lay.name])
    if x.shape[0] == 0:
        return {lay.name: np.zeros((0,) + tuple(lay.out_shape), x.dtype) for lay in net.layers}
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def predict(net, params: dict, x, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits float32[N, ...] of ``x`` (float32[N, H, W, C]), run in batches of ``batch_size``."""
    x = _check_input(net, x)
    _check_params(net, params)
    last = net.layers[-1].name
    parts = [_run(net, params, x[sl], False, keep_aux=False)[0][last] for sl in _batches(x.shape[0], batch_size)]
    if not parts:
        return np.zeros((0,) + tuple(net.output_shape), x.dtype)
    return np.concatenate(parts, axis=0)


def evaluate(net, params: dict, x, y, batch_size: int = 256) -> dict:
    """Mean softmax cross-entropy and top-1 accuracy of ``net`` (eval mode) on ``x`` with labels ``y``.

    Args: ``x`` float32[N, H, W, C]; ``y`` int[N] in [0, classes). Returns
    ``{"loss": float, "accuracy": float in [0, 1], "n": N}`` (loss and accuracy are NaN for N = 0).
    Ties in the argmax go to the lowest class index.
    """
    logits = predict(net, params, x, batch_size)
    y = _check_labels(net, logits.shape, y)
    n = int(y.shape[0])
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "n": 0}
    _, _, per_sample = K.softmax_cross_entropy(logits, y)
    loss = float(np.mean(np.asarray(per_sample, dtype=np.float64)))
    acc = float(np.mean(np.argmax(logits, axis=1) == y))
    return {"loss": loss, "accuracy": acc, "n": n}
