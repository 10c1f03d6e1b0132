"""argparse types for the CLI's numbers: a bad value is argparse's one-line error (exit 2) at
parse time, before any data is loaded or a run directory touched (docs/reliability.md)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def integer(minimum: int, what: str = "") -> Callable[[str], int]:
    """An int >= ``minimum``; ``what`` says what 0 means where 0 is allowed (e.g. "0 = all")."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{f' ({what})' if what else ''}, got {v}")
        return v

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in its messages
    return parse


def positive_float(text: str) -> float:
    """A finite float > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


POSITIVE = integer(1)
SEED = integer(0, "seeds are non-negative")
