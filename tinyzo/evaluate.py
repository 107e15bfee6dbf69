"""Accuracy and loss of an int8 model on a labelled image set (``tinyzo eval``).

Images go to the model as a microcontroller's camera pipeline would hand them over: uint8 pixels
(or floats in [0, 1]) are fitted to the model's input shape (:func:`tinyzo.data.fit_to_model`),
scaled to floats in ``input_range`` (default [0, 1]) and quantized with the model's input scale and
zero point. The loss is the cross-entropy of the int8 logits as the on-device trainers compute it
(:func:`tinyzo.training.loss.cross_entropy_int8`, float32, on :attr:`tinyzo.Model.loss_tensor`: for a
model that ends in SOFTMAX, the softmax's input; :func:`tinyzo.training.loss.loss_and_accuracy`). The accuracy is the argmax
of the int8 output (ties: the lowest index, as ``np.argmax``).
"""

from __future__ import annotations

import numpy as np

from tinyzo.data import fit_to_model
from tinyzo.data.datasets import check_float_pixels
from tinyzo.errors import InputError
from tinyzo.training.loss import loss_and_accuracy


def _check_input_range(input_range) -> tuple:
    """``(lo, hi)`` as floats: two finite numbers with lo < hi, else :class:`InputError`."""
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise InputError(f"input_range must be two numbers (lo, hi), got {input_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"input_range must be two finite numbers with lo < hi, got {input_range!r}")
    return lo, hi


def images_to_input(model, x, input_range=(0.0, 1.0)) -> np.ndarray:
    """Images -> the model's int8 (or float, for a float-interface model) input batch.

    Args:
        model: a :class:`tinyzo.Model` with one input of shape (1, H, W, C).
        x: uint8[N, h, w(, c)] in [0, 255] or float[N, h, w(, c)] in [0, 1].
        input_range: the float range the pixel range [0, 255] maps to before quantization: two
            finite numbers lo < hi.

    Returns:
        int8[N, H, W, C] quantized with the model's input parameters.
    """

    t = model.tensors[model.inputs[0]]
    if len(t.shape) != 4:
        raise InputError(f"the model's input is {t.shape}; image evaluation needs an (N, H, W, C) input")
    lo, hi = _check_input_range(input_range)
    if not isinstance(x, np.ndarray):
        raise InputError(f"images must be a numpy array, got {type(x).__name__}")
    if x.dtype == np.uint8:
        xf = x.astype(np.float32) / np.float32(255.0)
    elif x.dtype.kind == "f":
        check_float_pixels(x)
        xf = x.astype(np.float32)
    else:
        raise InputError(f"images must be uint8 in [0, 255] or float in [0, 1], got {x.dtype}")
    xf = fit_to_model(xf, tuple(t.shape[1:]))
    xf = (np.float32(lo) + xf * np.float32(hi - lo)).astype(np.float32)
    return model.quantize_input(xf)


def evaluate(model, x, y, *, batch_size: int = 256, input_range=(0.0, 1.0)) -> dict:
    """Accuracy and mean cross-entropy of ``model`` on images ``x`` with integer labels ``y``.

    Args:
        model: a :class:`tinyzo.Model` with one (1, H, W, C) input.
        x: images as :func:`images_to_input` takes them: a uint8 [0, 255] or float [0, 1] array
            (N, h, w) or (N, h, w, c), N >= 1; NaN pixels are refused, saying where.
        y: int labels (N,), each in [0, number of outputs - 1].
        batch_size: images per model call, an integer >= 1 (memory, not results, depends on it).
        input_range: as :func:`images_to_input`.

    Returns ``{"accuracy": float in [0, 1], "loss": float, "n": int, "correct": int}``.
    """
    if not isinstance(x, np.ndarray):
        raise InputError(f"images must be a numpy array, got {type(x).__name__}")
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _check_input_range(input_range)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != len(x):
        raise InputError(f"labels must be a 1-D array of {len(x)} values, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise InputError(f"labels must be integers, got dtype {y.dtype}")
    if len(x) == 0:
        raise InputError("no images to evaluate")
    out_t = model.tensors[model.outputs[0]]
    n_classes = int(np.prod(out_t.shape[1:]))
    if y.min() < 0 or y.max() >= n_classes:
        raise InputError(f"labels must be in [0, {n_classes - 1}] for this model's {n_classes} outputs")

    correct, loss_sum = 0, 0.0
    for s in range(0, len(x), batch_size):
        r = loss_and_accuracy(model, images_to_input(model, x[s : s + batch_size], input_range), y[s : s + batch_size])
        correct += r["correct"]
        loss_sum += r["loss"] * r["n"]
    n = len(x)
    return {"accuracy": correct / n, "loss": loss_sum / n, "n": n, "correct": correct}

