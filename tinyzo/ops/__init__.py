"""Operators: per-op prepare (validate, compute integer parameters) and run.

Each operator kind is one class deriving from :class:`tinyzo.ops.base.PreparedOp`,
registered under its TFLite builtin name in :data:`REGISTRY`. ``prepare``
mirrors TFLite Micro's ``Prepare`` (it raises
:class:`tinyzo.errors.UnsupportedOperatorError` naming the op and its index
for anything outside the supported scope); ``compute`` calls the jitted kernels.
"""

from tinyzo.errors import UnsupportedOperatorError

# importing the modules registers the operators
from tinyzo.ops import (  # noqa: F401  # noqa: F401,E402
    activations,
    batch_matmul,
    binary,
    cast,
    conv,
    elementwise,
    fully_connected,
    layout,
    lstm,
    pooling,
    shape,
    signal,
    slicing,
    softmax,
    svdf,
    transpose_conv,
)
from tinyzo.ops.base import REGISTRY, PreparedOp


def prepare_operator(model, index, op) -> PreparedOp:
    """Prepare operator ``index`` of ``model`` (see :class:`PreparedOp`)."""
    cls = REGISTRY.get(op.opcode)
    if cls is None:
        raise UnsupportedOperatorError(
            f"operator {index} is {op.opcode}, which tinyzo does not support; supported: {', '.join(sorted(REGISTRY))}"
        )
    return cls(model, index, op)
