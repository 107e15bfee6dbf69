"""Contribution analysis of sparse back propagation (tiny-training's automated scheme selection).

tiny-training ("On-Device Training Under 256KB Memory", Lin et al. 2022, Sec. 2.3) picks a sparse
update scheme from measured accuracy gains, each measured from the same pretrained model:

* ``dAcc_b[:k]``: the gain of updating the **biases of the last k layers** (bias-only), for each k;
* ``dAcc_{W_i,r}``: the gain of updating the **weights of one layer i** at a channel ratio r.

Both are gains over the baseline that trains **the classifier only** (the last trainable layer, weights
and bias; every scheme trains it, ``SparseScheme.classifier=True``). The scheme search
(:func:`tinyzo.bp.search.best_scheme`) then maximizes ``dAcc_b[:k] + sum_i dAcc_{W_i,r_i}`` under a
memory budget, assuming the gains add up.

Here every measurement is a short :class:`tinyzo.bp.BPTrainer` run on a deep copy of the caller's
model (the caller's model is never modified), with the same optimizer, learning rate, seed and batches
(common random numbers: the runs differ only in the scheme), followed by the number of correct int8
predictions on the validation split (argmax of the model output, as :func:`tinyzo.evaluate.evaluate`).
The measured schemes are

* baseline: ``SparseScheme(bias_last_k=0, weights={}, classifier=True)``;
* bias k: ``SparseScheme.bias_only(model, k, classifier=True)`` (k = 1 is the baseline itself, so its
  gain is 0 by definition and it is not re-measured);
* weight (i, r): ``SparseScheme(bias_last_k=0, weights={i: r}, classifier=True)`` (layer i's weights,
  ``ceil(r * O)`` channels chosen by ``channel_select``, not its bias).

Gains are stored as integer counts of correct validation predictions (``correct``), so sums are exact;
``gain = (correct - base correct) / n_val``.

**Batches.** Step ``t`` of every run uses batch ``t mod B`` of epoch ``t div B`` (``B`` batches per
epoch), where epoch ``e`` is the permutation ``numpy.random.default_rng(seed + e)`` of the training
set cut into batches of ``batch_size``, the order :func:`tinyzo.training.loop.fit` uses.

**Resume.** With ``checkpoint=path`` the results are rewritten atomically (temporary file +
``os.replace``) after every measurement, so an interruption loses at most the measurement under way;
``resume=True`` reuses the finished measurements when the configuration (model, data, optimizer, steps,
seed, layers, ratios, k values) is the one recorded in the file, and refuses otherwise. Measurements are
independent and deterministic, so a resumed analysis gives the same result as an uninterrupted one.

**Divergence.** A non-finite loss stops the analysis with :class:`ContribError` naming the
measurement; the measurements finished before it stay in the checkpoint.

JSON form (:meth:`Contributions.save`, :meth:`Contributions.load`)::

    {"format": "tinyzo.contributions", "version": 1, "complete": true,
     "classifier": 11, "n_trainable": 10, "n_val": 180, "start_correct": 59,
     "layers": [0, 1, ...], "ratios": [0.125, 0.25, 0.5, 1.0], "k_values": [2, 3, ...],
     "config": {...},
     "base":   {"correct": 120, "memory_bytes": 1802, "seconds": 0.4, "loss": 1.2},
     "bias":   {"2": {...entry...}, ...},
     "weight": [{"layer": 9, "ratio": 0.5, ...entry...}, ...]}
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyzo.bp.trainer import BPTrainer
from tinyzo.errors import TinyzoError
from tinyzo.progress import outer_bar
from tinyzo.training.scheme import CHANNEL_RULES, SchemeError, SparseScheme
from tinyzo.training.update import QASOptimizer

__all__ = ["CONTRIB_FORMAT", "DEFAULT_OPTIMIZER", "DEFAULT_RATIOS", "ContribError", "Contributions",
           "contribution_analysis"]

#: the "format" value of the JSON form
CONTRIB_FORMAT = "tinyzo.contributions"
_VERSION = 1
#: tiny-training's channel ratios
DEFAULT_RATIOS = (1 / 8, 1 / 4, 1 / 2, 1.0)
#: QASOptimizer keyword arguments of the measuring runs (SGD without momentum and without a float copy,
#: stochastic rounding: no optimizer memory, as tiny-training's on-device setting)
DEFAULT_OPTIMIZER = {"kind": "sgd", "momentum": 0.0, "mode": "per_step", "rounding": "stochastic"}


class ContribError(TinyzoError):
    """A contribution-analysis argument, checkpoint or file is invalid, or a measurement diverged."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """sha256 (hex) of every trainable operator's int8 weights and int32 bias, in operator order."""
    arrays = []
    for k in model.trainable_ops():
        w, b = model.get_params(k)
        arrays.append(w)
        if b is not None:
            arrays.append(b)
    return _sha256(*arrays)


def _check_entry(e, what: str) -> dict:
    if not isinstance(e, dict) or not _is_int(e.get("correct")) or e["correct"] < 0:
        raise ContribError(f"{what}: an entry needs an integer 'correct' >= 0, got {e!r}")
    return {"correct": int(e["correct"]), "memory_bytes": int(e.get("memory_bytes", 0)),
            "seconds": float(e.get("seconds", 0.0)), "loss": None if e.get("loss") is None else float(e["loss"])}


@dataclass
class Contributions:
    """Measured accuracy gains of bias-only and per-layer weight updates (module docstring).

    Attributes:
        classifier: op index of the last trainable layer (always trained).
        n_trainable: number of trainable layers of the model.
        layers: op indices whose weight updates were measured (execution order, classifier excluded).
        ratios: the channel ratios measured per layer, floats in (0, 1], increasing.
        k_values: the bias-only depths measured, ints in [2, n_trainable], increasing.
        n_val: validation samples; gains are multiples of ``1 / n_val``.
        start_correct: correct validation predictions before any training (None if unknown).
        base: entry of the classifier-only run (None until measured).
        bias: ``{k: entry}``; weight: ``{(layer, ratio): entry}``. An entry is a dict
            ``{"correct": int, "memory_bytes": int (scheme.memory_bytes at batch 1 with the optimizer
            state), "seconds": float (wall time of the run), "loss": float (mean loss of the last
            steps)}``.
        config: how the runs were made (optimizer, lr, steps, seed, fingerprints of model and data).
    """

    classifier: int
    n_trainable: int
    layers: list
    ratios: list
    k_values: list
    n_val: int
    start_correct: int | None = None
    base: dict | None = None
    bias: dict = field(default_factory=dict)
    weight: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        if not _is_int(self.n_val) or self.n_val < 1:
            raise ContribError(f"n_val must be an integer >= 1, got {self.n_val!r}")
        self.layers = [int(v) for v in self.layers]
        self.ratios = [_check_ratio(r) for r in self.ratios]
        self.k_values = [int(k) for k in self.k_values]
        if self.base is not None:
            self.base = _check_entry(self.base, "base")
        self.bias = {int(k): _check_entry(e, f"bias k={k}") for k, e in self.bias.items()}
        self.weight = {(int(i), float(r)): _check_entry(e, f"weight {i}@{r}") for (i, r), e in self.weight.items()}
        for e in [self.base, *self.bias.values(), *self.weight.values()]:
            if e is not None and e["correct"] > self.n_val:
                raise ContribError(f"an entry has {e['correct']} correct predictions but n_val = {self.n_val}")

    # ------------------------------------------------------------------ gains
    @property
    def complete(self) -> bool:
        """True when the baseline, every k and every (layer, ratio) have been measured."""
        return (self.base is not None and all(k in self.bias for k in self.k_values)
                and all((i, r) in self.weight for i in self.layers for r in self.ratios))

    def _need_base(self) -> int:
        if self.base is None:
            raise ContribError("the baseline (classifier-only) run has not been measured yet")
        return self.base["correct"]

    @property
    def bias_gain_counts(self) -> dict:
        """``{k: int}``: extra correct validation predictions of bias-only last k over the baseline (k=1: 0)."""
        base = self._need_base()
        out = {1: 0}
        out.update({k: e["correct"] - base for k, e in sorted(self.bias.items())})
        return out

    @property
    def weight_gain_counts(self) -> dict:
        """``{(layer, ratio): int}``: extra correct validation predictions over the baseline."""
        base = self._need_base()
        return {key: e["correct"] - base for key, e in sorted(self.weight.items())}

    @property
    def bias_gain(self) -> dict:
        """``{k: float}``: dAcc_b[:k], accuracy gain (fraction in [-1, 1]) of bias-only last k."""
        return {k: c / self.n_val for k, c in self.bias_gain_counts.items()}

    @property
    def weight_gain(self) -> dict:
        """``{(layer, ratio): float}``: dAcc_{W_i,r}, accuracy gain (fraction in [-1, 1])."""
        return {key: c / self.n_val for key, c in self.weight_gain_counts.items()}

    @property
    def base_accuracy(self) -> float:
        """Validation accuracy (fraction) of the classifier-only run."""
        return self._need_base() / self.n_val

    @property
    def start_accuracy(self) -> float | None:
        """Validation accuracy before training (fraction), or None."""
        return None if self.start_correct is None else self.start_correct / self.n_val

    @property
    def channel_select(self) -> str:
        """The channel rule of the measured weight updates (``config['channel_select']``, default magnitude)."""
        return self.config.get("channel_select", "magnitude")

    @property
    def state_bytes_per_param(self) -> int:
        """Optimizer state bytes per trained parameter of the measuring optimizer (0 if unknown)."""
        return int(self.config.get("state_bytes_per_param", 0))

    def n_measurements(self) -> int:
        """How many runs the full analysis makes: 1 + len(k_values) + len(layers) * len(ratios)."""
        return 1 + len(self.k_values) + len(self.layers) * len(self.ratios)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """The JSON form as a dict."""
        return {"format": CONTRIB_FORMAT, "version": _VERSION, "complete": self.complete,
                "classifier": self.classifier, "n_trainable": self.n_trainable, "n_val": self.n_val,
                "start_correct": self.start_correct, "layers": self.layers, "ratios": self.ratios,
                "k_values": self.k_values, "config": self.config, "base": self.base,
                "bias": {str(k): e for k, e in sorted(self.bias.items())},
                "weight": [{"layer": i, "ratio": r, **e} for (i, r), e in sorted(self.weight.items())]}

    @classmethod
    def from_dict(cls, d) -> Contributions:
        """Parse :meth:`to_dict`'s form; a wrong format, version or field raises :class:`ContribError`."""
        if not isinstance(d, dict) or d.get("format") != CONTRIB_FORMAT:
            raise ContribError(f"not a contributions file (format {d.get('format') if isinstance(d, dict) else d!r}, "
                               f"expected {CONTRIB_FORMAT!r})")
        if d.get("version") != _VERSION:
            raise ContribError(f"contributions version {d.get('version')!r} is not supported (expected {_VERSION})")
        try:
            weight = {(w["layer"], w["ratio"]): {k: v for k, v in w.items() if k not in ("layer", "ratio")}
                      for w in d.get("weight", [])}
            return cls(classifier=int(d["classifier"]), n_trainable=int(d["n_trainable"]), layers=d["layers"],
                       ratios=d["ratios"], k_values=d["k_values"], n_val=d["n_val"],
                       start_correct=d.get("start_correct"), base=d.get("base"),
                       bias={int(k): v for k, v in d.get("bias", {}).items()}, weight=weight,
                       config=dict(d.get("config", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ContribError(f"malformed contributions: {e!r}") from None

    def save(self, path) -> Path:
        """Write the JSON form atomically (temporary file, fsync, ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> Contributions:
        """Read a contributions JSON file."""
        try:
            d = json.loads(Path(path).read_text())
        except OSError as e:
            raise ContribError(f"cannot read contributions {path}: {e}") from None
        except ValueError as e:
            raise ContribError(f"{path} is not JSON: {e}") from None
        return cls.from_dict(d)

    def check_model(self, model) -> None:
        """Raise :class:`ContribError` unless the layers and classifier fit ``model``."""
        ops = model.trainable_ops()
        if len(ops) != self.n_trainable or ops[-1] != self.classifier:
            raise ContribError(f"the contributions were measured on a model with {self.n_trainable} trainable layers "
                               f"(classifier op {self.classifier}); this model has {len(ops)} (classifier op {ops[-1]})")
        bad = [i for i in self.layers if i not in ops[:-1]]
        if bad:
            raise ContribError(f"contribution layers {bad} are not trainable layers of the model (besides the "
                               f"classifier): {ops[:-1]}")

    # ------------------------------------------------------------------ plot
    def plot(self, path, *, title: str = "") -> Path:
        """PNG: dAcc_b[:k] against k, and dAcc_{W_i,r} per layer and ratio (percentage points)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.6]})
        bg = self.bias_gain
        ks = sorted(bg)
        a1.plot(ks, [100 * bg[k] for k in ks], "o-")
        a1.axhline(0, color="gray", lw=0.8)
        a1.set_xlabel("k (biases of the last k layers)")
        a1.set_ylabel("accuracy gain over classifier-only (pp)")
        a1.set_title("bias-only update")
        wg = self.weight_gain
        width = 0.8 / max(1, len(self.ratios))
        xs = np.arange(len(self.layers))
        for j, r in enumerate(self.ratios):
            vals = [100 * wg.get((i, r), np.nan) for i in self.layers]
            a2.bar(xs + (j - (len(self.ratios) - 1) / 2) * width, vals, width, label=f"r = {_ratio_label(r)}")
        a2.axhline(0, color="gray", lw=0.8)
        a2.set_xticks(xs)
        a2.set_xticklabels([str(i) for i in self.layers])
        a2.set_xlabel("layer (operator index)")
        a2.set_title("weight update of one layer (+ classifier)")
        a2.legend(fontsize=8)
        base = f"classifier-only {100 * self.base_accuracy:.1f}%" if self.base is not None else ""
        fig.suptitle((title + "  " if title else "") + base)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, path)
        return path


def _ratio_label(r: float) -> str:
    from fractions import Fraction

    f = Fraction(r).limit_denominator(64)
    return str(f) if float(f) == r else f"{r:g}"


def _check_ratio(r) -> float:
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Real) or not math.isfinite(float(r)) \
            or not 0.0 < float(r) <= 1.0:
        raise ContribError(f"a channel ratio must be a number in (0, 1], got {r!r}")
    return float(r)


def parse_ratios(text: str) -> list:
    """``"1/8,1/4,0.5,1"`` -> ``[0.125, 0.25, 0.5, 1.0]`` (fractions or decimals, each in (0, 1])."""
    from fractions import Fraction

    out = []
    for part in str(text).split(","):
        try:
            v = float(Fraction(part.strip()))
        except (ValueError, ZeroDivisionError):
            raise ContribError(f"ratios must look like 1/8,1/4,1/2,1, got {text!r}") from None
        out.append(_check_ratio(v))
    return out


# ----------------------------------------------------------------------------------------------
# the analysis
# ----------------------------------------------------------------------------------------------


def _check_split(split, name: str, model):
    try:
        x, y = split
    except (TypeError, ValueError):
        raise ContribError(f"{name} must be a pair (x int8[N, ...], y int[N])") from None
    x, y = np.asarray(x), np.asarray(y)
    want = tuple(model.tensors[model.inputs[0]].shape[1:])
    if x.dtype != np.int8 or x.ndim < 1 or tuple(x.shape[1:]) != want:
        raise ContribError(f"{name} inputs must be int8[N, {', '.join(map(str, want))}] (the model's input; "
                           f"tinyzo.evaluate.images_to_input converts images), got {x.dtype}{list(x.shape)}")
    if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
        raise ContribError(f"{name} needs N >= 1 inputs and N labels, got {len(x)} inputs and labels of shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise ContribError(f"{name} labels must be integers, got {y.dtype}")
    n_classes = int(np.prod(model.tensors[model.loss_tensor].shape[1:]))
    if y.min() < 0 or y.max() >= n_classes:
        raise ContribError(f"{name} labels must be in [0, {n_classes - 1}], got {y.min()}..{y.max()}")
    return x, y.astype(np.int64)


def _count_correct(model, x, y, batch: int = 256) -> int:
    correct = 0
    for s in range(0, len(x), batch):
        out = model(x[s:s + batch])
        out = out[0] if isinstance(out, tuple) else out
        correct += int(np.count_nonzero(np.argmax(out.reshape(len(out), -1), axis=1) == y[s:s + batch]))
    return correct


def _batches(n: int, batch_size: int, steps: int, seed: int):
    """Index arrays of ``steps`` batches in :func:`tinyzo.training.loop.fit`'s order (module docstring)."""
    per_epoch = -(-n // batch_size)
    order = None
    for t in range(steps):
        e, j = divmod(t, per_epoch)
        if j == 0:
            order = np.random.default_rng(seed + e).permutation(n)
        yield order[j * batch_size:(j + 1) * batch_size]


def _measure(model0, scheme, train, val, cfg, label: str) -> dict:
    """One short BPTrainer run of ``scheme`` on a copy of ``model0``; the entry of its result."""

    t0 = time.perf_counter()
    model = copy.deepcopy(model0)
    opt = QASOptimizer(lr=cfg["lr"], total_steps=cfg["steps"], seed=cfg["seed"], **cfg["optimizer"])
    trainer = BPTrainer(model, scheme=scheme, optimizer=opt, seed=cfg["seed"])
    losses = []
    for t, idx in enumerate(_batches(len(train[0]), cfg["batch_size"], cfg["steps"], cfg["seed"])):
        info = trainer.step(train[0][idx], train[1][idx])
        if not np.isfinite(info["loss"]):
            raise ContribError(f"measurement '{label}' diverged: loss {info['loss']} at step {t + 1} of "
                               f"{cfg['steps']}; the finished measurements are kept; lower the learning rate "
                               f"(lr {cfg['lr']:g})")
        losses.append(info["loss"])
    return {"correct": _count_correct(model, *val),
            "memory_bytes": int(scheme.memory_bytes(model0, state_bytes_per_param=opt.state_bytes_per_param)),
            "seconds": round(time.perf_counter() - t0, 3), "loss": float(np.mean(losses[-10:]))}


def contribution_analysis(model, train, val, *, ratios=DEFAULT_RATIOS, k_values=None, layers=None,
                          steps: int | None = None, epochs: int | None = None, batch_size: int = 32,
                          lr: float = 3e-3, optimizer=None, channel_select: str = "magnitude", seed: int = 0,
                          progress: bool = True, checkpoint=None, resume: bool = False) -> Contributions:
    """Measure dAcc_b[:k] and dAcc_{W_i,r} by short BP runs (module docstring); returns :class:`Contributions`.

    Args:
        model: the int8 :class:`tinyzo.Model` (never modified: every run trains a deep copy).
        train: ``(x int8[N, ...model input], y int[N])`` training batches are drawn from.
        val: ``(x int8[M, ...], y int[M])`` the accuracy is measured on (use a split apart from the test set).
        ratios: channel ratios per layer, each in (0, 1] (default 1/8, 1/4, 1/2, 1).
        k_values: bias-only depths, ints in [1, n_trainable] (default 2..n_trainable; 1 = the baseline).
        layers: weight-update candidates: op indices, negative positions from the end or output-tensor
            names, classifier excluded (default: every trainable layer but the classifier).
        steps / epochs: length of every run: ``steps`` >= 1, or ``epochs`` >= 1 full passes (give at
            most one; default 1 epoch).
        batch_size: >= 1. lr: the optimizer's learning rate (real units with QAS).
        optimizer: ``QASOptimizer`` keyword arguments without ``lr`` (default :data:`DEFAULT_OPTIMIZER`:
            SGD, QAS, no momentum, per-step stochastic rounding; no optimizer memory).
        channel_select: ``"magnitude"`` or ``"random"``: the channels of a ratio < 1.
        seed: int in [0, 2**32 - 1]: batches, stochastic rounding and random channels of every run.
        progress: show a tqdm bar over the measurements.
        checkpoint: JSON path rewritten after every measurement (None: keep nothing).
        resume: reuse the finished measurements in ``checkpoint`` (same configuration required).

    Raises:
        ContribError: bad arguments, a checkpoint made with another configuration, a diverged run.
        SchemeError: a layer the model does not have.
    """

    ops = model.trainable_ops()
    if len(ops) < 2:
        raise ContribError(f"the model has {len(ops)} trainable layer(s); contribution analysis needs a classifier "
                           "and at least one layer before it")
    cls_op = ops[-1]
    train = _check_split(train, "train", model)
    val = _check_split(val, "val", model)
    if not _is_int(seed) or not 0 <= seed <= 0xFFFFFFFF:
        raise ContribError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise ContribError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if steps is not None and epochs is not None:
        raise ContribError("give steps or epochs, not both")
    if steps is None:
        epochs = 1 if epochs is None else epochs
        if not _is_int(epochs) or epochs < 1:
            raise ContribError(f"epochs must be an integer >= 1, got {epochs!r}")
        steps = int(epochs) * -(-len(train[0]) // batch_size)
    elif not _is_int(steps) or steps < 1:
        raise ContribError(f"steps must be an integer >= 1, got {steps!r}")
    if channel_select not in CHANNEL_RULES:
        raise ContribError(f"channel_select must be one of {', '.join(CHANNEL_RULES)}, got {channel_select!r}")
    ratios = sorted({_check_ratio(r) for r in (ratios if isinstance(ratios, (list, tuple)) else [ratios])})
    if not ratios:
        raise ContribError("give at least one channel ratio")
    if k_values is None:
        k_values = list(range(2, len(ops) + 1))
    k_values = sorted({int(k) if _is_int(k) else k for k in k_values})
    bad = [k for k in k_values if not _is_int(k) or not 1 <= k <= len(ops)]
    if bad:
        raise ContribError(f"k values must be integers in [1, {len(ops)}] (the model's trainable layers), got {bad}")
    k_values = [k for k in k_values if k != 1]  # k = 1 is the baseline
    if layers is None:
        layers = ops[:-1]
    resolved = []
    for layer in layers:
        i = SparseScheme.resolve_layer(model, layer)
        if i == cls_op:
            raise SchemeError(f"layer {layer!r} is the classifier, which every scheme trains fully; leave it out "
                              "of the weight candidates")
        if i in resolved:
            raise SchemeError(f"layer {layer!r} is named twice")
        resolved.append(i)
    layers = sorted(resolved)
    opt_kwargs = dict(DEFAULT_OPTIMIZER if optimizer is None else optimizer)
    for key in ("lr", "total_steps", "seed"):
        if key in opt_kwargs:
            raise ContribError(f"optimizer: give {key} as the argument of contribution_analysis, not in the optimizer dict")
    try:
        probe = QASOptimizer(lr=lr, total_steps=steps, seed=seed, **opt_kwargs)
    except TypeError as e:
        raise ContribError(f"optimizer: {e}") from None
    cfg = {"steps": int(steps), "batch_size": int(batch_size), "lr": float(lr), "optimizer": opt_kwargs,
           "seed": int(seed), "channel_select": channel_select, "state_bytes_per_param": probe.state_bytes_per_param,
           "model_sha256": model_fingerprint(model), "train_sha256": _sha256(*train), "val_sha256": _sha256(*val)}
    cfg = json.loads(json.dumps(cfg))  # the JSON-normal form, so it compares equal after a round trip

    res = Contributions(classifier=cls_op, n_trainable=len(ops), layers=layers, ratios=ratios, k_values=k_values,
                        n_val=len(val[0]), config=cfg)
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise ContribError(f"nothing to resume: no checkpoint file {checkpoint}")
        old = Contributions.load(checkpoint)
        mine, theirs = res.to_dict(), old.to_dict()
        keys = ("classifier", "n_trainable", "n_val", "layers", "ratios", "k_values", "config")
        diff = [k for k in keys if mine[k] != theirs[k]]
        if diff:
            detail = [k for k in cfg if cfg[k] != old.config.get(k)] if "config" in diff else []
            raise ContribError(f"the checkpoint {checkpoint} was made with another configuration ({', '.join(diff)}"
                               + (f": {', '.join(detail)}" if detail else "") + "); start without resume")
        res.base, res.bias, res.weight, res.start_correct = old.base, old.bias, old.weight, old.start_correct

    if res.start_correct is None:
        res.start_correct = _count_correct(model, *val)
    todo = []
    if res.base is None:
        todo.append(("base", SparseScheme(bias_last_k=0, weights={}, channel_select=channel_select,
                                                classifier=True, name="classifier only")))
    todo += [(("bias", k), SparseScheme(bias_last_k=k, weights={}, channel_select=channel_select,
                                            classifier=True, name=f"bias-only last {k} + classifier"))
             for k in k_values if k not in res.bias]
    todo += [(("weight", (i, r)), SparseScheme(bias_last_k=0, weights={i: r}, channel_select=channel_select,
                                                     classifier=True))
             for i in layers for r in ratios if (i, r) not in res.weight]
    bar = None
    if progress:
        bar = outer_bar(total=res.n_measurements(), initial=res.n_measurements() - len(todo), desc="contribution analysis")
    try:
        for key, scheme in todo:
            label = scheme.label
            if bar is not None:
                bar.set_postfix_str(label)
            entry = _measure(model, scheme, train, val, cfg, label)
            if key == "base":
                res.base = entry
            elif key[0] == "bias":
                res.bias[key[1]] = entry
            else:
                res.weight[key[1]] = entry
            if checkpoint is not None:
                res.save(checkpoint)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if checkpoint is not None:
        res.save(checkpoint)
    return res
