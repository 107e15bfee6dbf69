"""Progress bars that stay quiet in logs.

On a terminal, tinyzo shows tqdm bars. When standard error is a file or a pipe (CI logs,
``tinyzo demo > log 2>&1``), bars that redraw per step would write thousands of lines; there:

- per-step bars (the batches of one epoch) are not shown at all: the training loops print one line
  per epoch instead;
- long outer bars (one tick per run or measurement) redraw at most once a minute
  (:data:`LOG_REFRESH_SECONDS`), so a log gains a bounded number of lines.

The environment variable ``TINYZO_PROGRESS`` overrides the detection: ``always`` (bars as on a
terminal), ``never`` (no bars), ``auto`` (the default).
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

__all__ = ["LOG_REFRESH_SECONDS", "interactive", "outer_bar", "step_bar"]

LOG_REFRESH_SECONDS = 60.0


def _mode() -> str:
    return os.environ.get("TINYZO_PROGRESS", "auto").strip().lower()


def interactive(stream=None) -> bool:
    """True when bars should redraw freely: ``TINYZO_PROGRESS=always``, or ``auto`` and ``stream``
    (default ``sys.stderr``, where tqdm writes) is a terminal."""
    mode = _mode()
    if mode == "always":
        return True
    if mode == "never":
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like objects without isatty
        return False


def step_bar(iterable, *, desc: str, enabled: bool = True, total: int | None = None) -> tqdm:
    """A per-step bar over ``iterable`` (e.g. the batches of one epoch), removed when done.

    Shown only when ``enabled`` and :func:`interactive`; otherwise a disabled tqdm that just
    iterates (``set_postfix`` and ``close`` still work), so a log gets no per-step lines.
    """
    return tqdm(iterable, desc=desc, total=total, leave=False, disable=not (enabled and interactive()))


def outer_bar(*, total: int, desc: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """A bar over long units of work (runs, measurements), kept when done.

    On a terminal it redraws as tqdm does; in a log at most once per :data:`LOG_REFRESH_SECONDS`.
    Disabled when ``enabled`` is false or ``TINYZO_PROGRESS=never``.
    """
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled or _mode() == "never",
                mininterval=0.1 if interactive() else LOG_REFRESH_SECONDS)
