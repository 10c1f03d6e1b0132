"""Summary statistics shared by the evaluation modules."""

from __future__ import annotations

import math

from torch import Tensor


def mean_se(v: Tensor) -> tuple[float, float]:
    """Mean and standard error (std / sqrt(n); 0 for one value) of a 1-D tensor, in float64."""
    v = v.double()
    return float(v.mean()), float(v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0
