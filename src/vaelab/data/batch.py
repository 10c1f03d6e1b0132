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
        y: optional (B,) int64 class labels, -1 where a point is unlabelled (models that read labels).
        weight: optional (B,) weights of the points' bounds, chosen so that the weighted batch mean
            estimates the mean over the training set (semi-supervised batches over-sample the few
            labelled points; :func:`vaelab.data.labels.semi_supervised_batches`).
        label_weight: optional (B,) weights of the classification term: B / B_labelled on the
            labelled points, 0 on the others, so its batch mean is the labelled points' mean.
    """

    x: Tensor
    index: Tensor
    mask: Tensor | None = None
    y: Tensor | None = None
    weight: Tensor | None = None
    label_weight: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return self.map(lambda t: t.to(device))

    def map(self, fn) -> Batch:
        """A batch with ``fn`` applied to every tensor it holds (each (B, ...): rows stay aligned)."""
        opt = {k: (fn(v) if v is not None else None) for k, v in self._optional().items()}
        return Batch(fn(self.x), fn(self.index), **opt)

    def _optional(self) -> dict:
        return {"mask": self.mask, "y": self.y, "weight": self.weight, "label_weight": self.label_weight}

    @classmethod
    def of(cls, x: Tensor) -> Batch:
        """A batch of all of x, indices 0..N-1."""
        return cls(x, torch.arange(x.shape[0], device=x.device))
