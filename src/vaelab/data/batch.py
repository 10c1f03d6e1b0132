"""The unit that flows from loaders to models: a mini-batch with its indices and optional mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """A mini-batch.

    Attributes:
        x: (B, *x_shape) data.
        index: (B,) int64 positions of the points in their split, so per-datapoint parameters
            (non-amortized VI) can be looked up.
        mask: optional (B, *x_shape) or (B, T) bool mask of valid entries (padded sequences).
    """

    x: Tensor
    index: Tensor
    mask: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        mask = self.mask.to(device) if self.mask is not None else None
        return Batch(self.x.to(device), self.index.to(device), mask)

    @classmethod
    def of(cls, x: Tensor) -> Batch:
        """A batch of all of x, indices 0..N-1."""
        return cls(x, torch.arange(x.shape[0], device=x.device))
