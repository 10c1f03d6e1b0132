"""Priors p(z), the Gaussian posterior q(z|x), and decoder likelihoods p(x|z).

Densities come from ``torch.distributions``; this package only builds them from network
outputs and trainable parameters. A new prior is one file here plus one line in ``PRIORS``.
"""

from .gaussian import diag_gaussian, reparameterize, rsample_one
from .likelihoods import BernoulliLikelihood, GaussianLikelihood, Likelihood, build_likelihood
from .mog import MixtureOfGaussiansPrior
from .prior import Prior
from .standard_normal import StandardNormalPrior
from .vamp import VampPrior

PRIORS = {
    "standard_normal": StandardNormalPrior,
    "mog": MixtureOfGaussiansPrior,
    "vamp": VampPrior,
}

__all__ = [
    "PRIORS",
    "BernoulliLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "MixtureOfGaussiansPrior",
    "Prior",
    "StandardNormalPrior",
    "VampPrior",
    "build_likelihood",
    "diag_gaussian",
    "reparameterize",
    "rsample_one",
]
