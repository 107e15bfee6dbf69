"""argparse pieces shared by the ``tinyzo`` command and by what builds its sub-commands' parsers
(``tinyzo.train_command``): one-line errors and value types with one-line refusals."""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["NONNEG", "POS1", "Parser", "finite_float", "int_at_least"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tinyzo: error: <message>`` on stderr, exit status 2 (no usage dump)."""

    def error(self, message):
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f"; see tinyzo {sub} --help" if sub else "; see tinyzo --help"
        self.exit(2, f"tinyzo: error: {message}{hint}\n")


def int_at_least(low: int):
    """An argparse ``type``: an integer >= ``low`` (one-line error otherwise)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite float (NaN and inf are refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


POS1, NONNEG = int_at_least(1), int_at_least(0)
