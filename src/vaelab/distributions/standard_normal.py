"""Standard normal prior N(0, I)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from .latents import LOG_2PI, DiagonalNormal
from .prior import PRIORS, Prior


@PRIORS.register("standard_normal")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I). KL against a diagonal Gaussian is analytic (Kingma & Welling 2014, App. B)."""

    loc: Tensor  # buffers, event-shaped
    scale: Tensor

    has_analytic_kl = True

    def __init__(self, latent):
        super().__init__(latent)
        # Buffers (not parameters) so .to(device) moves them and the optimizer ignores them.
        self.register_buffer("loc", torch.zeros(self.event_shape))
        self.register_buffer("scale", torch.ones(self.event_shape))

    def distribution(self) -> Independent:
        return Independent(Normal(self.loc, self.scale, validate_args=False), 1)

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, I) = -1/2 (|z|^2 + D log 2 pi) in nats: z (..., *event_shape) -> (...).

        Written out: three operations on the (S, B, D) samples, where ``Normal.log_prob`` with a unit
        scale spends seven; a test checks it against ``distribution().log_prob``."""
        event_dims = tuple(range(-len(self.event_shape), 0))
        return -0.5 * (z.pow(2).sum(event_dims) + math.prod(self.event_shape) * LOG_2PI)

    def analytic_kl(self, q: Distribution) -> Tensor:
        """KL(N(mu, diag s^2) || N(0, I)) = 1/2 sum_d (mu^2 + s^2 - 1 - log s^2), shape q.batch_shape, nats.

        Written out because it takes half the operations of torch's general Normal-Normal KL,
        which is measurable per training step; a test checks it against ``kl_divergence``.
        """
        if not (isinstance(q, Independent) and isinstance(q.base_dist, Normal)):
            return super().analytic_kl(q)
        if tuple(q.event_shape) != self.event_shape:
            raise ValueError(f"analytic KL: q has event shape {tuple(q.event_shape)}, the prior {self.event_shape}")
        base = q.base_dist
        logvar = base.logvar if isinstance(base, DiagonalNormal) else 2 * base.scale.log()  # log s^2
        return 0.5 * (base.loc.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
