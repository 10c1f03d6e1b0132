"""Classical variational inference, no neural networks: coordinate-ascent VI (CAVI), stochastic VI
with natural gradients (SVI) and EM for Gaussian mixtures, as scikit-learn estimators (``BaseEstimator``,
``DensityMixin``: ``fit(X)``, fitted attributes ending in ``_``, ``elbo_`` trace, ``predict`` / ``score``;
``clone``, pipelines and ``GridSearchCV`` work, and scikit-learn's ``check_estimator`` passes)."""

from ._base import MixtureFitter, step_sizes
from .bayesian_gmm import BayesianGaussianMixture
from .em import GaussianMixture
from .unit_variance import UnitVarianceMixture

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "MixtureFitter", "UnitVarianceMixture", "step_sizes"]
