"""tiny-training's published sparse-update schemes and its analytic memory count, on tinyzo models.

tiny-training (Lin et al., "On-Device Training Under 256KB Memory", mit-han-lab/tiny-training) names
each ready-made scheme by a memory label (49 to 148 kB). The label is ``floor`` of an *analytic*
count of what the backward must keep ("saved for backward",
``algorithm/core/utils/partial_backward.py``), not a measured peak. The schemes and the labels are
bundled in ``tinyzo/memory/data/tiny_training_sparse_schemes.json`` (a byte-identical copy of the
project's decoded table; provenance in ``tinyzo/memory/data/README.md``).

A tiny-training scheme (:class:`TinyTrainingScheme`) is:

* ``n_bias_update``: the biases of the last ``n`` convolutions (``conv_idx`` counts CONV_2D and
  DEPTHWISE_CONV_2D from the input, the classifier not counted);
* ``weights``: ``{conv_idx: ratio}``: a fraction of the layer's **input** channels whose weights are
  trained, ``n_keep = int(in_channels * ratio)`` (0: none);
* the classifier (weights and bias) always.

tinyzo's :class:`tinyzo.bp.SparseScheme` selects **output** channels instead.
:meth:`TinyTrainingScheme.to_sparse_scheme` gives the equivalent output-channel scheme: the same
number of trained weights (``ceil(O * n_keep / in)`` output channels of a conv; the same channels of
a depthwise). It is not the same memory: a conv trained on ``n_keep`` input channels needs only
those channels of its input saved, one trained on some output channels needs the whole input. The
schedule can take the tiny-training scheme itself (:meth:`TinyTrainingScheme.layer_trainings`,
input-channel semantics) so both can be compared.

:func:`analytic_saved_bits` is tiny-training's formula evaluated on a tinyzo model; on the three
published models it reproduces every label (tests/test_memory_training.py).
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyzo.memory.schedule import ScheduleError
from tinyzo.memory.training import LayerTraining, _bias_size, _full_layer
from tinyzo.training.scheme import SparseScheme

__all__ = [
    "DATA_FILE",
    "PUBLISHED_INFERENCE",
    "PUBLISHED_MODELS",
    "TinyTrainingScheme",
    "analytic_saved_bits",
    "conv_ops",
    "published_schemes",
    "saved_for_backward",
]

DATA_FILE = Path(__file__).resolve().parent / "data" / "tiny_training_sparse_schemes.json"

#: tinyzo zoo name -> the name tiny-training's scheme table uses
PUBLISHED_MODELS = {"mcunet-in1": "mcunet-5fps", "mobilenet-v2-w0.35": "mbv2-w0.35", "proxyless-w0.3": "proxyless-w0.3"}

#: published inference peak SRAM of MCUNet-in1 (kB as printed by the sources)
PUBLISHED_INFERENCE = {
    "tinyengine_mcunet_in1_sram_kb": {
        "value": 96, "engine": "TinyEngine", "board": "STM32H743",
        "source": "mit-han-lab/tinyengine README.md (measured SRAM of mcunet-in1 at 96x96; "
                  "README table 'Peak Mem (KB)')"},
    "tflm_mcunet_in1_sram_kb": {
        "value": 219, "engine": "TF-Lite Micro", "board": "STM32H743",
        "source": "mit-han-lab/tinyengine README.md (same table, TF-Lite Micro column)"},
    "mcunet_readme_in1_sram_kb": {
        "value": 307, "engine": "TinyEngine", "board": "STM32F746",
        "source": "mit-han-lab/mcunet README.md model zoo (mcunet-in1, 96 px)"},
}


def conv_ops(model) -> list:
    """Operator indices of the convolutions (CONV_2D, DEPTHWISE_CONV_2D) in order: ``conv_ops(model)[conv_idx]``."""
    return [k for k, op in enumerate(model.operators) if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D")]


def _in_channels(model, k: int) -> int:
    return int(model.tensors[model.operators[k].inputs[0]].shape[-1])


def _hw(model, t: int) -> int:
    s = model.tensors[t].shape
    return int(np.prod(s[1:-1], dtype=np.int64))


@dataclass
class TinyTrainingScheme:
    """A tiny-training sparse-update scheme (input-channel ratios; see the module docstring).

    Attributes:
        n_bias_update: int >= 0, biases of the last ``n`` convolutions (classifier not counted).
        weights: ``{conv_idx: ratio}``, ratio in [0, 1] of the layer's input channels.
        name: a label (e.g. ``"49kb"``).
    """

    n_bias_update: int
    weights: dict = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self):
        if isinstance(self.n_bias_update, bool) or not isinstance(self.n_bias_update, numbers.Integral) \
                or self.n_bias_update < 0:
            raise ScheduleError(f"n_bias_update must be an integer >= 0, got {self.n_bias_update!r}")
        clean = {}
        for i, r in dict(self.weights).items():
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
                raise ScheduleError(f"a conv_idx is an integer >= 0, got {i!r}")
            if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0.0 <= float(r) <= 1.0:
                raise ScheduleError(f"the ratio of conv_idx {i} must be in [0, 1], got {r!r}")
            clean[int(i)] = float(r)
        self.weights = clean

    @classmethod
    def from_config(cls, config: dict, name: str | None = None) -> TinyTrainingScheme:
        """From tiny-training's ``sparse_update_config`` dict (``n_bias_update``, ``manual_weight_idx``,
        ``weight_update_ratio``)."""
        idx, ratios = list(config.get("manual_weight_idx", [])), list(config.get("weight_update_ratio", []))
        if len(idx) != len(ratios):
            raise ScheduleError(f"manual_weight_idx ({len(idx)}) and weight_update_ratio ({len(ratios)}) differ in length")
        return cls(int(config["n_bias_update"]), dict(zip(idx, ratios)), name)

    @property
    def label(self) -> str:
        return self.name or f"tiny-training bias last {self.n_bias_update} + W{sorted(self.weights.items())}"

    def _check(self, model) -> list:
        convs = conv_ops(model)
        if not convs or model.operators[model.trainable_ops()[-1]].opcode != "FULLY_CONNECTED":
            raise ScheduleError("a tiny-training scheme needs a model of convolutions ending in a fully connected "
                                "classifier")
        if self.n_bias_update > len(convs):
            raise ScheduleError(f"n_bias_update = {self.n_bias_update} but the model has only {len(convs)} convolutions")
        lo = len(convs) - self.n_bias_update
        for i in self.weights:
            if i >= len(convs):
                raise ScheduleError(f"conv_idx {i} does not exist: the model has {len(convs)} convolutions (0..{len(convs) - 1})")
            if self.weights[i] > 0 and i < lo:
                raise ScheduleError(f"conv_idx {i} has a weight update but lies before the bias-updated range "
                                    f"[{lo}, {len(convs) - 1}] (tiny-training requires it inside)")
        return convs

    def _keep(self, model, k: int, ratio: float) -> int:
        return int(_in_channels(model, k) * ratio)

    def layer_trainings(self, model) -> dict:
        """``{op: LayerTraining}`` with tiny-training's input-channel semantics (the schedule's input)."""
        convs = self._check(model)
        lo = len(convs) - self.n_bias_update
        out = {}
        for i, k in enumerate(convs):
            r = self.weights.get(i, 0.0)
            bias = _bias_size(model, k) if i >= lo else 0
            keep = self._keep(model, k, r) if r > 0 else 0
            if keep == 0:
                if bias:
                    out[k] = LayerTraining(k, 0, bias, 0, 0)
                continue
            op = model.operators[k]
            w = model.tensors[op.inputs[1]].shape
            kk = int(w[1]) * int(w[2])
            c_in = _in_channels(model, k)
            n_w = keep * kk if op.opcode == "DEPTHWISE_CONV_2D" else int(w[0]) * keep * kk
            saved = None if keep == c_in else _hw(model, op.inputs[0]) * keep
            out[k] = LayerTraining(k, n_w, bias, saved, keep)
        cls_k = model.trainable_ops()[-1]
        out[cls_k] = _full_layer(model, cls_k)
        return dict(sorted(out.items()))

    def to_sparse_scheme(self, model):
        """The equivalent :class:`tinyzo.bp.SparseScheme` (output channels, same trained-weight count)."""
        convs = self._check(model)
        weights = {}
        for i, r in sorted(self.weights.items()):
            if r <= 0:
                continue
            k = convs[i]
            keep = self._keep(model, k, r)
            if keep > 0:
                weights[k] = keep / _in_channels(model, k)
        return SparseScheme(bias_last_k=self.n_bias_update + 1, weights=weights, classifier=True,
                            name=f"{self.name} (output channels)" if self.name else None)


def analytic_saved_bits(model, scheme: TinyTrainingScheme) -> dict:
    """tiny-training's analytic "saved for backward" memory of ``scheme`` on ``model``, in bits.

    ``partial_backward.py`` ``nelem_saved_for_backward`` with its default bit widths (activation 8,
    weight 8, bias 32, momentum 0, classifier weights 0):

    * classifier: its input activation, ``in_features * 8``;
    * each bias-updated conv: a 1-bit mask per output element, ``out_channels * 32`` for the bias;
    * each weight-updated conv (``n_keep`` input channels): the kept input channels
      ``H_in * W_in * n_keep * 8``, the weights ``O * n_keep * k * k * 8`` (depthwise ``n_keep * k * k * 8``).

    Returns ``{"weights_and_biases", "activations", "total"}`` (ints, bits; masks count as
    activations); ``total / 8 / 1024`` is the kB of the label.
    """
    convs = scheme._check(model)
    lo = len(convs) - scheme.n_bias_update
    wb = act = 0
    cls_k = model.trainable_ops()[-1]
    act += int(np.prod(model.tensors[model.operators[cls_k].inputs[0]].shape[1:], dtype=np.int64)) * 8
    for i, k in enumerate(convs):
        op = model.operators[k]
        if i >= lo:
            act += int(np.prod(model.tensors[op.outputs[0]].shape[1:], dtype=np.int64))
            wb += int(model.tensors[op.outputs[0]].shape[-1]) * 32
        r = scheme.weights.get(i, 0.0)
        keep = scheme._keep(model, k, r) if r > 0 else 0
        if keep:
            w = model.tensors[op.inputs[1]].shape
            kk = int(w[1]) * int(w[2])
            act += _hw(model, op.inputs[0]) * keep * 8
            wb += (keep * kk if op.opcode == "DEPTHWISE_CONV_2D" else int(w[0]) * keep * kk) * 8
    return {"weights_and_biases": wb, "activations": act, "total": wb + act}


def published_schemes(model_name: str) -> dict:
    """``{label: (TinyTrainingScheme, record)}`` of tiny-training's ready-made schemes for a zoo model.

    ``model_name``: ``"mcunet-in1"``, ``"mobilenet-v2-w0.35"`` or ``"proxyless-w0.3"`` (or the
    table's own names ``mcunet-5fps``, ``mbv2-w0.35``). ``record`` is the table's entry (``label_kb``,
    ``analytic_kib``, ``config``, ...).
    """
    key = PUBLISHED_MODELS.get(model_name, model_name)
    with open(DATA_FILE, encoding="utf-8") as f:
        data = json.load(f)
    if key not in data["models"]:
        raise ScheduleError(f"no published schemes for {model_name!r}; models: {', '.join(PUBLISHED_MODELS)}")
    out = {}
    for label, rec in data["models"][key]["schemes"].items():
        out[label] = (TinyTrainingScheme.from_config(rec["config"], name=f"{label}"), rec)
    return out


def kib(bits: int) -> float:
    """Bits to KiB (kB = 1024 bytes, tiny-training's unit)."""
    return bits / 8 / 1024


def floor_kib(bits: int) -> int:
    """``floor`` of :func:`kib`: the label tiny-training prints."""
    return bits // 8192


def saved_for_backward(schedule, model) -> dict:
    """What a BP schedule keeps across its ``loss`` step (unaligned bytes), split as tiny-training counts.

    At the loss step the forward pass is over; every buffer alive then and read later is what the
    backward keeps: ``param_copies_conv`` / ``param_copies_classifier`` (SRAM copies of trained
    parameters), ``masks_conv`` (1-bit masks of convolutions) / ``masks_other`` (ADD, MEAN, pools,
    the classifier), ``activations`` (saved int8 inputs and kept-channel copies), ``optimizer``.
    ``same_as_analytic`` = ``param_copies_conv + masks_conv + activations``: the terms tiny-training's
    formula has (:func:`analytic_saved_bits` / 8 when the schedule used the same scheme).
    """
    loss = [s.index for s in schedule.steps if s.kind == "loss"]
    if not loss:
        raise ScheduleError("the schedule has no loss step (an inference schedule?)")
    ls = loss[0]
    conv_names = {model.tensors[model.operators[k].outputs[0]].name for k in conv_ops(model)}
    cls_name = model.tensors[model.operators[model.trainable_ops()[-1]].outputs[0]].name
    out = {"param_copies_conv": 0, "param_copies_classifier": 0, "masks_conv": 0, "masks_other": 0,
           "activations": 0, "optimizer": 0}
    for b in schedule.buffers:
        if not (b.first < ls < b.last or (b.first == -1 and b.last >= ls and b.kind in ("param_copy", "optimizer"))):
            continue
        if b.kind == "param_copy":
            key = "param_copies_classifier" if b.name.startswith(cls_name + "/") else "param_copies_conv"
        elif b.kind == "mask":
            key = "masks_conv" if b.name[: -len("/mask")] in conv_names else "masks_other"
        elif b.kind in ("activation", "optimizer"):
            key = "activations" if b.kind == "activation" else "optimizer"
        else:
            continue
        out[key] += b.nbytes
    out["same_as_analytic"] = out["param_copies_conv"] + out["masks_conv"] + out["activations"]
    return out
