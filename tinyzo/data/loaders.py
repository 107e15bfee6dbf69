"""Loaders for the data sets users bring, the ``load`` dispatcher, and ``write_dataset``.

Every file is untrusted input: sizes declared in a header are checked against
the file before anything is allocated, pickles are read with a restricted
unpickler, and every failure is a :class:`~tinyzo.data.datasets.DataError`
whose message starts with the path.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np

from tinyzo.data.corruptions import corrupt
from tinyzo.data.datasets import SPLITS, DataError, Dataset, fit_to_model, load_digits, load_npz, save

__all__ = [
    "FASHION_MNIST_CLASSES",
    "NAMES",
    "SPEECH_PATH",
    "load",
    "load_cifar",
    "load_idx",
    "load_image_folder",
    "load_mnist",
    "write_dataset",
]

#: Names :func:`load` knows besides paths.
NAMES = ("digits", "speech", "speech-accent", "speech-noise", "speech-mic")
#: The shipped keyword-spotting subset (int8[N, 49, 40] audio features; tinyzo/audio/data/SPEECH_PROVENANCE.md).
SPEECH_PATH = Path(__file__).resolve().parent.parent / "audio" / "data" / "speech_small.npz"
#: The shipped adaptation sets of the keyword spotter's domain shifts (tinyzo.audio.shifts), by name.
SHIFT_PATHS = {f"speech-{n}": SPEECH_PATH.with_name(f"speech_shift_{n}.npz") for n in ("accent", "noise", "mic")}
#: Class names of Fashion-MNIST, label order.
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
#: Largest array a loader will allocate from a file header (4 GiB).
MAX_ARRAY_BYTES = 4 << 30
#: Largest pickle file :func:`load_cifar` reads (1 GiB; a CIFAR batch is ~31 MB).
MAX_PICKLE_BYTES = 1 << 30
#: Image file suffixes :func:`load_image_folder` reads (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

# IDX element types: code -> big-endian numpy dtype.
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than ~1032:1


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


def _read_exact(f, n: int, path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path}: truncated IDX file: {what} needs {n} bytes, only {len(data)} present")
    return data


def load_idx(path) -> np.ndarray:
    """Read one IDX file (the MNIST format), raw or gzip-compressed (detected by content).

    Layout: 2 zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions (1..4), that many big-endian
    uint32 sizes, then the data, big-endian, row-major.

    Returns:
        an array of the stored shape, native byte order (uint8 for MNIST).
    Raises:
        DataError: bad magic, unknown type, a declared size that does not match the
            file length (checked before allocating; for gzip, against the most the
            compressed size can expand to), trailing bytes, or over MAX_ARRAY_BYTES.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                return _read_idx(raw, path, size - 4, size)
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    return _read_idx(f, path, size * _DEFLATE_MAX_RATIO, size)
            except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
                raise DataError(f"{path}: corrupt gzip stream ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None


def _read_idx(f, path: Path, max_data: int, size: int) -> np.ndarray:
    """Parse an IDX stream; ``max_data`` bounds the bytes after the 4-byte magic."""
    head = _read_exact(f, 4, path, "the header")
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES or not 1 <= head[3] <= 4:
        raise DataError(f"{path}: not an IDX file (magic bytes {head.hex()}; expected "
                        "00 00 <type 08/09/0b/0c/0d/0e> <1..4 dimensions>)")
    dtype, ndim = _IDX_TYPES[head[2]], head[3]
    dims = tuple(int(d) for d in np.frombuffer(_read_exact(f, 4 * ndim, path, "the sizes"), ">u4"))
    nbytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(f"{path}: IDX header declares {dims} ({nbytes} bytes), over the "
                        f"{MAX_ARRAY_BYTES} byte limit")
    if nbytes > max_data - 4 * ndim:
        raise DataError(f"{path}: truncated IDX file: the header declares {dims} "
                        f"({nbytes} bytes of data) but the file is {size} bytes")
    data = _read_exact(f, nbytes, path, f"an array of {dims}")
    if f.read(1):
        raise DataError(f"{path}: trailing bytes after the {dims} array the IDX header declares")
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            p = directory / (name + suffix)
            if p.is_file():
                return p
    raise DataError(f"{directory}: no {stem}[.gz] (MNIST/Fashion-MNIST IDX files: train-images-idx3-ubyte, "
                    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)")


def load_mnist(path, classes=None, name: str | None = None) -> Dataset:
    """MNIST or Fashion-MNIST from a directory of the four IDX files (each raw or ``.gz``).

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (``.idx`` also accepted
    for ``-idx``). The 60,000 training images become the train split, the 10,000
    t10k images the test split; the validation split is empty.

    Args:
        path: the directory.
        classes: class names; default "0".."9", or Fashion-MNIST's names when the
            directory's name or its parent's contains "fashion" (case-insensitive).
        name: default "fashion-mnist" or "mnist" by the same rule.
    Returns:
        a Dataset of uint8[N, 28, 28] images (whatever H, W the files declare).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected the four MNIST IDX files in it)")
    fashion = any("fashion" in part.lower() for part in path.resolve().parts[-2:])
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        xp, yp = _find_idx(path, f"{prefix}-images-idx3-ubyte"), _find_idx(path, f"{prefix}-labels-idx1-ubyte")
        x, y = load_idx(xp), load_idx(yp)
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(f"{xp}: expected uint8 images (N, H, W), got {x.dtype}{list(x.shape)}")
        if y.ndim != 1 or y.dtype != np.uint8:
            raise DataError(f"{yp}: expected uint8 labels (N,), got {y.dtype}{list(y.shape)}")
        if len(y) != len(x):
            raise DataError(f"{yp}: {len(y)} labels for the {len(x)} images in {xp.name}")
        parts[f"x_{split}"], parts[f"y_{split}"] = x, y
    parts["x_val"], parts["y_val"] = parts["x_train"][:0], parts["y_train"][:0]
    if classes is None:
        classes = FASHION_MNIST_CLASSES if fashion else [str(d) for d in range(10)]
    try:
        return Dataset(**parts, name=name or ("fashion-mnist" if fashion else "mnist"), classes=classes)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 python batches (pickles)


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_frombuffer():
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.numeric import _frombuffer
    return _frombuffer


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` restricted to latin-1 (how Python 3 protocol-2 pickles store bytes)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed for latin-1 text")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that can build only numpy arrays (plus dicts, lists, str, bytes, numbers).

    A pickle is a program: ``pickle.load`` calls any importable function the file
    names (``os.system`` included), so a downloaded "CIFAR batch" could run
    arbitrary code. Dicts, lists, strings, bytes and numbers are built by pickle
    opcodes without any lookup; the only globals a CIFAR batch needs are numpy's
    array reconstructor, ``numpy.ndarray`` and ``numpy.dtype``; a file re-pickled by
    Python 3 also needs ``_codecs.encode`` (protocol 2, to rebuild bytes; allowed
    here for latin-1 only) or numpy's ``_frombuffer`` (protocol 5). None of these
    can run code or touch files. Every other global is refused.
    """

    def find_class(self, module, name):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if (module, name) in (("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")):
            return _numpy_frombuffer()  # protocol 5 arrays (a file re-saved by Python 3.8+)
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"refused to load global {module}.{name} (only numpy arrays are allowed)")


def _unpickle(path: Path) -> dict:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None
    if size > MAX_PICKLE_BYTES:
        raise DataError(f"{path}: {size} bytes, over the {MAX_PICKLE_BYTES} byte limit for a CIFAR batch")
    data = path.read_bytes()
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: not a CIFAR python batch: {e}") from None
    except Exception as e:  # noqa: BLE001  (truncated or garbage pickles raise many types)
        raise DataError(f"{path}: not a CIFAR python batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _names(meta: dict, key: str, path: Path) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or not names:
        raise DataError(f"{path}: no {key!r} list in the meta file")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    x, y = d.get("data"), d.get(label_key)
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        got = f"{x.dtype}{list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: 'data' must be uint8[N, 3072] (32x32x3, channel-major), got {got}")
    try:
        y = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError):
        y = np.zeros((0, 0))
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: {label_key!r} must be {len(x)} integer labels, got {np.shape(y)}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{path}: labels must be in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y


def load_cifar(path, label_mode: str = "fine") -> Dataset:
    """CIFAR-10 or CIFAR-100 from the directory of the "python version" batches.

    CIFAR-10 (``cifar-10-batches-py``): ``data_batch_1`` .. ``data_batch_5`` (train),
    ``test_batch``, ``batches.meta``. CIFAR-100 (``cifar-100-python``): ``train``,
    ``test``, ``meta``. Batches are pickles; they are read with a restricted
    unpickler that can only build numpy arrays, dicts, lists, strings and numbers
    (see ``_CifarUnpickler``): a plain ``pickle.load`` would run any code the file asks for.

    Args:
        path: the directory.
        label_mode: CIFAR-100 only: "fine" (100 classes) or "coarse" (20 superclasses).
    Returns:
        a Dataset of uint8[N, 32, 32, 3] images (RGB), empty validation split.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected CIFAR python batches in it)")
    if (path / "batches.meta").is_file() or (path / "data_batch_1").is_file():
        missing = [n for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
                   if not (path / n).is_file()]
        if missing:
            raise DataError(f"{path}: CIFAR-10 directory without {', '.join(missing)}")
        classes = _names(_unpickle(path / "batches.meta"), "label_names", path / "batches.meta")
        trains = [_cifar_batch(path / f"data_batch_{i}", "labels", len(classes)) for i in range(1, 6)]
        x_train = np.concatenate([t[0] for t in trains])
        y_train = np.concatenate([t[1] for t in trains])
        x_test, y_test = _cifar_batch(path / "test_batch", "labels", len(classes))
        name = "cifar10"
    elif (path / "meta").is_file() and (path / "train").is_file() and (path / "test").is_file():
        if label_mode not in ("fine", "coarse"):
            raise DataError(f"load_cifar: label_mode must be 'fine' or 'coarse', got {label_mode!r}")
        classes = _names(_unpickle(path / "meta"), f"{label_mode}_label_names", path / "meta")
        x_train, y_train = _cifar_batch(path / "train", f"{label_mode}_labels", len(classes))
        x_test, y_test = _cifar_batch(path / "test", f"{label_mode}_labels", len(classes))
        name = "cifar100" if label_mode == "fine" else "cifar100-coarse"
    else:
        raise DataError(f"{path}: not a CIFAR directory (CIFAR-10: data_batch_1..5, test_batch, batches.meta; "
                        "CIFAR-100: train, test, meta)")
    return Dataset(x_train=x_train, y_train=y_train, x_val=x_train[:0], y_val=y_train[:0],
                   x_test=x_test, y_test=y_test, name=name, classes=classes)


# ---------------------------------------------------------------------------------------------
# A folder of images per class


_GRAY_MODES = {"1": "L", "L": "L", "LA": "L"}
_RGB_MODES = {"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}


def _read_image(p: Path):
    from PIL import Image

    try:
        with Image.open(p) as im:
            mode = im.mode
            if mode in _GRAY_MODES:
                im = im.convert("L")
            elif mode in _RGB_MODES:
                im = im.convert("RGB")
            else:
                raise DataError(f"{p}: image mode {mode} (16-bit or float) is not supported; "
                                "save it as 8-bit grayscale or RGB")
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001  (PIL raises UnidentifiedImageError, OSError, DecompressionBombError, ...)
        raise DataError(f"{p}: cannot read image ({type(e).__name__}: {e})") from None


def _class_dirs(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(path, name: str | None = None) -> Dataset:
    """Images in one folder per class: ``path/<class>/*.png`` (also .jpg, .jpeg, .bmp, .gif).

    Two layouts:

    * ``path/train/<class>/...``, ``path/test/<class>/...`` and optionally
      ``path/val/<class>/...``: the splits as given;
    * ``path/<class>/...``: every image goes to the test split (train and
      validation are empty): a folder of your own images is evaluation data.

    Classes are the sorted folder names (their union over the splits); label k is
    ``classes[k]``. Files are read in sorted order; other files and hidden ones are
    ignored. Images must all have the same height and width (nothing is resized:
    a different size is an error naming both files). Grayscale images (PIL modes
    1, L, LA) give uint8[N, H, W]; colour ones (RGB, RGBA, P, CMYK, ...) are
    converted to RGB, alpha dropped, and then all images are RGB uint8[N, H, W, 3]
    (grayscale ones replicated). 16-bit and float images are refused.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory")
    top = {d.name: d for d in _class_dirs(path)}
    if "train" in top and "test" in top:
        roots = {s: top[s] for s in SPLITS if s in top}
    else:
        roots = {"test": path}
    per_split = {s: {d.name: _image_files(d) for d in _class_dirs(r)} for s, r in roots.items()}
    classes = sorted({c for files in per_split.values() for c in files})
    if not classes:
        raise DataError(f"{path}: no class folders (expected {path}/<class>/<image>.png)")
    first, shape = None, None
    images = {s: [] for s in SPLITS}
    labels = {s: [] for s in SPLITS}
    for s, by_class in per_split.items():
        for c, files in by_class.items():
            for p in files:
                a = _read_image(p)
                if shape is None:
                    first, shape = p, a.shape[:2]
                elif a.shape[:2] != shape:
                    raise DataError(f"{p}: image is {a.shape[1]}x{a.shape[0]} (WxH) but {first} is "
                                    f"{shape[1]}x{shape[0]}; all images must have the same size "
                                    "(tinyzo does not resize)")
                images[s].append(a)
                labels[s].append(classes.index(c))
    if shape is None:
        raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    rgb = any(a.ndim == 3 for v in images.values() for a in v)
    parts = {}
    for s in SPLITS:
        arrs = [np.repeat(a[..., None], 3, axis=2) if rgb and a.ndim == 2 else a for a in images[s]]
        empty = np.zeros((0,) + tuple(shape) + ((3,) if rgb else ()), dtype=np.uint8)
        parts[f"x_{s}"] = np.stack(arrs) if arrs else empty
        parts[f"y_{s}"] = np.array(labels[s], dtype=np.int64)
    return Dataset(**parts, name=name or path.name, classes=classes)


# ---------------------------------------------------------------------------------------------
# Dispatch and writing


def load(source, split: str | None = None, **kwargs):
    """Load a data set by name or path.

    Args:
        source: "digits", "speech" or a keyword-spotting shift ("speech-accent", "speech-noise",
            "speech-mic"; :mod:`tinyzo.audio.shifts`) (bundled), a ``.npz`` in the tinyzo dataset format, a
            directory of MNIST IDX files, of CIFAR python batches, or of images per
            class (checked in that order: IDX files, then CIFAR batch names, else images).
        split: None for the whole :class:`Dataset`; "train", "val" or "test" for
            that split's ``(x, y)``.
        **kwargs: passed to the loader (e.g. ``label_mode="coarse"`` for CIFAR-100).
    Raises:
        DataError: unknown name, missing path, or any loader's error.
    """
    if isinstance(source, Dataset):
        ds = source
    elif isinstance(source, str) and source in NAMES:
        if source == "digits":
            ds = load_digits()
        elif source == "speech":
            ds = load_npz(SPEECH_PATH, name="speech")
        else:
            ds = load_npz(SHIFT_PATHS[source], name=source)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            if any((p / f"train-images{sep}idx3-ubyte{gz}").is_file() for sep in "-." for gz in ("", ".gz")):
                ds = load_mnist(p, **kwargs)
            elif any((p / n).is_file() for n in ("batches.meta", "data_batch_1", "meta")):
                ds = load_cifar(p, **kwargs)
            else:
                ds = load_image_folder(p, **kwargs)
        elif p.is_file():
            ds = load_npz(p, **kwargs)
        else:
            raise DataError(f"{source}: no such file or directory, and not a bundled data set "
                            f"(bundled: {', '.join(NAMES)})")
    else:
        raise DataError(f"load: expected a data set name or a path, got {type(source).__name__}")
    if split is None:
        return ds
    return ds.split(split)


def write_dataset(source, out_path, corruption: str | None = None, severity: int | None = None,
                  seed: int = 0, split: str = "test", image_shape=None) -> dict:
    """Write a data set (optionally corrupted) to ``out_path`` in the tinyzo dataset format.

    The data side of ``tinyzo data``. Every split of ``source`` is written; the
    corruption, if any, is applied to ``split`` ("train", "val", "test" or "all")
    with ``seed``, exactly as ``tinyzo.data.corrupt(x, name, severity, seed)`` (and
    ``tinyzo eval --corruption ... --seed``) would; with "all" each split gets its own
    seed (``seed``, ``seed + 1``, ``seed + 2`` for train, val, test) so their noise differs.

    Args:
        source: anything :func:`load` takes (a name, a path) or a Dataset.
        out_path: the ``.npz`` to write.
        corruption, severity: a name from :func:`tinyzo.data.corruptions` and 1..5;
            both or neither.
        seed: the corruption seed.
        split: which split(s) to corrupt.
        image_shape: optional (H, W, C): resize every split with :func:`fit_to_model`
            *before* corrupting (to corrupt at a model's input resolution).
    Returns:
        a JSON-able summary: ``path``, ``name``, ``n_train``, ``n_val``, ``n_test``,
        ``image_shape``, ``dtype``, ``n_classes``, ``corruption``, ``severity``,
        ``seed``, ``corrupted_splits``, ``bytes``.
    """
    if (corruption is None) != (severity is None):
        raise DataError("write_dataset: give both a corruption and a severity (1..5), or neither")
    if split not in SPLITS + ("all",):
        raise DataError(f"write_dataset: split must be one of {', '.join(SPLITS + ('all',))}, got {split!r}")
    ds = load(source)
    if image_shape is not None:
        ds = ds.map_images(lambda x: fit_to_model(x, image_shape))
    targets = list(SPLITS) if split == "all" else [split]
    if corruption is not None:
        parts = {}
        for k, s in enumerate(SPLITS):
            x, y = ds.split(s)
            if s in targets and len(x):
                x = corrupt(x, corruption, severity, seed=seed + k if split == "all" else seed)
            parts[f"x_{s}"], parts[f"y_{s}"] = x, y
        ds = Dataset(**parts, name=ds.name, classes=ds.classes)
    path = save(ds, out_path)
    return {
        "path": str(path),
        "name": ds.name,
        "n_train": len(ds.y_train),
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
        "image_shape": list(ds.image_shape),
        "dtype": str(ds.x_train.dtype),
        "n_classes": ds.n_classes,
        "corruption": corruption,
        "severity": severity,
        "seed": seed,
        "corrupted_splits": targets if corruption is not None else [],
        "bytes": path.stat().st_size,
    }

