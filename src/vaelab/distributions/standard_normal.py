"""Standard normal prior N(0, I)."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal

from .prior import Prior


class StandardNormalPrior(Prior):
    """p(z) = N(0, I). KL against a diagonal Gaussian is analytic (Kingma & Welling 2014, App. B)."""

    has_analytic_kl = True

    def __init__(self, z_dim: int, **_unused):
        super().__init__(z_dim)
        # Buffers (not parameters) so .to(device) moves them and the optimizer ignores them.
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.ones(z_dim))

    def distribution(self) -> Independent:
        return Independent(Normal(self.loc, self.scale, validate_args=False), 1)
