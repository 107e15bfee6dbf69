"""Checks of the paths tinyzo writes to, made before any work starts.

A long run (training, contribution analysis) that fails at its very end because its output path is
unusable loses the run. The command line and :func:`tinyzo.io.save` check output paths first:

* an output **file** (``--out model.tflite``, ``--plot timeline.png``) must name a file in a folder
  that exists and is writable (a temporary file is created there and removed: ``os.access`` alone
  passes for root on read-only mounts); the path itself must not be a directory; a known suffix may be
  required. tinyzo does not create a missing folder for a file (a typo in a folder name is caught);
* an output **folder** (``--out-dir``, ``tinyzo vectors --out``) is created with its parents if it
  is missing; it must not be an existing file, and the nearest existing folder above it must be
  writable.

Both raise :class:`tinyzo.errors.OutputPathError` with a one-line message; neither writes anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tinyzo.errors import OutputPathError

__all__ = ["check_output_dir", "check_output_file", "plot_suffixes"]


def _writable(folder: Path) -> str | None:
    """None if a file can be created in ``folder``, else the reason. ``os.access`` alone is not enough
    (root passes it on read-only mounts and in /proc): a temporary file is created and removed."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tinyzo-write-check-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


def _as_path(path, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise OutputPathError(f"{what}: expected a file path (str or os.PathLike), got {path!r}")
    return Path(path)


def check_output_file(path, what: str = "output", suffixes=None) -> Path:
    """Check that ``path`` can be written as a file, without writing it; return it as a :class:`Path`.

    Args:
        path: str or os.PathLike, the file to write (an existing file is overwritten).
        what: how the path is named in messages (e.g. ``"--out"``).
        suffixes: None (any suffix) or the allowed suffixes, lower case with the dot
            (``(".tflite", ".npz")``); compared case-insensitively.
    Raises:
        OutputPathError: not a path, unknown suffix, the path is a directory, its folder is
            missing or is a file, or the folder (or an existing file) is not writable.
    """
    p = _as_path(path, what)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        got = f"suffix {p.suffix!r}" if p.suffix else "no suffix"
        raise OutputPathError(f"{what} {str(p)!r}: {got}; use one of {', '.join(suffixes)}")
    if p.is_dir():
        raise OutputPathError(f"{what} {str(p)!r} is a directory; give a file name inside it")
    folder = p.parent
    if not folder.exists():
        raise OutputPathError(f"{what} {str(p)!r}: folder {str(folder)!r} does not exist; create it first")
    if not folder.is_dir():
        raise OutputPathError(f"{what} {str(p)!r}: {str(folder)!r} is a file, not a folder")
    reason = _writable(folder)
    if reason:
        raise OutputPathError(f"{what} {str(p)!r}: folder {str(folder)!r} is not writable ({reason})")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{what} {str(p)!r}: the existing file is not writable")
    return p


def check_output_dir(path, what: str = "output folder") -> Path:
    """Check that ``path`` is a writable folder or can be created (with its parents); write nothing.

    Args:
        path: str or os.PathLike.
        what: how the path is named in messages (e.g. ``"--out-dir"``).
    Raises:
        OutputPathError: not a path, an existing file, below a file, or the folder (or the
            nearest existing folder above it) is not writable.
    """
    p = _as_path(path, what)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {str(p)!r} is a file, not a folder; give a folder path")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputPathError(f"{what} {str(p)!r}: {str(probe)!r} is a file, not a folder")
    reason = _writable(probe) if probe.exists() else None
    if reason:
        raise OutputPathError(f"{what} {str(p)!r}: folder {str(probe)!r} is not writable ({reason})")
    return p


def plot_suffixes() -> tuple:
    """The file suffixes matplotlib can write (``.png``, ``.pdf``, ``.svg``, ...), lower case with the dot."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted("." + k for k in FigureCanvasBase.get_supported_filetypes()))
