"""Sticking the landing (Roeder et al. 2017): the encoder differentiates the bound of the
log-weights with log q's parameters detached, dropping the score term, whose expectation is zero
for the ELBO. For IWAE-type bounds with K > 1 this is biased (Tucker et al. 2019, Sec. 4): use
``dreg`` there."""

from __future__ import annotations

import warnings

from ..objectives import combine
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


@ESTIMATORS.register("stl")
class STL(Estimator):
    """Path-only encoder gradient; the decoder's gradient is unchanged.

    Warns (UserWarning) when the encoder's bound has a group of K > 1 samples (IWAE, MIWAE, PIWAE,
    CIWAE with beta < 1): the dropped score term no longer has zero mean there (Tucker et al. 2019,
    Sec. 3), so the gradient is biased; 'dreg' is the unbiased path-only estimator for those bounds.
    """

    graph_safe = True  # device work only: train.cuda_graphs may capture it

    def check_objective(self, objective, n_samples: int) -> None:
        if objective.encoder_is_multi_sample(n_samples):
            warnings.warn(
                f"estimator 'stl' is biased for {type(objective).registry_name} with K = {n_samples} > 1 "
                "samples per group (Tucker et al. 2019, Sec. 3); use 'dreg' for an unbiased path-only gradient "
                "('reparam' where the prior depends on the encoder, e.g. vamp)",
                UserWarning,
                stacklevel=2,
            )

    def __call__(self, terms, objective) -> BoundEstimate:
        log_w, log_w_stopped = terms.log_w, terms.log_w_stopped  # (S, B) each, equal values
        s = log_w.shape[0]
        bound = combine(log_w, objective.terms(s)).detach()
        inf_terms = objective.inference_terms(s)
        surrogate = straight_through(combine(log_w, inf_terms).detach(), combine(log_w_stopped, inf_terms))
        if inf_terms == objective.terms(s):
            # log_w_stopped has the same theta-gradient as log_w, so one surrogate serves both groups
            return BoundEstimate(bound, surrogate, surrogate)
        return BoundEstimate(bound, surrogate, combine(log_w, objective.terms(s)))
