"""The training loop shared by the on-device methods: epochs, batches, metrics, checkpoints, history, plots.

A method supplies a *step object* with ``step(xq, y) -> dict`` (at least ``loss``), ``state_dict()``
and ``load_state_dict(d)`` and updates ``model`` in place (:class:`tinyzo.zo.trainer.ZOTrainer`).
:func:`fit` runs it over epochs of shuffled batches and after each epoch

* evaluates train/val accuracy and loss on the int8 model (:func:`tinyzo.evaluate.evaluate`),
* records loss, accuracies, forward passes used and wall time in the history,
* writes ``checkpoint.npz``, one atomic, self-verifying file (:mod:`tinyzo.checkpoint`: the int8
  weights and biases of every trainable operator, the method's state, epoch, history, run config),
  so a kill at any instant loses at most the epoch in progress and ``resume=True`` continues exactly
  (a damaged, inconsistent or foreign checkpoint is refused with a :class:`CheckpointError`),
* rewrites ``history.json``, ``history.csv`` and ``curves.png`` in ``out_dir``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from tinyzo.checkpoint import flatten_tree, read_checkpoint, unflatten_tree, write_checkpoint
from tinyzo.errors import CheckpointError, TinyzoError, TrainingError
from tinyzo.progress import step_bar
from tinyzo.training.loss import loss_and_accuracy

CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_KIND = "int8-fit"
LEGACY_CHECKPOINT_NAMES = ("checkpoint_model.npz", "checkpoint_state.npz")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(out_dir, model, state: dict, epoch: int, history: list, config: dict | None = None,
                    stepper: str | None = None, step_offset: int = 0) -> int:
    """Write ``<out_dir>/checkpoint.npz``, one atomic file (:func:`tinyzo.checkpoint.write_checkpoint`).

    Args:
        out_dir: the run's folder (created if missing).
        model: the int8 model; the int8 weights and int32 biases of every trainable operator are
            stored (``model/<k>/w``, ``model/<k>/b``), the rest of the model is not.
        state: the stepper's ``state_dict()``: a nested ``{str: dict | numpy value}``.
        epoch: completed epochs (>= 0); history: one JSON-able dict per completed epoch.
        config: the run's ``{"seed", "batch_size", "n_train"}`` that resume must match.
        stepper: the stepper's class name; step_offset: its ``step_count`` when epoch 1 began.

    Returns:
        The checkpoint's size in bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays, ops = {}, []
    for k in model.trainable_ops():
        w, b = model.get_params(k)
        arrays[f"model/{k}/w"] = w
        if b is not None:
            arrays[f"model/{k}/b"] = b
        ops.append([int(k), model.operators[k].opcode])
    state_arrays, state_paths = flatten_tree(state, "state")
    arrays.update(state_arrays)
    meta = {"history": history, "config": dict(config or {}), "stepper": stepper, "step_offset": int(step_offset),
            "ops": ops, "state_paths": state_paths}
    return write_checkpoint(out_dir / CHECKPOINT_NAME, CHECKPOINT_KIND, int(epoch), arrays, meta)


def _bad(path, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {problem}; delete it and start without --resume")


def load_checkpoint(out_dir) -> dict:
    """Read and verify ``<out_dir>/checkpoint.npz`` (written by :func:`save_checkpoint`).

    Returns ``{"epoch": int, "params": {op: (int8 w, int32 b or None)}, "state": nested dict (0-d
    arrays as numpy scalars), "history": list, "config": dict, "stepper": str | None,
    "step_offset": int, "ops": [(op index, opcode), ...]}`` (every trainable operator).

    Raises:
        CheckpointError: no checkpoint (the message says whether an old two-file checkpoint is
            there: it is refused, since its two files may hold different epochs), a damaged or edited
            file, or one whose epoch, history, arrays and stepper step count disagree (the state's
            ``step_count``, when it has one, must be ``step_offset + epoch * ceil(n_train / batch_size)``).
    """
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT_NAME
    if not path.exists():
        legacy = [n for n in LEGACY_CHECKPOINT_NAMES if (out_dir / n).exists()]
        if legacy:
            raise CheckpointError(f"{out_dir} holds {' + '.join(legacy)}, the two-file checkpoint of an older tinyzo, "
                                  "whose files may hold different epochs and is not read; start the run again "
                                  "without --resume (and delete those files), or finish it with the tinyzo that "
                                  "wrote it")
        raise CheckpointError(f"nothing to resume in {out_dir}: no {CHECKPOINT_NAME}; start without --resume")
    ck = read_checkpoint(path, CHECKPOINT_KIND)
    meta = ck.meta
    history, config, ops = meta.get("history"), meta.get("config"), meta.get("ops")
    stepper, offset, state_paths = meta.get("stepper"), meta.get("step_offset"), meta.get("state_paths")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history) or not isinstance(config, dict) \
            or not isinstance(ops, list) or not isinstance(state_paths, dict) or type(offset) is not int \
            or not (stepper is None or isinstance(stepper, str)):
        raise _bad(path, "its metadata lacks history, config, operators or state keys")
    if len(history) != ck.epoch or [h.get("epoch") for h in history] != list(range(1, ck.epoch + 1)):
        raise _bad(path, f"the manifest says epoch {ck.epoch} but the history records epochs "
                         f"{[h.get('epoch') for h in history][:8]}: the checkpoint is inconsistent")
    params, names = {}, set()
    for row in ops:
        if not (isinstance(row, list) and len(row) == 2 and type(row[0]) is int and isinstance(row[1], str)):
            raise _bad(path, f"operator entry {str(row)[:60]} is not [index, opcode]")
        k = row[0]
        w, b = ck.arrays.get(f"model/{k}/w"), ck.arrays.get(f"model/{k}/b")
        if w is None or w.dtype != np.int8 or (b is not None and (b.dtype != np.int32 or b.ndim != 1)):
            raise _bad(path, f"operator {k} lacks int8 weights or has a bias that is not int32[O]")
        params[k] = (w, b)
        names.update(n for n in (f"model/{k}/w", f"model/{k}/b") if n in ck.arrays)
    if names | set(state_paths) != set(ck.arrays):
        raise _bad(path, "its arrays are neither model parameters nor stepper state")
    state = unflatten_tree({n: ck.arrays[n] for n in state_paths}, state_paths, path, unwrap_scalars=True)
    n, bs = config.get("n_train"), config.get("batch_size")
    if "step_count" in state and type(n) is int and type(bs) is int and n > 0 and bs > 0:
        per_epoch = -(-n // bs)
        want = offset + ck.epoch * per_epoch
        got = state["step_count"]
        if np.ndim(got) != 0 or np.asarray(got).dtype.kind not in "iu" or int(got) != want:
            raise _bad(path, f"the stepper state is at step {got} but {ck.epoch} epochs of {per_epoch} steps "
                             f"end at step {want}: the checkpoint is inconsistent")
    return {"epoch": ck.epoch, "params": params, "state": state, "history": history, "config": config,
            "stepper": stepper, "step_offset": offset, "ops": [tuple(r) for r in ops]}


def _restore(ck: dict, model, stepper, config: dict, out_dir: Path) -> None:
    """Check that checkpoint ``ck`` belongs to this run, then load it into ``stepper`` and ``model``."""
    path = out_dir / CHECKPOINT_NAME
    again = "; resume with the settings it was written with, or start without --resume"
    name = type(stepper).__name__
    if ck["stepper"] is not None and ck["stepper"] != name:
        raise CheckpointError(f"checkpoint {path} was written by a {ck['stepper']}, this run trains with a {name}{again}")
    for key, v in config.items():
        if ck["config"].get(key) != v:
            raise CheckpointError(f"checkpoint {path} was saved with {key}={ck['config'].get(key)!r}, this run has "
                                  f"{key}={v!r}: resuming would not reproduce the run{again}")
    ours = [(int(k), model.operators[k].opcode) for k in model.trainable_ops()]
    if ck["ops"] != ours:
        raise CheckpointError(f"checkpoint {path} has trainable operators {ck['ops'][:6]}, this model "
                              f"{ours[:6]}: it belongs to another model{again}")
    for k, (w, b) in ck["params"].items():
        w0, b0 = model.get_params(k)
        if w.shape != w0.shape or (b is None) != (b0 is None) or (b is not None and b.shape != b0.shape):
            raise CheckpointError(f"checkpoint {path}: operator {k} has weights {list(w.shape)}, this model "
                                  f"{list(w0.shape)}: it belongs to another model{again}")
    try:
        stepper.load_state_dict(ck["state"])
    except TinyzoError as e:  # e.g. another optimizer configuration or BP scheme
        raise CheckpointError(f"checkpoint {path} does not fit this run: {e}{again}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(path, f"the stepper cannot load its state ({type(e).__name__}: {e})") from None
    for k, (w, b) in ck["params"].items():
        model.set_params(k, w, b)


def write_history(out_dir: Path, history: list, title: str = "") -> None:
    """``history.json``, ``history.csv`` and ``curves.png`` (loss and accuracy per epoch) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(out_dir / "history.json", (json.dumps(history, indent=1) + "\n").encode())
    if history:
        keys = list(history[0].keys())
        tmp = out_dir / "history.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
        os.replace(tmp, out_dir / "history.csv")
        plot_history(history, out_dir / "curves.png", title)


def plot_history(history: list, path: Path, title: str = "") -> None:
    """Loss and train/val accuracy against epochs (and forward passes on a second axis label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss (step batches)")
    if history and history[0].get("val_loss") is not None:
        a1.plot(ep, [h["val_loss"] for h in history], "s-", label="val loss")
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy")
    a1.legend()
    a2.plot(ep, [100 * h["train_acc"] for h in history], "o-", label="train")
    if history and history[0].get("val_acc") is not None:
        a2.plot(ep, [100 * h["val_acc"] for h in history], "s-", label="val")
    a2.set_xlabel("epoch")
    a2.set_ylabel("int8 accuracy (%)")
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def fit(stepper, model, x_train, y_train, x_val=None, y_val=None, *, epochs: int, batch_size: int = 32,
        seed: int = 0, out_dir=None, resume: bool = False, progress: bool = True, title: str = "",
        eval_train_max: int = 1000) -> list:
    """Run ``stepper.step`` over ``epochs`` of shuffled batches of the int8 inputs ``x_train``.

    Args:
        stepper: the method's step object (see the module docstring).
        model: the int8 model the stepper trains (evaluated after each epoch, checkpointed).
        x_train: int8[N, ...] model inputs; y_train: int[N] labels. x_val/y_val likewise (optional).
        epochs: >= 1; batch_size: >= 1; seed: shuffling seed (epoch e uses seed + e).
        out_dir: folder for ``checkpoint.npz`` (rewritten atomically after every epoch), history and
            plots (None: keep nothing).
        resume: continue from ``out_dir/checkpoint.npz``: the trainable operators' weights and biases
            are restored into ``model``, the state into ``stepper``; the result equals an
            uninterrupted run's bit for bit. The checkpoint must verify and belong to this run (same
            stepper class, seed, batch_size, number of training samples, trainable operators and
            shapes), else :class:`CheckpointError` before anything changes.
        eval_train_max: training accuracy is measured on at most this many training samples.

    Returns:
        The history: one dict per epoch (epoch, train_loss, train_acc, val_loss, val_acc,
        forward_passes, seconds, lr if the stepper reports it).
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise TrainingError(f"{name} must be an integer >= 1, got {v!r}")
    x_train = np.asarray(x_train)
    y_train = np.asarray(y_train)
    if len(x_train) == 0:
        raise TrainingError("no training inputs: x_train is empty")
    if len(x_train) != len(y_train):
        raise TrainingError(f"{len(x_train)} training inputs but {len(y_train)} labels")
    out_dir = Path(out_dir) if out_dir is not None else None
    config = {"seed": int(seed), "batch_size": int(batch_size), "n_train": len(x_train)}
    history: list = []
    start_epoch = 0
    step_offset = 0
    if resume:
        if out_dir is None:
            raise TrainingError("resume=True needs out_dir, the folder that holds checkpoint.npz")
        ck = load_checkpoint(out_dir)
        _restore(ck, model, stepper, config, out_dir)
        start_epoch, history, step_offset = ck["epoch"], ck["history"], ck["step_offset"]
    elif out_dir is not None:
        step_offset = int(stepper.state_dict().get("step_count", 0))

    def measure(x, y):  # the loss every trainer optimizes (model.loss_tensor) and the model's accuracy
        n = min(len(x), eval_train_max)
        r = loss_and_accuracy(model, x[:n], y[:n])
        return r["loss"], r["accuracy"]

    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng(seed + epoch).permutation(len(x_train))
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        it = step_bar(batches, desc=f"epoch {epoch + 1}/{epochs}", enabled=progress)
        step_losses = []
        info = {}
        for idx in it:
            info = stepper.step(x_train[idx], y_train[idx])
            if not np.isfinite(info["loss"]):
                raise TrainingError(f"loss became {info['loss']} in epoch {epoch + 1}; the last good checkpoint is kept")
            step_losses.append(info["loss"])
            if progress and not it.disable:
                it.set_postfix(loss=f"{np.mean(step_losses[-20:]):.4f}")
        _, train_acc = measure(x_train, y_train)
        rec = {"epoch": epoch + 1, "train_loss": float(np.mean(step_losses)), "train_acc": train_acc,
               "val_loss": None, "val_acc": None, "forward_passes": int(info.get("forward_passes", 0)),
               "seconds": round(time.perf_counter() - t0, 3)}
        if x_val is not None:
            rec["val_loss"], rec["val_acc"] = measure(np.asarray(x_val), np.asarray(y_val))
        history.append(rec)
        if progress:
            msg = (f"epoch {epoch + 1}/{epochs}: loss {rec['train_loss']:.4f}  train acc {train_acc:.4f}"
                   + (f"  val acc {rec['val_acc']:.4f}" if rec["val_acc"] is not None else "")
                   + f"  forward passes {rec['forward_passes']}  ({rec['seconds']:.1f} s)")
            print(msg, flush=True)
        if out_dir is not None:
            save_checkpoint(out_dir, model, stepper.state_dict(), epoch + 1, history, config=config,
                            stepper=type(stepper).__name__, step_offset=step_offset)
            write_history(out_dir, history, title)
    return history
