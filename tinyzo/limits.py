"""Size limits that keep an untrusted model file from exhausting memory.

A model file declares shapes and options; everything tinyzo allocates to run it (each operator's
output and work arrays: im2col columns, GEMM operands, padded copies) is derived from them. Every
such buffer is computed before it is allocated and compared with :data:`MAX_BUFFER_BYTES`: when
the model is prepared, for one sample (a model that needs more is refused with
:class:`tinyzo.errors.MemoryLimitError`), and at each call, for the batch given. The reader's own
limits (file size, tensor rank and elements) are in :mod:`tinyzo.io.tflite_read`.

Change the limit by assigning the module attribute (it is read at every check)::

    import tinyzo.limits
    tinyzo.limits.MAX_BUFFER_BYTES = 4 << 30   # 4 GiB per buffer
"""

from __future__ import annotations

from tinyzo.errors import MemoryLimitError

__all__ = ["MAX_BUFFER_BYTES", "check_buffer"]

#: Largest single array (bytes) tinyzo allocates to run a model: 1 GiB. The models tinyzo is made
#: for (microcontroller models, at most a few MB of activations per sample) stay far below it.
MAX_BUFFER_BYTES = 1 << 30


def check_buffer(nbytes: int, what: str, batch: int = 1) -> None:
    """Raise :class:`MemoryLimitError` if a buffer of ``nbytes`` bytes exceeds :data:`MAX_BUFFER_BYTES`.

    Args:
        nbytes: the buffer's size in bytes (a Python int: never overflows).
        what: names the buffer, e.g. ``"operator 3 (CONV_2D) im2col columns"``.
        batch: the number of samples the buffer holds (1 when a model is prepared).
    """
    limit = MAX_BUFFER_BYTES
    if nbytes > limit:
        if batch > 1:
            fix = f"run the batch of {batch} in smaller batches, or raise tinyzo.limits.MAX_BUFFER_BYTES"
        else:
            fix = "the model file asks for more than tinyzo allows for one sample (corrupt shapes or options?); " \
                  "raise tinyzo.limits.MAX_BUFFER_BYTES if it is genuine"
        raise MemoryLimitError(
            f"{what} needs {nbytes} bytes for {batch} sample(s), more than tinyzo's limit of {limit} bytes "
            f"(tinyzo.limits.MAX_BUFFER_BYTES): {fix}"
        )
