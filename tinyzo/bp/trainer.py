"""Back-propagation training of an int8 model: one step = forward, loss, backward, sparse mask, update.

A step on a batch (int8 inputs ``xq``, labels ``y``):

1. **forward** once, keeping every activation (``model(xq, intermediates=True)``); the loss is the
   float32 mean (:func:`tinyzo.training.loss.mean_float32`) of the per-sample cross-entropy of the int8
   logits (:func:`tinyzo.training.loss.cross_entropy_int8`), as the ZO trainer's; the logits are the
   tensor :func:`tinyzo.bp.logits_gradient` differentiates (the input of a final SOFTMAX, if any).
2. **backward** (:func:`tinyzo.bp.backward`) for the scheme's trained layers only: the pass stops at
   the earliest trained layer, so the frozen part below it gets no gradient work.
3. **mask**: the weight gradients of a layer trained at ratio < 1 are zeroed outside its selected
   output channels (:meth:`tinyzo.training.scheme.SparseScheme.channel_masks`, chosen once at construction);
   weights and biases the scheme does not train are not passed to the optimizer at all.
4. **update** (:class:`tinyzo.training.update.QASOptimizer`: SGD / Adam, with or without QAS, per-step
   rounding or float shadow) and :meth:`tinyzo.Model.set_params`.
"""

from __future__ import annotations

import json

import numpy as np

from tinyzo.bp.backward import backward
from tinyzo.errors import TinyzoError
from tinyzo.graph import Model
from tinyzo.training.scheme import SparseScheme
from tinyzo.training.trainer import Trainer
from tinyzo.training.update import QASOptimizer

__all__ = ["BPTrainer", "BPTrainerError"]


class BPTrainerError(TinyzoError):
    """A BP-trainer argument or checkpoint does not fit the model, the scheme or the optimizer."""


class BPTrainer(Trainer):
    """Back-propagation trainer of an int8 :class:`tinyzo.Model` (updates the model in place).

    The gradient source on the training core (:class:`tinyzo.training.trainer.Trainer` owns the
    scales, masks, loss, update, checkpoint state and memory description); this class supplies the
    back-propagated gradients of the scheme's parameters.

    Args:
        model: the int8 model (its trained layers' weights and biases change).
        scheme: a :class:`tinyzo.training.scheme.SparseScheme` (default: every weight and bias of every
            trainable layer, :meth:`SparseScheme.full`).
        optimizer: a :class:`tinyzo.training.update.QASOptimizer` (required).
        seed: seed of the random channel selection (``channel_select="random"``), in [0, 2**32 - 1].

    :meth:`step` returns ``{"loss", "accuracy", "forward_passes", "backward_passes", "lr"}`` (the
    pass counts are totals since construction, as the ZO trainer's).
    """

    #: a layer trained at ratio < 1 has its weight gradients masked; its bias trains fully
    mask_bias = False

    def __init__(self, model, *, scheme=None, optimizer=None, seed: int = 0):

        if not isinstance(model, Model):
            raise BPTrainerError(f"model must be a tinyzo.Model (tinyzo.load), got {type(model).__name__}")
        if not isinstance(optimizer, QASOptimizer):
            raise BPTrainerError(f"optimizer must be a tinyzo.training.update.QASOptimizer, got {type(optimizer).__name__}")
        if scheme is None:
            scheme = SparseScheme.full(model)
        if not isinstance(scheme, SparseScheme):
            raise BPTrainerError(f"scheme must be a tinyzo.training.scheme.SparseScheme, got {type(scheme).__name__}")
        plan = scheme.layer_plan(model)          # validates: {op: (ratio, train bias)}
        super().__init__(model, list(plan), optimizer)
        self.scheme = scheme
        self.plan = plan
        self.layers = list(plan)                 # execution order, as the scheme lists them
        self.channel_masks = scheme.channel_masks(model, seed)
        self.seed = int(seed)

    @property
    def masks(self) -> dict:
        """``{op: bool[O]}``: the trained output channels of every weight-trained layer."""
        return self.channel_masks

    def gradients(self, xq, y):
        """``(grads, logits, losses)`` of one batch; ``grads`` None if the loss is not finite."""
        _, env = self.model(xq, intermediates=True)
        self.forward_passes += 1
        logits = env[self.loss_tensor].reshape(len(y), -1)
        losses = self.losses(logits, y)
        if not np.isfinite(self.mean_loss(losses)):
            return None, logits, losses
        grads_by_layer = backward(self.model, env, y, layers=self.layers,
                                  weights=[k for k, (ratio, _) in self.plan.items() if ratio > 0])
        self.backward_passes += 1
        grads = {}
        for k, (ratio, train_b) in self.plan.items():
            g_w, g_b = grads_by_layer[k]
            if ratio > 0:
                grads[f"{k}/w"] = g_w
            if train_b and g_b is not None:
                grads[f"{k}/b"] = g_b
        return grads, logits, losses

    # ------------------------------------------------------------------ memory
    def memory_spec(self, lean: bool = False) -> dict:
        """Sparse BP with this scheme and optimizer state (:meth:`Trainer.memory_spec`)."""
        return {"method": "bp", "scheme": self.scheme, "optimizer": "sgd" if lean else self.optimizer.memory_name}

    # ------------------------------------------------------------------ checkpoints
    def _scheme_bytes(self) -> np.ndarray:
        return np.frombuffer(self.scheme.to_json(indent=None).encode(), dtype=np.uint8).copy()

    def extra_state(self) -> dict:
        """``scheme`` (its JSON as uint8 bytes) and ``masks`` (``{"<op>": bool[O]}``: the channel
        selection, kept so a resumed run trains the same channels even though the weights have moved)."""
        return {"scheme": self._scheme_bytes(), "masks": {str(k): m.copy() for k, m in self.channel_masks.items()}}

    def load_extra_state(self, state: dict) -> None:
        """Refuse a state trained with another scheme; restore the channel masks."""
        try:
            saved = bytes(np.asarray(state["scheme"], dtype=np.uint8)).decode()
            masks = {int(k): np.asarray(v, dtype=bool) for k, v in dict(state.get("masks", {})).items()}
            for k in ("step_count", "forward_passes", "backward_passes", "optimizer"):
                state[k]
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise BPTrainerError(f"not a BPTrainer state: {e}") from None
        if json.loads(saved) != json.loads(self.scheme.to_json(indent=None)):
            raise BPTrainerError(f"the checkpoint was trained with another sparse scheme: {saved}")
        if sorted(masks) != sorted(self.channel_masks) or any(masks[k].shape != self.channel_masks[k].shape
                                                               for k in masks):
            raise BPTrainerError("the checkpoint's channel masks do not match the scheme's layers")
        self.channel_masks = masks
