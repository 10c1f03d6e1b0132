"""The single-sample ELBO on a data set, with a fixed seed (per-epoch validation, reports)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..numerics import denormals_flushed, eval_rows
from ._labels import labels_of
from .loglik import fixed_prior


@torch.no_grad()
def evaluate_elbo(model, x: Tensor, kl: str = "mc", batch_size: int = 1000, seed: int = 0, y: Tensor | None = None) -> float:
    """Single-sample ELBO averaged over x (nats per point), its RNG seeded; NaN for empty x.

    Args:
        model: a VAE; x: (N, *x_shape) data.
        kl: "analytic" (closed-form KL, Kingma & Welling 2014 eq. 7; one layer only) or "mc".
        y: (N,) labels for a conditional model (the ELBO on log p(x|y)); a semi-supervised model
            without y is scored on log p(x) with y ~ q(y|x) sampled.
    """
    if x.shape[0] == 0:
        return float("nan")
    was = model.training
    model.eval()
    total, batch_size = 0.0, eval_rows(model, batch_size)
    with torch.random.fork_rng(devices=[]), denormals_flushed(x.device), fixed_prior(model):
        torch.manual_seed(seed)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            terms = model.log_weight_terms(xb, 1, **labels_of(y, start, batch_size))
            total += float((terms.log_px_z - terms.kl(analytic=kl == "analytic")).sum())
    model.train(was)
    return total / x.shape[0]
