"""Classical variational inference, no neural networks: coordinate-ascent VI (CAVI), stochastic VI
with natural gradients (SVI) and EM for Gaussian mixtures, with a scikit-learn-style API
(``fit(X)``, fitted attributes ending in ``_``, ``elbo_`` trace, ``predict`` / ``score``)."""

from ._base import MixtureFitter, step_sizes
from .bayesian_gmm import BayesianGaussianMixture
from .em import GaussianMixture
from .unit_variance import UnitVarianceMixture

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "MixtureFitter", "UnitVarianceMixture", "step_sizes"]
