"""The training loop shared by the on-device methods: epochs, batches, metrics, checkpoints, history, plots.

A method supplies a *step object* with ``step(xq, y) -> dict`` (at least ``loss``), ``state_dict()``
and ``load_state_dict(d)`` and updates ``model`` in place (:class:`tinyzo.zo.trainer.ZOTrainer`).
:func:`fit` runs it over epochs of shuffled batches and after each epoch

* evaluates train/val accuracy and loss on the int8 model (:func:`tinyzo.evaluate.evaluate`),
* records loss, accuracies, forward passes used and wall time in the history,
* writes a checkpoint atomically (the int8 model as tinyzo ``.npz`` + the method's state), so an
  interrupted run loses at most the current epoch and ``resume=True`` continues it exactly,
* rewrites ``history.json``, ``history.csv`` and ``curves.png`` in ``out_dir``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from tinyzo.errors import TinyzoError


class TrainingError(TinyzoError):
    """Training cannot go on (diverged, bad checkpoint, bad arguments)."""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(out_dir: Path, model, state: dict, epoch: int, history: list) -> None:
    """Write ``checkpoint_model.npz`` and ``checkpoint_state.npz`` atomically (no pickle)."""
    import io

    out_dir.mkdir(parents=True, exist_ok=True)
    model_tmp = out_dir / "checkpoint_model.npz.tmp.npz"
    model.save(model_tmp)
    os.replace(model_tmp, out_dir / "checkpoint_model.npz")
    flat = {f"state/{k}": np.asarray(v) for k, v in _flatten(state).items()}
    flat["epoch"] = np.asarray(epoch)
    flat["history"] = np.frombuffer(json.dumps(history).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    _atomic_write_bytes(out_dir / "checkpoint_state.npz", buf.getvalue())


def load_checkpoint(out_dir: Path):
    """``(model, state, epoch, history)`` from :func:`save_checkpoint`'s files."""
    import tinyzo

    try:
        model = tinyzo.load(out_dir / "checkpoint_model.npz")
        with np.load(out_dir / "checkpoint_state.npz", allow_pickle=False) as z:
            state = _unflatten({k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")})
            epoch = int(z["epoch"])
            history = json.loads(bytes(z["history"]).decode())
    except (OSError, KeyError, ValueError) as e:
        raise TrainingError(f"cannot resume from {out_dir}: {e}; delete the checkpoint files or start without --resume") from None
    return model, state, epoch, history


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v[()] if np.ndim(v) == 0 else v
    return out


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
        out_dir: folder for checkpoints, history and plots (None: keep nothing).
        resume: continue from the checkpoint in ``out_dir`` (the model is restored into ``model``).
        eval_train_max: training accuracy is measured on at most this many training samples.

    Returns:
        The history: one dict per epoch (epoch, train_loss, train_acc, val_loss, val_acc,
        forward_passes, seconds, lr if the stepper reports it).
    """
    from tinyzo.zo.loss import cross_entropy_int8

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
    history: list = []
    start_epoch = 0
    if resume:
        if out_dir is None or not (out_dir / "checkpoint_state.npz").exists():
            raise TrainingError(f"nothing to resume in {out_dir}: no checkpoint_state.npz")
        saved_model, state, start_epoch, history = load_checkpoint(out_dir)
        for k in model.trainable_ops():
            w, b = saved_model.get_params(k)
            model.set_params(k, w, b)
        stepper.load_state_dict(state)

    out_t = model.tensors[model.outputs[0]]

    def measure(x, y):
        n = min(len(x), eval_train_max)
        logits = model(x[:n]).reshape(n, -1)
        loss = cross_entropy_int8(logits, y[:n], float(out_t.quant.scale[0]), int(out_t.quant.zero_point[0]))
        return float(loss.mean()), float(np.mean(np.argmax(logits, axis=1) == y[:n]))

    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng(seed + epoch).permutation(len(x_train))
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        it = batches
        if progress:
            from tqdm import tqdm

            it = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        step_losses = []
        info = {}
        for idx in it:
            info = stepper.step(x_train[idx], y_train[idx])
            if not np.isfinite(info["loss"]):
                raise TrainingError(f"loss became {info['loss']} in epoch {epoch + 1}; the last good checkpoint is kept")
            step_losses.append(info["loss"])
            if progress:
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
            save_checkpoint(out_dir, model, stepper.state_dict(), epoch + 1, history)
            write_history(out_dir, history, title)
    return history
