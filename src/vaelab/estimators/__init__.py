"""Gradient estimators for importance-weighted bounds: reparameterization, STL and DReG.

An estimator turns log-weights into a :class:`BoundEstimate`: the true bound (what is logged)
and, for each of the two networks, a surrogate of the form ``value + (s - s.detach())`` whose
value equals the bound and whose gradient is the estimator's.
"""

from .surrogates import ESTIMATORS, BoundEstimate, dreg_iwae_surrogate, estimate_bound

__all__ = ["ESTIMATORS", "BoundEstimate", "dreg_iwae_surrogate", "estimate_bound"]
