"""Diagnostics of zeroth-order gradients: cosine with a finite-difference "true" gradient, per layer.

There is no back-propagation engine yet, so the reference gradient is a **central finite
difference** of the int8 model's mean loss over a fixed batch (:func:`true_gradient_fd`), with
respect to the *integer* weights and biases of one layer (per integer unit, the units
:class:`tinyzo.zo.trainer.ZOTrainer` estimates in)::

    g_fd[i] = (L(theta + h_i e_i) - L(theta - h_i e_i)) / (theta_i^+ - theta_i^-)

``L`` is the float64 mean of :func:`tinyzo.training.loss.cross_entropy_int8` over the batch (the same
per-sample float32 losses the trainer uses; float64 only for the mean, so the mean adds no rounding
to differences of ~1e-4). ``theta_i^+- = clamp(theta_i +- h_i)`` (int8 weights in [-127, 127]); the
denominator is the step actually taken, so a weight at the clamp still gets a correct (one-sided) quotient.
The step ``h``, per parameter kind:

* **weights**: ``h_weight`` int8 LSB (default 4; 1..16 accepted). The int8 forward pass rounds every
  requantized output, so ``L`` is a step function of one weight: a change of h LSB moves a
  pre-activation by ``h (x - zp_x)`` and the output by ``h (x - zp_x) s_x s_w / s_y`` output steps,
  mostly less than one. The loss difference is the rounding of many small output changes (over the
  batch and the positions a weight is shared across): its rounding error does not grow with h, so the
  gradient's error shrinks like 1/h, while the curvature error of the central difference grows like
  h**2 and stays small here. The trainer's own sigma (1 LSB) gives the noisiest reference; 4 LSB, the
  top of the 1..4 range, is the default (docs/zo_diagnostics.md measures h = 1, 2, 4, 8 against the
  exact straight-through gradient of the last two layers).
* **biases**: one output step per channel, ``h_b[c] = max(1, round(s_y / (s_x s_w[c])))`` int32 units
  (:func:`bias_fd_step`), exactly the trainer's automatic ``sigma_bias``: a bias change of
  ``h_b[c]`` moves every pre-activation of channel c by one output step, the smallest change that
  reliably moves the int8 output.

The gradient is computed on a random subset of coordinates (``n_weights`` weights and ``n_bias``
biases per layer, drawn without replacement with ``numpy.random.default_rng([seed, op_index])``) and
every cosine is taken on that subset. Restricting both vectors to a uniformly random subset S of
size s out of d is an unbiased comparison of directions: ``E||g_S||^2 = (s/d) ||g||^2`` and, for an
estimate ``g + e``, ``E||e_S||^2 = (s/d) E||e||^2``, so the signal-to-noise ratio that sets the
cosine is the same on S as on the whole layer (in expectation over S; the subset adds sampling
spread, not bias).

The estimates (:func:`zo_gradient`, :func:`zo_gradients`) are exactly :meth:`ZOTrainer.step`'s,
computed with its public pieces (``directions``, ``node_directions``, ``perturbed_losses``,
``_norm``, :func:`tinyzo.training.local_backward.local_backward`) but without the update: the model is
left unchanged. :func:`cosine_table` compares weight and node perturbation per trainable layer for
several query counts m and :func:`plot_cosines` draws the figure of docs/zo_diagnostics.md.

Reference values for an ideal (noise-free loss) Rademacher RGE with d perturbed coordinates and m
queries: ``E||g_m||^2 = ||g||^2 (1 + (d - 1)/m)`` (docs/zo_estimators.md), so the cosine with the true
gradient is about ``1 / sqrt(1 + (d - 1)/m)`` (:func:`ideal_rge_cosine`).
"""

from __future__ import annotations

import math
import time

import numpy as np

from tinyzo.bp import backward
from tinyzo.errors import TinyzoError
from tinyzo.training.local_backward import local_backward
from tinyzo.training.loss import cross_entropy_int8, mean_float32
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

__all__ = [
    "DiagnosticsError",
    "batch_mean_loss",
    "bias_fd_step",
    "cosine",
    "cosine_table",
    "fd_differences",
    "ideal_rge_cosine",
    "ideal_weight_cosines",
    "plot_cosines",
    "rows_to_markdown",
    "ste_gradient_output_layer",
    "true_gradient_fd",
    "zo_gradient",
    "zo_gradients",
]

TARGETS = ("weight", "node")


class DiagnosticsError(TinyzoError):
    """A diagnostics argument is invalid (layer, batch, step size, subset size, query counts)."""


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_layer(model, op_index) -> int:
    trainable = model.trainable_ops()
    is_int = isinstance(op_index, (int, np.integer)) and not isinstance(op_index, (bool, np.bool_))
    if not is_int or op_index not in trainable:
        raise DiagnosticsError(f"op_index must be a trainable operator of the model {trainable}, got {op_index!r}")
    return int(op_index)


def _check_batch(model, xq, y):
    xq = np.asarray(xq)
    y = np.asarray(y)
    t = model.tensors[model.inputs[0]]
    if xq.dtype != t.dtype:
        raise DiagnosticsError(f"xq must be the model's {t.dtype} input batch, got {xq.dtype}")
    if xq.ndim != len(t.shape) or tuple(xq.shape[1:]) != tuple(t.shape[1:]) or xq.shape[0] < 1:
        want = ", ".join(map(str, t.shape[1:]))
        raise DiagnosticsError(f"xq must have shape (N, {want}) with N >= 1, got {xq.shape}")
    if y.ndim != 1 or y.shape[0] != xq.shape[0] or y.dtype.kind not in "iu":
        raise DiagnosticsError(f"y must be {xq.shape[0]} integer labels, got {y.dtype}{list(y.shape)}")
    n_classes = int(np.prod(model.tensors[model.loss_tensor].shape[1:]))
    if y.min() < 0 or y.max() >= n_classes:
        raise DiagnosticsError(f"labels must be in [0, {n_classes - 1}], got [{y.min()}, {y.max()}]")
    return xq, y.astype(np.int64)


def _check_int(name, v, low, high=None, allow_negative=False) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise DiagnosticsError(f"{name} must be an integer, got {v!r}")
    v = int(v)
    a = abs(v) if allow_negative else v
    if a < low or (high is not None and a > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise DiagnosticsError(f"{name} must be {'+-' if allow_negative else ''}{rng}, got {v}")
    return v


# ----------------------------------------------------------------------------------------------
# the finite-difference reference
# ----------------------------------------------------------------------------------------------


def batch_mean_loss(model, logits, y) -> float:
    """Mean (float64) of the per-sample float32 :func:`cross_entropy_int8` of int8 ``logits[N, K]``."""
    scale, zero_point = model.loss_quant()
    per = cross_entropy_int8(np.asarray(logits).reshape(len(y), -1), y, scale, zero_point)
    return float(np.mean(per.astype(np.float64)))


def bias_fd_step(model, op_index: int) -> np.ndarray:
    """int64[O]: one output step of each bias channel in int32 units, ``max(1, round(s_y / (s_x s_w[c])))``.

    The same value as :class:`ZOTrainer`'s automatic ``sigma_bias`` (``sigma_bias=0``): ``s_x s_w[c]``
    is the bias scale (float32, as the trainer stores it), ``s_y`` the output scale.
    """
    op_index = _check_layer(model, op_index)
    op = model.operators[op_index]
    n_out = model.prepared[op_index].n_out
    s_x = float(model.tensors[op.inputs[0]].quant.scale[0])
    s_w = model.tensors[op.inputs[1]].quant.scale.astype(np.float32)
    sb = (s_x * s_w).astype(np.float32).astype(np.float64)
    sb = np.full(n_out, sb[0]) if sb.size == 1 else sb
    s_y = float(model.tensors[op.outputs[0]].quant.scale[0])
    return np.maximum(1, np.round(s_y / sb)).astype(np.int64)


def fd_differences(model, op_index: int, xq, y, kind: str, idx, h, *, env=None):
    """Central loss differences for single coordinates of one layer's weights or bias.

    Args:
        model: an int8 :class:`tinyzo.Model` (restored before returning, also on error).
        op_index: a trainable operator.
        xq, y: the int8 input batch ``[N, ...]`` and its integer labels ``[N]``.
        kind: ``"w"`` (int8 weights, flat C-order indices) or ``"b"`` (int32 bias, channel indices).
        idx: int[k] flat indices into the parameter array.
        h: a non-zero integer step, or int[k] of steps (per coordinate; a negative step swaps the
            two evaluation points).
        env: optional ``model(xq, intermediates=True)[1]`` to reuse (only operators from
            ``op_index`` on are rerun).

    Returns:
        ``(d_loss float64[k], d_param int64[k])``: ``L(theta_i^+) - L(theta_i^-)`` and
        ``theta_i^+ - theta_i^-`` with ``theta_i^+- = clamp(theta_i +- h_i)``. The gradient is their
        ratio; flipping the sign of ``h`` flips the sign of both (exactly: the same two forward passes).
    """
    op_index = _check_layer(model, op_index)
    xq, y = _check_batch(model, xq, y)
    if kind not in ("w", "b"):
        raise DiagnosticsError(f"kind must be 'w' or 'b', got {kind!r}")
    w0, b0 = model.get_params(op_index)
    if kind == "b" and b0 is None:
        raise DiagnosticsError(f"operator {op_index} has no bias")
    base = w0 if kind == "w" else b0
    lo, hi = (-127, 127) if kind == "w" else (-(2**31), 2**31 - 1)
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= base.size):
        raise DiagnosticsError(f"indices must be in [0, {base.size - 1}]")
    hs = np.broadcast_to(np.asarray(h, dtype=np.int64), idx.shape).copy()
    if np.any(hs == 0):
        raise DiagnosticsError("the finite-difference step h must be non-zero")
    if env is None:
        _, env = model(xq, intermediates=True)
    flat0 = base.reshape(-1).astype(np.int64)
    d_loss = np.empty(idx.size, np.float64)
    d_param = np.empty(idx.size, np.int64)
    try:
        for j, (i, hj) in enumerate(zip(idx, hs)):
            losses = []
            vals = []
            for sgn in (+1, -1):
                v = int(np.clip(flat0[i] + sgn * hj, lo, hi))
                arr = flat0.copy()
                arr[i] = v
                arr = arr.reshape(base.shape).astype(base.dtype)
                if kind == "w":
                    model.set_params(op_index, w=arr)
                else:
                    model.set_params(op_index, b=arr)
                losses.append(batch_mean_loss(model, model.forward_from(env, op_index), y))
                vals.append(v)
            d_loss[j] = losses[0] - losses[1]
            d_param[j] = vals[0] - vals[1]
    finally:
        model.set_params(op_index, w0, b0)
    return d_loss, d_param


def true_gradient_fd(model, op_index: int, xq, y, *, n_weights: int = 64, n_bias: int = 16, seed: int = 0,
                     h_weight: int = 4, h_bias=None):
    """Finite-difference gradient of the batch mean loss on a random subset of one layer's parameters.

    Args:
        model: an int8 :class:`tinyzo.Model` (left unchanged).
        op_index: a trainable operator (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED).
        xq: int8 input batch ``[N, ...]``; y: int labels ``[N]``.
        n_weights: weights in the subset (>= 1; capped at the layer's size); n_bias: biases (>= 0).
        seed: picks the subset (``numpy.random.default_rng([seed, op_index])``, without replacement).
        h_weight: weight step in int8 LSB (integer, |h| in 1..16; the sign does not matter).
        h_bias: bias step in int32 units, an integer or int[O] per channel; ``None``: one output step
            per channel (:func:`bias_fd_step`, the trainer's automatic sigma_bias).

    Returns:
        ``(idx_w int64[nw], g_w_fd float64[nw], idx_b int64[nb], g_b_fd float64[nb])``: sorted flat
        indices into the weight array (C order) and the bias, and ``dL/dtheta`` per integer unit
        there. ``idx_b`` and ``g_b_fd`` are empty for a layer without bias or ``n_bias=0``.
    """
    op_index = _check_layer(model, op_index)
    xq, y = _check_batch(model, xq, y)
    n_weights = _check_int("n_weights", n_weights, 1)
    n_bias = _check_int("n_bias", n_bias, 0)
    h_weight = _check_int("h_weight", h_weight, 1, 16, allow_negative=True)
    w0, b0 = model.get_params(op_index)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, op_index])
    idx_w = np.sort(rng.choice(w0.size, size=min(n_weights, w0.size), replace=False)).astype(np.int64)
    nb = 0 if b0 is None else min(n_bias, b0.size)
    idx_b = np.sort(rng.choice(b0.size, size=nb, replace=False)).astype(np.int64) if nb else np.zeros(0, np.int64)
    _, env = model(xq, intermediates=True)
    dl, dp = fd_differences(model, op_index, xq, y, "w", idx_w, h_weight, env=env)
    g_w = dl / dp
    if nb:
        if h_bias is None:
            hb = bias_fd_step(model, op_index)[idx_b]
        else:
            hb = np.asarray(h_bias)
            if hb.dtype.kind not in "iu" or np.any(hb == 0) or hb.ndim > 1 or hb.size not in (1, b0.size):
                raise DiagnosticsError(f"h_bias must be a non-zero integer or {b0.size} of them")
            hb = np.broadcast_to(hb.astype(np.int64), b0.shape)[idx_b]
        dl, dp = fd_differences(model, op_index, xq, y, "b", idx_b, hb, env=env)
        g_b = dl / dp
    else:
        g_b = np.zeros(0, np.float64)
    return idx_w, g_w, idx_b, g_b


# ----------------------------------------------------------------------------------------------
# the zeroth-order estimates, as ZOTrainer.step computes them
# ----------------------------------------------------------------------------------------------


def zo_gradients(model, op_index: int, xq, y, *, target: str, queries=(1, 8, 64), seed: int = 0, step: int = 0,
                 estimator: str = "rge", direction: str = "rademacher", sigma: int = 1, sigma_bias: int = 0,
                 sigma_node: int = 1, env=None) -> dict:
    """ZOTrainer.step's gradient estimate of one layer for several query counts, from shared forward passes.

    For each m in ``queries`` the result is bit for bit the ``grads`` that
    ``ZOTrainer(model, ZOConfig(layers=[op_index], target=target, queries=m, seed=seed, ...))`` with
    ``step_count = step`` passes to its optimizer: query q uses the directions
    ``derive_seed(seed, step, q, layer)`` whatever m is, so the estimate for m is the first m queries
    of the largest m, normalized by ``_norm`` of a trainer configured with ``queries=m``. Only
    ``max(queries)`` perturbed forward passes (two per query for spsa) are run.

    Args:
        model: an int8 :class:`tinyzo.Model` (left unchanged: the perturbations are undone).
        op_index: the trainable operator whose gradient is estimated (the only perturbed layer).
        xq, y: int8 input batch ``[N, ...]`` and integer labels ``[N]``.
        target: ``"weight"`` (perturb the weights and biases) or ``"node"`` (perturb the layer's int8
            output per sample, then :func:`tinyzo.training.local_backward.local_backward`).
        queries: iterable of query counts m >= 1.
        seed, step: the trainer's base seed and step counter (different steps give independent
            directions).
        estimator, direction, sigma, sigma_bias, sigma_node: as :class:`tinyzo.zo.trainer.ZOConfig`.
        env: optional ``model(xq, intermediates=True)[1]`` to reuse.

    Returns:
        ``{m: (g_w float32[w.shape], g_b float32[O] or None)}``, gradients per integer unit.
    """

    op_index = _check_layer(model, op_index)
    xq, y = _check_batch(model, xq, y)
    if target not in TARGETS:
        raise DiagnosticsError(f"target must be one of {TARGETS}, got {target!r}")
    ms = sorted({_check_int("queries", m, 1) for m in np.atleast_1d(np.asarray(queries, dtype=object))})
    step = _check_int("step", step, 0)
    trainers = {}
    for m in ms:
        cfg = ZOConfig(layers=[op_index], target=target, estimator=estimator, queries=m, direction=direction,
                       sigma=sigma, sigma_bias=sigma_bias, sigma_node=sigma_node, seed=seed)
        tr = ZOTrainer(model, cfg, total_steps=1)  # validates the options; never stepped
        tr.step_count = step
        trainers[m] = tr
    tr = trainers[ms[-1]]
    if env is None:
        _, env = model(xq, intermediates=True)
    logits = env[model.loss_tensor]
    base = tr.losses(logits, y)
    base_mean = mean_float32(base)
    n = len(y)
    node_shapes = {k: env[model.operators[k].outputs[0]].shape for k in tr.node_layers}
    grads = {m: {} for m in ms}
    g_nodes = {m: {k: np.zeros(s, np.float32) for k, s in node_shapes.items()} for m in ms}
    for q in range(ms[-1]):
        dirs, ndirs, coef, coef_mean = tr.query(env, y, base, base_mean, q, node_shapes)
        for m in ms:
            if q < m:  # the estimate for m uses the first m queries, normalized for m
                trainers[m].accumulate(grads[m], g_nodes[m], dirs, ndirs, coef, coef_mean, n)
    out = {}
    op = model.operators[op_index]
    for m in ms:
        if target == "node":
            g_w, g_b = local_backward(model, op_index, env[op.inputs[0]], env[op.outputs[0]], g_nodes[m][op_index])
            if model.get_params(op_index)[1] is None:
                g_b = None
        else:
            g_w = grads[m][f"{op_index}/w"]
            g_b = grads[m].get(f"{op_index}/b")
        out[m] = (g_w, g_b)
    return out


def zo_gradient(model, op_index: int, xq, y, *, target: str, queries: int, seed: int = 0, **kwargs):
    """ZOTrainer.step's estimate ``(g_w float32[w.shape], g_b float32[O] or None)`` of one layer, no update.

    ``queries`` = m; ``kwargs`` (step, estimator, direction, sigma, sigma_bias, sigma_node, env) as
    :func:`zo_gradients`. The model's parameters are unchanged afterwards.
    """
    queries = _check_int("queries", queries, 1)
    return zo_gradients(model, op_index, xq, y, target=target, queries=(queries,), seed=seed, **kwargs)[queries]


# ----------------------------------------------------------------------------------------------
# comparison
# ----------------------------------------------------------------------------------------------


def cosine(a, b) -> float:
    """Cosine similarity of two vectors (float64); NaN when either is zero."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        raise DiagnosticsError(f"cosine of vectors of different sizes {a.size} and {b.size}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


def ideal_rge_cosine(d: int, m: int) -> float:
    """``1 / sqrt(1 + (d - 1)/m)``: about the cosine of an m-query Rademacher RGE in d coordinates, noise-free loss."""
    return 1.0 / math.sqrt(1.0 + (d - 1) / m)


def ideal_weight_cosines(model, op_index: int, idx_w, g_w_fd, idx_b, g_b_fd, m: int, *, sigma: int = 1,
                         sigma_bias=None):
    """Predicted cosines ``(ideal_w, ideal_b, bias_share)`` of weight perturbation from the FD gradient.

    Model: noise-free loss, linear in the perturbation, Rademacher directions, weights moved by
    ``sigma * u`` and bias channel c by ``sigma_b[c] * u`` (``sigma_bias=None``: the trainer's
    automatic one output step, :func:`bias_fd_step`). One query projects the whole layer:
    ``coef = sigma g_w . u_w + sum_c sigma_b[c] g_b[c] u_c``, whose variance is
    ``A = sigma**2 ||g_w||**2 + sum_c sigma_b[c]**2 g_b[c]**2``. The estimate of weight j is
    ``(1/m) sum_q coef_q u_j / sigma`` (variance ``A / (m sigma**2)``), of bias c
    ``(1/m) sum_q coef_q u_c / sigma_b[c]`` (variance ``A / (m sigma_b[c]**2)``). On the FD subsets
    S_w, S_b::

        ideal_w = 1 / sqrt(1 + |S_w| A / (m sigma**2 ||g_w,S||**2))
        ideal_b = 1 / sqrt(1 + A sum_{c in S_b} sigma_b[c]**-2 / (m ||g_b,S||**2))

    with the full-layer norms in A extrapolated from the subsets (``||g_w||**2 ~ n_w / |S_w| ||g_w,S||**2``,
    likewise for the biases). ``bias_share`` is the biases' part of A. The FD error inflates the
    norms, so these are mildly optimistic where the FD is noisy.
    """
    w0, b0 = model.get_params(op_index)
    g_w_fd = np.asarray(g_w_fd, np.float64)
    g_b_fd = np.asarray(g_b_fd, np.float64)
    sw2 = float(np.sum(g_w_fd**2))
    a_w = sigma**2 * sw2 * w0.size / max(1, g_w_fd.size)
    a_b = 0.0
    sb = None
    if b0 is not None and g_b_fd.size:
        sb = (bias_fd_step(model, op_index) if sigma_bias is None
              else np.broadcast_to(np.asarray(sigma_bias, np.int64), b0.shape))[np.asarray(idx_b)].astype(np.float64)
        a_b = float(np.sum(sb**2 * g_b_fd**2)) * b0.size / g_b_fd.size
    a = a_w + a_b
    ideal_w = 1.0 / math.sqrt(1.0 + g_w_fd.size * a / (m * sigma**2 * sw2)) if sw2 > 0 else float("nan")
    sb2 = float(np.sum(g_b_fd**2))
    ideal_b = (1.0 / math.sqrt(1.0 + a * float(np.sum(sb**-2.0)) / (m * sb2))
               if (sb is not None and sb2 > 0) else float("nan"))
    return ideal_w, ideal_b, (a_b / a if a > 0 else float("nan"))


def ste_gradient_output_layer(model, op_index: int, xq, y):
    """Straight-through gradient ``(g_w float32, g_b float32)`` of the layer that computes the model's logits.

    ``dL_i/dq_ij = s (softmax(s (q_i - zp))_j - [j = y_i]) / N`` is the exact derivative of the
    mean cross-entropy with respect to the dequantized int8 logits (per integer unit); the layer's
    :func:`tinyzo.training.local_backward.local_backward` turns it into weight and bias gradients. For a
    fully-connected output layer that is exact up to the output rounding (linear before its clamp):
    the reference the FD and node perturbation are both checked against in the tests.
    """
    op_index = _check_layer(model, op_index)
    xq, y = _check_batch(model, xq, y)
    op = model.operators[op_index]
    if op.outputs[0] != model.loss_tensor:
        raise DiagnosticsError(f"operator {op_index} does not compute the output logits the loss is taken on")
    _, env = model(xq, intermediates=True)
    logits = env[model.loss_tensor]
    s, zp = model.loss_quant()
    z = (logits.reshape(len(y), -1).astype(np.float64) - zp) * s
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    g_y = (p * s / len(y)).reshape(logits.shape).astype(np.float32)
    return local_backward(model, op_index, env[op.inputs[0]], env[op.outputs[0]], g_y)


def cosine_table(model, xq, y, *, queries=(1, 8, 64), seed: int = 0, layers=None, targets=TARGETS,
                 repeats: int = 1, n_weights: int = 64, n_bias: int = 16, h_weight: int = 4,
                 progress=None) -> list:
    """Cosine of weight- and node-perturbation estimates with the FD gradient, per layer and query count.

    Args:
        model: an int8 :class:`tinyzo.Model` (left unchanged).
        xq, y: the batch (int8 ``[N, ...]``, int labels ``[N]``).
        queries: query counts m.
        seed: seeds the FD subset and the ZO directions.
        layers: trainable operator indices (default: all, first to last).
        targets: subset of ``("weight", "node")``.
        repeats: independent ZO estimates per (layer, target, m) (trainer steps 0..repeats-1); the
            row holds their mean cosine and its standard deviation.
        n_weights, n_bias, h_weight: the FD subset and weight step (:func:`true_gradient_fd`).
        progress: optional callable ``progress(str)`` for a log line per layer.

    Returns:
        list of dicts, one per (layer, target, m) in that order, with keys ``layer`` (operator index),
        ``position`` (0-based among the trainable layers), ``opcode``, ``n_params`` (weights + biases),
        ``n_weights``, ``n_bias``, ``target``, ``queries``, ``cosine_w``, ``cosine_b`` (means over the
        repeats, float; NaN where undefined), ``cosine_w_sd``, ``cosine_b_sd``, ``repeats``,
        ``ideal_w``, ``ideal_b``, ``bias_share`` (:func:`ideal_weight_cosines`; weight target only,
        else NaN), ``fd_check`` (cosine of the FD weight gradients with steps ``h_weight`` and
        ``h_weight // 2``, NaN for h = 1: the FD's own consistency), ``h_weight`` and ``fd_seconds``,
        ``zo_seconds`` (wall time of the layer's FDs and of that target's estimates), ``cosine_w_bp``
        (mean cosine of the ZO weight estimate with the back-propagation engine's straight-through
        gradient, :func:`tinyzo.bp.backward`, on all the layer's weights) and ``bp_vs_fd_w`` (cosine of
        that BP gradient with the FD gradient on the subset: how well the two references agree).
    """
    xq, y = _check_batch(model, xq, y)
    trainable = model.trainable_ops()
    layers = trainable if layers is None else [_check_layer(model, k) for k in layers]
    targets = tuple(targets)
    for t in targets:
        if t not in TARGETS:
            raise DiagnosticsError(f"targets must be among {TARGETS}, got {t!r}")
    ms = sorted({_check_int("queries", m, 1) for m in queries})
    repeats = _check_int("repeats", repeats, 1)
    h_weight = _check_int("h_weight", h_weight, 1, 16, allow_negative=True)
    _, env = model(xq, intermediates=True)
    rows = []
    for k in layers:
        w0, b0 = model.get_params(k)
        t0 = time.perf_counter()
        idx_w, g_w_fd, idx_b, g_b_fd = true_gradient_fd(model, k, xq, y, n_weights=n_weights, n_bias=n_bias,
                                                        seed=seed, h_weight=h_weight)
        fd_check = float("nan")
        if abs(h_weight) >= 2:
            dl, dp = fd_differences(model, k, xq, y, "w", idx_w, abs(h_weight) // 2, env=env)
            fd_check = cosine(g_w_fd, dl / dp)
        fd_s = time.perf_counter() - t0
        # the back-propagation engine's straight-through gradient of the same layer (full vectors)

        bp_w, bp_b = backward(model, env, y, layers=[k])[k]
        bp_vs_fd = cosine(bp_w.reshape(-1)[idx_w], g_w_fd)
        n_params = int(w0.size + (0 if b0 is None else b0.size))
        for target in targets:
            t0 = time.perf_counter()
            cw = {m: [] for m in ms}
            cb = {m: [] for m in ms}
            cw_bp = {m: [] for m in ms}
            for r in range(repeats):
                est = zo_gradients(model, k, xq, y, target=target, queries=ms, seed=seed, step=r, env=env)
                for m, (g_w, g_b) in est.items():
                    cw[m].append(cosine(g_w.reshape(-1)[idx_w], g_w_fd))
                    cw_bp[m].append(cosine(g_w.reshape(-1), bp_w.reshape(-1)))
                    cb[m].append(cosine(g_b[idx_b], g_b_fd) if (g_b is not None and idx_b.size) else float("nan"))
            zo_s = time.perf_counter() - t0
            for m in ms:
                ideal = (ideal_weight_cosines(model, k, idx_w, g_w_fd, idx_b, g_b_fd, m) if target == "weight"
                         else (float("nan"),) * 3)
                rows.append({
                    "layer": k, "position": trainable.index(k), "opcode": model.operators[k].opcode,
                    "n_params": n_params, "n_weights": int(w0.size), "n_bias": 0 if b0 is None else int(b0.size),
                    "target": target, "queries": m,
                    "cosine_w": float(np.mean(cw[m])), "cosine_b": float(np.mean(cb[m])),
                    "cosine_w_sd": float(np.std(cw[m])), "cosine_b_sd": float(np.std(cb[m])),
                    "repeats": repeats, "ideal_w": ideal[0], "ideal_b": ideal[1], "bias_share": ideal[2],
                    "fd_check": fd_check, "h_weight": abs(h_weight),
                    "cosine_w_bp": float(np.mean(cw_bp[m])), "bp_vs_fd_w": bp_vs_fd,
                    "fd_seconds": fd_s, "zo_seconds": zo_s,
                })
        if progress is not None:
            progress(f"layer {k} ({model.operators[k].opcode}, {n_params} params): FD {fd_s:.1f} s, "
                     f"FD check {fd_check:.2f}")
    return rows


_SHORT = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "fc"}


def _layers_and_keys(rows):
    layers, keys = [], []
    for r in rows:
        if r["layer"] not in [lr["layer"] for lr in layers]:
            layers.append(r)
        if (r["target"], r["queries"]) not in keys:
            keys.append((r["target"], r["queries"]))
    return layers, keys


def rows_to_markdown(rows, part: str = "w") -> str:
    """A Markdown table of :func:`cosine_table` rows for the weights (``part="w"``) or biases (``"b"``).

    One line per layer; a column per (target, m) with ``mean±sd`` over the repeats; the ideal
    weight-perturbation cosine for the largest m, the biases' share of the projected variance
    and (weights) the FD self-check.
    """
    if part not in ("w", "b"):
        raise DiagnosticsError(f"part must be 'w' or 'b', got {part!r}")
    if not rows:
        raise DiagnosticsError("no rows")
    layers, keys = _layers_and_keys(rows)
    by = {(r["layer"], r["target"], r["queries"]): r for r in rows}
    m_max = max(m for _, m in keys)
    head = ["layer", "op", "params"] + [f"{t} m={m}" for t, m in keys]
    has_ideal = any(t == "weight" for t, _ in keys)
    if has_ideal:
        head += [f"ideal weight m={m_max}", "bias share"]
    if part == "w":
        head += [f"FD check h={rows[0]['h_weight']} vs {rows[0]['h_weight'] // 2}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v, sd=None):
        if not np.isfinite(v):
            return "–"
        return f"{v:.2f}" if sd is None or not np.isfinite(sd) else f"{v:.2f}±{sd:.2f}"

    for lr in layers:
        cells = [str(lr["layer"]), _SHORT.get(lr["opcode"], lr["opcode"]), str(lr["n_params"])]
        for t, m in keys:
            r = by.get((lr["layer"], t, m))
            sd = r[f"cosine_{part}_sd"] if r is not None and r["repeats"] > 1 else None
            cells.append("" if r is None else fmt(r[f"cosine_{part}"], sd))
        if has_ideal:
            r = by.get((lr["layer"], "weight", m_max))
            cells += ["" if r is None else fmt(r[f"ideal_{part}"]), "" if r is None else fmt(r["bias_share"])]
        if part == "w":
            cells.append(fmt(lr["fd_check"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_cosines(rows, path) -> None:
    """Save a PNG: cosine vs layer (first to last), one line per (target, m); weights and biases panels.

    Error bars: standard deviation over the repeats. Dotted lines: the ideal weight-perturbation
    cosine (:func:`ideal_weight_cosines`) for each m. Grey crosses (weights panel): the FD self-check.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise DiagnosticsError("no rows to plot")
    layers, keys = _layers_and_keys(rows)
    pos = {lr["layer"]: i for i, lr in enumerate(layers)}
    labels = [f"{lr['layer']} {_SHORT.get(lr['opcode'], lr['opcode'])}\n{lr['n_params']}" for lr in layers]
    ms = sorted({m for _, m in keys})
    shades = {m: 0.4 + 0.6 * (i + 1) / len(ms) for i, m in enumerate(ms)}
    cmap = {"weight": plt.cm.Oranges, "node": plt.cm.Blues}
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for ax, part in zip(axes, ("w", "b")):
        for t, m in keys:
            sel = [r for r in rows if r["target"] == t and r["queries"] == m]
            x = np.array([pos[r["layer"]] for r in sel], float)
            yv = np.array([r[f"cosine_{part}"] for r in sel])
            sd = np.array([r[f"cosine_{part}_sd"] for r in sel])
            off = (0.08 if t == "node" else -0.08) + 0.03 * (ms.index(m) - (len(ms) - 1) / 2)
            color = cmap.get(t, plt.cm.Greys)(shades[m])
            ax.errorbar(x + off, yv, yerr=sd if sel[0]["repeats"] > 1 else None, marker="o" if t == "node" else "s",
                        ms=4, lw=1.6, capsize=2, color=color, label=f"{t} perturbation, m={m}")
            if t == "weight":
                ax.plot(x, [r[f"ideal_{part}"] for r in sel], ":", color=color, lw=1.2,
                        label=f"ideal weight pert., m={m}")
        if part == "w":
            ax.plot(range(len(layers)), [lr["fd_check"] for lr in layers], "x", color="0.4", ms=7,
                    label=f"FD check (h={rows[0]['h_weight']} vs {rows[0]['h_weight'] // 2})")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlabel("trainable layer: operator index, kind, parameters (first to last)")
        ax.set_title("weights" if part == "w" else "biases")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cosine with the finite-difference gradient")
    axes[0].set_ylim(-0.35, 1.05)
    h, lab = axes[0].get_legend_handles_labels()
    order = sorted(range(len(lab)), key=lambda i: (lab[i].startswith("FD"), lab[i].startswith("node"),
                                                   lab[i].startswith("ideal"), i))
    fig.legend([h[i] for i in order], [lab[i] for i in order], fontsize=7, loc="lower center", ncol=4,
               frameon=False)
    fig.suptitle(f"ZO gradient alignment per layer, weight vs node perturbation "
                 f"(RGE, Rademacher, mean±sd over {rows[0]['repeats']} repeats)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
