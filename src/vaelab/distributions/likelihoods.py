"""Decoder likelihoods p(x|z): turn decoder-network outputs into a distribution over x."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from ..errors import ConfigError, DataError


class Likelihood(nn.Module):
    """Maps decoder outputs of shape (..., n_outputs) to p(x|z) with event shape (x_dim,)."""

    def __init__(self, x_dim: int):
        super().__init__()
        self.x_dim = x_dim

    @property
    def n_outputs(self) -> int:
        """How many numbers per data point the decoder network must output."""
        return self.x_dim

    def distribution(self, params: Tensor) -> Distribution:
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """E[x|z], shape (..., x_dim)."""
        return self.distribution(params).mean

    def check_data(self, x: Tensor, name: str = "data") -> None:
        """Raise :class:`DataError` if x is outside this likelihood's support."""


class BernoulliLikelihood(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logit_d)); x must be binary {0, 1}."""

    def distribution(self, params: Tensor) -> Independent:
        return Independent(Bernoulli(logits=params, validate_args=False), 1)

    def check_data(self, x: Tensor, name: str = "data") -> None:
        nonbinary = ((x != 0) & (x != 1)).sum().item()
        if nonbinary:
            raise DataError(
                f"{name}: Bernoulli decoder needs binary data in {{0, 1}} but {nonbinary} values are not "
                f"(range [{x.min().item():.3g}, {x.max().item():.3g}]); set binarize = \"dynamic\" for "
                "intensities in [0, 1], or use likelihood = \"gaussian\""
            )


class GaussianLikelihood(Likelihood):
    """p(x|z) = N(x; mu(z), diag sigma^2) with fixed, per-dimension or per-datapoint variance.

    Args:
        x_dim: D.
        variance: "fixed" (sigma^2 = ``fixed_variance``, default 1 as in the two-Gaussian seed),
            "per_dim" (one trainable log sigma^2 per dimension, shared by all data points) or
            "per_datapoint" (the decoder also outputs log sigma^2(z), Kingma & Welling 2014 App. C.2).
        fixed_variance: sigma^2 when ``variance == "fixed"``.
        min_logvar: learned log-variances are clamped below at this value, because an
            unbounded Gaussian likelihood can grow without limit on a point it fits exactly.
    """

    def __init__(self, x_dim: int, variance: str = "fixed", fixed_variance: float = 1.0,
                 min_logvar: float = -9.0):
        super().__init__(x_dim)
        if variance not in ("fixed", "per_dim", "per_datapoint"):
            raise ConfigError(
                f"decoder_variance must be 'fixed', 'per_dim' or 'per_datapoint', got {variance!r}"
            )
        if fixed_variance <= 0:
            raise ConfigError(f"fixed_variance must be > 0, got {fixed_variance}")
        self.variance = variance
        self.min_logvar = min_logvar
        if variance == "per_dim":
            self.logvar = nn.Parameter(torch.zeros(x_dim))
        else:
            self.register_buffer("logvar", torch.full((x_dim,), math.log(fixed_variance)))

    @property
    def n_outputs(self) -> int:
        return 2 * self.x_dim if self.variance == "per_datapoint" else self.x_dim

    def distribution(self, params: Tensor) -> Independent:
        if self.variance == "per_datapoint":
            mean, logvar = params.chunk(2, dim=-1)
        else:
            mean, logvar = params, self.logvar
        if self.variance != "fixed":
            logvar = logvar.clamp(min=self.min_logvar)
        return Independent(Normal(mean, torch.exp(0.5 * logvar), validate_args=False), 1)

    def mean(self, params: Tensor) -> Tensor:
        return params[..., : self.x_dim]


def build_likelihood(name: str, x_dim: int, variance: str = "fixed", fixed_variance: float = 1.0) -> Likelihood:
    """Likelihood from its config name ("bernoulli" or "gaussian")."""
    if name == "bernoulli":
        return BernoulliLikelihood(x_dim)
    if name == "gaussian":
        return GaussianLikelihood(x_dim, variance=variance, fixed_variance=fixed_variance)
    raise ConfigError(f"likelihood must be 'bernoulli' or 'gaussian', got {name!r}")
