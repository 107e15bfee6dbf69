"""Float32 pre-training loop: mini-batch SGD with momentum, weight decay and a cosine schedule.

One step is five visible calls, the same boundaries a C port or the int8 trainers use::

    logits, cache = forward(net, params, xb, training=True)          # batch-norm batch statistics
    loss, dlogits, _ = softmax_cross_entropy(logits, yb)             # mean loss, dlogits already / N
    grads = backward(net, params, cache, dlogits)
    update_bn_stats(net, params, cache, bn_momentum)                 # running mean/var
    sgd_step(params, grads, velocity, lr_t, momentum, weight_decay)  # v = m v + g + wd w; w -= lr v

Determinism: epoch ``e`` (counted from 0) draws its shuffling and augmentation from
``np.random.default_rng(seed + e)``, so a run is reproducible for a seed and a resumed run continues
exactly as an uninterrupted one would. After every epoch the checkpoint is rewritten as one atomic,
self-verifying file (:mod:`tinyzo.checkpoint`, the format the int8 loop uses too).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyzo.checkpoint import flatten_tree, read_checkpoint, unflatten_tree, write_checkpoint
from tinyzo.errors import CheckpointError, TinyzoError
from tinyzo.fp import kernels as K
from tinyzo.fp.forward import (
    FloatNetError,
    _check_input,
    _check_labels,
    _check_params,
    _run,
    backward,
    evaluate,
    update_bn_stats,
)
from tinyzo.progress import step_bar
from tinyzo.training.update import SCHEDULES, lr_schedule

CHECKPOINT_KIND = "fp-train"


class TrainingDivergedError(TinyzoError):
    """The loss (or a gradient) became NaN or infinite during training."""


class History(list):
    """The list of per-epoch records :func:`train` returns; ``.params`` is the (same, trained) params dict."""

    params: dict = None


# --------------------------------------------------------------------------------------------------
# schedule and optimizer


def learning_rate(step: int, total_steps: int, lr: float, schedule: str = "cosine", warmup_steps: int = 0) -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``total_steps``: the one schedule of
    every tinyzo trainer, :func:`tinyzo.training.update.lr_schedule` (linear warm-up, then constant, cosine or
    linear decay), with ``lr = 0`` allowed (float training may freeze everything)."""
    if schedule not in SCHEDULES:
        raise TinyzoError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if lr == 0:
        return 0.0
    return lr_schedule(schedule, int(step), int(total_steps), lr, int(warmup_steps))


def sgd_step(params: dict, grads: dict, velocity: dict, lr: float, momentum: float, weight_decay: float) -> None:
    """SGD with (PyTorch-style) momentum and L2 weight decay on the weights ``w`` only, in place.

    For every array ``k`` in ``grads[layer]``: ``g = grads + weight_decay * w`` (for ``k == "w"``;
    biases and batch-norm ``gamma``/``beta`` are not decayed), ``v = momentum * v + g``,
    ``p = p - lr * v``. ``params``/``velocity`` float32 arrays are updated in place.
    """
    lr32, m32, wd32 = np.float32(lr), np.float32(momentum), np.float32(weight_decay)
    for lname, g in grads.items():
        p, v = params[lname], velocity[lname]
        for k, gk in g.items():
            v[k] *= m32
            v[k] += gk
            if k == "w" and weight_decay:
                v[k] += wd32 * p[k]
            p[k] -= lr32 * v[k]


def zeros_like_grads(net, params: dict) -> dict:
    """A zero momentum buffer with the structure of the gradients (w, b, gamma, beta per layer)."""
    return {lay.name: {k: np.zeros_like(v) for k, v in params[lay.name].items() if k not in ("mean", "var")}
            for lay in net.layers if lay.has_weights}


# --------------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path, params: dict, velocity: dict, epoch: int, history: list, config: dict) -> int:
    """Write params, the momentum buffer, the completed epoch count, the history and the run config to
    ``path`` as one atomic, self-verifying file (:func:`tinyzo.checkpoint.write_checkpoint`: a
    temporary file in the same folder, fsync, ``os.replace``, folder fsync; no pickle).

    ``params``/``velocity``: ``{layer: {name: float32 array}}``; ``epoch``: completed epochs;
    ``history``: one JSON-able dict per completed epoch; ``config``: JSON-able dict. Returns the size
    in bytes.
    """
    parrs, ppaths = flatten_tree(params, "params")
    varrs, vpaths = flatten_tree(velocity, "velocity")
    meta = {"history": history, "config": config, "param_paths": ppaths, "velocity_paths": vpaths}
    return write_checkpoint(path, CHECKPOINT_KIND, int(epoch), {**parrs, **varrs}, meta)


def load_checkpoint(path) -> dict:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Returns ``{"epoch": int, "params": {layer: {name: array}}, "velocity": {...}, "history": list,
    "config": dict}``. Raises :class:`CheckpointError` (one line) if the file is missing, damaged,
    edited, inconsistent (epoch and history disagree), of another kind or of an old format.
    """
    ck = read_checkpoint(path, CHECKPOINT_KIND)
    meta = ck.meta
    history, config = meta.get("history"), meta.get("config")
    ppaths, vpaths = meta.get("param_paths"), meta.get("velocity_paths")
    bad = f"checkpoint {path}: {{}}; delete it or pass resume=False to start over"
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history) \
            or not isinstance(config, dict) or not isinstance(ppaths, dict) or not isinstance(vpaths, dict):
        raise CheckpointError(bad.format("its metadata lacks history, config or array keys"))
    if [h.get("epoch") for h in history] != list(range(1, ck.epoch + 1)):
        raise CheckpointError(bad.format(f"the manifest says epoch {ck.epoch} but the history records epochs "
                                         f"{[h.get('epoch') for h in history][:8]}: the checkpoint is inconsistent"))
    if set(ppaths) | set(vpaths) != set(ck.arrays) or set(ppaths) & set(vpaths):
        raise CheckpointError(bad.format("its arrays are neither parameters nor momentum buffers"))
    params = unflatten_tree({n: ck.arrays[n] for n in ppaths}, ppaths, path)
    velocity = unflatten_tree({n: ck.arrays[n] for n in vpaths}, vpaths, path)
    for tree in (params, velocity):
        if not all(isinstance(v, dict) for v in tree.values()) or \
                not all(isinstance(a, np.ndarray) for v in tree.values() for a in v.values()):
            raise CheckpointError(bad.format("its arrays are not keyed by [layer, name]"))
    return {"epoch": ck.epoch, "params": params, "velocity": velocity, "history": history, "config": config}


def _restore(ckpt: dict, params: dict, velocity: dict, path) -> None:
    for tree, saved, what in ((params, ckpt["params"], "params"), (velocity, ckpt["velocity"], "optimizer state")):
        if set(saved) != set(tree):
            raise CheckpointError(f"{path}: the checkpoint's {what} cover layers {sorted(saved)}, this net has "
                                  f"{sorted(tree)}; it belongs to another network")
        for lname, arrs in tree.items():
            if set(saved[lname]) != set(arrs):
                raise CheckpointError(f"{path}: layer {lname!r} has {sorted(saved[lname])} in the checkpoint, "
                                      f"{sorted(arrs)} here")
            for k, a in arrs.items():
                if saved[lname][k].shape != a.shape:
                    raise CheckpointError(f"{path}: {what}[{lname!r}][{k!r}] is {saved[lname][k].shape} in the "
                                          f"checkpoint, {a.shape} here")
    for tree, saved in ((params, ckpt["params"]), (velocity, ckpt["velocity"])):
        for lname, arrs in tree.items():
            for k, a in arrs.items():
                a[...] = saved[lname][k]


# --------------------------------------------------------------------------------------------------
# the loop


def _batch_slices(n: int, batch_size: int, drop_single: bool) -> list:
    sl = [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if drop_single and len(sl) > 1 and sl[-1].stop - sl[-1].start == 1:
        sl.pop()  # batch norm cannot normalize one sample on a 1x1 map; it is reshuffled next epoch
    return sl


def _all_finite(grads: dict) -> bool:
    return all(np.isfinite(a).all() for g in grads.values() for a in g.values())


def train(net, params: dict, x_train, y_train, x_val=None, y_val=None, *, epochs: int, batch_size: int = 64,
          lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4, schedule: str = "cosine",
          warmup_epochs: float = 0, augment=None, seed: int = 0, bn_momentum: float = 0.1, progress: bool = True,
          checkpoint=None, resume: bool = False, on_epoch=None, trainable=None):
    """Train ``net`` in float32 with mini-batch SGD; updates ``params`` in place.

    Args:
        net: a :class:`tinyzo.nn.Net` ending in a layer with a vector output (logits).
        params: its parameters (:func:`tinyzo.nn.init_params`), float32; updated in place.
        x_train: float32[N, H, W, C] matching ``net.input_shape``; y_train: int[N] in [0, classes).
        x_val, y_val: optional validation set (both or neither), evaluated in eval mode each epoch.
        epochs: total number of epochs (>= 0); with ``resume`` the count includes the resumed ones.
        batch_size: samples per step (>= 1). The last, smaller batch is kept, except a single
            leftover sample in a net with batch norm (it is dropped; next epoch reshuffles).
        lr, momentum, weight_decay: SGD with momentum (see :func:`sgd_step`); weight decay applies to
            the weights ``w`` only, not to biases or batch-norm parameters.
        schedule: ``"cosine"`` (default), ``"linear"`` or ``"constant"``, per step, after
            ``warmup_epochs`` (may be fractional) of linear warm-up (see :func:`learning_rate`).
        augment: ``callable(x float32[B, H, W, C], rng) -> x`` of the same shape (see
            :mod:`tinyzo.fp.augment`), applied to every training batch; ``rng`` is the epoch's generator.
        seed: epoch ``e`` (from 0) shuffles and augments with ``np.random.default_rng(seed + e)``.
        bn_momentum: weight of the batch statistics in the running mean/var update, in [0, 1].
        progress: show a tqdm bar per epoch.
        checkpoint: path of a ``.npz`` checkpoint written atomically after every epoch (params,
            momentum buffer, epoch, history, run config).
        resume: continue from ``checkpoint`` if the file exists (params and optimizer state are
            restored in place; the result equals an uninterrupted run); start fresh if it does not.
        on_epoch: ``callable(record) -> bool | None`` called after each epoch with its history
            record; returning True stops training.
        trainable: names of the layers to update (default: every layer with weights); the others stay
            frozen, batch-norm running statistics included (e.g. the fp32 baseline of sparse training).

    Returns:
        ``history`` (a list subclass whose ``.params`` is ``params``, trained in place): one dict per completed epoch (resumed ones included) with ``epoch`` (1-based),
        ``lr`` (at the epoch's last step), ``train_loss``, ``train_acc`` (training mode, over the
        epoch's batches), ``val_loss``, ``val_acc`` (None without a validation set) and ``seconds``.

    Raises:
        TrainingDivergedError: the loss or a gradient became NaN/inf; the message names the epoch
            and batch. ``params`` keep the values from before the failing step and the checkpoint
            file still holds the last completed epoch.
        FloatNetError, CheckpointError, TinyzoError: bad inputs, an unreadable or foreign checkpoint.
    """
    x_train = _check_input(net, x_train).astype(np.float32, copy=False)  # float32 training, whatever came in
    _check_params(net, params)
    if len(net.output_shape) != 1:
        raise FloatNetError(f"{net.name}: the output has shape {net.output_shape}; training needs logits of shape "
                            "(classes,) (end the net with gap/flatten + fc)")
    y_train = _check_labels(net, (x_train.shape[0],) + tuple(net.output_shape), y_train)
    if (x_val is None) != (y_val is None):
        raise FloatNetError("give both x_val and y_val, or neither")
    if x_val is not None:
        x_val = _check_input(net, x_val).astype(np.float32, copy=False)
        y_val = _check_labels(net, (x_val.shape[0],) + tuple(net.output_shape), y_val)
    epochs, batch_size = int(epochs), int(batch_size)
    if epochs < 0 or batch_size < 1:
        raise TinyzoError(f"need epochs >= 0 and batch_size >= 1, got epochs={epochs}, batch_size={batch_size}")
    if schedule not in SCHEDULES:
        raise TinyzoError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not (0.0 <= bn_momentum <= 1.0) or lr < 0 or momentum < 0 or weight_decay < 0 or warmup_epochs < 0:
        raise TinyzoError("need lr, momentum, weight_decay, warmup_epochs >= 0 and bn_momentum in [0, 1]")
    if resume and checkpoint is None:
        raise TinyzoError("resume=True needs a checkpoint path")
    n = x_train.shape[0]
    if n == 0:
        raise FloatNetError("the training set is empty")

    if trainable is not None:
        trainable = set(trainable)
        weighted = {lay.name for lay in net.layers if lay.has_weights}
        unknown = sorted(trainable - weighted)
        if unknown or not trainable:
            raise TinyzoError(f"trainable must name layers with weights of {net.name}: {sorted(weighted)}; "
                              f"got {sorted(trainable) if not unknown else unknown}")
    has_bn = any(lay.bn for lay in net.layers)
    slices = _batch_slices(n, batch_size, has_bn)
    steps_per_epoch = len(slices)
    total_steps = epochs * steps_per_epoch
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    config = {"net": net.name, "seed": int(seed), "batch_size": batch_size, "n_train": int(n)}

    velocity = zeros_like_grads(net, params)
    history = History()
    history.params = params
    start = 0
    if resume and Path(checkpoint).exists():
        ckpt = load_checkpoint(checkpoint)
        for key in ("seed", "batch_size", "n_train"):
            if ckpt["config"].get(key) != config[key]:
                raise CheckpointError(f"{checkpoint}: saved with {key}={ckpt['config'].get(key)!r}, this run has "
                                      f"{key}={config[key]!r}; resuming would not reproduce the run")
        _restore(ckpt, params, velocity, checkpoint)
        start = ckpt["epoch"]
        history.extend(ckpt["history"])
    last_good = f"; the checkpoint {checkpoint} keeps epoch {start}" if checkpoint is not None else ""

    last = net.layers[-1].name
    for e in range(start, epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng(int(seed) + e)
        perm = rng.permutation(n)
        loss_sum, correct, seen = 0.0, 0, 0
        lr_t = lr
        bar = step_bar(slices, desc=f"epoch {e + 1}/{epochs}", enabled=progress)
        for b, sl in enumerate(bar):
            idx = perm[sl]
            xb, yb = x_train[idx], y_train[idx]
            if augment is not None:
                xa = augment(xb, rng)
                if not isinstance(xa, np.ndarray) or xa.shape != xb.shape:
                    raise TinyzoError(f"augment returned {getattr(xa, 'shape', type(xa).__name__)}, expected an array "
                                      f"of shape {xb.shape}")
                xb = np.ascontiguousarray(xa, dtype=np.float32)
            lr_t = learning_rate(e * steps_per_epoch + b, total_steps, lr, schedule, warmup_steps)

            out, aux = _run(net, params, xb, True, keep_aux=True)
            cache = {"out": out, "aux": aux, "training": True}
            logits = out[last]
            loss, dlogits, per_sample = K.softmax_cross_entropy(logits, yb)
            if not np.isfinite(loss):
                raise TrainingDivergedError(f"training diverged in epoch {e + 1} (batch {b + 1}/{steps_per_epoch}): "
                                            f"the loss is {float(loss)}; lower lr (this step {lr_t:.4g}) or check "
                                            f"the data for NaN/inf{last_good}")
            grads = backward(net, params, cache, dlogits)
            if not _all_finite(grads):
                raise TrainingDivergedError(f"training diverged in epoch {e + 1} (batch {b + 1}/{steps_per_epoch}): "
                                            f"a gradient is NaN/inf; lower lr (this step {lr_t:.4g}){last_good}")
            update_bn_stats(net, params, cache, bn_momentum, layers=trainable)
            if trainable is not None:
                grads = {n: g for n, g in grads.items() if n in trainable}
            sgd_step(params, grads, velocity, lr_t, momentum, weight_decay)

            loss_sum += float(np.sum(per_sample, dtype=np.float64))
            correct += int(np.sum(np.argmax(logits, axis=1) == yb))
            seen += len(yb)
            if progress:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", lr=f"{lr_t:.3g}")
        bar.close()

        rec = {"epoch": e + 1, "lr": float(lr_t), "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "val_loss": None, "val_acc": None}
        if x_val is not None:
            ev = evaluate(net, params, x_val, y_val)
            rec["val_loss"], rec["val_acc"] = ev["loss"], ev["accuracy"]
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        if checkpoint is not None:
            save_checkpoint(checkpoint, params, velocity, e + 1, history, config)
            last_good = f"; the checkpoint {checkpoint} keeps epoch {e + 1}"
        if progress:
            val = "" if rec["val_acc"] is None else f"  val loss {rec['val_loss']:.4f} acc {rec['val_acc']:.4f}"
            tqdm.write(f"epoch {e + 1}/{epochs}: lr {rec['lr']:.4g}  train loss {rec['train_loss']:.4f} "
                       f"acc {rec['train_acc']:.4f}{val}  ({rec['seconds']:.1f} s)")
        if on_epoch is not None and on_epoch(rec):
            break
    return history
