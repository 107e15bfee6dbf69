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

from tinyzo.errors import TinyzoError

__all__ = ["BPTrainer", "BPTrainerError"]


class BPTrainerError(TinyzoError):
    """A BP-trainer argument or checkpoint does not fit the model, the scheme or the optimizer."""


class BPTrainer:
    """Back-propagation trainer of an int8 :class:`tinyzo.Model` (updates the model in place).

    Args:
        model: the int8 model (its trained layers' weights and biases change).
        scheme: a :class:`tinyzo.training.scheme.SparseScheme` (default: every weight and bias of every
            trainable layer, :meth:`SparseScheme.full`).
        optimizer: a :class:`tinyzo.training.update.QASOptimizer` (required).
        seed: seed of the random channel selection (``channel_select="random"``), in [0, 2**32 - 1].

    :meth:`step` returns ``{"loss", "accuracy", "forward_passes", "backward_passes", "lr"}`` (the
    pass counts are totals since construction, as the ZO trainer's).
    """

    def __init__(self, model, *, scheme=None, optimizer=None, seed: int = 0):
        from tinyzo.training.update import QASOptimizer
        from tinyzo.training.scheme import SparseScheme

        from tinyzo.graph import Model

        if not isinstance(model, Model):
            raise BPTrainerError(f"model must be a tinyzo.Model (tinyzo.load), got {type(model).__name__}")
        if not isinstance(optimizer, QASOptimizer):
            raise BPTrainerError(f"optimizer must be a tinyzo.training.update.QASOptimizer, got {type(optimizer).__name__}")
        if scheme is None:
            scheme = SparseScheme.full(model)
        if not isinstance(scheme, SparseScheme):
            raise BPTrainerError(f"scheme must be a tinyzo.training.scheme.SparseScheme, got {type(scheme).__name__}")
        self.model = model
        self.scheme = scheme
        self.optimizer = optimizer
        self.plan = scheme.layer_plan(model)          # validates: {op: (ratio, train bias)}
        self.layers = list(self.plan)
        self.masks = scheme.channel_masks(model, seed)
        self.seed = int(seed)
        self.step_count = 0
        self.forward_passes = 0
        self.backward_passes = 0
        self._scales = {}
        for k in self.layers:
            op = model.operators[k]
            s_x = np.float32(model.tensors[op.inputs[0]].quant.scale[0])
            s_w = model.tensors[op.inputs[1]].quant.scale.astype(np.float32)
            self._scales[f"{k}/w"] = (s_w, model.out_channel_axis(k))
            self._scales[f"{k}/b"] = ((s_x * s_w).astype(np.float32), 0)
        self._logits_t = model.loss_tensor
        self._out_q = model.loss_quant()

    def _weight_mask(self, k: int) -> np.ndarray | None:
        """Layer ``k``'s channel mask shaped to broadcast over its weights (None: every channel)."""
        mask = self.masks.get(k)
        if mask is None or mask.all():
            return None
        w_shape = self.model.tensors[self.model.operators[k].inputs[1]].shape
        shape = [1] * len(w_shape)
        shape[self.model.out_channel_axis(k)] = mask.size
        return mask.reshape(shape)

    def step(self, xq, y) -> dict:
        """One BP step on the int8 batch ``xq`` [N, ...] with int labels ``y`` [N]."""
        from tinyzo.bp.backward import backward
        from tinyzo.training.loss import cross_entropy_int8, mean_float32

        y = np.asarray(y)
        _, env = self.model(xq, intermediates=True)
        self.forward_passes += 1
        n = len(y)
        logits = env[self._logits_t].reshape(n, -1)
        loss = mean_float32(cross_entropy_int8(logits, y, *self._out_q))
        acc = float(np.mean(np.argmax(logits, axis=1) == y))
        if not np.isfinite(loss):
            return {"loss": float(loss), "accuracy": acc, "forward_passes": self.forward_passes,
                    "backward_passes": self.backward_passes, "lr": self.optimizer.lr_at(self.optimizer.step_count)}
        grads_by_layer = backward(self.model, env, y, layers=self.layers,
                                  weights=[k for k, (ratio, _) in self.plan.items() if ratio > 0])
        self.backward_passes += 1
        params, grads = {}, {}
        for k, (ratio, train_b) in self.plan.items():
            g_w, g_b = grads_by_layer[k]
            w, b = self.model.get_params(k)
            if ratio > 0:
                mask = self._weight_mask(k)
                params[f"{k}/w"] = w
                grads[f"{k}/w"] = g_w if mask is None else (g_w * mask).astype(np.float32)
            if train_b and g_b is not None:
                params[f"{k}/b"] = b
                grads[f"{k}/b"] = g_b
        lr = self.optimizer.lr_at(self.optimizer.step_count)
        new = self.optimizer.step(params, grads, {key: self._scales[key] for key in params})
        for k in self.layers:
            w, b = new.get(f"{k}/w"), new.get(f"{k}/b")
            if w is not None or b is not None:
                self.model.set_params(k, w, b)
        self.step_count += 1
        return {"loss": float(loss), "accuracy": acc, "forward_passes": self.forward_passes,
                "backward_passes": self.backward_passes, "lr": float(lr)}

    # ------------------------------------------------------------------ checkpoints
    def _scheme_bytes(self) -> np.ndarray:
        return np.frombuffer(self.scheme.to_json(indent=None).encode(), dtype=np.uint8).copy()

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (numpy values only, no pickle; the model is saved apart).

        Keys: ``step_count``, ``forward_passes``, ``backward_passes``, ``scheme`` (its JSON as uint8
        bytes), ``masks`` (``{"<op>": bool[O]}``: the channel selection, kept so a resumed run trains
        the same channels even though the weights have moved) and ``optimizer``
        (:meth:`QASOptimizer.state_dict`).
        """
        return {"step_count": np.asarray(self.step_count), "forward_passes": np.asarray(self.forward_passes),
                "backward_passes": np.asarray(self.backward_passes), "scheme": self._scheme_bytes(),
                "masks": {str(k): m.copy() for k, m in self.masks.items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; the scheme must be the one this trainer was built with."""
        try:
            saved = bytes(np.asarray(state["scheme"], dtype=np.uint8)).decode()
            counts = [int(state[k]) for k in ("step_count", "forward_passes", "backward_passes")]
            masks = {int(k): np.asarray(v, dtype=bool) for k, v in dict(state.get("masks", {})).items()}
            opt_state = state["optimizer"]
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise BPTrainerError(f"not a BPTrainer state: {e}") from None
        if json.loads(saved) != json.loads(self.scheme.to_json(indent=None)):
            raise BPTrainerError(f"the checkpoint was trained with another sparse scheme: {saved}")
        if sorted(masks) != sorted(self.masks) or any(masks[k].shape != self.masks[k].shape for k in masks):
            raise BPTrainerError("the checkpoint's channel masks do not match the scheme's layers")
        self.optimizer.load_state_dict(opt_state)
        self.step_count, self.forward_passes, self.backward_passes = counts
        self.masks = masks
