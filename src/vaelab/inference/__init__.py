"""Inference as optimization for deep generative models: per-datapoint variational parameters,
their gradient refinement, and non-amortized SVI (seed 001; Hoffman et al. 2013). The
semi-amortized estimator (Kim et al. 2018) is ``ESTIMATORS["savae"]``."""

from .local import check_refinable, encoder_params, local_elbo, refine
from .svi import LocalPosteriors, NonAmortizedResult, fit_non_amortized

__all__ = [
    "LocalPosteriors",
    "NonAmortizedResult",
    "check_refinable",
    "encoder_params",
    "fit_non_amortized",
    "local_elbo",
    "refine",
]
