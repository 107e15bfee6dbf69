"""Sparse-update schemes of back propagation (tiny-training's sparse update), as a small declarative object.

A :class:`SparseScheme` says which parameters BP trains; everything else is frozen and gets no gradient
work (the backward stops at the earliest trained layer):

* ``bias_last_k``: the int32 biases of the last ``k`` trainable layers (all their channels);
* ``weights``: ``{layer: ratio}``: the int8 weights of these layers, a fraction ``ratio`` in (0, 1] of
  their output channels (``ceil(ratio * O)`` channels, at least one);
* ``channel_select``: how those channels are picked: ``"magnitude"`` (largest L2 norm of the real
  weights first) or ``"random"`` (:func:`tinyzo.training.layers.select_channels`; layer ``k`` draws with
  seed ``(seed + k) mod 2**32``); chosen once, when training starts;
* ``classifier``: always train the last trainable layer fully (weights, ratio 1, and bias), as
  tiny-training does; it overrides a smaller ratio given for that layer in ``weights``.

A weight-trained layer's bias is trained only if the layer is among the last ``bias_last_k``.

**Layers** are named by operator index (an int ``>= 0``: ``model.operators[k]``), by position among
the trainable operators counted from the end (an int ``< 0``: ``-1`` is the last trainable layer), or
by the name of the operator's output tensor (e.g. ``"classifier"``, ``"blocks.3.pointwise"``).

**JSON form** (:meth:`SparseScheme.to_json`, :meth:`SparseScheme.from_json`)::

    {
      "format": "tinyzo.sparse_scheme",
      "version": 1,
      "name": "last 2 layers",          // optional label
      "bias_last_k": 2,
      "weights": {"9": 0.5, "classifier": 1.0, "-3": 0.25},   // layer -> ratio; keys: "<int>" or a name
      "channel_select": "magnitude",    // or "random"
      "classifier": true
    }

Keys that parse as integers are layer indices (``"9"`` = operator 9, ``"-3"`` = third trainable
layer from the end); other keys are output-tensor names.

**Memory count** (:meth:`SparseScheme.memory_bytes`; tiny-training's additive "extra memory"; the device
peak of a training step is :func:`tinyzo.memory.scheme_peak_bytes`). Trained parameters are copied to RAM (frozen ones stay in flash); the backward needs,
per sample, the int8 input of every weight-trained layer and one bit per output element (the clamp
mask) of every operator it traverses. With ``B`` the batch size and ``P`` the optimizer-state bytes
per trained parameter (0: plain SGD per step; +4 float shadow; +4 momentum; +8 Adam)::

    memory = sum_weight_layers  n_sel * K                  # trained int8 weights, 1 B each
           + sum_bias_layers    4 * O                      # trained int32 biases
           + B * sum_weight_layers  A_in * f               # saved int8 input activations
           + B * sum_{first trained op <= k}  ceil(A_out(k) / 8)   # clamp masks, 1 bit each
           + P * param_count

``n_sel = ceil(ratio * O)``, ``K`` the weights per output channel, ``A_in`` / ``A_out`` the elements
of an input / output activation of one sample, ``f = 1`` for conv and fully connected (every input
channel feeds every output channel) and ``f = n_sel / O`` for depthwise (only the selected channels'
inputs). RESHAPE needs no mask. Transient float32 gradient buffers are not counted.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.training.layers import CHANNEL_RULES, select_channels

__all__ = ["CHANNEL_RULES", "SCHEME_FORMAT", "SchemeError", "SparseScheme"]

#: the channel-selection rules
#: the "format" value of the JSON form
SCHEME_FORMAT = "tinyzo.sparse_scheme"
_VERSION = 1
_NO_MASK_OPS = ("RESHAPE",)


class SchemeError(TinyzoError):
    """A sparse-update scheme is malformed or names layers the model lacks."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _check_ratio(layer, r) -> float:
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Real) or not math.isfinite(float(r)) \
            or not 0.0 < float(r) <= 1.0:
        raise SchemeError(f"the ratio of layer {layer!r} must be a number in (0, 1] (a fraction of its output "
                          f"channels), got {r!r}")
    return float(r)


def _ratio_str(r: float) -> str:
    f = Fraction(r).limit_denominator(64)
    if float(f) == r:
        return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
    return f"{r:g}"


def _elems(model, t: int) -> int:
    """Elements of one sample of activation tensor ``t`` (the batch dimension dropped)."""
    return int(np.prod(model.tensors[t].shape[1:], dtype=np.int64))


@dataclass
class SparseScheme:
    """Which biases, weights and channels BP trains (module docstring: semantics, JSON, memory formula).

    Attributes:
        bias_last_k: int >= 0, train the biases of the last k trainable layers.
        weights: ``{layer: ratio}``, layer an op index (int >= 0), a position from the end (int < 0)
            or an output-tensor name; ratio in (0, 1].
        channel_select: ``"magnitude"`` or ``"random"``.
        classifier: always train the last trainable layer fully.
        name: optional label (default: made from the fields, :attr:`label`).
    """

    bias_last_k: int = 0
    weights: dict = field(default_factory=dict)
    channel_select: str = "magnitude"
    classifier: bool = True
    name: str | None = None

    def __post_init__(self):
        if not _is_int(self.bias_last_k) or self.bias_last_k < 0:
            raise SchemeError(f"bias_last_k must be an integer >= 0, got {self.bias_last_k!r}")
        self.bias_last_k = int(self.bias_last_k)
        if not isinstance(self.weights, dict):
            raise SchemeError(f"weights must be a dict {{layer: ratio}}, got {type(self.weights).__name__}")
        clean = {}
        for layer, r in self.weights.items():
            if not (_is_int(layer) or isinstance(layer, str)) or (isinstance(layer, str) and not layer):
                raise SchemeError(f"a layer is named by an operator index (int) or an output-tensor name (str), "
                                  f"got {layer!r}")
            clean[int(layer) if _is_int(layer) else layer] = _check_ratio(layer, r)
        self.weights = clean
        if self.channel_select not in CHANNEL_RULES:
            raise SchemeError(f"channel_select must be one of {', '.join(CHANNEL_RULES)}, got {self.channel_select!r}")
        if not isinstance(self.classifier, (bool, np.bool_)):
            raise SchemeError(f"classifier must be true or false, got {self.classifier!r}")
        self.classifier = bool(self.classifier)
        if self.name is not None and not isinstance(self.name, str):
            raise SchemeError(f"name must be a string, got {self.name!r}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def full(cls, model) -> SparseScheme:
        """Every weight and bias of every trainable layer (full back propagation)."""
        ops = model.trainable_ops()
        return cls(bias_last_k=len(ops), weights={k: 1.0 for k in ops}, classifier=True, name="full")

    @classmethod
    def last_k(cls, model, k: int) -> SparseScheme:
        """Weights and biases of the last ``k`` trainable layers (tiny-training's "last k layers")."""
        ops = model.trainable_ops()
        if not _is_int(k) or not 1 <= k <= len(ops):
            raise SchemeError(f"k must be an integer in [1, {len(ops)}] (the model's trainable layers), got {k!r}")
        return cls(bias_last_k=int(k), weights={op: 1.0 for op in ops[-int(k):]}, classifier=True,
                   name=f"last {int(k)} layers")

    @classmethod
    def bias_only(cls, model, k: int, *, classifier: bool = False) -> SparseScheme:
        """The biases of the last ``k`` trainable layers only (plus the full classifier if asked)."""
        n = len(model.trainable_ops())
        if not _is_int(k) or not 1 <= k <= n:
            raise SchemeError(f"k must be an integer in [1, {n}] (the model's trainable layers), got {k!r}")
        return cls(bias_last_k=int(k), weights={}, classifier=classifier,
                   name=f"bias-only last {int(k)}" + (" + classifier" if classifier else ""))

    # ------------------------------------------------------------------ labels and JSON
    @property
    def label(self) -> str:
        """``name`` if given, else a tiny-training-style description, e.g. ``"bias last 6 + W[9@1/2, 11@1] + classifier"``."""
        if self.name:
            return self.name
        parts = [f"bias last {self.bias_last_k}"] if self.bias_last_k else []
        if self.weights:
            parts.append("W[" + ", ".join(f"{k}@{_ratio_str(r)}" for k, r in self.weights.items()) + "]")
        if self.classifier:
            parts.append("classifier")
        return " + ".join(parts) or "nothing"

    def to_dict(self) -> dict:
        """The JSON form as a dict (layer keys as strings)."""
        d = {"format": SCHEME_FORMAT, "version": _VERSION}
        if self.name is not None:
            d["name"] = self.name
        d.update({"bias_last_k": self.bias_last_k, "weights": {str(k): r for k, r in self.weights.items()},
                  "channel_select": self.channel_select, "classifier": self.classifier})
        return d

    def to_json(self, indent: int | None = 1) -> str:
        """The JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> SparseScheme:
        """Parse the JSON form (a dict); unknown keys, a wrong format or version raise :class:`SchemeError`."""
        if not isinstance(d, dict):
            raise SchemeError(f"a sparse scheme is a JSON object, got {type(d).__name__}")
        if d.get("format", SCHEME_FORMAT) != SCHEME_FORMAT:
            raise SchemeError(f"not a sparse scheme: format {d.get('format')!r} (expected {SCHEME_FORMAT!r})")
        if d.get("version", _VERSION) != _VERSION:
            raise SchemeError(f"sparse scheme version {d.get('version')!r} is not supported (expected {_VERSION})")
        known = {"format", "version", "name", "bias_last_k", "weights", "channel_select", "classifier"}
        extra = sorted(set(d) - known)
        if extra:
            raise SchemeError(f"unknown sparse-scheme keys {extra}; known: {sorted(known)}")
        weights = d.get("weights", {})
        if not isinstance(weights, dict):
            raise SchemeError(f"weights must be an object {{layer: ratio}}, got {weights!r}")
        parsed = {}
        for key, r in weights.items():
            try:
                layer = int(key)
            except (TypeError, ValueError):
                layer = key
            parsed[layer] = r
        return cls(bias_last_k=d.get("bias_last_k", 0), weights=parsed,
                   channel_select=d.get("channel_select", "magnitude"), classifier=d.get("classifier", True),
                   name=d.get("name"))

    @classmethod
    def from_json(cls, text) -> SparseScheme:
        """Parse JSON text (or an already-parsed dict)."""
        if isinstance(text, dict):
            return cls.from_dict(text)
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as e:
            raise SchemeError(f"a sparse scheme must be JSON text: {e}") from None
        return cls.from_dict(d)

    def save(self, path) -> Path:
        """Write the JSON form to ``path``."""
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path) -> SparseScheme:
        """Read a scheme JSON file."""
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise SchemeError(f"cannot read the sparse scheme {path}: {e}") from None
        return cls.from_json(text)

    # ------------------------------------------------------------------ against a model
    @staticmethod
    def resolve_layer(model, layer) -> int:
        """The operator index (int) of ``layer``: an operator index ``>= 0``, a position ``< 0`` among the
        trainable operators counted from the end, or an output-tensor name. Raises :class:`SchemeError`."""
        ops = model.trainable_ops()
        names = {model.tensors[model.operators[k].outputs[0]].name: k for k in ops}
        if _is_int(layer):
            if layer < 0:
                if -layer > len(ops):
                    raise SchemeError(f"layer {layer} counts from the end but the model has only {len(ops)} "
                                      f"trainable layers (use -1 .. -{len(ops)})")
                return ops[layer]
            if layer not in ops:
                raise SchemeError(f"layer {layer} is not a trainable operator of the model; trainable operators: "
                                  f"{ops} ({', '.join(names)})")
            return int(layer)
        if layer not in names:
            raise SchemeError(f"no trainable layer named {layer!r}; names: {', '.join(names)} (operators {ops})")
        return names[layer]

    def layer_plan(self, model) -> dict:
        """``{op index: (weight ratio or 0.0, train bias?)}`` for every trained layer, in execution order.

        Raises :class:`SchemeError` if a layer does not exist, ``bias_last_k`` exceeds the trainable
        layers, a layer is named twice or nothing is trained.
        """
        ops = model.trainable_ops()
        if self.bias_last_k > len(ops):
            raise SchemeError(f"bias_last_k = {self.bias_last_k} but the model has only {len(ops)} trainable layers")
        ratios: dict = {}
        for layer, r in self.weights.items():
            k = self.resolve_layer(model, layer)
            if k in ratios:
                raise SchemeError(f"layer {k} is named twice in weights ({layer!r} and another key)")
            ratios[k] = r
        bias = set(ops[len(ops) - self.bias_last_k:]) if self.bias_last_k else set()
        if self.classifier:
            ratios[ops[-1]] = 1.0
            bias.add(ops[-1])
        plan = {}
        for k in ops:
            if k in ratios or k in bias:
                op = model.operators[k]
                has_b = len(op.inputs) > 2 and op.inputs[2] != -1
                plan[k] = (ratios.get(k, 0.0), k in bias and has_b)
        if not any(r > 0 or b for r, b in plan.values()):
            raise SchemeError("the scheme trains nothing: give bias_last_k > 0, weights, or classifier=true")
        return plan

    def validate(self, model) -> None:
        """Raise :class:`SchemeError` unless the scheme applies to ``model`` (see :meth:`layer_plan`)."""
        self.layer_plan(model)

    def resolved(self, model) -> SparseScheme:
        """The same scheme with every layer named by its operator index (classifier folded into weights)."""
        plan = self.layer_plan(model)
        return SparseScheme(bias_last_k=self.bias_last_k, weights={k: r for k, (r, _) in plan.items() if r > 0},
                            channel_select=self.channel_select, classifier=self.classifier, name=self.name)

    def trained_layers(self, model) -> list:
        """Op indices of every layer with a trained weight or bias, in execution order."""
        return list(self.layer_plan(model))

    def channel_masks(self, model, seed: int = 0) -> dict:
        """``{op index: bool[O]}``: the trained output channels of every weight-trained layer.

        ``ceil(ratio * O)`` channels by :func:`tinyzo.training.layers.select_channels` (``channel_select``;
        layer ``k`` uses seed ``(seed + k) mod 2**32``). Depends on the current weights (magnitude).
        """
        if not _is_int(seed) or not 0 <= seed <= 0xFFFFFFFF:
            raise SchemeError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
        masks = {}
        for k, (r, _) in self.layer_plan(model).items():
            if r > 0:
                mask = np.zeros(model.prepared[k].n_out, dtype=bool)
                mask[select_channels(model, k, r, by=self.channel_select, seed=(int(seed) + k) % 2**32)] = True
                masks[k] = mask
        return masks

    # ------------------------------------------------------------------ cost
    def memory_breakdown(self, model, *, batch: int = 1, state_bytes_per_param: int = 0) -> list:
        """Per-operator terms of the memory formula (module docstring), from the first trained op on.

        Returns a list of dicts ``{"op", "opcode", "name", "weight_channels", "params", "param_bytes",
        "activation_bytes", "mask_bytes", "state_bytes"}`` (ints; ``weight_channels`` = ``n_sel`` or 0).
        """
        if not _is_int(batch) or batch < 1:
            raise SchemeError(f"batch must be an integer >= 1, got {batch!r}")
        if not _is_int(state_bytes_per_param) or state_bytes_per_param < 0:
            raise SchemeError(f"state_bytes_per_param must be an integer >= 0, got {state_bytes_per_param!r}")
        plan = self.layer_plan(model)
        first = min(plan)
        rows = []
        for k in range(first, len(model.operators)):
            op = model.operators[k]
            ratio, train_b = plan.get(k, (0.0, False))
            n_w = n_b = n_sel = act = 0
            if ratio > 0:
                n_out = model.prepared[k].n_out
                n_sel = min(n_out, max(1, math.ceil(ratio * n_out - 1e-9)))
                w_size = int(np.prod(model.tensors[op.inputs[1]].shape, dtype=np.int64))
                n_w = n_sel * (w_size // n_out)
                a_in = _elems(model, op.inputs[0])
                act = a_in * n_sel // n_out if op.opcode == "DEPTHWISE_CONV_2D" else a_in
            if train_b:
                n_b = int(np.prod(model.tensors[op.inputs[2]].shape, dtype=np.int64))
            mask = 0 if op.opcode in _NO_MASK_OPS else -(-_elems(model, op.outputs[0]) // 8)
            rows.append({"op": k, "opcode": op.opcode, "name": model.tensors[op.outputs[0]].name,
                         "weight_channels": n_sel, "params": n_w + n_b, "param_bytes": n_w + 4 * n_b,
                         "activation_bytes": batch * act, "mask_bytes": batch * mask,
                         "state_bytes": state_bytes_per_param * (n_w + n_b)})
        return rows

    def param_count(self, model) -> int:
        """Number of trained parameters: ``sum n_sel * K`` weights + ``sum O`` biases."""
        return sum(r["params"] for r in self.memory_breakdown(model))

    def memory_bytes(self, model, *, batch: int = 1, state_bytes_per_param: int = 0) -> int:
        """Training memory of the scheme in bytes (module docstring's formula)."""
        rows = self.memory_breakdown(model, batch=batch, state_bytes_per_param=state_bytes_per_param)
        return sum(r["param_bytes"] + r["activation_bytes"] + r["mask_bytes"] + r["state_bytes"] for r in rows)
