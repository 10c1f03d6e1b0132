"""Mini-batch iteration over an in-memory tensor."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .batch import Batch


def iterate_batches(x: Tensor, batch_size: int, generator: torch.Generator | None = None,
                    shuffle: bool = True, dynamic_binarization: bool = False) -> Iterator[Batch]:
    """Yield :class:`Batch` es of at most ``batch_size`` points of a (N, *x_shape) tensor, one pass.

    Indexing a tensor directly avoids ``DataLoader``'s per-batch Python overhead, which is a
    measurable share of an epoch for MLPs of this size. With ``dynamic_binarization`` each
    batch is resampled as Bernoulli(x) (Burda et al. 2016, Sec. 5.2).
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        xb = x[index]
        if dynamic_binarization:
            xb = torch.bernoulli(xb, generator=generator)
        yield Batch(xb, index)
