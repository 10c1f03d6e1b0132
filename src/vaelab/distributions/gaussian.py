"""Diagonal Gaussians parameterized by mean and log-variance."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Independent, Normal


def diag_gaussian(mean: Tensor, logvar: Tensor) -> Independent:
    """N(mean, diag exp(logvar)) with the last axis as event axis.

    Args:
        mean, logvar: shape (..., D).
    Returns:
        ``Independent(Normal)`` with batch shape (...) and event shape (D,).
    """
    return Independent(Normal(mean, torch.exp(0.5 * logvar), validate_args=False), 1)


def diag_gaussian_scale(mean: Tensor, scale: Tensor) -> Independent:
    """N(mean, diag scale^2) with the last axis as event axis; shapes (..., D)."""
    return Independent(Normal(mean, scale, validate_args=False), 1)


def reparameterize(q: Independent, n_samples: int, generator: torch.Generator | None = None) -> Tensor:
    """Reparameterized samples z = mu + sigma * eps (Kingma & Welling 2014, eq. 10).

    Same as ``q.rsample((n_samples,))`` but accepts a ``torch.Generator`` so evaluations are
    reproducible without touching the global RNG.

    Returns:
        z of shape (K, *batch_shape, D), differentiable w.r.t. the parameters of q.
    """
    base = q.base_dist
    shape = (n_samples, *base.loc.shape)
    eps = torch.randn(shape, generator=generator, device=base.loc.device, dtype=base.loc.dtype)
    return base.loc + base.scale * eps  # (K, B, D)


def rsample_one(q: Independent, generator: torch.Generator | None = None) -> Tensor:
    """One reparameterized sample per batch element, shape q.batch_shape + event_shape."""
    base = q.base_dist
    eps = torch.randn(base.loc.shape, generator=generator, device=base.loc.device, dtype=base.loc.dtype)
    return base.loc + base.scale * eps
