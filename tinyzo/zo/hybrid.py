"""Hybrid ZO + BP training: back propagation with QAS on the last trained layers, zeroth-order
estimates on the layers before them (ElasticZO, 2025: BP on the last few layers plus ZO on the rest
gains 5.2-9.5 points over pure ZO for 0.07-1.7% extra memory).

One step on a batch: one forward pass keeps what the backward of the BP layers needs (their clamp
masks and inputs); the ZO queries perturb only the ZO layers and rerun from the first of them (as
:class:`tinyzo.zo.ZOTrainer` does); the BP layers' gradients come from :func:`tinyzo.bp.backward` on
the same forward pass, which stops at the first BP layer; both parts are updated by QAS-scaled integer
SGD with the same schedule, momentum, update mode and rounding, the BP part at its own learning rate
``bp_lr`` (a noisy ZO estimate wants a smaller step than an exact gradient).

The memory planner schedules this step (:func:`tinyzo.memory.training_schedule` with
``bp_layers``): the BP part's activations stay alive through the queries, the ZO part keeps only
seeds (weight perturbation) or its node layers' inputs.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from tinyzo.bp.backward import backward
from tinyzo.training.layers import trainable_layers
from tinyzo.training.methods import Method
from tinyzo.training.update import IntegerSGD
from tinyzo.zo.trainer import ZOConfig, ZOConfigError, ZOTrainer

__all__ = ["HybridTrainer"]


class HybridTrainer(ZOTrainer):
    """ZO on the first trained layers, BP (QAS) on the last ``bp_last`` (module docstring).

    Args:
        model: the int8 model (updated in place).
        config: a :class:`tinyzo.zo.ZOConfig`; its ``layers`` (default every trainable layer) are all
            the trained layers; the ZO options apply to the ZO part.
        bp_last: how many of the trained layers, counted from the last, back propagation trains
            (weights and biases), an integer in [1, number of trained layers - 1].
        total_steps: planned steps (for the learning-rate schedule).
        bp_lr: learning rate of the BP part, finite > 0 (default: ``config.lr``).
    """

    def __init__(self, model, config: ZOConfig, bp_last: int, total_steps: int = 1, bp_lr: float | None = None):
        layers = sorted(config.layers if config.layers is not None else model.trainable_ops())
        if isinstance(bp_last, (bool, np.bool_)) or not isinstance(bp_last, numbers.Integral) \
                or not 1 <= bp_last < len(layers):
            raise ZOConfigError(f"bp_last must be an integer in [1, {len(layers) - 1}] (BP on the last bp_last of "
                                f"the {len(layers)} trained layers, ZO on the rest), got {bp_last!r}")
        zo_layers, bp_layers = layers[: len(layers) - bp_last], layers[len(layers) - bp_last:]
        if config.channels and set(config.channels) & set(bp_layers):
            raise ZOConfigError(f"channels names BP layers {sorted(set(config.channels) & set(bp_layers))}; a channel "
                                "subset applies to the ZO layers")
        split = min(config.mixed_split, len(zo_layers))
        super().__init__(model, dataclasses.replace(config, layers=zo_layers, mixed_split=split), total_steps)
        self.zo_layers, self.bp_layers = zo_layers, bp_layers
        self.view.update(trainable_layers(model, bp_layers))
        for k in bp_layers:
            self.scales.update(self.view[k].scales())
        self.layers = sorted(self.view)
        o = self.optimizer
        self.bp_optimizer = IntegerSGD(lr=config.lr if bp_lr is None else bp_lr, schedule=o.schedule,
                                       total_steps=o.total_steps, warmup_steps=o.warmup_steps, momentum=o.momentum,
                                       mode=o.mode, rounding=o.rounding, seed=o.seed)

    def apply_update(self, grads: dict) -> None:
        """The ZO layers' step with the ZO optimizer, the BP layers' with ``bp_optimizer``."""
        bp_keys = {f"{k}/{part}" for k in self.bp_layers for part in ("w", "b")}
        zo = {key: g for key, g in grads.items() if key not in bp_keys}
        bp = {key: g for key, g in grads.items() if key in bp_keys}
        super().apply_update(zo)
        super().apply_update(bp, self.bp_optimizer)

    def extra_state(self) -> dict:
        """The BP part's optimizer state."""
        return {"bp_optimizer": self.bp_optimizer.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        """Restore the BP part's optimizer (its configuration must match)."""
        if "bp_optimizer" not in state:
            raise ZOConfigError("not a HybridTrainer state: no bp_optimizer (a checkpoint of another trainer?)")
        self.bp_optimizer.load_state_dict(state["bp_optimizer"])

    def gradients(self, xq, y):
        """``(grads, logits, base losses)``: the ZO estimate of the ZO layers and the back-propagated
        gradients of the BP layers, both at the current parameters, from one forward pass."""
        env, logits, base = self.base_pass(xq, y)
        if not np.isfinite(self.mean_loss(base)):
            return None, logits, base
        grads = self.estimate(env, y, base)
        by_layer = backward(self.model, env, y, layers=self.bp_layers, weights=self.bp_layers)
        self.backward_passes += 1
        for k in self.bp_layers:
            g_w, g_b = by_layer[k]
            grads[f"{k}/w"] = g_w
            if g_b is not None:
                grads[f"{k}/b"] = g_b
        return grads, logits, base

    def memory_spec(self, lean: bool = False) -> dict:
        """The hybrid step: the layer-wise ZO schedule of the ZO layers with ``bp_layers``."""
        c = self.config
        return {"method": Method("zo", c.estimator, c.target, True).name, "layers": list(self.zo_layers),
                "bp_layers": list(self.bp_layers), "optimizer": "sgd" if lean else self.optimizer.memory_name,
                "mixed_split": c.mixed_split}
