"""The trainable-layer view of an int8 model: what every trainer, the memory planner and the golden
vectors need to know about one trained operator (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED).

:func:`trainable_layer` reads it from a :class:`tinyzo.Model` once; :class:`TrainableLayer` holds the
weight and bias scales of the QAS update (``s_w`` per output channel, ``s_x * s_w`` for the bias,
float32 as the firmware computes them), the output-channel axis of the weight tensor (0 for
CONV_2D OHWI and FULLY_CONNECTED [O, K], 3 for DEPTHWISE_CONV_2D 1HWC), the number of output
channels, and the channel helpers (masks, per-channel rows). :func:`select_channels` chooses the
channels of a sparse update (by weight magnitude or at random).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from tinyzo.errors import InputError

__all__ = ["CHANNEL_RULES", "TrainableLayer", "select_channels", "trainable_layer", "trainable_layers"]

#: how a sparse update picks the output channels of a layer trained at a ratio < 1
CHANNEL_RULES = ("magnitude", "random")


@dataclass(frozen=True)
class TrainableLayer:
    """One trainable operator of an int8 model, as training sees it.

    Attributes:
        index: the operator index in the model.
        opcode: ``"CONV_2D"``, ``"DEPTHWISE_CONV_2D"`` or ``"FULLY_CONNECTED"``.
        weight_shape: shape of the int8 weight tensor.
        out_axis: axis of ``weight_shape`` that holds the output channels.
        n_out: output channels O.
        s_x: float32 input scale (per tensor).
        s_w: float32[O] or float32[1] weight scale (per channel or per tensor).
        s_b: float32, the bias scale ``s_x * s_w`` (same size as ``s_w``).
        s_y: float32 output scale (per tensor).
        has_bias: whether the operator has a bias tensor.
    """

    index: int
    opcode: str
    weight_shape: tuple
    out_axis: int
    n_out: int
    s_x: np.float32
    s_w: np.ndarray
    s_b: np.ndarray
    s_y: np.float32
    has_bias: bool

    @property
    def weight_scale(self) -> tuple:
        """``(s_w float32[...], out_axis)``: the QAS scale of the weights, as the update takes it."""
        return self.s_w, self.out_axis

    @property
    def bias_scale(self) -> tuple:
        """``(s_x * s_w float32[...], 0)``: the QAS scale of the int32 bias."""
        return self.s_b, 0

    def scales(self) -> dict:
        """``{"<index>/w": weight_scale, "<index>/b": bias_scale}`` (the parameter names of the trainers)."""
        return {f"{self.index}/w": self.weight_scale, f"{self.index}/b": self.bias_scale}

    def weight_mask(self, channels: np.ndarray) -> np.ndarray:
        """bool[O] output-channel selection -> a bool array that broadcasts over the weights."""
        shape = [1] * len(self.weight_shape)
        shape[self.out_axis] = self.n_out
        return np.asarray(channels, dtype=bool).reshape(shape)

    def per_channel(self, a) -> np.ndarray:
        """An array of the weight tensor's shape as (O, -1), output channels first."""
        return np.moveaxis(np.asarray(a), self.out_axis, 0).reshape(self.n_out, -1)

    def channel_scales(self) -> np.ndarray:
        """float64[O]: the weight scale of each output channel (a per-tensor scale broadcast)."""
        s = self.s_w.astype(np.float64)
        return np.full(self.n_out, s[0]) if s.size == 1 else s


def trainable_layer(model, k: int) -> TrainableLayer:
    """The :class:`TrainableLayer` of operator ``k`` of ``model`` (a trainable operator, else InputError)."""
    if k not in model.trainable_ops():
        raise InputError(f"operator {k} is not trainable; trainable operators: {model.trainable_ops()}")
    op = model.operators[k]
    w_t = model.tensors[op.inputs[1]]
    s_x = np.float32(model.tensors[op.inputs[0]].quant.scale[0])
    s_w = w_t.quant.scale.astype(np.float32)
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    return TrainableLayer(index=int(k), opcode=op.opcode, weight_shape=tuple(w_t.shape),
                          out_axis=model.out_channel_axis(k), n_out=int(model.prepared[k].n_out), s_x=s_x, s_w=s_w,
                          s_b=(s_x * s_w).astype(np.float32),
                          s_y=np.float32(model.tensors[op.outputs[0]].quant.scale[0]), has_bias=has_bias)


def trainable_layers(model, layers=None) -> dict:
    """``{op index: TrainableLayer}`` of ``layers`` (default: every trainable operator), in execution order."""
    return {k: trainable_layer(model, k) for k in sorted(model.trainable_ops() if layers is None else layers)}


def select_channels(model, layer: int, ratio: float, *, by: str = "magnitude", seed: int = 0) -> list:
    """``ceil(ratio * O)`` of the ``O`` output channels of ``layer`` (a sparse update's channels).

    Args:
        model: int8 :class:`tinyzo.Model` (only read).
        layer: a trainable op index.
        ratio: fraction in (0, 1]; ``ceil`` keeps at least one channel and ``ratio=1`` keeps all.
        by: ``"magnitude"``: the channels with the largest L2 norm of their real weights
            ``s_w[c] * w_int[c, ...]``, largest first (ties: lower index first); ``"random"``: a
            uniform draw without replacement from ``np.random.default_rng(seed)``, in ascending order.
        seed: seed of the random draw (ignored by ``"magnitude"``), int in [0, 2**32 - 1].

    Returns:
        list[int] of distinct channel indices in [0, O).
    """
    if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, numbers.Integral):
        raise InputError(f"layer must be an operator index, got {layer!r}")
    lay = trainable_layer(model, int(layer))
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, numbers.Real) or not (0.0 < float(ratio) <= 1.0):
        raise InputError(f"ratio must be a number in (0, 1], got {ratio!r}")
    if by not in CHANNEL_RULES:
        raise InputError(f"by must be one of {CHANNEL_RULES}, got {by!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= 2**32 - 1:
        raise InputError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    n = min(lay.n_out, max(1, math.ceil(float(ratio) * lay.n_out - 1e-9)))
    if by == "random":
        return sorted(int(c) for c in np.random.default_rng(int(seed)).choice(lay.n_out, size=n, replace=False))
    w, _ = model.get_params(lay.index)
    norms = np.linalg.norm(lay.per_channel(w).astype(np.float64), axis=1) * lay.channel_scales()
    return [int(c) for c in np.argsort(-norms, kind="stable")[:n]]
