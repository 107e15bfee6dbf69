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

import concurrent.futures
import itertools
import numbers
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from tinyzo import runtime
from tinyzo.errors import TinyzoError
from tinyzo.graph import Model
from tinyzo.kernels.elementwise import saturating_add_s8
from tinyzo.kernels.zo import accumulate_acc_grads, accumulate_node_grad
from tinyzo.training.local_backward import acc_grad_scale, local_backward_from_acc, output_grad_to_acc_grad
from tinyzo.training.methods import ESTIMATORS, Method
from tinyzo.training.methods import TARGETS as METHOD_TARGETS
from tinyzo.training.prng import (
    MASK32,
    MASK_SCALE,
    bernoulli_fill,
    density_threshold,
    derive_seed,
    kind_code,
    mask_seed,
    mix_seed,
    perturbation,
    perturbation_fill_s8_layers,
)
from tinyzo.training.trainer import Trainer
from tinyzo.training.update import IntegerSGD
from tinyzo.zo.estimators import projected_difference, query_blocks, query_norm, split_queries


class ZOConfigError(TinyzoError):
    """A zeroth-order training option is out of range or names something the model lacks."""


#: the estimators (tinyzo.training.methods.ESTIMATORS) and the pure perturbation targets ("mixed" combines them)
TARGETS = tuple(t for t in METHOD_TARGETS if t != "mixed")
#: the largest sigma_node whose integer-Gaussian node perturbations fit int8 (max |v| = 124 at 36, 128 at 37)
GAUSSIAN_NODE_SIGMA_MAX = 36
#: node-perturbation queries stacked along the batch into one forward pass (ZOTrainer.queries): 2 here
#: takes about 5% off the passes' kernels per sample and halves their Python; 4 was no faster on MCUNet
#: and MobileNetV2 on one thread (the activations outgrow the caches), 8 no faster on the digits model
QUERY_GROUP = 2
#: with several threads, one group per thread up to this many queries (fewer tasks, fewer hand-offs
#: between the threads): 8 queries on 2 threads, the queries' phase 2-10% shorter than pairs on the
#: digits model, MCUNet, MobileNetV2 and DS-CNN (docs/benchmarks.md, sixth round)
MAX_QUERY_GROUP = 4
#: integer perturbation directions the trainer draws (tinyzo.training.prng.perturbation)
DIRECTIONS = ("rademacher", "gaussian", "uniform")
#: how the queries of a step cover the trained layers: all at once, or one layer per query
BLOCKS = ("none", "layer")


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
        density: sparse perturbation: each query perturbs each coordinate (weight, bias, node output
            element) with probability ``density`` in (0, 1] (a Bernoulli mask seeded by
            ``mask_seed(seed of the perturbation)``), the estimate divided by that probability; 1 = dense.
        block: ``"none"`` (every query perturbs every trained layer) or ``"layer"`` (block-coordinate:
            query q perturbs one layer; the queries are split over the layers in proportion to their
            perturbed dimension, :func:`tinyzo.zo.estimators.split_queries`, at least one each).
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
    density: float = 1.0
    block: str = "none"
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def validate(self, model) -> None:
        """Raise :class:`ZOConfigError` for an option out of range or a layer the model lacks."""
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
        if self.direction == "gaussian" and self.sigma_node > GAUSSIAN_NODE_SIGMA_MAX:
            # the integer Gaussian reaches round(510 * multiplier / 2**16): past 36 that exceeds the int8
            # range the node perturbation is added in (it would wrap, in tinyzo and in the C port alike)
            raise ZOConfigError(f"sigma_node {self.sigma_node} with gaussian directions gives output perturbations "
                                f"beyond int8; use 1..{GAUSSIAN_NODE_SIGMA_MAX}")
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
        try:
            density_threshold(self.density)
        except TinyzoError:
            raise ZOConfigError(f"density must be a number in (0, 1] (the fraction of coordinates a query "
                                f"perturbs), got {self.density!r}") from None
        if self.block not in BLOCKS:
            raise ZOConfigError(f"block must be one of {', '.join(BLOCKS)}, got {self.block!r}")
        if self.block == "layer":
            n = len(self.layers) if self.layers is not None else len(trainable)
            if self.queries < n:
                raise ZOConfigError(f"block='layer' needs a query per trained layer at least: queries {self.queries} "
                                    f"< {n} layers")
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


def query_group_size(queries: int, threads: int) -> int:
    """Node-perturbation queries per forward pass (:meth:`ZOTrainer.queries`), for ``queries`` >= 1 queries
    on ``threads`` >= 1 tinyzo threads: :data:`QUERY_GROUP` on one thread; with several, one group per
    thread (``ceil(queries / threads)``) between :data:`QUERY_GROUP` and :data:`MAX_QUERY_GROUP`."""
    if threads < 2:
        return QUERY_GROUP
    return min(MAX_QUERY_GROUP, max(QUERY_GROUP, -(-queries // threads)))


class ZOTrainer(Trainer):
    """Zeroth-order trainer of an int8 :class:`tinyzo.Model` (updates the model in place).

    The gradient source on the training core (:class:`tinyzo.training.trainer.Trainer`: scales,
    masks, loss, update, checkpoint state and memory description live there); this class supplies
    the perturbations and the estimate (module docstring).

    Args:
        model: the int8 model (its trainable operators' weights and biases change).
        config: a :class:`ZOConfig`.
        total_steps: planned number of steps (for the learning-rate schedule).
    """

    def __init__(self, model, config: ZOConfig, total_steps: int = 1):
        config.validate(model)
        if isinstance(total_steps, (bool, np.bool_)) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise ZOConfigError(f"total_steps must be an integer >= 1 (the planned steps, for the schedule), "
                                f"got {total_steps!r}")
        self.total_steps = int(total_steps)
        optimizer = IntegerSGD(lr=config.lr, schedule=config.schedule, total_steps=self.total_steps,
                               warmup_steps=config.warmup_steps, momentum=config.momentum, mode=config.update,
                               rounding=config.rounding, seed=config.seed)
        super().__init__(model, config.layers if config.layers is not None else model.trainable_ops(), optimizer)
        self.config = config
        if config.target == "weight":
            self.weight_layers, self.node_layers = list(self.layers), []
        elif config.target == "node":
            self.weight_layers, self.node_layers = [], list(self.layers)
        else:
            k = max(0, min(config.mixed_split, len(self.layers)))
            self.weight_layers, self.node_layers = self.layers[:k], self.layers[k:]
        self.first = self.layers[0]
        # sparse update: the trained output channels (perturbations and gradients are zero elsewhere)
        for k, chans in (config.channels or {}).items():
            sel = np.zeros(self.view[k].n_out, bool)
            sel[np.asarray(chans)] = True
            self.channel_masks[k] = sel
        # bias perturbation per output channel (int32 units)
        self._sigma_b = {}
        for k in self.weight_layers:
            lay = self.view[k]
            if config.sigma_bias > 0:
                self._sigma_b[k] = np.full(lay.n_out, config.sigma_bias, np.int64)
            else:
                sb = lay.s_b.astype(np.float64)
                sb = np.full(lay.n_out, sb[0]) if sb.size == 1 else sb
                self._sigma_b[k] = np.maximum(1, np.round(float(lay.s_y) / sb)).astype(np.int64)
        # sparse perturbation: the exact keep probability (threshold / 2**24) divides the estimate
        self._threshold = density_threshold(config.density)
        # block-coordinate queries: the layer each query perturbs, and each layer's query count
        self._query_layer, self._layer_queries = None, {k: config.queries for k in self.layers}
        if config.block == "layer":
            sizes = [self._perturbed_size(k) for k in self.layers]
            self._query_layer = [self.layers[j] for j in query_blocks(config.queries, sizes)]
            self._layer_queries = dict(zip(self.layers, split_queries(config.queries, sizes)))
        # the estimate's normalizations depend on the configuration only: computed once, not per query
        self._layer_norms = {}
        for k in self.layers:
            m = self._layer_queries[k]
            if k in self._sigma_b:
                self._layer_norms[k] = {"w": self._norm(config.sigma, m), "b": self._norm(self._sigma_b[k], m)}
            else:
                self._layer_norms[k] = {"w": self._norm(config.sigma, m), "node": self._norm(config.sigma_node, m)}
        self._step_params = None
        # each node layer's requantization scale and clamp (its local backward's chain rule), made once
        self._acc_scales = {k: acc_grad_scale(model, k) for k in self.node_layers}
        # the seeds' fixed arguments checked once (derive_seed raises for one out of range)
        derive_seed(config.seed, 0, max(0, config.queries - 1), 1_000_000 + max(self.layers))
        self._kind = kind_code(config.direction)
        self._count_lock = threading.Lock()
        # node perturbation of the first trained layer, no weight perturbation: the perturbed forward passes
        # start after that layer (unless it is the last operator and its output is not the loss tensor)
        self._node_first = self.first if self.first in self.node_layers and not self.weight_layers else None
        last = len(model.operators) - 1
        if self._node_first == last and model.operators[last].outputs[0] != self.loss_tensor:
            self._node_first = None

    def _output_is_cached(self, k: int) -> bool:
        """Whether layer ``k``'s perturbed output can be formed from the base pass's (every operator but a
        last one whose output is not the loss tensor)."""
        last = len(self.model.operators) - 1
        return not (k == last and self.model.operators[last].outputs[0] != self.loss_tensor)

    def _perturbed_size(self, k: int) -> int:
        """Coordinates one query perturbs in layer ``k``: weights (+ biases), or the output elements of a sample."""
        if k in self.weight_layers:
            w, b = self.model.get_params(k)
            return int(w.size + (b.size if b is not None and self.config.train_bias else 0))
        shape = self.model.tensors[self.model.operators[k].outputs[0]].shape
        return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1

    def _seed_step(self) -> int:
        """The step as the seeds' ``step`` argument (uint32: :func:`derive_seed` raises past 2**32 - 1)."""
        if self.step_count > MASK32:
            derive_seed(self.config.seed, self.step_count, 0, 0)
        return self.step_count

    def _seed(self, q: int, layer: int) -> int:
        """``derive_seed(config.seed, step, q, layer)``; the arguments were checked once (seed and layer ids
        in ``__init__``, the step by :meth:`_seed_step`), so the jitted mix runs without re-validating them."""
        return int(mix_seed(self.config.seed, self._seed_step(), q, layer))

    def query_layers(self, q: int) -> list:
        """The trained layers query ``q`` perturbs: all of them, or with ``block="layer"`` one."""
        return list(self.layers) if self._query_layer is None else [self._query_layer[q]]

    def _sparse(self, d: np.ndarray, seed: int, in_place: bool = False) -> np.ndarray:
        """``d`` times the keep mask of the perturbation seeded by ``seed`` (``d`` itself when dense);
        ``in_place``: the product is written into ``d``."""
        if self._threshold == MASK_SCALE:
            return d
        keep = np.empty(d.size, d.dtype)
        bernoulli_fill(mask_seed(seed), self._threshold, keep)   # sparse_mask's draws, without re-validating
        if in_place:
            np.multiply(d, keep.reshape(d.shape), out=d)
            return d
        return d * keep.reshape(d.shape)

    # ------------------------------------------------------------------ the step, in visible calls
    def directions(self, q: int):
        """Integer perturbations of query ``q`` at the current step: ``{layer: {"w": int32[...], "b": int32[O]}}``.

        Layer ``k``'s weights use ``derive_seed(seed, step, q, 2k)`` and its bias ``2k + 1``, so a
        firmware port regenerates one layer's perturbation without the others'. Values are
        ``sigma * (+-1)`` for Rademacher directions, and ``sigma_b[c] * (+-1)`` for bias channel c.
        """
        c = self.config
        out = {}
        active = self.query_layers(q)
        for k in self.weight_layers:
            if k not in active:
                continue
            w, b = self.params_of(k)
            sw = self._seed(q, 2 * k)
            d = {"w": self._sparse(perturbation(c.direction, sw, w.shape, c.sigma), sw)}
            if c.train_bias and b is not None:
                sb = self._seed(q, 2 * k + 1)
                d["b"] = self._sigma_b[k] * self._sparse(perturbation(c.direction, sb, b.shape, 1), sb).astype(np.int64)
            if k in self.channel_masks:
                d["w"] = d["w"] * self.view[k].weight_mask(self.channel_masks[k])
                if "b" in d:
                    d["b"] = d["b"] * self.channel_masks[k]
            out[k] = d
        return out

    def node_directions(self, q: int, shapes: dict, out: dict | None = None):
        """Per-sample integer output perturbations of query ``q`` (seed layer id ``1_000_000 + k``):
        ``{layer: int8[shape]}``, the values of :func:`tinyzo.training.prng.perturbation`.

        ``out``: optional ``{layer: int8[shape]}`` C-contiguous arrays to write them into (a slot of
        the step's stacked perturbations, :meth:`estimate`); new arrays otherwise.
        """
        c = self.config
        active = self.query_layers(q)
        layers = [k for k in self.node_layers if k in active]
        if not layers:
            return {}
        # generated straight into int8 (exact: |value| <= 127 for every validated sigma_node and
        # direction), without an int32 array and a cast per query, every layer in one jitted call
        dirs = {k: np.empty(shapes[k], np.int8) if out is None else out[k] for k in layers}
        seeds = np.empty(len(layers), np.int64)
        perturbation_fill_s8_layers(self._kind, self.config.seed, self._seed_step(), q,
                                    np.array([1_000_000 + k for k in layers], np.int64), c.sigma_node,
                                    tuple(dirs[k].reshape(-1) for k in layers), seeds)
        return {k: self._sparse(dirs[k], int(seed), in_place=True) for k, seed in zip(layers, seeds)}

    @property
    def perturbed_start(self) -> int:
        """The operator a perturbed forward pass starts at (every query perturbing every layer): the first
        trained layer, or the operator after it when that layer is node-perturbed and no layer is
        weight-perturbed (its output is then the base pass's plus the perturbation, nothing to recompute).
        With ``block="layer"`` each query starts at (or after) the one layer it perturbs."""
        return self.first if self._node_first is None else self._node_first + 1

    def params_of(self, k: int):
        """Layer ``k``'s current (weights, bias): read once per step inside :meth:`step`, else from the model."""
        if self._step_params is not None and k in self._step_params:
            return self._step_params[k]
        return self.model.get_params(k)

    def perturbed_losses(self, env, y, dirs, node_dirs, sign: int = 1) -> np.ndarray:
        """Per-sample losses with every weight moved by ``sign * delta`` (clamped to [-127, 127]) and nodes likewise."""
        saved = {}
        try:
            for k, d in dirs.items():
                w, b = self.params_of(k)
                saved[k] = (w, b)
                w2 = np.clip(w.astype(np.int32) + sign * d["w"], -127, 127).astype(np.int8)
                b2 = None
                if "b" in d:
                    b2 = np.clip(b.astype(np.int64) + sign * d["b"], -(2**31), 2**31 - 1).astype(np.int32)
                self.model.set_params(k, w2, b2)
            add = {self.model.operators[k].outputs[0]: (u if sign > 0 else -u) for k, u in node_dirs.items()}
            # rerun from the first perturbed layer (the cached activations before it are unchanged)
            start = self.first if self._query_layer is None else min(list(dirs) + list(node_dirs))
            if start in node_dirs and start not in dirs and self._output_is_cached(start):
                # the first perturbed layer is node-perturbed and its weights are not: its output is the base
                # pass's plus the perturbation, so the forward pass starts at the operator after it
                t = self.model.operators[start].outputs[0]
                base = np.ascontiguousarray(env[t])
                moved = np.empty_like(base)
                saturating_add_s8(base, np.ascontiguousarray(add.pop(t)), moved)
                env = {**env, t: moved}
                start += 1
            if start < len(self.model.operators):
                logits = self.model.forward_from(env, start, add=add or None, output=self.loss_tensor)
            else:  # the node-perturbed layer is the model's last operator: its output is the loss tensor
                logits = env[self.loss_tensor]
            with self._count_lock:  # queries may run on several threads (queries())
                self.forward_passes += 1
            return self.losses(logits, y)
        finally:
            for k, (w, b) in saved.items():
                self.model.set_params(k, w, b)

    def group_perturbed_losses(self, env, y, stacked_dirs: dict, groups: int, sign: int = 1) -> np.ndarray:
        """Per-sample losses of ``groups`` node-perturbation queries in one forward pass of
        ``groups * N`` samples: float32[groups, N], row g the losses with node perturbation
        ``sign * stacked_dirs[k][g * N:(g + 1) * N]`` (what :meth:`perturbed_losses` gives for that query;
        the int8 forward pass computes every sample alone, so the bits are the same).

        Node perturbation alone (no weight-perturbed layer) and every query perturbing every node layer
        (``block="none"``). ``stacked_dirs``: ``{layer: int8[groups * N, ...]}``, the queries' perturbations
        one after the other along the batch (:meth:`estimate`'s stacked arrays give them without a copy).
        """
        n = len(y)
        add = {self.model.operators[k].outputs[0]: (u if sign > 0 else -u) for k, u in stacked_dirs.items()}
        start, env2 = self.first, {}
        if start in stacked_dirs and self._output_is_cached(start):
            # each query's output of the first node layer: the base pass's plus its perturbation
            t = self.model.operators[start].outputs[0]
            base = np.ascontiguousarray(env[t], dtype=np.int8)
            u = np.ascontiguousarray(add.pop(t))
            moved = np.empty((groups * n,) + base.shape[1:], np.int8)
            for g in range(groups):
                saturating_add_s8(base, u[g * n:(g + 1) * n], moved[g * n:(g + 1) * n])
            env2[t] = moved
            start += 1
        if start < len(self.model.operators):
            for t in self.model.inputs_from(start):  # the other cached inputs, once per query of the group
                if t not in env2:
                    env2[t] = np.concatenate([env[t]] * groups)
            logits = self.model.forward_from(env2, start, add=add or None, output=self.loss_tensor)
        else:  # the node-perturbed layer is the model's last operator: its output is the loss tensor
            logits = env2[self.loss_tensor]
        with self._count_lock:
            self.forward_passes += groups
        return self.losses(logits, np.tile(np.asarray(y), groups)).reshape(groups, n)

    def _norm(self, sigma, queries: int | None = None):
        """The estimate's float32 normalization for perturbation size ``sigma`` (a number or a
        per-channel array) over ``queries`` (default: all) queries, divided by the keep probability of a
        sparse perturbation: :func:`tinyzo.zo.estimators.query_norm`."""
        m = self.config.queries if queries is None else queries
        return query_norm(self.config.estimator, self.config.direction, sigma, m,
                          factor=MASK_SCALE / self._threshold)

    def query(self, env, y, base, base_mean, q: int, node_shapes: dict, node_out: dict | None = None):
        """Query ``q``: its perturbations and projected loss differences.

        Returns ``(dirs, node_dirs, coef float32[N], coef_mean float32)``: ``coef`` per sample and
        ``coef_mean`` for the batch's float32 mean loss, :func:`tinyzo.zo.estimators.projected_difference`
        of ``L(theta + delta)`` and ``L(theta)`` (rge; ``base`` per sample, ``base_mean`` their float32
        mean) or ``L(theta - delta)`` (spsa, sign-spsa). ``node_out``: where the node perturbations
        are written (:meth:`node_directions`).
        """
        c = self.config
        dirs = self.directions(q)
        ndirs = self.node_directions(q, node_shapes, node_out)
        plus = self.perturbed_losses(env, y, dirs, ndirs, +1)
        other = base if c.estimator == "rge" else self.perturbed_losses(env, y, dirs, ndirs, -1)
        other_mean = base_mean if c.estimator == "rge" else self.mean_loss(other)
        coef = projected_difference(c.estimator, plus, other)
        coef_mean = projected_difference(c.estimator, self.mean_loss(plus), other_mean)
        return dirs, ndirs, coef, coef_mean

    def query_group(self, env, y, base, base_mean, qs: range, node_shapes: dict, stacked: dict) -> list:
        """:meth:`query` of the consecutive queries ``qs`` in one forward pass per sign
        (:meth:`group_perturbed_losses`); ``stacked``: ``{layer: int8[m, N, ...]}``, every query's slot
        (query q writes ``stacked[k][q]``). Returns the queries' results in order."""
        c = self.config
        q0, g = qs[0], len(qs)
        ndirs = [self.node_directions(q, node_shapes, {k: a[q] for k, a in stacked.items()}) for q in qs]
        block = {k: a[q0:q0 + g].reshape((g * a.shape[1],) + a.shape[2:]) for k, a in stacked.items()}
        plus = self.group_perturbed_losses(env, y, block, g, +1)
        minus = None if c.estimator == "rge" else self.group_perturbed_losses(env, y, block, g, -1)
        out = []
        for i, q in enumerate(qs):
            other = base if minus is None else minus[i]
            other_mean = base_mean if minus is None else self.mean_loss(other)
            coef = projected_difference(c.estimator, plus[i], other)
            coef_mean = projected_difference(c.estimator, self.mean_loss(plus[i]), other_mean)
            out.append(({}, ndirs[i], coef, coef_mean))
        return out

    def queries(self, env, y, base, base_mean, node_shapes: dict, node_out=None, stacked=None):
        """Every query's :meth:`query` result, in query order (an iterator).

        ``node_out``: None, or a function ``q -> {layer: int8 array}`` giving where query ``q`` writes
        its node perturbations (:meth:`node_directions`); ``stacked``: None, or the arrays behind it,
        ``{layer: int8[m, N, ...]}`` with query q's slot ``[q]`` (:meth:`estimate`'s).

        Node perturbation alone leaves the model untouched (a query only adds to activations of its
        own forward pass). With the stacked slots and every query perturbing every node layer, the
        queries go ``g`` at a time through one forward pass of ``g * N`` samples (:meth:`query_group`:
        fewer passes' Python and kernel calls, the same bits; ``g``: :func:`query_group_size`). With more
        than one tinyzo thread the queries (or groups) run on the calling thread and the pool's threads
        at once (:func:`tinyzo.runtime.share_tasks`), each forward pass unsplit. The
        results are returned in query order, so the estimate is the same bits. Weight perturbation
        changes the model's weights during a query: its queries run one after the other.
        """
        c = self.config
        threads = runtime.get_num_threads()
        if self.weight_layers:
            for q in range(c.queries):
                yield self.query(env, y, base, base_mean, q, node_shapes, None if node_out is None else node_out(q))
            return
        if stacked is not None and self._query_layer is None and set(stacked) == set(self.node_layers):
            g = query_group_size(c.queries, threads)
            tasks = [range(q, min(q + g, c.queries)) for q in range(0, c.queries, g)]

            def run(qs):
                return self.query_group(env, y, base, base_mean, qs, node_shapes, stacked)
        else:
            tasks = [range(q, q + 1) for q in range(c.queries)]

            def run(qs):
                q = qs[0]
                return [self.query(env, y, base, base_mean, q, node_shapes,
                                   None if node_out is None else node_out(q))]

        results = [None] * len(tasks)

        def take(i):
            results[i] = run(tasks[i])

        runtime.share_tasks(len(tasks), take)
        for group in results:
            yield from group

    def accumulate(self, grads: dict, g_nodes: dict, dirs, ndirs, coef, coef_mean, n: int) -> None:
        """Add one query's term ``coef * delta * norm`` to the weight gradients and the node output gradients."""
        for k, d in dirs.items():
            for part, norm in (("w", self._layer_norms[k]["w"]), ("b", self._layer_norms[k].get("b"))):
                if part in d:
                    key = f"{k}/{part}"
                    grads.setdefault(key, np.zeros(d[part].shape, np.float32))
                    grads[key] += (coef_mean * norm).astype(np.float32) * d[part].astype(np.float32)
        if ndirs:
            coef32 = np.ascontiguousarray(coef, dtype=np.float32)
        for k, u in ndirs.items():  # g_nodes[k] += (coef[n] * scale) * u[n], float32, one fused loop
            scale = np.float32(self._layer_norms[k]["node"] / n)
            accumulate_node_grad(g_nodes[k], coef32, scale, np.ascontiguousarray(u))

    def bias_sigma(self, layer: int):
        """The bias perturbation (int32 units) per output channel of a weight-perturbed layer: int64[O]."""
        return self._sigma_b[layer].copy()

    def step(self, xq, y) -> dict:
        """One ZO step on the int8 batch ``xq`` with labels ``y``; returns loss, accuracy and cost.

        The estimate is :func:`tinyzo.zo.estimators.estimate_per_sample`'s, written out per layer
        with the same functions (:func:`~tinyzo.zo.estimators.query_norm`,
        :func:`~tinyzo.zo.estimators.projected_difference`): for query q with perturbation
        ``delta_q`` the projected difference is ``c_q = L(theta + delta_q) - L(theta)`` (rge; the
        base loss of the forward pass is reused), ``(L(theta + delta_q) - L(theta - delta_q)) / 2``
        (spsa) or its sign (sign-spsa), and ``g = sum_q c_q * delta_q / (m * E[delta**2])``
        (sign-spsa: ``/ (m * sigma)``). Weight gradients use the float32 mean loss of the batch; node
        perturbation uses each sample's own difference on its own output perturbation, divided by N
        for the mean loss.
        """
        # the parameters do not change until the update: read them once, not once per query
        self._step_params = {k: self.model.get_params(k) for k in self.layers}
        try:
            return super().step(xq, y)
        finally:
            self._step_params = None

    def train_on(self, xq, y) -> tuple:
        """:meth:`Trainer.train_on` with each node layer updated as soon as its gradient is known, while
        the pool computes the other layers' (each parameter's update depends on its own gradient and
        state only: the same bits as one update after the estimate); see :meth:`_updates_per_layer`."""
        if not self._updates_per_layer():
            return super().train_on(xq, y)
        env, logits, losses = self.base_pass(xq, y)
        updated = set()

        def on_layer(layer_grads):
            self.write_update(layer_grads, self.optimizer.update_params)
            updated.update(layer_grads)

        grads = self.estimate(env, y, losses, on_layer)
        rest = {key: g for key, g in grads.items() if key not in updated}
        if rest:
            self.write_update(rest, self.optimizer.update_params)
        self.optimizer.end_step()
        return logits, losses, True

    def _updates_per_layer(self) -> bool:
        """Whether :meth:`step` may update each node layer as its gradient comes: node layers to train,
        an optimizer with ``update_params`` (:class:`~tinyzo.training.update.IntegerSGD`) whose ``step`` is
        its own (not replaced on the instance, as the layer-selection probe does), and a class that
        changes neither how the gradients are made nor how they are applied (e.g. not the hybrid trainer)."""
        cls = type(self)
        return (bool(self.node_layers) and hasattr(self.optimizer, "update_params")
                and "step" not in vars(self.optimizer)
                and cls.gradients is ZOTrainer.gradients and cls.estimate is ZOTrainer.estimate
                and cls.apply_update is Trainer.apply_update and cls.base_pass is ZOTrainer.base_pass)

    def gradients(self, xq, y):
        """``(grads, logits, base losses)`` of one batch (:meth:`step` has the estimate)."""
        env, logits, base = self.base_pass(xq, y)
        return self.estimate(env, y, base), logits, base

    def base_pass(self, xq, y):
        """The unperturbed forward pass: ``(env, logits, per-sample losses)`` (one forward pass)."""
        _, env = self.model(xq, intermediates=True)
        logits = env[self.loss_tensor]
        self.forward_passes += 1
        return env, logits, self.losses(logits, y)

    def estimate(self, env, y, base, on_layer=None) -> dict:
        """The ZO gradient estimate of the trained layers from the base pass ``env`` and its per-sample
        losses ``base``: ``{"<op>/w", "<op>/b": float32}`` (queries, then the node layers' local backward).

        ``on_layer``: optional ``f({"<k>/w": g_w, "<k>/b": g_b})`` called on the calling thread with
        each node-perturbed layer's gradients as soon as they are known, while the other layers' are
        still being computed (:meth:`step` updates the layer there).
        """
        c = self.config
        base_mean = self.mean_loss(base)
        n = len(y)
        node_shapes = {k: env[self.model.operators[k].outputs[0]].shape for k in self.node_layers}
        grads = {}
        # every query's node perturbations of a layer in one int8[m_k, N, ...] array (m_k: the queries that
        # perturb it), summed into the layer's accumulator gradient in one pass after the queries
        node_queries = {k: [q for q in range(c.queries) if k in self.query_layers(q)] for k in self.node_layers}
        # (every node layer has a query: all perturb it, or block="layer" gives each layer one at least)
        stacked = {k: np.empty((len(qs),) + tuple(node_shapes[k]), np.int8) for k, qs in node_queries.items()}
        slot = {k: {q: i for i, q in enumerate(qs)} for k, qs in node_queries.items()}

        def node_out(q):
            return {k: stacked[k][slot[k][q]] for k in stacked if q in slot[k]}

        coefs = []
        for dirs, _, coef, coef_mean in self.queries(env, y, base, base_mean, node_shapes, node_out, stacked):
            self.accumulate(grads, {}, dirs, {}, coef, coef_mean, n)  # weight perturbations, in query order
            coefs.append(np.ascontiguousarray(coef, dtype=np.float32))

        def acc_grad(k):  # dL/dacc of layer k: the queries' sum (coef_q[n] * scale) * u_q[n] in query order
            y_k = env[self.model.operators[k].outputs[0]]  # through the layer's clamp and requantization scale
            cscale, lo, hi = self._acc_scales[k]
            out = np.empty(node_shapes[k], np.float32)
            accumulate_acc_grads(np.stack([coefs[q] for q in node_queries[k]]),
                                 np.float32(self._layer_norms[k]["node"] / n), stacked[k],
                                 np.ascontiguousarray(y_k), lo, hi, cscale, out)
            return out

        for k, (g_w, g_b) in self._node_layer_grads(env, acc_grad):
            layer = {f"{k}/w": g_w}
            if c.train_bias:
                layer[f"{k}/b"] = g_b
            grads.update(layer)
            if on_layer is not None:
                on_layer(layer)
        return grads

    def local_backwards(self, env, g_nodes: dict) -> list:
        """``[(g_w, g_b)]`` of every node layer (:func:`tinyzo.training.local_backward.local_backward` of its
        input, output and accumulated output gradient ``g_nodes[k]``), in :attr:`node_layers` order
        (with more than one tinyzo thread, on the thread pool: :meth:`_node_layer_grads`)."""
        def acc_grad(k):
            return output_grad_to_acc_grad(self.model, k, env[self.model.operators[k].outputs[0]], g_nodes[k])

        done = dict(self._node_layer_grads(env, acc_grad))
        return [done[k] for k in self.node_layers]

    def _node_layer_grads(self, env, acc_grad):
        """``(k, (g_w, g_b))`` of every node layer ``k``, in the order they are finished (an iterator):
        :func:`tinyzo.training.local_backward.local_backward_from_acc` of its input and its accumulator
        gradient ``acc_grad(k)`` (which computes it).

        The layers are independent: with more than one tinyzo thread, the calling thread and
        ``threads - 1`` pool threads take layers in turn, the costliest first (the layer's
        multiply-adds), each layer in one thread, so the same bits come out. The calling thread yields
        every finished layer (its own and the pool's) before it takes the next one, so that the caller
        (:meth:`step` updates the layer) works between layers while the pool computes: no more threads
        run than there are tinyzo threads. (Before, the pool computed every layer while the calling
        thread only waited and updated: a third runnable thread on two cores, woken late, left every
        update to the end: the phase took 4.7-5.4 ms per step in traces here, for 5.2 ms of work.)
        """
        def one(k):
            with runtime.single_threaded():
                return local_backward_from_acc(self.model, k, env[self.model.operators[k].inputs[0]], acc_grad(k))

        layers = list(self.node_layers)
        threads = min(runtime.get_num_threads(), len(layers))
        if threads < 2:
            for k in layers:
                yield k, one(k)
            return
        # a layer's weight-gradient work is its forward multiply-adds
        order = sorted(layers, key=lambda k: self.model.prepared[k].macs(), reverse=True)
        taken = itertools.count()
        done = queue.SimpleQueue()  # (k, result) of the pool's layers, or (None, exception)
        failed = threading.Event()

        def helper():
            try:
                while not failed.is_set():
                    i = next(taken)  # atomic under the GIL: every layer is taken once
                    if i >= len(order):
                        return
                    done.put((order[i], one(order[i])))
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                failed.set()
                done.put((None, e))

        helpers = [runtime.pool().submit(helper) for _ in range(threads - 1)]
        got = 0
        try:
            while got < len(order):
                try:  # the pool's finished layers first
                    k, res = done.get_nowait()
                except queue.Empty:
                    i = next(taken)
                    # a layer of its own, or once every layer is taken, the pool's next one
                    k, res = (order[i], one(order[i])) if i < len(order) else done.get()
                if k is None:
                    raise res
                got += 1
                yield k, res
        finally:
            failed.set()
            concurrent.futures.wait(helpers)  # none left running on an error (or an abandoned iterator)

    # ------------------------------------------------------------------ memory
    def memory_spec(self, lean: bool = False) -> dict:
        """The layer-wise ZO step of this estimator, target and layers (:meth:`Trainer.memory_spec`)."""
        c = self.config
        return {"method": Method("zo", c.estimator, c.target, True).name, "layers": list(self.layers),
                "optimizer": "sgd" if lean else self.optimizer.memory_name, "mixed_split": c.mixed_split}
