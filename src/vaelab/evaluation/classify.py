"""Test error of a semi-supervised model's classifier q(y|x) (Kingma et al. 2014, Table 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import DataError


@dataclass
class ClassificationResult:
    """error: the fraction of points whose argmax_y q(y|x) is not their label; se: its binomial
    standard error sqrt(e (1 - e) / n); n: points scored."""

    error: float
    se: float
    n: int


@torch.no_grad()
def classification_error(model, x: Tensor, y: Tensor, batch_size: int = 1000) -> ClassificationResult:
    """The error of argmax_y q(y|x) on (x, y), in [0, 1].

    Args:
        model: a semi-supervised :class:`~vaelab.models.VAE` (with ``classify``).
        x: (N, *x_shape) points; y: (N,) their labels 0..C-1. Pass the split you mean to report:
            `vaelab evaluate` uses the one it evaluates (the test split by default).
    Raises:
        DataError: x and y of different lengths.
    """
    _check_labels(x, y)
    was = model.training
    model.eval()
    wrong = 0
    for start in range(0, x.shape[0], batch_size):
        pred = model.classify(x[start : start + batch_size]).argmax(-1)
        wrong += int((pred != y[start : start + batch_size].to(pred.device)).sum())
    model.train(was)
    n = x.shape[0]
    err = wrong / max(n, 1)
    return ClassificationResult(err, math.sqrt(err * (1 - err) / max(n, 1)), n)


@dataclass
class LabelUse:
    """nats: mean over points of log p(x|z, y) - log p(x|z, y'); se: its standard error; n: points."""

    nats: float
    se: float
    n: int


@torch.no_grad()
def decoder_label_use(model, x: Tensor, y: Tensor, seed: int = 0) -> LabelUse:
    """How much a labelled model's decoder reads y, in nats per point: the mean over points of
    log p(x | z, y) - log p(x | z, y'), z = E_q[z|x, y] and y' a label drawn uniformly from the other
    classes. Near 0: the decoder ignores the label (z carries the class), so M2's unlabelled bound
    gives q(y|x) little signal; large: generation is class-conditional.

    Raises:
        DataError: x and y of different lengths.
    """
    _check_labels(x, y)
    g = torch.Generator().manual_seed(seed)
    other = (y + torch.randint(1, model.n_classes, y.shape, generator=g)) % model.n_classes  # (N,) != y
    z = model.latent.mean(model.posterior(x, y))  # (N, *event)
    diff = model.likelihood.log_prob(model.decode(z, y=y), x) - model.likelihood.log_prob(model.decode(z, y=other), x)
    n = x.shape[0]
    return LabelUse(float(diff.mean()), float(diff.std() / math.sqrt(max(n, 1))), n)


def _check_labels(x: Tensor, y: Tensor) -> None:
    if y.shape != (x.shape[0],):
        raise DataError(f"labels: expected shape ({x.shape[0]},), got {tuple(y.shape)}")
