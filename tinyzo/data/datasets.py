"""Datasets: the :class:`Dataset` container, the bundled digits, the tinyzo dataset format, resizing.

Images are kept as given: uint8 in [0, 255] or float32 in [0, 1], shape (N, H, W)
(one channel) or (N, H, W, C). int8 arrays of the same shapes are *pre-quantized features*
(e.g. the audio front end's int8[N, 49, 40]): model input as is, never scaled, with an optional
``feature_quant`` (scale, zero point) that must match the model's input quantization.
Labels are int64[N], 0 <= label < len(classes). See docs/data.md for the format and the rules.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from tinyzo.errors import TinyzoError

__all__ = [
    "DIGITS_PATH",
    "SPLITS",
    "DataError",
    "Dataset",
    "check_feature_quant",
    "check_float_pixels",
    "check_images",
    "check_labels",
    "fit_to_model",
    "load_digits",
    "load_npz",
    "save",
]


class DataError(TinyzoError):
    """A data set, image array or label array is malformed, unreadable or the wrong shape."""


#: The bundled UCI digits (see DIGITS_LICENSE.md beside it).
DIGITS_PATH = Path(__file__).with_name("digits.npz")
#: Split names, in the order they are stored.
SPLITS = ("train", "val", "test")
#: Largest total uncompressed size of a dataset ``.npz`` (4 GiB): checked before any array is read.
MAX_NPZ_BYTES = 4 << 30
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
_NPZ_OPTIONAL = ("x_val", "y_val", "classes", "name", "feature_quant", "provenance")


def check_images(x, what: str = "images") -> np.ndarray:
    """Validate an image (or int8 feature) array and return it (float16/float64 are converted to float32).

    Args:
        x: uint8[N, H, W] or uint8[N, H, W, C] in [0, 255], or floating point of the
            same shapes with every value finite and in [0, 1], or int8 of the same shapes
            (pre-quantized features: any value). N may be 0.
        what: the name used in error messages.
    Returns:
        ``x`` unchanged if uint8, int8 or float32, else a float32 copy.
    Raises:
        DataError: not an array, wrong rank, zero height/width/channels, another
            dtype (int32, bool, ...), or float values outside [0, 1] or not finite.
    """
    if not isinstance(x, np.ndarray):
        raise DataError(f"{what}: expected a numpy array, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise DataError(f"{what}: expected shape (N, H, W) or (N, H, W, C), got {x.shape}")
    if min(x.shape[1:]) < 1:
        raise DataError(f"{what}: height, width and channels must be >= 1, got shape {x.shape}")
    if x.dtype in (np.uint8, np.int8):
        return x
    if x.dtype.type in _FLOAT_DTYPES:
        check_float_pixels(x, what)
        return x.astype(np.float32, copy=False)
    raise DataError(f"{what}: dtype {x.dtype} not supported; use uint8 in [0, 255], float in [0, 1] or int8 "
                    "pre-quantized features")


def check_feature_quant(q, what: str = "feature_quant"):
    """``(scale, zero_point)`` as ``(float, int)`` (scale rounded to float32), or None for None.

    Raises:
        DataError: not two numbers, scale not finite and > 0, zero point not an integer in [-128, 127].
    """
    if q is None:
        return None
    try:
        scale, zp = (float(v) for v in np.asarray(q, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError):
        raise DataError(f"{what}: expected (scale, zero_point), got {q!r}") from None
    if not (np.isfinite(scale) and scale > 0) or zp != int(zp) or not -128 <= zp <= 127:
        raise DataError(f"{what}: scale must be finite and > 0 and zero_point an integer in [-128, 127], got {q!r}")
    return float(np.float32(scale)), int(zp)


def check_float_pixels(x: np.ndarray, what: str = "images") -> None:
    """Raise :class:`DataError` unless every value of the float image batch ``x`` (N, ...) is finite and in [0, 1].

    The message says what is wrong and where: how many values are NaN or infinite (or outside
    [0, 1]), in how many of the N images, and the index of the first such image.
    """
    if x.size == 0:
        return
    per_image = x.reshape(len(x), -1)
    bad = ~np.isfinite(per_image)
    if bad.any():
        images = np.flatnonzero(bad.any(axis=1))
        nan = int(np.isnan(per_image).sum())
        kinds = "NaN" if nan == bad.sum() else ("infinite" if nan == 0 else "NaN or infinite")
        raise DataError(f"{what}: float images must be finite and in [0, 1]: {int(bad.sum()):,} {kinds} pixel values "
                        f"in {len(images):,} of {len(x):,} images (first: image {int(images[0])})")
    lo, hi = per_image.min(), per_image.max()
    if lo < 0 or hi > 1:
        images = np.flatnonzero(((per_image < 0) | (per_image > 1)).any(axis=1))
        raise DataError(f"{what}: float images must be finite and in [0, 1]: got min {lo:.4g}, max {hi:.4g}, in "
                        f"{len(images):,} of {len(x):,} images (first: image {int(images[0])}); divide uint8 data by 255")


def check_labels(y, n: int, what: str = "labels", n_classes: int | None = None) -> np.ndarray:
    """Validate a label vector and return it as int64[n].

    Args:
        y: integer array of shape (n,), values >= 0 (and < ``n_classes`` if given).
        n: the number of images the labels belong to.
    Raises:
        DataError: not 1-D, length != n, not an integer dtype, negative, or >= n_classes.
    """
    if not isinstance(y, np.ndarray):
        raise DataError(f"{what}: expected a numpy array, got {type(y).__name__}")
    if y.ndim != 1:
        raise DataError(f"{what}: expected shape ({n},), got {y.shape}")
    if len(y) != n:
        raise DataError(f"{what}: {len(y)} labels for {n} images; the lengths must match")
    if y.dtype.kind not in "iu":
        raise DataError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0, got {int(y.min())}")
    if n_classes is not None and len(y) and y.max() >= n_classes:
        raise DataError(f"{what}: label {int(y.max())} but only {n_classes} classes")
    return y.astype(np.int64, copy=False)


@dataclasses.dataclass(eq=False)
class Dataset:
    """An image classification data set split into train, validation and test.

    Attributes:
        x_train, x_val, x_test: images, all of one dtype (uint8 in [0, 255] or
            float32 in [0, 1]) and one shape per image ((H, W) or (H, W, C)).
            A split may be empty (N = 0).
        y_train, y_val, y_test: int64[N] labels, 0 <= label < len(classes).
        name: a short name ("digits", "mnist", the file name, ...).
        classes: class names; ``classes[k]`` names label k.
        feature_quant: for int8 features only: ``(scale, zero_point)`` the features are quantized
            with (scale stored as float32), or None (unknown: taken as the model's own).
        provenance: free text (the speech dataset stores a JSON record), "" if none.

    The constructor validates everything (:class:`DataError` on bad input) and
    converts labels to int64 and float images to float32.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = "dataset"
    classes: list = dataclasses.field(default_factory=list)
    feature_quant: tuple | None = None
    provenance: str = ""

    def __post_init__(self):
        xs = {s: check_images(getattr(self, f"x_{s}"), f"x_{s}") for s in SPLITS}
        shapes = {s: x.shape[1:] for s, x in xs.items()}
        dtypes = {s: x.dtype for s, x in xs.items()}
        if len(set(shapes.values())) != 1 or len(set(dtypes.values())) != 1:
            raise DataError("all splits must have the same image shape and dtype, got "
                            + ", ".join(f"x_{s} {dtypes[s]}{list(shapes[s])}" for s in SPLITS))
        self.classes = [str(c) for c in self.classes]
        ys = {s: check_labels(getattr(self, f"y_{s}"), len(xs[s]), f"y_{s}") for s in SPLITS}
        top = max((int(y.max()) for y in ys.values() if len(y)), default=-1)
        if not self.classes:
            self.classes = [str(k) for k in range(top + 1)]
        elif top >= len(self.classes):
            raise DataError(f"label {top} but only {len(self.classes)} class names {self.classes}")
        for s in SPLITS:
            setattr(self, f"x_{s}", xs[s])
            setattr(self, f"y_{s}", ys[s])
        self.name = str(self.name)
        self.feature_quant = check_feature_quant(self.feature_quant)
        if self.feature_quant is not None and self.x_train.dtype != np.int8:
            raise DataError(f"feature_quant is for int8 features; these images are {self.x_train.dtype}")
        self.provenance = str(self.provenance)

    @property
    def is_features(self) -> bool:
        """True for int8 pre-quantized features (model input as is), False for images."""
        return self.x_train.dtype == np.int8

    @property
    def image_shape(self) -> tuple:
        """(H, W) or (H, W, C) of one image, as stored."""
        return self.x_train.shape[1:]

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of split ``name`` ("train", "val" or "test")."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def map_images(self, fn) -> Dataset:
        """A new Dataset with ``fn(x)`` applied to the images of every split (labels shared).

        int8 features keep ``feature_quant`` and ``provenance`` only if ``fn`` keeps them int8."""
        parts = {}
        for s in SPLITS:
            x, y = self.split(s)
            parts[f"x_{s}"], parts[f"y_{s}"] = fn(x), y
        keep = self.is_features and all(parts[f"x_{s}"].dtype == np.int8 for s in SPLITS)
        return Dataset(**parts, name=self.name, classes=list(self.classes),
                       feature_quant=self.feature_quant if keep else None, provenance=self.provenance if keep else "")

    def _refuse_features(self, what: str) -> None:
        if self.is_features:
            raise DataError(f"{what}: {self.name} holds int8 pre-quantized features, not images; they go to the "
                            "model as they are")

    def as_float(self) -> Dataset:
        """A copy with float32 images in [0, 1], NHWC (a channel axis is added to (N, H, W)).

        uint8 values are divided by 255. int8 features are refused (:class:`DataError`).
        """
        self._refuse_features("as_float")

        def to_float(x):
            x = x if x.ndim == 4 else x[..., None]
            return x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
        return self.map_images(to_float)

    def as_uint8(self) -> Dataset:
        """A copy with uint8 images in [0, 255] (floats: round(x * 255), half up); shapes kept.

        int8 features are refused (:class:`DataError`)."""
        self._refuse_features("as_uint8")
        return self.map_images(to_uint8)

    def __repr__(self) -> str:
        sizes = "/".join(str(len(getattr(self, f"y_{s}"))) for s in SPLITS)
        kind = "features" if self.is_features else "image"
        return (f"Dataset({self.name!r}, train/val/test={sizes}, {kind} {self.x_train.dtype}"
                f"{list(self.image_shape)}, {self.n_classes} classes)")


def to_uint8(x: np.ndarray) -> np.ndarray:
    """uint8 images from uint8 (unchanged) or float in [0, 1]: floor(x * 255 + 0.5)."""
    if x.dtype == np.uint8:
        return x
    return np.floor(np.clip(x.astype(np.float32) * 255, 0, 255) + 0.5).astype(np.uint8)


def _empty_like(x: np.ndarray) -> np.ndarray:
    return np.zeros((0,) + x.shape[1:], dtype=x.dtype)


def load_digits() -> Dataset:
    """The bundled UCI handwritten digits: 1,797 uint8[8, 8] images, 10 classes "0".."9".

    Split (stratified, stored in the file, made by ``tinyzo/data/make_digits.py``):
    train 1,257, validation 180, test 360 images; each split keeps the source row
    order. Pixels are the source's 0..16 counts scaled to round(v * 255 / 16).
    Source: UCI ML repository, "Optical Recognition of Handwritten Digits"
    (Alpaydin & Kaynak, 1998), CC BY 4.0 (see docs/data.md).
    """
    with np.load(DIGITS_PATH, allow_pickle=False) as f:
        images, labels, split = f["images"], f["labels"], f["split"]
    parts = {}
    for k, s in enumerate(SPLITS):
        parts[f"x_{s}"] = images[split == k]
        parts[f"y_{s}"] = labels[split == k]
    return Dataset(**parts, name="digits", classes=[str(d) for d in range(10)])


def _check_npz_archive(path: Path) -> None:
    """Refuse a file that is not a zip of .npy members, or whose declared sizes exceed the limit."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    bad = [i.filename for i in infos if not i.filename.endswith(".npy")]
    if bad:
        raise DataError(f"{path}: not a numpy .npz archive (member {bad[0]!r})")
    total = sum(i.file_size for i in infos)
    if total > MAX_NPZ_BYTES:
        raise DataError(f"{path}: arrays declare {total} bytes uncompressed, over the "
                        f"{MAX_NPZ_BYTES} byte limit (tinyzo.data.datasets.MAX_NPZ_BYTES)")


def load_npz(path, name: str | None = None) -> Dataset:
    """Read a data set in the tinyzo dataset format (see docs/data.md).

    The file is a ``.npz`` (``np.savez`` or ``np.savez_compressed``, no pickles) with

    * required: ``x_train``, ``y_train``, ``x_test``, ``y_test``;
    * optional: ``x_val`` and ``y_val`` (both or neither), ``classes`` (str[K]),
      ``name`` (a str scalar), ``feature_quant`` (float64[2]: scale, zero point; int8 features
      only), ``provenance`` (a str scalar, e.g. JSON).

    Images: uint8 in [0, 255] or float in [0, 1], or int8 pre-quantized features, shape
    (N, H, W) or (N, H, W, C), the same per-image shape and dtype in every split. Labels: integers, shape (N,).
    Any other member is refused (it is probably a misspelled key).

    Args:
        path: file path.
        name: the data set's name (default: the stored ``name``, else the file stem).
    Raises:
        DataError: missing file, not an npz, pickled (object) arrays, missing or
            unknown keys, or any check of :class:`Dataset`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    _check_npz_archive(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays need pickle: refused
        raise DataError(f"{path}: cannot read without unpickling ({e}); store plain arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: unreadable .npz ({e})") from None
    missing = [k for k in _NPZ_REQUIRED if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}; the tinyzo dataset format needs "
                        f"{', '.join(_NPZ_REQUIRED)} (optional: {', '.join(_NPZ_OPTIONAL)})")
    unknown = sorted(set(arrays) - set(_NPZ_REQUIRED) - set(_NPZ_OPTIONAL))
    if unknown:
        raise DataError(f"{path}: unknown member(s) {', '.join(unknown)}; allowed: "
                        f"{', '.join(_NPZ_REQUIRED + _NPZ_OPTIONAL)}")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"{path}: x_val and y_val must be given together")
    if "x_val" not in arrays:
        arrays["x_val"] = _empty_like(check_images(arrays["x_train"], f"{path}: x_train"))
        arrays["y_val"] = np.zeros(0, dtype=np.int64)
    classes = arrays.pop("classes", None)
    if classes is not None:
        if classes.ndim != 1 or classes.dtype.kind not in "U":
            raise DataError(f"{path}: classes must be a 1-D array of str, got {classes.dtype}{list(classes.shape)}")
        classes = [str(c) for c in classes]
    fq = arrays.pop("feature_quant", None)
    if fq is not None and (fq.dtype.kind not in "fiu" or fq.shape != (2,)):
        raise DataError(f"{path}: feature_quant must be 2 numbers (scale, zero_point), got {fq.dtype}{list(fq.shape)}")
    prov = arrays.pop("provenance", None)
    if prov is not None and (prov.dtype.kind != "U" or prov.ndim != 0):
        raise DataError(f"{path}: provenance must be a str scalar, got {prov.dtype}{list(prov.shape)}")
    stored = arrays.pop("name", None)
    if name is None:
        name = str(stored) if stored is not None and stored.dtype.kind == "U" and stored.ndim == 0 else path.stem
    try:
        return Dataset(**arrays, name=name, classes=classes or [], feature_quant=fq,
                       provenance="" if prov is None else str(prov))
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def save(dataset: Dataset, path) -> Path:
    """Write ``dataset`` in the tinyzo dataset format (compressed ``.npz``) and return the path.

    Every split is written (``x_val``/``y_val`` too, possibly empty), plus ``classes``
    and ``name``, and ``feature_quant`` / ``provenance`` when set. Labels are stored as
    uint8 when there are at most 256 classes, else int32. Written atomically (``<path>.tmp``,
    then ``os.replace``). The path is used as given (no suffix is added).
    """
    if not isinstance(dataset, Dataset):
        raise DataError(f"save: expected a tinyzo.data.Dataset, got {type(dataset).__name__}")
    path = Path(path)
    label_dtype = np.uint8 if dataset.n_classes <= 256 else np.int32
    arrays = {}
    for s in SPLITS:
        x, y = dataset.split(s)
        arrays[f"x_{s}"], arrays[f"y_{s}"] = x, y.astype(label_dtype)
    arrays["classes"] = np.array(dataset.classes, dtype=str) if dataset.classes else np.zeros(0, dtype="<U1")
    arrays["name"] = np.array(dataset.name, dtype=str)
    if dataset.feature_quant is not None:
        arrays["feature_quant"] = np.array(dataset.feature_quant, dtype=np.float64)
    if dataset.provenance:
        arrays["provenance"] = np.array(dataset.provenance, dtype=str)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write ({e})") from None
    return path


def _target_shape(shape) -> tuple[int, int, int]:
    try:
        t = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise DataError(f"fit_to_model: target shape must be (H, W, C), got {shape!r}") from None
    if len(t) == 4:  # a model input shape with its batch dimension
        t = t[1:]
    if len(t) != 3 or min(t) < 1:
        raise DataError(f"fit_to_model: target shape must be (H, W, C) with positive sizes, got {shape!r}")
    return t


def fit_to_model(x: np.ndarray, shape) -> np.ndarray:
    """Make images the size a model takes, by a fixed, documented rule (no interpolation).

    Args:
        x: images, uint8 or float32 (any dtype is kept), shape (N, h, w) or (N, h, w, c).
        shape: the model's input shape per image (H, W, C); a 4-tuple (1, H, W, C)
            is accepted and its batch dimension ignored.
    Returns:
        x's dtype, shape (N, H, W, C).

    The rule:

    * channels: c == C is kept; c == 1 and C == 3 replicates the channel; anything
      else is refused.
    * if H >= h and W >= w: nearest-neighbour upsampling by the integer factor
      k = min(H // h, W // w) (each pixel becomes a k x k block), then zero padding,
      centred (an odd remainder puts the extra row/column at the bottom/right).
      8x8 -> 32x32 is a 4x upsampling, 28x28 -> 32x32 pads 2 pixels per side,
      8x8 -> 28x28 upsamples 3x to 24x24 and pads 2.
    * if H <= h and W <= w: centre crop (the extra row/column is dropped at the
      bottom/right).
    * one side larger and the other smaller: refused.
    Raises:
        DataError: naming both shapes, for the refused cases and for bad input.
    """
    if not isinstance(x, np.ndarray) or x.ndim not in (3, 4):
        raise DataError(f"fit_to_model: images must be an array (N, H, W) or (N, H, W, C), got {getattr(x, 'shape', type(x).__name__)}")
    H, W, C = _target_shape(shape)
    x4 = x if x.ndim == 4 else x[..., None]
    _, h, w, c = x4.shape
    src = f"images of shape {tuple(x.shape[1:])}"
    if c != C:
        if not (c == 1 and C == 3):
            raise DataError(f"fit_to_model: {src} have {c} channel(s) but the model takes {C}; "
                            "only 1 -> 3 (replication) is converted")
        x4 = np.repeat(x4, 3, axis=3)
    if H >= h and W >= w:
        k = min(H // h, W // w)
        if k > 1:
            x4 = np.repeat(np.repeat(x4, k, axis=1), k, axis=2)
        ph, pw = H - x4.shape[1], W - x4.shape[2]
        if ph or pw:
            x4 = np.pad(x4, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        return np.ascontiguousarray(x4)
    if H <= h and W <= w:
        top, left = (h - H) // 2, (w - W) // 2
        return np.ascontiguousarray(x4[:, top: top + H, left: left + W])
    raise DataError(f"fit_to_model: cannot fit {src} to the model input ({H}, {W}, {C}): one side must "
                    "grow and the other shrink; crop or resize the images yourself")
