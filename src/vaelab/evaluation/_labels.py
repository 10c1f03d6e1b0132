"""Labels passed alongside data through the evaluation functions, chunk by chunk."""

from __future__ import annotations

from torch import Tensor


def labels_of(y: Tensor | None, start: int, size: int) -> dict:
    """``{"y": y[start:start + size]}`` for keyword-passing to a labelled model, ``{}`` without labels
    (so that models which take no ``y`` keep working)."""
    return {} if y is None else {"y": y[start : start + size]}
