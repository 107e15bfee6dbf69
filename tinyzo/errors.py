"""Error classes of tinyzo.

Every error raised because of bad user input (a file, an array, a flag) is a
subclass of :class:`TinyzoError`, so callers (and the CLI) can catch them in
one place. Messages say what is wrong and what to do about it.
"""


class TinyzoError(Exception):
    """Base class of every error tinyzo raises on bad input."""


class ModelFormatError(TinyzoError):
    """The model file is truncated, corrupt, or not a model file at all."""


class ModelFileNotFoundError(ModelFormatError, FileNotFoundError):
    """The model path does not exist (a :class:`TinyzoError` and a :class:`FileNotFoundError`)."""


class UnsupportedOperatorError(TinyzoError):
    """The model uses an operator (or operator option) tinyzo does not implement."""


class UnsupportedModelError(TinyzoError):
    """The model is well formed but outside tinyzo's scope (e.g. float32, not int8)."""


class InputError(TinyzoError):
    """An input array has the wrong shape, dtype or value range for the model."""


class ArithmeticContractError(TinyzoError):
    """A quantization parameter is outside the range TFLite's arithmetic allows."""


class TrainingError(TinyzoError):
    """Training cannot go on (diverged, bad checkpoint, bad arguments)."""


class CheckpointError(TrainingError):
    """A training checkpoint is missing, damaged, inconsistent, of an old format, or of another run."""


class OutputPathError(TinyzoError):
    """A path to write to cannot be used: its folder is missing, it is a directory (or a file where a
    folder is needed), it is not writable, or its suffix names no format tinyzo writes."""


class MemoryLimitError(TinyzoError):
    """Running the model would allocate a buffer larger than :data:`tinyzo.limits.MAX_BUFFER_BYTES`.

    Raised when the model is prepared (for one sample: the model file asks for too much) and when it
    is called (for the given batch: run it in smaller batches). The message names the operator, the
    buffer, its size and the limit.
    """


def check_choice(value, choices, what: str, error=InputError):
    """Return ``value`` if it is one of ``choices``; else raise ``error`` (a :class:`TinyzoError`
    subclass) saying ``unknown <what> <value>; choose one of <choices>``."""
    if value not in choices:
        raise error(f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}")
    return value
