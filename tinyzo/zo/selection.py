"""Automatic layer and channel selection for sparse / layer-wise quantized ZO training.

:class:`tinyzo.zo.trainer.ZOConfig` trains a chosen subset of layers (``layers=[op indices]``) and of
output channels (``channels={layer: [indices]}``). This module chooses them. Every function leaves the
model exactly as it found it (every trainable weight and bias is snapshotted and written back, also on
error), and is deterministic for a seed.

* :func:`gradient_weight_ratio`: per trainable layer, ``||g|| / ||W||`` with ``g`` the ZO gradient
  estimate (the math of :meth:`ZOTrainer.step`, read just before the optimizer would apply it) averaged
  over a few batches, and ``W`` the weights in real units. Both are in real units: ``W[c] = s_w[c] *
  w_int[c]`` and ``g_real[c] = g_int[c] / s_w[c]`` (``g_int`` is d loss / d integer unit, so
  d loss / dW = g_int / s_w). One QAS-scaled SGD step moves the real weights by ``lr * g_real``, so
  ``lr * ratio`` is the relative change ``||dW|| / ||W||`` a step would make: the tiny-training /
  ZO heuristic trains the layers that would move most relative to their size.
* :func:`test_and_pick`: from the same starting parameters, a few ZO steps on each candidate layer
  alone, the validation accuracy measured, the parameters restored; keep the layers whose accuracy
  rose most (ties broken by the larger drop of the validation loss, then by execution order).
* :func:`select_channels`: a fraction of a layer's output channels, by weight magnitude (L2 norm of
  each output channel's real weights, largest first) or at random.
* :func:`select_layers`: one entry point (``"ratio"``, ``"test-and-pick"``, ``"last"``) returning op
  indices in execution order, ready for ``ZOConfig(layers=...)``.

Weights are symmetric int8 (zero point 0, the TFLite spec), so real weights are ``s_w * w_int``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from tinyzo.training.layers import CHANNEL_RULES, select_channels, trainable_layer  # noqa: F401 (re-exported)
from tinyzo.training.loss import cross_entropy_int8
from tinyzo.zo.trainer import ZOConfig, ZOConfigError, ZOTrainer

__all__ = [
    "METHODS",
    "SelectionError",
    "gradient_weight_ratio",
    "select_channels",
    "select_layers",
    "test_and_pick",
]

#: the layer-selection methods of :func:`select_layers`
METHODS = ("ratio", "test-and-pick", "last")
_TARGETS = ("weight", "node")


class SelectionError(ZOConfigError):
    """A layer/channel selection argument is invalid (unknown method, k or ratio out of range, bad data)."""


# ----------------------------------------------------------------------------------------------
# helpers: snapshot / restore, argument checks, weight axes
# ----------------------------------------------------------------------------------------------


def _snapshot(model) -> dict:
    """``{op index: (int8 weights, int32 bias or None)}`` copies of every trainable operator."""
    return {k: model.get_params(k) for k in model.trainable_ops()}


def _restore(model, snap: dict) -> None:
    """Write :func:`_snapshot`'s arrays back (set_params re-prepares each operator)."""
    for k, (w, b) in snap.items():
        model.set_params(k, w, b)


def _check_int(name, v, low, high=None) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < low \
            or (high is not None and v > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SelectionError(f"{name} must be an integer {rng}, got {v!r}")
    return int(v)


def _check_target(target: str) -> str:
    if target not in _TARGETS:
        raise SelectionError(f"target must be one of {_TARGETS} (one layer is perturbed at a time), got {target!r}")
    return target


def _check_data(model, xq, y, what: str):
    """int8 inputs matching the model and integer labels of the same length, in the class range."""
    if xq is None or y is None:
        raise SelectionError(f"{what}: inputs and labels are required")
    xq = np.asarray(xq)
    y = np.asarray(y)
    t = model.tensors[model.inputs[0]]
    if xq.dtype != np.int8:
        raise SelectionError(f"{what}: inputs must be the model's int8 input batch (images_to_input), got {xq.dtype}")
    if xq.ndim != len(t.shape) or tuple(xq.shape[1:]) != tuple(t.shape[1:]):
        raise SelectionError(f"{what}: inputs of shape {xq.shape} do not match the model input {tuple(t.shape)}")
    if y.ndim != 1 or len(y) != len(xq) or len(y) == 0:
        raise SelectionError(f"{what}: need a 1-D label array of {len(xq)} values (> 0), got shape {y.shape}")
    n_classes = int(np.prod(model.tensors[model.loss_tensor].shape[1:]))
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= n_classes:
        raise SelectionError(f"{what}: labels must be integers in [0, {n_classes - 1}]")
    return xq, y.astype(np.int64)


def _check_layers(model, layers, what: str) -> list:
    trainable = model.trainable_ops()
    if layers is None:
        return list(trainable)
    layers = list(layers)
    bad = [k for k in layers if not isinstance(k, (int, np.integer)) or int(k) not in trainable]
    if bad:
        raise SelectionError(f"{what}: {bad} are not trainable operators of the model; trainable: {trainable}")
    if not layers:
        raise SelectionError(f"{what}: empty; name at least one trainable operator")
    if len({int(k) for k in layers}) != len(layers):
        raise SelectionError(f"{what}: {layers} lists a layer twice")
    return [int(k) for k in layers]


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list:
    """``steps`` index arrays of ``min(batch_size, n)`` samples: consecutive slices of one seeded
    permutation of ``range(n)``, wrapping around (a new permutation, seed + pass) when exhausted."""
    bs = min(batch_size, n)
    out, order, pos, npass = [], np.random.default_rng(seed).permutation(n), 0, 0
    for _ in range(steps):
        if pos + bs > n:
            npass += 1
            order, pos = np.random.default_rng(seed + npass).permutation(n), 0
        out.append(order[pos:pos + bs])
        pos += bs
    return out


def _loss_acc(model, xq, y, batch_size: int = 512):
    """Mean float32 cross-entropy (MCU loss) and accuracy of the int8 model on ``xq``."""
    scale, zero_point = model.loss_quant()
    losses, correct = [], 0
    for s in range(0, len(xq), batch_size):
        xb = xq[s:s + batch_size]
        logits = model.forward_from({model.inputs[0]: xb}, 0, output=model.loss_tensor).reshape(len(xb), -1)
        yy = y[s:s + batch_size]
        losses.append(cross_entropy_int8(logits, yy, scale, zero_point))
        correct += int(np.count_nonzero(np.argmax(logits, axis=1) == yy))
    return float(np.mean(np.concatenate(losses).astype(np.float64))), correct / len(xq)


# ----------------------------------------------------------------------------------------------
# gradient-to-weight ratio
# ----------------------------------------------------------------------------------------------


class _GradientProbe(ZOTrainer):
    """A :class:`ZOTrainer` whose optimizer records the gradients and changes nothing.

    ``step`` runs the trainer's exact perturb / forward / loss / estimate calls; the optimizer's
    ``step`` is replaced by a wrapper that adds each ``grads[name]`` (float32, d loss / d integer unit)
    into ``self.grad_sum`` and returns the parameters unchanged, so the model is written back with
    its own values. The step counter still advances, so each call draws fresh perturbations.
    """

    def __init__(self, model, config: ZOConfig):
        super().__init__(model, config, total_steps=1)
        self.grad_sum: dict = {}
        self.n_steps = 0

        def capture(params, grads, scales):
            for name, g in grads.items():
                g64 = np.asarray(g, np.float64)
                self.grad_sum[name] = self.grad_sum.get(name, 0.0) + g64
            self.n_steps += 1
            return {name: np.array(p, copy=True) for name, p in params.items()}

        self.optimizer.step = capture


def gradient_weight_ratio(model, xq, y, *, target: str = "node", steps: int = 4, queries: int = 4, seed: int = 0,
                          batch_size: int = 32, layers=None, joint: bool = False) -> list:
    """ZO gradient-to-weight ratio ``||g|| / ||W||`` of each trainable layer, largest first.

    Args:
        model: an int8 :class:`tinyzo.Model` (left unchanged).
        xq: int8[N, ...] model inputs; y: int[N] labels in [0, classes).
        target: ``"node"`` (node perturbation + one-layer local backward) or ``"weight"``.
        steps: batches the gradient estimate is averaged over (>= 1); queries: directions per batch (>= 1).
        seed: seed of the batches (a permutation of ``range(N)``) and of the perturbation schedule.
        batch_size: samples per batch (>= 1; at most N are used).
        layers: the layers to measure (default: every trainable operator).
        joint: False (default): each layer is perturbed alone (one ZOTrainer per layer), as it would
            be when trained alone; True: one ZOTrainer perturbs every layer at once (cheaper, but each
            layer's estimate then also carries the loss noise of the other layers' perturbations).

    Returns:
        ``[{"layer", "opcode", "n_params", "ratio", "grad_norm", "weight_norm"}, ...]`` sorted by
        ``ratio`` descending (ties: execution order). ``n_params`` counts weights and bias;
        ``grad_norm`` = ||g_int / s_w|| (the estimate averaged over ``steps`` batches, real units),
        ``weight_norm`` = ||s_w * w_int||, ``ratio`` their quotient (float; ``inf`` for all-zero
        weights). Only the weights enter the ratio (biases are ignored).

    Cost: ``steps * (1 + queries)`` forward passes per layer (``joint``: in all), from the layer on.
    """
    _check_target(target)
    xq, y = _check_data(model, xq, y, "gradient_weight_ratio")
    steps = _check_int("steps", steps, 1)
    queries = _check_int("queries", queries, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    layers = _check_layers(model, layers, "layers")
    groups = [sorted(layers)] if joint else [[k] for k in sorted(layers)]
    batches = _batches(len(xq), batch_size, steps, seed)
    snap = _snapshot(model)
    sums = {}
    try:
        for group in groups:
            probe = _GradientProbe(model, ZOConfig(layers=group, target=target, queries=queries, lr=1e-3,
                                                   train_bias=False, seed=seed))
            for idx in batches:
                probe.step(xq[idx], y[idx])
            for k in group:
                sums[k] = probe.grad_sum[f"{k}/w"] / probe.n_steps
    finally:
        _restore(model, snap)
    rows = []
    for k in sorted(layers):
        w, b = snap[k]
        lay = trainable_layer(model, k)
        s = lay.channel_scales()
        w_real = lay.per_channel(w).astype(np.float64) * s[:, None]
        g_real = lay.per_channel(sums[k]) / s[:, None]
        wn = float(np.linalg.norm(w_real))
        gn = float(np.linalg.norm(g_real))
        rows.append({"layer": k, "opcode": model.operators[k].opcode,
                     "n_params": int(w.size + (b.size if b is not None else 0)),
                     "ratio": gn / wn if wn > 0 else math.inf, "grad_norm": gn, "weight_norm": wn})
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["ratio"], rows[i]["layer"]))
    return [rows[i] for i in order]


# ----------------------------------------------------------------------------------------------
# test-and-pick
# ----------------------------------------------------------------------------------------------


def _pick_key(row):
    """Sort key of test-and-pick: larger accuracy gain, then larger loss drop, then execution order."""
    return (-row["gain"], -row["loss_drop"], row["layer"])


def test_and_pick(model, xq_train, y_train, xq_val, y_val, *, candidates=None, budget_layers: int = 2,
                  steps: int = 1, target: str = "node", lr: float = 1e-3, seed: int = 0, queries: int = 4,
                  batch_size: int = 32):
    """Try each candidate layer alone for ``steps`` ZO steps and keep the ``budget_layers`` best.

    For every candidate, starting from the same parameters: a fresh :class:`ZOTrainer` training only
    that layer (``ZOConfig(layers=[k], target=target, lr=lr, queries=queries, seed=seed)``, weights and
    bias) takes ``steps`` steps on the same batches (a permutation of the training set drawn from
    ``seed``); the validation loss and accuracy are measured; the parameters are restored.

    Args:
        model: int8 :class:`tinyzo.Model` (left exactly as it was, also on error).
        xq_train, y_train: int8[N, ...] inputs and int labels for the trial steps.
        xq_val, y_val: int8[M, ...] inputs and int labels the gains are measured on.
        candidates: op indices to try (default: every trainable operator).
        budget_layers: how many layers to keep, in [1, len(candidates)].
        steps: ZO steps per candidate (>= 1); target: ``"node"`` or ``"weight"``; lr > 0;
        seed: batch and perturbation seed; queries, batch_size: as in :class:`ZOConfig` / training.

    Returns:
        ``(rows, chosen)``: ``rows`` one dict per candidate in execution order, ``{"layer", "opcode",
        "val_acc_before", "val_acc_after", "gain", "val_loss_before", "val_loss_after", "loss_drop"}``
        (accuracies in [0, 1], ``gain = after - before``, ``loss_drop = loss_before - loss_after``);
        ``chosen`` the ``budget_layers`` layers with the largest gains (ties: larger loss drop,
        then earlier layer), in execution order.

    Cost: ``len(candidates) * steps * (1 + queries)`` training forward passes (rge) plus one
    validation pass per candidate.
    """
    _check_target(target)
    xq_train, y_train = _check_data(model, xq_train, y_train, "test_and_pick training data")
    xq_val, y_val = _check_data(model, xq_val, y_val, "test_and_pick validation data")
    candidates = _check_layers(model, candidates, "candidates")
    budget_layers = _check_int("budget_layers", budget_layers, 1)
    if budget_layers > len(candidates):
        raise SelectionError(f"budget_layers {budget_layers} exceeds the {len(candidates)} candidate layers")
    steps = _check_int("steps", steps, 1)
    queries = _check_int("queries", queries, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise SelectionError(f"lr must be a positive finite number, got {lr!r}")
    batches = _batches(len(xq_train), batch_size, steps, seed)
    snap = _snapshot(model)
    rows = []
    try:
        loss0, acc0 = _loss_acc(model, xq_val, y_val)
        for k in sorted(candidates):
            tr = ZOTrainer(model, ZOConfig(layers=[k], target=target, lr=float(lr), queries=queries, seed=seed),
                           total_steps=steps)
            for idx in batches:
                tr.step(xq_train[idx], y_train[idx])
            loss1, acc1 = _loss_acc(model, xq_val, y_val)
            _restore(model, snap)
            rows.append({"layer": k, "opcode": model.operators[k].opcode, "val_acc_before": acc0,
                         "val_acc_after": acc1, "gain": acc1 - acc0, "val_loss_before": loss0,
                         "val_loss_after": loss1, "loss_drop": loss0 - loss1})
    finally:
        _restore(model, snap)
    chosen = sorted(r["layer"] for r in sorted(rows, key=_pick_key)[:budget_layers])
    return rows, chosen


test_and_pick.__test__ = False  # not a pytest test despite its name


# ----------------------------------------------------------------------------------------------
# one entry point
# ----------------------------------------------------------------------------------------------


def select_layers(model, method: str = "ratio", k: int = 2, *, xq=None, y=None, xq_val=None, y_val=None,
                  candidates=None, **options) -> list:
    """The ``k`` layers to train, as op indices in execution order (``ZOConfig(layers=...)``).

    Args:
        model: int8 :class:`tinyzo.Model` (left unchanged).
        method: ``"ratio"`` (largest :func:`gradient_weight_ratio`; needs ``xq``, ``y``),
            ``"test-and-pick"`` (:func:`test_and_pick` with ``budget_layers=k``; needs ``xq``, ``y``
            for the trial steps and ``xq_val``, ``y_val``) or ``"last"`` (the last ``k`` trainable
            operators; no data).
        k: number of layers, in [1, number of candidate layers].
        candidates: op indices to choose from (default: every trainable operator).
        **options: passed to the method's function (target, steps, queries, seed, batch_size, lr, ...).
    """
    if method not in METHODS:
        raise SelectionError(f"unknown selection method {method!r}; choose one of {', '.join(METHODS)}")
    cands = _check_layers(model, candidates, "candidates")
    k = _check_int("k", k, 1)
    if k > len(cands):
        raise SelectionError(f"k = {k} but only {len(cands)} trainable layers to choose from: {sorted(cands)}")
    if method == "last":
        if options:
            raise SelectionError(f"method 'last' takes no options, got {sorted(options)}")
        return sorted(cands)[-k:]
    if method == "ratio":
        rows = gradient_weight_ratio(model, xq, y, layers=cands, **options)
        return sorted(r["layer"] for r in rows[:k])
    _, chosen = test_and_pick(model, xq, y, xq_val, y_val, candidates=cands, budget_layers=k, **options)
    return chosen
