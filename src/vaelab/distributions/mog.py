"""Mixture-of-Gaussians prior with trainable means/variances and fixed or trainable weights."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .gaussian_mixture import DiagonalGaussianMixture
from .prior import PRIORS, Prior


@PRIORS.register("mog")
class MixtureOfGaussiansPrior(Prior):
    """p(z) = sum_c pi_c N(z; m_c, diag s_c^2) (e.g. Tomczak & Welling 2018, Sec. 2.2).

    Args:
        components: C, the number of mixture components.
        weights: "fixed" (pi given by ``fixed_weights``, uniform by default, i.e. p_prior = 0.5
            for C = 2) or "trainable" (pi = softmax of trainable logits, initialized uniform).
        fixed_weights: optional length-C mixture weights (must be positive and sum to 1).
        init_scale: the means are initialized N(0, init_scale^2), the variances at 1.

    KL(q || p) has no closed form, so training uses the Monte Carlo KL. log p(z) is two matrix
    products (:class:`~vaelab.distributions.gaussian_mixture.DiagonalGaussianMixture`).
    """

    def __init__(
        self, latent, components: int = 2, weights: str = "fixed", fixed_weights: tuple = (), init_scale: float = 1.0
    ):
        super().__init__(latent)
        n_components, z_dim = components, self.z_dim
        if n_components < 1:
            raise ConfigError(f"model.prior.components must be >= 1, got {n_components}")
        if weights not in ("fixed", "trainable"):
            raise ConfigError(f"model.prior.weights must be 'fixed' or 'trainable', got {weights!r}")
        self.n_components = n_components
        self.means = nn.Parameter(init_scale * torch.randn(n_components, z_dim))  # (C, D)
        self.logvars = nn.Parameter(torch.zeros(n_components, z_dim))  # (C, D)
        if fixed_weights:
            w = torch.as_tensor(list(fixed_weights), dtype=torch.float32)
            if w.shape != (n_components,) or (w <= 0).any() or abs(float(w.sum()) - 1) > 1e-5:
                raise ConfigError(
                    f"model.prior.fixed_weights must be {n_components} positive numbers summing to 1, "
                    f"got {list(fixed_weights)}"
                )
        else:
            w = torch.full((n_components,), 1.0 / n_components)
        logits = torch.log(w)
        if weights == "trainable":
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    @property
    def weights(self) -> torch.Tensor:
        """Mixture weights pi, shape (C,)."""
        return torch.softmax(self.logits, dim=0)

    def distribution(self) -> DiagonalGaussianMixture:
        return DiagonalGaussianMixture(self.logits, self.means, self.logvars)
