"""Latent families q(z|x), priors p(z) and decoder likelihoods p(x|z), each with its registry.

Densities come from ``torch.distributions``; this package only builds them from network
outputs and trainable parameters. A new prior, latent family or likelihood is one file here
with one decorator (``@PRIORS.register("name")``); ``import_submodules`` below imports it.
"""

from ..registry import import_submodules
from .discrete import BernoulliPrior, CategoricalPrior
from .gaussian_mixture import DiagonalGaussianMixture
from .iaf import IAFLatent
from .latents import (
    LATENTS,
    BernoulliLatent,
    CategoricalLatent,
    GaussianLatent,
    LatentFamily,
    RelaxedBernoulliLatent,
    RelaxedCategoricalLatent,
)
from .likelihoods import LIKELIHOODS, BernoulliLikelihood, GaussianLikelihood, Likelihood, bernoulli_log_prob
from .mog import MixtureOfGaussiansPrior
from .planar import PlanarLatent
from .prior import PRIORS, Prior
from .standard_normal import StandardNormalPrior
from .stopped import register_stopped, stopped
from .tokens import TokenLikelihood
from .vamp import VampPrior

__all__ = [
    "LATENTS",
    "LIKELIHOODS",
    "PRIORS",
    "BernoulliLatent",
    "BernoulliLikelihood",
    "BernoulliPrior",
    "CategoricalLatent",
    "CategoricalPrior",
    "DiagonalGaussianMixture",
    "GaussianLatent",
    "GaussianLikelihood",
    "IAFLatent",
    "LatentFamily",
    "Likelihood",
    "MixtureOfGaussiansPrior",
    "PlanarLatent",
    "Prior",
    "RelaxedBernoulliLatent",
    "RelaxedCategoricalLatent",
    "StandardNormalPrior",
    "TokenLikelihood",
    "VampPrior",
    "bernoulli_log_prob",
    "register_stopped",
    "stopped",
]

import_submodules(__name__)  # a new piece is one new file in this folder (registry.py)
