"""Priors for discrete latents: factorized Bernoulli and independent categoricals."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, OneHotCategorical, RelaxedBernoulli, RelaxedOneHotCategorical

from ..errors import ConfigError
from .prior import PRIORS, Prior


def _logits(shape, value: float, learned: bool, module: nn.Module) -> None:
    logits = torch.full(shape, value)
    if learned:
        module.logits = nn.Parameter(logits)
    else:
        module.register_buffer("logits", logits)


def _bind_latent(prior: Prior, latent) -> None:
    # a relaxed latent's temperature is read at call time (it may be annealed); the latent is
    # owned by the VAE, so it is kept without registering it as a submodule here
    object.__setattr__(prior, "_latent", latent if latent.relaxed else None)
    prior.has_analytic_kl = not latent.relaxed


@PRIORS.register("bernoulli")
class BernoulliPrior(Prior):
    """p(z) = prod_d Ber(z_d; p_d) on binary latents, e.g. the Ber(0.5) prior of a binary latent
    space (seed 002; Mnih & Gregor 2014 learn it). With a relaxed-Bernoulli latent the density is
    the binary Concrete with the same logits and the latent's temperature (Maddison et al. 2017).

    Args:
        p: prior probability of z_d = 1 (the initial value when learned).
        learned: train the logits.
    """

    supports = ("binary", "unit_interval")
    has_analytic_kl = True

    def __init__(self, latent, p: float = 0.5, learned: bool = False):
        super().__init__(latent)
        if not 0 < p < 1:
            raise ConfigError(f"model.prior.p must be in (0, 1), got {p}")
        _logits(self.event_shape, math.log(p) - math.log1p(-p), learned, self)
        _bind_latent(self, latent)

    def distribution(self):
        if self._latent is not None:
            return Independent(RelaxedBernoulli(self._latent.temperature, logits=self.logits, validate_args=False), 1)
        return Independent(Bernoulli(logits=self.logits, validate_args=False), 1)


@PRIORS.register("categorical")
class CategoricalPrior(Prior):
    """p(z) = prod_d Cat(z_d; pi_d) on one-hot latents (event (D, C)); uniform pi by default.
    With a relaxed-categorical latent, the Concrete density with the latent's temperature.

    Args:
        learned: train the class logits (initialized uniform).
    """

    supports = ("one_hot", "simplex")
    has_analytic_kl = True

    def __init__(self, latent, learned: bool = False):
        super().__init__(latent)
        _logits(self.event_shape, 0.0, learned, self)
        _bind_latent(self, latent)

    def distribution(self):
        if self._latent is not None:
            return Independent(
                RelaxedOneHotCategorical(self._latent.temperature, logits=self.logits, validate_args=False), 1
            )
        return Independent(OneHotCategorical(logits=self.logits, validate_args=False), 1)
