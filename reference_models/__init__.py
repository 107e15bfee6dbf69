"""The pretrained int8 reference models, installed with tinyzo as ``tinyzo.reference_models``.

This folder is the repository's ``reference_models/``; setup.cfg maps it to the package
``tinyzo.reference_models`` so that a normal (non-editable) ``pip install`` ships the model files
as package data. Use :func:`path` to locate one.
"""

from importlib import resources
from pathlib import Path

__all__ = ["path", "names"]


def names() -> list:
    """Names (without ``.tflite``) of the shipped reference models, sorted."""
    return sorted(p.name[: -len(".tflite")] for p in resources.files(__name__).iterdir() if p.name.endswith(".tflite"))


def path(name: str) -> Path:
    """Filesystem path of the shipped reference model ``name`` (e.g. ``"digits_cnn"``).

    Raises:
        FileNotFoundError: no such model is shipped (the message lists the ones that are).
    """
    p = Path(str(resources.files(__name__).joinpath(f"{name}.tflite")))
    if not p.is_file():
        raise FileNotFoundError(f"no reference model {name!r} is shipped with tinyzo; shipped: {', '.join(names())}")
    return p
