"""Labels for conditional and semi-supervised models: the balanced labelled subset and the batches
that mix labelled and unlabelled points (Kingma et al. 2014, Sec. 4.1; the authors' nips14-ssl code)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import DataError
from .batch import Batch
from .batches import _on_device, iterate_batches


def n_classes(labels: Tensor | None) -> int:
    """C = max label + 1 (labels are 0..C-1).

    Raises:
        DataError: no labels, or labels that are not non-negative integers.
    """
    if labels is None or labels.numel() == 0:
        raise DataError("this model reads class labels, but the data set has none; use a labelled data set")
    if labels.dtype.is_floating_point or int(labels.min()) < 0:
        raise DataError("class labels must be integers 0..C-1")
    return int(labels.max()) + 1


def balanced_subset(labels: Tensor, n_labelled: int, seed: int) -> Tensor:
    """Positions of ``n_labelled`` training points, the same number from each class, drawn with ``seed``.

    Args:
        labels: (N,) int64 training labels 0..C-1.
        n_labelled: how many labels to keep in all; a multiple of C (0 = every label).
    Returns:
        (n_labelled,) sorted int64 positions into the training split (the validation and test splits
        are separate tensors, so the subset is disjoint from them by construction).
    Raises:
        DataError: ``n_labelled`` not a multiple of C, or a class with fewer points than its share.
    """
    if n_labelled == 0 or n_labelled == labels.shape[0]:
        return torch.arange(labels.shape[0])
    c = n_classes(labels)
    if n_labelled < 0 or n_labelled % c:
        raise DataError(f"data.labelled = {n_labelled} must be a positive multiple of the {c} classes (balanced)")
    per, g = n_labelled // c, torch.Generator().manual_seed(seed)
    picks = []
    for k in range(c):
        members = torch.nonzero(labels == k).flatten()
        if members.numel() < per:
            raise DataError(f"class {k} has {members.numel()} training points, fewer than the {per} labels per class asked")
        picks.append(members[torch.randperm(members.numel(), generator=g)[:per]])
    return torch.cat(picks).sort().values


def labelled_batches(
    x: Tensor, labels: Tensor, batch_size: int, generator: torch.Generator | None, dynamic_binarization: bool = False
) -> Iterator[Batch]:
    """:func:`iterate_batches` with every point's label attached (a conditional VAE: all labels observed)."""
    for b in iterate_batches(x, batch_size, generator, True, dynamic_binarization):
        b.y = labels[b.index]
        yield b


def semi_supervised_batches(
    x: Tensor,
    labels: Tensor,
    labelled: Tensor,
    batch_size: int,
    labelled_batch: int,
    generator: torch.Generator | None,
    dynamic_binarization: bool = False,
) -> Iterator[Batch]:
    """One pass over the unlabelled points, each batch joined by ``labelled_batch`` labelled points.

    The unlabelled points (all training points outside ``labelled``) are shuffled and cut into
    batches of ``batch_size``; the labelled points are drawn without replacement in a fresh order
    each time they run out. Row weights make the weighted batch mean an unbiased estimate of the
    mean over all N = N_u + N_l training points (over-sampling the labelled ones changes the
    variance only): ``weight`` = (N_u / N) B / B_u on an unlabelled row, (N_l / N) B / B_l on a
    labelled one; ``label_weight`` = B / B_l on a labelled row, 0 otherwise. Labels of the
    unlabelled rows are -1. Every draw comes from ``generator``, so a pass replays from its state.

    Args:
        labelled: positions of the labelled training points (:func:`balanced_subset`).
        labelled_batch: B_l; 0 spreads the labelled points over the pass, ceil(N_l / batches)
            per batch, as the authors' code does.
    """
    n = x.shape[0]
    is_lab = torch.zeros(n, dtype=torch.bool)
    is_lab[labelled] = True
    unlab = torch.nonzero(~is_lab).flatten()  # (N_u,)
    n_l, n_u = labelled.numel(), unlab.numel()
    if n_u == 0:  # every label kept: plain labelled batches, weights 1
        yield from labelled_batches(x, labels, batch_size, generator, dynamic_binarization)
        return
    order = unlab[torch.randperm(n_u, generator=generator)]
    b_l = labelled_batch or max(1, math.ceil(n_l / math.ceil(n_u / batch_size)))
    binarize_gen = _on_device(generator, x.device) if dynamic_binarization else None
    pool: list[Tensor] = []
    for rows_u in order.split(batch_size):
        rows_l = _take(pool, labelled, b_l, generator)
        index = torch.cat([rows_u, rows_l])  # (B,) unlabelled first
        b_u, b = rows_u.numel(), rows_u.numel() + b_l
        weight = torch.cat([torch.full((b_u,), n_u / n * b / b_u), torch.full((b_l,), n_l / n * b / b_l)])
        label_weight = torch.cat([torch.zeros(b_u), torch.full((b_l,), b / b_l)])
        y = torch.cat([torch.full((b_u,), -1, dtype=torch.long), labels[rows_l]])
        xb = x[index.to(x.device)]
        if dynamic_binarization:
            xb = torch.bernoulli(xb, generator=binarize_gen)
        dev = x.device
        yield Batch(xb, index, y=y.to(dev), weight=weight.to(dev), label_weight=label_weight.to(dev))


def _take(pool: list[Tensor], labelled: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """The next k labelled positions, refilling ``pool`` with a fresh permutation when it runs out."""
    out = []
    while k:
        if not pool or pool[0].numel() == 0:
            pool[:] = [labelled[torch.randperm(labelled.numel(), generator=generator)]]
        take = pool[0][:k]
        pool[0] = pool[0][k:]
        out.append(take)
        k -= take.numel()
    return torch.cat(out)
