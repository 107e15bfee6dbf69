"""Accuracy and loss of an int8 model on a labelled image set (``tinyzo eval``).

Images go to the model as a microcontroller's camera pipeline would hand them over: uint8 pixels
(or floats in [0, 1]) are fitted to the model's input shape (:func:`tinyzo.data.fit_to_model`),
scaled to floats in ``input_range`` (default [0, 1]) and quantized with the model's input scale and
zero point. The loss is the cross-entropy of the int8 logits as the on-device trainers compute it
(:func:`tinyzo.training.loss.cross_entropy_int8`, float32, on :attr:`tinyzo.Model.loss_tensor`: for a
model that ends in SOFTMAX, the softmax's input; :func:`tinyzo.training.loss.loss_and_accuracy`). The accuracy is the argmax
of the int8 output (ties: the lowest index, as ``np.argmax``).

int8 data are *pre-quantized features* (e.g. :func:`tinyzo.audio.features`): they are the model's
input as they are (:func:`features_to_input`), never scaled; their declared quantization
(``feature_quant``) must equal the model input's unless ``allow_quant_mismatch`` (docs/data.md).
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


def features_to_input(model, x, feature_quant=None, allow_quant_mismatch: bool = False) -> np.ndarray:
    """int8 pre-quantized features -> the model's int8 input batch, values unchanged.

    Args:
        model: a :class:`tinyzo.Model` whose input 0 is int8 of shape (1, *S).
        x: int8[N, *s] with the same number of values per sample as S. Accepted layouts: s == S;
            s == S without a trailing 1 (e.g. (49, 40) for a (49, 40, 1) input: a channel axis is
            added); or S one-dimensional (e.g. micro_speech's (1960,)): each sample is flattened in
            C order (row-major: frame by frame for (frames, channels) features).
        feature_quant: ``(scale, zero_point)`` the features are quantized with, or None (not
            declared: taken to be the model's).
        allow_quant_mismatch: pass features whose declared quantization differs from the model
            input's (their integers then mean other real values to the model).

    Returns:
        int8[N, *S] (a view or copy of ``x``).

    Raises:
        InputError: the model's input is not int8, the sizes or layouts differ, or the declared
            quantization differs (scale compared as float32, zero point exactly) and
            ``allow_quant_mismatch`` is false.
    """
    from tinyzo.data.datasets import check_feature_quant

    t = model.tensors[model.inputs[0]]
    if not isinstance(x, np.ndarray) or x.dtype != np.int8:
        raise InputError(f"features must be an int8 numpy array, got {getattr(x, 'dtype', type(x).__name__)}")
    if t.dtype != np.int8:
        raise InputError(f"int8 pre-quantized features need a model with an int8 input; this model's input is "
                         f"{t.dtype}")
    want, got = tuple(t.shape[1:]), tuple(x.shape[1:])
    if got == want:
        out = x
    elif got + (1,) == want or (len(want) == 1 and int(np.prod(got)) == want[0]):
        out = x.reshape((len(x),) + want)
    else:
        raise InputError(f"int8 features of shape {got} do not fit the model input {want}: features are not resized; "
                         "give features of the input's shape (or the same values without its trailing 1, or a "
                         "1-D input of the same size)")
    fq = check_feature_quant(feature_quant)
    if fq is not None and not allow_quant_mismatch:
        mq = None if t.quant is None or t.quant.per_channel else (float(np.float32(t.quant.scale[0])),
                                                                  int(t.quant.zero_point[0]))
        if mq != fq:
            raise InputError(f"the features are quantized with scale {fq[0]:.9g}, zero point {fq[1]}, the model's "
                             f"input with {'none' if mq is None else f'scale {mq[0]:.9g}, zero point {mq[1]}'}: "
                             "the same integers would mean other values; requantize the features, or opt in with "
                             "allow_quant_mismatch=True (CLI: --allow-quant-mismatch)")
    return np.ascontiguousarray(out)


def images_to_input(model, x, input_range=(0.0, 1.0), *, feature_quant=None,
                    allow_quant_mismatch: bool = False) -> np.ndarray:
    """Images -> the model's int8 (or float, for a float-interface model) input batch.

    Args:
        model: a :class:`tinyzo.Model` with one input of shape (1, H, W, C).
        x: uint8[N, h, w(, c)] in [0, 255] or float[N, h, w(, c)] in [0, 1]; or int8
            pre-quantized features, passed to :func:`features_to_input` (``input_range`` unused).
        input_range: the float range the pixel range [0, 255] maps to before quantization: two
            finite numbers lo < hi.
        feature_quant, allow_quant_mismatch: for int8 features, as :func:`features_to_input`.

    Returns:
        int8[N, H, W, C] quantized with the model's input parameters.
    """
    if isinstance(x, np.ndarray) and x.dtype == np.int8:
        _check_input_range(input_range)
        return features_to_input(model, x, feature_quant, allow_quant_mismatch)
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
        raise InputError(f"images must be uint8 in [0, 255] or float in [0, 1] (or int8 pre-quantized features), "
                         f"got {x.dtype}")
    xf = fit_to_model(xf, tuple(t.shape[1:]))
    xf = (np.float32(lo) + xf * np.float32(hi - lo)).astype(np.float32)
    return model.quantize_input(xf)


def evaluate(model, x, y, *, batch_size: int = 256, input_range=(0.0, 1.0), feature_quant=None,
             allow_quant_mismatch: bool = False) -> dict:
    """Accuracy and mean cross-entropy of ``model`` on images ``x`` with integer labels ``y``.

    Args:
        model: a :class:`tinyzo.Model` with one (1, H, W, C) input.
        x: images as :func:`images_to_input` takes them: a uint8 [0, 255] or float [0, 1] array
            (N, h, w) or (N, h, w, c), N >= 1; NaN pixels are refused, saying where.
        y: int labels (N,), each in [0, number of outputs - 1].
        batch_size: images per model call, an integer >= 1 (memory, not results, depends on it).
        input_range: as :func:`images_to_input`.
        feature_quant, allow_quant_mismatch: for int8 features, as :func:`features_to_input`.

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
        r = loss_and_accuracy(model, images_to_input(model, x[s : s + batch_size], input_range,
                                                     feature_quant=feature_quant,
                                                     allow_quant_mismatch=allow_quant_mismatch), y[s : s + batch_size])
        correct += r["correct"]
        loss_sum += r["loss"] * r["n"]
    n = len(x)
    return {"accuracy": correct / n, "loss": loss_sum / n, "n": n, "correct": correct}

