"""Model files: ``.tflite`` import/export and tinyzo's native ``.npz`` format.

:func:`load` reads either format (chosen by the file's content, not its
name); :func:`save` writes by suffix. Both formats are untrusted input when
read: every size and offset is checked, nothing is unpickled, and any problem
raises a :class:`tinyzo.errors.TinyzoError` subclass whose message starts with
the path. See docs/file-formats.md.
"""

from __future__ import annotations

import io
import os

from tinyzo import graph as _graph
from tinyzo.errors import InputError, ModelFileNotFoundError, ModelFormatError, OutputPathError, TinyzoError
from tinyzo.io.npz import load_npz, read_npz_parts, save_npz
from tinyzo.io.tflite_read import MAX_FILE_BYTES, read_tflite, read_tflite_parts
from tinyzo.io.tflite_write import write_tflite, write_tflite_parts
from tinyzo.quant import DOUBLE_ROUNDING, ROUNDING_MODES

#: the suffixes :func:`save` writes
SAVE_SUFFIXES = (".npz", ".tflite")

__all__ = [
    "SAVE_SUFFIXES",
    "ModelFileNotFoundError",
    "check_save_path",
    "load",
    "load_npz",
    "read_npz_parts",
    "read_tflite",
    "read_tflite_parts",
    "save",
    "save_npz",
    "write_tflite",
    "write_tflite_parts",
]


def _read_file(path: str) -> bytes:
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise ModelFormatError(f"{path}: is a directory, not a model file")
        if size > MAX_FILE_BYTES:
            raise ModelFormatError(f"{path}: {size} bytes, more than tinyzo's limit of {MAX_FILE_BYTES} (512 MiB)")
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileNotFoundError(f"model file {path} does not exist") from None
    except PermissionError:
        raise ModelFormatError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{path}: is a directory, not a model file") from None


def load(path, rounding: str | None = None):
    """Load a model file: tinyzo ``.npz`` or TFLite ``.tflite``, recognized by content.

    Args:
        path: file path (str or os.PathLike).
        rounding: requantization rounding, ``"double"`` (TFLM's default) or
            ``"single"``; None means the mode stored in a ``.npz`` file, and
            ``"double"`` for a ``.tflite`` file.

    Returns:
        A prepared :class:`tinyzo.graph.Model` named after the file.

    Raises:
        ModelFileNotFoundError: the path does not exist.
        ModelFormatError: neither format, or a corrupt/truncated file.
        UnsupportedModelError: a float model or other out-of-scope model.
        UnsupportedOperatorError: an operator tinyzo does not implement.
        InputError: ``path`` is not a path, or ``rounding`` is not a rounding mode.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"load: expected a model file path (str or os.PathLike), got {type(path).__name__}")
    if rounding is not None and rounding not in ROUNDING_MODES:
        raise InputError(f"rounding must be None or one of {', '.join(ROUNDING_MODES)}, got {rounding!r}")
    path = os.fspath(path)
    data = _read_file(path)
    name = os.path.basename(path)
    try:
        if data[:2] == b"PK":
            return load_npz(io.BytesIO(data), rounding=rounding, name=name)
        if data[4:8] == b"TFL3":
            return read_tflite(data, name=name, rounding=rounding or DOUBLE_ROUNDING)
        if len(data) == 0:
            raise ModelFormatError("the file is empty")
        raise ModelFormatError("not a tinyzo .npz or .tflite model")
    except TinyzoError as e:
        raise type(e)(f"{path}: {e}") from e


def save(model, path) -> None:
    """Write ``model`` to ``path``: ``.npz`` (tinyzo's native format) or ``.tflite``, by suffix.

    Raises:
        ModelFormatError: another suffix, or the model cannot be represented in the format.
        OutputPathError: the path is a directory, its folder is missing or not writable, or the
            write fails (see :func:`check_save_path`).
    """
    path = os.fspath(check_save_path(path))
    try:
        if path.lower().endswith(".npz"):
            save_npz(model, path)
        else:
            data = write_tflite(model)
            with open(path, "wb") as f:
                f.write(data)
    except OSError as e:
        raise OutputPathError(f"cannot write the model to {path!r}: {e.strerror or e}") from None


_graph.register_saver(save)  # Model.save writes through this module

def check_save_path(path):
    """Check, without writing, that :func:`save` can write ``path``; return it as a :class:`pathlib.Path`.

    ``path`` (str or os.PathLike) must end in ``.npz`` or ``.tflite`` (:class:`ModelFormatError`
    otherwise), must not be a directory, and its folder must exist and be writable
    (:class:`tinyzo.errors.OutputPathError`, see :mod:`tinyzo.paths`).
    """
    from tinyzo.paths import check_output_file

    if isinstance(path, (str, os.PathLike)) and os.path.splitext(os.fspath(path))[1].lower() not in SAVE_SUFFIXES:
        raise ModelFormatError(f"cannot save a model as {os.fspath(path)!r}: use a .npz (tinyzo's format) or .tflite path")
    return check_output_file(path, "model path", SAVE_SUFFIXES)
