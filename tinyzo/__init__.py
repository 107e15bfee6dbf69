"""tinyzo: int8 neural networks run (and trained) exactly as a microcontroller does.

Public names: :func:`load`, :class:`Model`, the error classes, and the
rounding-mode names. See docs/ for the arithmetic contract.
"""

from tinyzo.errors import (  # noqa: F401
    ArithmeticContractError,
    InputError,
    MemoryLimitError,
    ModelFileNotFoundError,
    ModelFormatError,
    OutputPathError,
    TinyzoError,
    UnsupportedModelError,
    UnsupportedOperatorError,
)
from tinyzo.graph import Model, Operator, Tensor  # noqa: F401
from tinyzo.io import load, save  # noqa: F401
from tinyzo.quant import DOUBLE_ROUNDING, SINGLE_ROUNDING, QuantParams  # noqa: F401
from tinyzo.version import __version__  # noqa: F401
