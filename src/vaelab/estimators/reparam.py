"""The reparameterization gradient: differentiate the bound itself (Kingma & Welling 2014;
Burda et al. 2016, eq. 14)."""

from __future__ import annotations

from ..objectives import combine
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


@ESTIMATORS.register("reparam")
class Reparam(Estimator):
    """Pathwise gradient of the objective; PIWAE's encoder gets its own bound (MIWAE)."""

    graph_safe = True  # device work only: train.cuda_graphs may capture it

    shapes_elbo = True

    def __call__(self, terms, objective) -> BoundEstimate:
        log_w = terms.log_w  # (S, B)
        s = log_w.shape[0]
        bound = combine(log_w, objective.terms(s))  # (B,)
        inf_terms = objective.inference_terms(s)
        if inf_terms == objective.terms(s):
            return BoundEstimate(bound.detach(), bound, bound)
        inf = combine(log_w, inf_terms)
        return BoundEstimate(bound.detach(), straight_through(inf.detach(), inf), bound)
