"""A learned conditional prior p(z|y) = N(mu_y, diag sigma_y^2), one Gaussian per class (the
conditional prior network of Sohn et al. 2015, Sec. 4.2, reduced to a lookup for a one-hot y)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from ..errors import ConfigError
from .gaussian_mixture import DiagonalGaussianMixture


class GivenPrior:
    """p(z | y) for a batch of labels: the interface :class:`~vaelab.models.terms.LogWeightTerms` reads."""

    has_analytic_kl = True

    def __init__(self, dist: Distribution):
        self.dist = dist  # batch (B,), event (D,)

    def log_prob(self, z: Tensor) -> Tensor:
        """z (..., B, D) -> (..., B) nats."""
        return self.dist.log_prob(z)

    def analytic_kl(self, q: Distribution) -> Tensor:
        """KL(q(z|x, y) || p(z|y)) per point, (B,) nats."""
        return kl_divergence(q, self.dist)


class ClassConditionalPrior(nn.Module):
    """p(z|y), y in 0..C-1, with a learned mean and log-variance per class (initialised at N(0, I)).

    Args:
        latent: the top latent family (Gaussian, real support).
        n_classes: C.
    Raises:
        ConfigError: a latent that is not a Gaussian vector.
    """

    def __init__(self, latent, n_classes: int):
        super().__init__()
        if latent.support != "real" or len(latent.event_shape) != 1:
            raise ConfigError("model.conditional_prior needs a Gaussian latent (real vectors)")
        d = latent.event_shape[0]
        self.event_shape = (d,)
        self.loc = nn.Parameter(torch.zeros(n_classes, d))
        self.log_var = nn.Parameter(torch.zeros(n_classes, d))

    def given(self, y: Tensor) -> GivenPrior:
        """p(z | y) for labels y (B,): batch (B,), event (D,)."""
        return GivenPrior(Independent(Normal(self.loc[y], (0.5 * self.log_var[y]).exp()), 1))

    def marginal(self, log_py: Tensor | None = None) -> DiagonalGaussianMixture:
        """p(z) = sum_y p(y) p(z|y), batch (), event (D,); log p(z) by matrix products.

        Args:
            log_py: (C,) log class probabilities; uniform (M2's p(y)) when None.
        """
        logits = torch.zeros_like(self.loc[:, 0]) if log_py is None else log_py
        return DiagonalGaussianMixture(logits, self.loc, self.log_var)

    @torch.no_grad()
    def sample(self, y: Tensor) -> Tensor:
        """One z ~ p(z | y_i) per label, (B, D)."""
        return self.given(y).dist.sample()
