"""The trainer base class: everything an int8 trainer does besides computing gradients.

A trainer updates an int8 :class:`tinyzo.Model` in place, one batch per :meth:`Trainer.step`. The
base owns the trained layers (their :class:`~tinyzo.training.layers.TrainableLayer` views: scales,
output-channel axes), the channel masks of a sparse update, the loss (the cross-entropy of
:attr:`tinyzo.Model.loss_tensor`, :func:`tinyzo.training.loss.cross_entropy_int8`), the optimizer
(:mod:`tinyzo.training.update`) and applying its step, the pass counters, the checkpoint state, and
the description of its MCU step the memory planner schedules (:meth:`Trainer.memory_spec`).

A subclass supplies only the gradients: :meth:`Trainer.gradients` returns ``{"<op>/w": float32,
"<op>/b": float32}`` (d loss / d integer unit, the parameters' shapes) for one batch.
:class:`tinyzo.zo.ZOTrainer` estimates them from forward passes, :class:`tinyzo.bp.BPTrainer`
back-propagates.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.graph import Model
from tinyzo.training.layers import trainable_layers
from tinyzo.training.loss import cross_entropy_int8, mean_float32

__all__ = ["Trainer", "TrainerStateError"]


class TrainerStateError(TinyzoError):
    """A trainer's checkpoint state is missing a value or belongs to another trainer."""


class Trainer:
    """Base of the int8 trainers (module docstring). Updates ``model`` in place.

    Args:
        model: the int8 :class:`tinyzo.Model`.
        layers: the trained operator indices (trainable operators, any order; kept sorted).
        optimizer: a :class:`tinyzo.training.update.IntegerSGD` or
            :class:`tinyzo.training.update.QASOptimizer` (anything with ``step(params, grads,
            scales)``, ``lr_at(step)``, ``step_count``, ``memory_name``, ``state_dict()``,
            ``load_state_dict()``).

    Attributes:
        layers: sorted trained op indices; view: ``{op: TrainableLayer}``; channel_masks:
        ``{op: bool[O]}`` (sparse update; set by the subclass); step_count, forward_passes,
        backward_passes: totals since construction (passes count batches).
    """

    #: which gradient-mask parts a sparse update zeroes outside the selected channels
    mask_bias = True

    def __init__(self, model, layers, optimizer):
        if not isinstance(model, Model):
            raise TinyzoError(f"model must be a tinyzo.Model (tinyzo.load), got {type(model).__name__}")
        self.model = model
        self.view = trainable_layers(model, layers)
        self.layers = list(self.view)
        self.optimizer = optimizer
        self.loss_tensor = model.loss_tensor
        self.loss_quant = model.loss_quant()
        self.scales = {name: spec for lay in self.view.values() for name, spec in lay.scales().items()}
        self.channel_masks: dict = {}
        self.step_count = 0
        self.forward_passes = 0
        self.backward_passes = 0

    # ------------------------------------------------------------------ loss and masks
    def losses(self, logits, y) -> np.ndarray:
        """Per-sample cross-entropy (float32[N]) of the int8 ``logits`` (the loss tensor, any shape [N, ...])."""
        scale, zero_point = self.loss_quant
        return cross_entropy_int8(logits.reshape(len(y), -1), y, scale, zero_point)

    def mean_loss(self, losses) -> np.float32:
        """The batch loss: the float32 mean of the per-sample losses, summed left to right."""
        return mean_float32(losses)

    def weight_mask(self, k: int) -> np.ndarray | None:
        """Layer ``k``'s channel mask broadcast over its weights (None: every channel is trained)."""
        mask = self.channel_masks.get(k)
        if mask is None or mask.all():
            return None
        return self.view[k].weight_mask(mask)

    def mask_gradients(self, grads: dict) -> dict:
        """Zero the gradients outside each layer's selected channels (weights; biases too if
        :attr:`mask_bias`). Returns a new dict; float32 arrays."""
        out = {}
        for key, g in grads.items():
            k, part = key.split("/")
            k = int(k)
            if part == "w":
                mask = self.weight_mask(k)
            else:
                mask = self.channel_masks.get(k) if self.mask_bias else None
                mask = None if mask is None or mask.all() else mask
            out[key] = g if mask is None else (g * mask).astype(np.float32)
        return out

    # ------------------------------------------------------------------ the step
    def gradients(self, xq, y):
        """``(grads, logits, losses)`` of one batch: ``grads`` ``{"<op>/w"|"<op>/b": float32}``,
        the int8 loss-tensor values and the per-sample float32 losses at the current parameters.
        ``grads`` None means: do not update (e.g. a non-finite loss). Subclasses implement it."""
        raise NotImplementedError

    def params_of(self, k: int):
        """Layer ``k``'s current (int8 weights, int32 bias or None)."""
        return self.model.get_params(k)

    def apply_update(self, grads: dict, optimizer=None) -> None:
        """One step of ``optimizer`` (default :attr:`optimizer`) on ``grads`` (masked first) and write the
        new parameters into the model."""
        self.write_update(grads, (optimizer or self.optimizer).step)

    def write_update(self, grads: dict, update) -> None:
        """``update(params, grads, scales) -> new params`` (an optimizer's ``step``, or ``update_params``
        for part of a step) on ``grads`` (masked first); the new parameters go into the model."""
        grads = self.mask_gradients(grads)
        params = {}
        for key in grads:
            k, part = key.split("/")
            w, b = self.params_of(int(k))
            params[key] = w if part == "w" else b
        new = update(params, grads, {key: self.scales[key] for key in grads})
        for k in self.layers:
            w, b = new.get(f"{k}/w"), new.get(f"{k}/b")
            if w is not None or b is not None:
                self.model.set_params(k, w, b)

    def step(self, xq, y) -> dict:
        """One training step on the int8 batch ``xq`` [N, ...] with int labels ``y`` [N].

        Returns ``{"loss", "accuracy", "forward_passes", "backward_passes", "lr"}`` (loss and
        accuracy at the parameters before the step; pass counts are totals)."""
        y = np.asarray(y)
        lr = self.optimizer.lr_at(self.optimizer.step_count)
        logits, losses, updated = self.train_on(xq, y)
        loss = self.mean_loss(losses)
        acc = float(np.mean(np.argmax(logits.reshape(len(y), -1), axis=1) == y))
        if updated:
            self.step_count += 1
        return {"loss": float(loss), "accuracy": acc, "forward_passes": self.forward_passes,
                "backward_passes": self.backward_passes, "lr": float(lr)}

    def train_on(self, xq, y) -> tuple:
        """The work of :meth:`step`: the gradients (:meth:`gradients`) and, unless they are None, the
        update (:meth:`apply_update`). Returns ``(logits, per-sample losses, updated)``; a subclass may
        interleave the two (the ZO trainer updates each layer as its gradient comes)."""
        grads, logits, losses = self.gradients(xq, y)
        if grads is not None:
            self.apply_update(grads)
        return logits, losses, grads is not None

    # ------------------------------------------------------------------ memory
    def memory_spec(self, lean: bool = False) -> dict:
        """The MCU training step this trainer runs, as :func:`tinyzo.memory.memory_report` keywords
        (``method``, ``optimizer`` and ``layers`` / ``scheme`` / ``mixed_split``); ``lean``: the same
        step with plain SGD and per-step rounding (no optimizer state). Subclasses implement it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue exactly (numpy values only; the model is saved apart):
        ``step_count``, ``forward_passes``, ``backward_passes``, ``optimizer`` and the subclass's extras."""
        return {"step_count": np.asarray(self.step_count), "forward_passes": np.asarray(self.forward_passes),
                "backward_passes": np.asarray(self.backward_passes), "optimizer": self.optimizer.state_dict(),
                **self.extra_state()}

    def extra_state(self) -> dict:
        """The subclass's part of :meth:`state_dict` (default none)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (the subclass checks its extras first)."""
        try:
            counts = [int(state["step_count"]), int(state["forward_passes"]), int(state.get("backward_passes", 0))]
            opt_state = state["optimizer"]
        except (KeyError, TypeError, ValueError) as e:
            raise TrainerStateError(f"not a {type(self).__name__} state: {e}") from None
        self.load_extra_state(state)
        self.optimizer.load_state_dict(opt_state)
        self.step_count, self.forward_passes, self.backward_passes = counts

    def load_extra_state(self, state: dict) -> None:
        """Check and restore the subclass's part of the state (default nothing)."""
