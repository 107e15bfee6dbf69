"""Quantized zeroth-order training of an int8 model: one visible step = perturb, forward, loss, estimate, update.

A step on a batch (int8 inputs ``xq``, labels ``y``):

1. **forward**: run the model once, keeping every activation (``model(xq, intermediates=True)``);
   per-sample losses on the int8 logits (:func:`tinyzo.training.loss.cross_entropy_int8`).
2. **perturb**: for each query ``q``, regenerate from ``derive_seed(seed, step, q, layer)`` an
   integer direction ``u`` (Rademacher +-1 by default) for every trained layer: weight perturbation
   adds ``sigma * u`` to the int8 weights (clamped to [-127, 127]) and ``sigma_bias * u`` to the int32
   biases; node perturbation adds ``sigma_node * u`` to the int8 output of the layer, per sample.
3. **forward again** from the first trained layer only (:meth:`tinyzo.Model.forward_from` reuses the
   cached activations before it), per-sample losses; undo the weight perturbation.
4. **estimate** (:func:`tinyzo.zo.estimators.estimate_per_sample`): weight gradients from the mean loss
   difference; node-perturbation output gradients per sample, turned into weight and bias gradients by
   the one-layer local backward (:mod:`tinyzo.training.local_backward`).
5. **update** (:class:`tinyzo.training.update.IntegerSGD`): ``w <- clamp(round(w - lr * g / s_w**2))``, biases with
   ``(s_x s_w)**2``, per-step rounding or a float shadow copy.

Nothing but the seeds is stored for the perturbations (O(1) memory per layer); every step can be
replayed bit for bit from (seed, step, query, layer).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from tinyzo.errors import TinyzoError


class ZOConfigError(TinyzoError):
    """A zeroth-order training option is out of range or names something the model lacks."""


ESTIMATORS = ("rge", "spsa", "sign-spsa")
TARGETS = ("weight", "node")
#: integer perturbation directions the trainer draws (tinyzo.training.prng.perturbation)
DIRECTIONS = ("rademacher", "gaussian", "uniform")


@dataclass
class ZOConfig:
    """Options of :class:`ZOTrainer` (see the module docstring for the step they control).

    Attributes:
        layers: operator indices to train (``None``: every trainable operator).
        target: ``"weight"`` (weight perturbation), ``"node"`` (node perturbation) or
            ``"mixed"`` (weight perturbation for the first ``mixed_split`` trained layers, node
            perturbation after).
        estimator: ``"rge"`` (one-sided, base loss reused), ``"spsa"`` (two-sided) or ``"sign-spsa"``.
        queries: directions per step (m >= 1).
        direction: ``"rademacher"``, ``"gaussian"`` or ``"uniform"`` integer directions.
        sigma: weight perturbation in int8 LSB (>= 1); sigma_bias: bias perturbation in int32 units
            (>= 1), or 0 (default) for one output step per channel, ``round(s_y / (s_x s_w[c]))``: a
            smaller bias change rarely moves the int8 output at all, so its loss difference is
            quantization noise; sigma_node: output perturbation in int8 LSB (>= 1).
        lr: learning rate (> 0) of the QAS-scaled update; schedule: ``"constant"``, ``"cosine"``,
            ``"linear"``; warmup_steps.
        update: ``"per_step"`` (round every step, as the ZO paper) or ``"shadow"`` (float shadow copy).
        rounding: ``"nearest"`` or ``"stochastic"``; momentum: 0 (default, no extra memory) or in (0, 1).
        train_bias: also update biases.
        channels: ``{layer: output channel indices}``: train only those channels of the layer (sparse
            update); the other channels are neither perturbed nor updated.
        seed: base seed of the perturbation schedule.
    """

    layers: list | None = None
    target: str = "weight"
    mixed_split: int = 1
    estimator: str = "rge"
    queries: int = 1
    direction: str = "rademacher"
    sigma: int = 1
    sigma_bias: int = 0
    sigma_node: int = 1
    lr: float = 1e-4
    schedule: str = "constant"
    warmup_steps: int = 0
    update: str = "per_step"
    rounding: str = "nearest"
    momentum: float = 0.0
    train_bias: bool = True
    channels: dict | None = None
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def validate(self, model) -> None:
        """Raise :class:`ZOConfigError` for an option out of range or a layer the model lacks."""
        from tinyzo.graph import Model

        if not isinstance(model, Model):
            raise ZOConfigError(f"model must be a tinyzo.Model (tinyzo.load), got {type(model).__name__}")
        trainable = model.trainable_ops()
        if self.layers is not None:
            bad = [k for k in self.layers if k not in trainable]
            if bad:
                raise ZOConfigError(f"layers {bad} are not trainable operators of the model; trainable: {trainable}")
            if not self.layers:
                raise ZOConfigError("layers is empty: name at least one trainable operator")
        if self.target not in TARGETS + ("mixed",):
            raise ZOConfigError(f"target must be one of {TARGETS + ('mixed',)}, got {self.target!r}")
        if self.estimator not in ESTIMATORS:
            raise ZOConfigError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        for name in ("sigma", "sigma_bias", "sigma_node", "queries"):
            v = getattr(self, name)
            low = 0 if name == "sigma_bias" else 1
            if not isinstance(v, (int, np.integer)) or v < low:
                raise ZOConfigError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.sigma > 64:
            raise ZOConfigError(f"sigma {self.sigma} LSB would swamp int8 weights; use 1..64")
        if self.sigma_node > 64:
            raise ZOConfigError(f"sigma_node {self.sigma_node} LSB would swamp int8 activations; use 1..64")
        for name in ("lr", "momentum"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise ZOConfigError(f"{name} must be a real number, got {v!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ZOConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ZOConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.direction not in DIRECTIONS:
            raise ZOConfigError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.target == "mixed":
            n = len(self.layers) if self.layers is not None else len(trainable)
            v = self.mixed_split
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not 0 <= v <= n:
                raise ZOConfigError(f"mixed_split must be an integer in 0..{n} (weight perturbation for the first "
                                    f"mixed_split of the {n} trained layers), got {v!r}")
        for k, chans in (self.channels or {}).items():
            layers = self.layers if self.layers is not None else trainable
            if k not in layers:
                raise ZOConfigError(f"channels names layer {k}, which is not trained (layers: {list(layers)})")
            n_out = model.prepared[k].n_out
            ch = np.asarray(chans)
            if ch.size == 0 or ch.ndim != 1 or ch.dtype.kind not in "iu" or ch.min() < 0 or ch.max() >= n_out:
                raise ZOConfigError(f"channels of layer {k} must be a non-empty list of indices in [0, {n_out - 1}]")


class ZOTrainer:
    """Zeroth-order trainer of an int8 :class:`tinyzo.Model` (updates the model in place).

    Args:
        model: the int8 model (its trainable operators' weights and biases change).
        config: a :class:`ZOConfig`.
        total_steps: planned number of steps (for the learning-rate schedule).
    """

    def __init__(self, model, config: ZOConfig, total_steps: int = 1):
        from tinyzo.training.update import IntegerSGD

        config.validate(model)
        self.model = model
        self._loss_t, self._loss_q = model.loss_tensor, model.loss_quant()  # the logits (Model.loss_tensor)
        self.config = config
        self.layers = sorted(config.layers if config.layers is not None else model.trainable_ops())
        if config.target == "weight":
            self.weight_layers, self.node_layers = list(self.layers), []
        elif config.target == "node":
            self.weight_layers, self.node_layers = [], list(self.layers)
        else:
            k = max(0, min(config.mixed_split, len(self.layers)))
            self.weight_layers, self.node_layers = self.layers[:k], self.layers[k:]
        self.first = self.layers[0]
        self.step_count = 0
        if isinstance(total_steps, (bool, np.bool_)) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise ZOConfigError(f"total_steps must be an integer >= 1 (the planned steps, for the schedule), "
                                f"got {total_steps!r}")
        self.total_steps = int(total_steps)
        self.optimizer = IntegerSGD(lr=config.lr, schedule=config.schedule, total_steps=self.total_steps,
                               warmup_steps=config.warmup_steps, momentum=config.momentum, mode=config.update,
                               rounding=config.rounding, seed=config.seed)
        self.forward_passes = 0
        self._scales = {}
        for k in self.layers:
            op = model.operators[k]
            s_x = float(model.tensors[op.inputs[0]].quant.scale[0])
            s_w = model.tensors[op.inputs[1]].quant.scale.astype(np.float32)
            self._scales[f"{k}/w"] = (s_w, model.out_channel_axis(k))
            self._scales[f"{k}/b"] = ((s_x * s_w).astype(np.float32), 0)
        # sparse update: per-layer masks of the trained output channels (broadcast over w and b)
        self._masks = {}
        for k, chans in (config.channels or {}).items():
            n_out = model.prepared[k].n_out
            sel = np.zeros(n_out, bool)
            sel[np.asarray(chans)] = True
            w_shape = model.tensors[model.operators[k].inputs[1]].shape
            shape = [1] * len(w_shape)
            shape[model.out_channel_axis(k)] = n_out
            self._masks[k] = (sel.reshape(shape), sel)
        # bias perturbation per output channel (int32 units)
        self._sigma_b = {}
        for k in self.weight_layers:
            n_out = model.prepared[k].n_out
            if config.sigma_bias > 0:
                self._sigma_b[k] = np.full(n_out, config.sigma_bias, np.int64)
            else:
                op = model.operators[k]
                s_y = float(model.tensors[op.outputs[0]].quant.scale[0])
                sb = self._scales[f"{k}/b"][0].astype(np.float64)
                sb = np.full(n_out, sb[0]) if sb.size == 1 else sb
                self._sigma_b[k] = np.maximum(1, np.round(s_y / sb)).astype(np.int64)

    # ------------------------------------------------------------------ the step, in visible calls
    def losses(self, logits, y) -> np.ndarray:
        """Per-sample cross-entropy of the int8 logits (float32[N])."""
        from tinyzo.training.loss import cross_entropy_int8

        scale, zero_point = self._loss_q
        return cross_entropy_int8(logits.reshape(len(y), -1), y, scale, zero_point)

    def directions(self, q: int):
        """Integer perturbations of query ``q`` at the current step: ``{layer: {"w": int32[...], "b": int32[O]}}``.

        Layer ``k``'s weights use ``derive_seed(seed, step, q, 2k)`` and its bias ``2k + 1``, so a
        firmware port regenerates one layer's perturbation without the others'. Values are
        ``sigma * (+-1)`` for Rademacher directions, and ``sigma_b[c] * (+-1)`` for bias channel c.
        """
        from tinyzo.training.prng import derive_seed, perturbation

        c = self.config
        out = {}
        for k in self.weight_layers:
            w, b = self._params(k)
            d = {"w": perturbation(c.direction, derive_seed(c.seed, self.step_count, q, 2 * k), w.shape, c.sigma)}
            if c.train_bias and b is not None:
                d["b"] = self._sigma_b[k] * perturbation(c.direction, derive_seed(c.seed, self.step_count, q, 2 * k + 1),
                                                         b.shape, 1).astype(np.int64)
            if k in self._masks:
                mw, mb = self._masks[k]
                d["w"] = d["w"] * mw
                if "b" in d:
                    d["b"] = d["b"] * mb
            out[k] = d
        return out

    def node_directions(self, q: int, shapes: dict):
        """Per-sample integer output perturbations of query ``q`` (seed layer id ``1_000_000 + k``)."""
        from tinyzo.training.prng import derive_seed, perturbation

        c = self.config
        # int8 is exact for |sigma_node| <= 127 (validated) and makes the saturating add cheap
        return {k: perturbation(c.direction, derive_seed(c.seed, self.step_count, q, 1_000_000 + k), shapes[k],
                                c.sigma_node).astype(np.int8) for k in self.node_layers}

    def _params(self, k: int):
        """Layer ``k``'s current (weights, bias): read once per step inside :meth:`step`, else from the model."""
        cached = getattr(self, "_step_params", None)
        if cached is not None and k in cached:
            return cached[k]
        return self.model.get_params(k)

    def perturbed_losses(self, env, y, dirs, node_dirs, sign: int = 1) -> np.ndarray:
        """Per-sample losses with every weight moved by ``sign * delta`` (clamped to [-127, 127]) and nodes likewise."""
        saved = {}
        try:
            for k, d in dirs.items():
                w, b = self._params(k)
                saved[k] = (w, b)
                w2 = np.clip(w.astype(np.int32) + sign * d["w"], -127, 127).astype(np.int8)
                b2 = None
                if "b" in d:
                    b2 = np.clip(b.astype(np.int64) + sign * d["b"], -(2**31), 2**31 - 1).astype(np.int32)
                self.model.set_params(k, w2, b2)
            add = {self.model.operators[k].outputs[0]: (u if sign > 0 else -u) for k, u in node_dirs.items()}
            logits = self.model.forward_from(env, self.first, add=add or None, output=self._loss_t)
            self.forward_passes += 1
            return self.losses(logits, y)
        finally:
            for k, (w, b) in saved.items():
                self.model.set_params(k, w, b)

    def _norm(self, sigma):
        """1 / (m * E[delta**2]) (rge, spsa) or 1 / (m * sigma) (sign-spsa): E[coef * delta * norm] = gradient.

        ``sigma`` is a number or a per-channel array (bias perturbations ``sigma_b[c] * v``, whose second
        moment is ``sigma_b[c]**2 * E[v**2]``).
        """
        from tinyzo.zo.estimators import second_moment

        m = self.config.queries
        if self.config.estimator == "sign-spsa":
            return (1.0 / (m * np.asarray(sigma, np.float64))).astype(np.float32)
        if np.ndim(sigma):
            mu = second_moment(self.config.direction, 1, 1) * np.asarray(sigma, np.float64) ** 2
        else:
            mu = second_moment(self.config.direction, sigma, 1)
        return (1.0 / (m * mu)).astype(np.float32) if np.ndim(mu) else np.float32(1.0 / (m * mu))

    def query(self, env, y, base, base_mean, q: int, node_shapes: dict):
        """Query ``q``: its perturbations and projected loss differences.

        Returns ``(dirs, node_dirs, coef float32[N], coef_mean float32)``: ``coef`` per sample and
        ``coef_mean`` for the batch's float32 mean loss: ``L(theta + delta) - L(theta)`` (rge; ``base``
        per sample, ``base_mean`` their float32 mean), ``(L(theta + delta) - L(theta - delta)) / 2``
        (spsa) or the sign of that (sign-spsa).
        """
        from tinyzo.training.loss import mean_float32

        c = self.config
        dirs = self.directions(q)
        ndirs = self.node_directions(q, node_shapes)
        plus = self.perturbed_losses(env, y, dirs, ndirs, +1)
        if c.estimator == "rge":
            coef, coef_mean = plus - base, np.float32(mean_float32(plus) - base_mean)
        else:
            minus = self.perturbed_losses(env, y, dirs, ndirs, -1)
            coef = (plus - minus) / np.float32(2)
            coef_mean = np.float32((mean_float32(plus) - mean_float32(minus)) / np.float32(2))
        if c.estimator == "sign-spsa":
            coef, coef_mean = np.sign(coef), np.float32(np.sign(coef_mean))
        return dirs, ndirs, coef, coef_mean

    def accumulate(self, grads: dict, g_nodes: dict, dirs, ndirs, coef, coef_mean, n: int) -> None:
        """Add one query's term ``coef * delta * norm`` to the weight gradients and the node output gradients."""
        for k, d in dirs.items():
            for part, sigma in (("w", self.config.sigma), ("b", self._sigma_b.get(k))):
                if part in d:
                    key = f"{k}/{part}"
                    grads.setdefault(key, np.zeros(d[part].shape, np.float32))
                    grads[key] += (coef_mean * self._norm(sigma)).astype(np.float32) * d[part].astype(np.float32)
        if ndirs:
            from tinyzo.kernels.zo import accumulate_node_grad

            scale = np.float32(self._norm(self.config.sigma_node) / n)
            coef32 = np.ascontiguousarray(coef, dtype=np.float32)
        for k, u in ndirs.items():  # g_nodes[k] += (coef[n] * scale) * u[n], float32, one fused loop
            accumulate_node_grad(g_nodes[k], coef32, scale, np.ascontiguousarray(u))

    def bias_sigma(self, layer: int):
        """The bias perturbation (int32 units) per output channel of a weight-perturbed layer: int64[O]."""
        return self._sigma_b[layer].copy()

    def step(self, xq, y) -> dict:
        """One ZO step on the int8 batch ``xq`` with labels ``y``; returns loss, accuracy and cost.

        The estimate is :func:`tinyzo.zo.estimators.estimate_per_sample`'s, written out per layer:
        for query q with perturbation ``delta_q`` the projected difference is
        ``c_q = L(theta + delta_q) - L(theta)`` (rge; the base loss of the forward pass is reused),
        ``(L(theta + delta_q) - L(theta - delta_q)) / 2`` (spsa) or its sign (sign-spsa), and
        ``g = sum_q c_q * delta_q / (m * E[delta**2])`` (sign-spsa: ``/ (m * sigma)``). Weight
        gradients use the float32 mean loss of the batch; node perturbation uses each sample's own
        difference on its own output perturbation, divided by N for the mean loss.
        """
        y = np.asarray(y)
        # the parameters do not change until the update: read them once, not once per query
        self._step_params = {k: self.model.get_params(k) for k in self.layers}
        try:
            return self._step(xq, y)
        finally:
            self._step_params = None

    def _step(self, xq, y) -> dict:
        from tinyzo.training.local_backward import local_backward
        from tinyzo.training.loss import mean_float32

        c = self.config
        _, env = self.model(xq, intermediates=True)
        logits = env[self._loss_t]
        self.forward_passes += 1
        base = self.losses(logits, y)
        base_mean = mean_float32(base)
        n = len(y)
        node_shapes = {k: env[self.model.operators[k].outputs[0]].shape for k in self.node_layers}
        grads = {}
        g_nodes = {k: np.zeros(s, np.float32) for k, s in node_shapes.items()}
        for q in range(c.queries):
            dirs, ndirs, coef, coef_mean = self.query(env, y, base, base_mean, q, node_shapes)
            self.accumulate(grads, g_nodes, dirs, ndirs, coef, coef_mean, n)
        for k in self.node_layers:
            op = self.model.operators[k]
            g_w, g_b = local_backward(self.model, k, env[op.inputs[0]], env[op.outputs[0]], g_nodes[k])
            grads[f"{k}/w"] = g_w
            if c.train_bias:
                grads[f"{k}/b"] = g_b
        for key, g in grads.items():
            k, kind = key.split("/")
            if int(k) in self._masks:
                grads[key] = g * self._masks[int(k)][0 if kind == "w" else 1]
        params = {}
        for key in grads:
            k, kind = key.split("/")
            w, b = self._params(int(k))
            params[key] = w if kind == "w" else b
        new = self.optimizer.step(params, grads, {key: self._scales[key] for key in grads})
        for k in self.layers:
            w = new.get(f"{k}/w")
            b = new.get(f"{k}/b")
            if w is not None or b is not None:
                self.model.set_params(k, w, b)
        self.step_count += 1
        acc = float(np.mean(np.argmax(logits.reshape(n, -1), axis=1) == y))
        return {"loss": float(base_mean), "accuracy": acc, "forward_passes": self.forward_passes,
                "lr": float(self.optimizer.lr_at(self.step_count - 1)) if hasattr(self.optimizer, "lr_at") else None}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue exactly (numpy values only; the model is saved apart)."""
        return {"step_count": np.asarray(self.step_count), "forward_passes": np.asarray(self.forward_passes),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.step_count = int(state["step_count"])
        self.forward_passes = int(state["forward_passes"])
        self.optimizer.load_state_dict(state["optimizer"])
