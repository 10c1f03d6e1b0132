"""The score-function (likelihood-ratio, REINFORCE) gradient for any latent family.

For a bound f(log w_1..S) with z_s ~ q(z|x) independent, grad_phi E[f] = E[grad_phi f] +
E[f grad_phi log q(z|x)] (Williams 1992; for VAEs e.g. Mnih & Gregor 2014, eq. 3). Per term of
the bound, each sample's learning signal is the value of the group it belongs to (for the ELBO,
its own log-weight / S; for IWAE-K, the K-sample bound): the surrogate is
``f + sum_s stop(signal_s) log q(z_s|x)``. No baseline: variance reduction (baselines, NVIL,
VIMCO) builds on this.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..objectives import combine, grouped
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def spread(per_group: Tensor, s: int) -> Tensor:
    """(m, B) per-group values -> (S, B): group g's value for each of its S/m consecutive samples."""
    m, b = per_group.shape
    return per_group.unsqueeze(1).expand(m, s // m, b).reshape(s, b)


def learning_signals(log_w: Tensor, terms) -> Tensor:
    """Per-sample learning signals (S, B), detached: sum_j (c_j / m_j) bound of z_s's group in term j."""
    s = log_w.shape[0]
    out = torch.zeros_like(log_w)
    for c, m, alpha in terms:
        out = out + spread(grouped(log_w.detach(), m, alpha) * (c / m), s)
    return out


@ESTIMATORS.register("reinforce")
class Reinforce(Estimator):
    """Plain likelihood-ratio estimator; works with every latent family (samples carry no gradient).

    Subclasses change only :meth:`signals` (baselines, leave-one-out, VIMCO)."""

    pathwise = False
    #: for the ELBO, drop the zero-mean pathwise -grad_phi log q term from phi's gradient (subclasses
    #: whose signal is rescaled, where that term would stay unscaled beside it)
    elbo_score_only = False

    def check(self, model) -> None:
        super().check(model)  # pathwise = False: refuses only families scored at their own samples

    def signals(self, log_w: Tensor, terms) -> Tensor:
        """Detached per-sample learning signals (S, B) multiplying grad log q(z_s|x)."""
        return learning_signals(log_w, terms)

    def __call__(self, terms, objective) -> BoundEstimate:
        log_w, log_q = terms.log_w, terms.log_qz  # (S, B); z is a plain sample: no path gradient
        s = log_w.shape[0]
        bound = combine(log_w, objective.terms(s))  # gradient through log p and log q's parameters
        inf_terms = objective.inference_terms(s)
        score = (self.signals(log_w.detach(), inf_terms) * log_q).sum(dim=0)  # (B,)
        if self.elbo_score_only and inf_terms == [(1.0, s)]:
            # the ELBO: E[grad_phi log q(z|x)] = 0, so phi's gradient may be the score term alone
            return BoundEstimate(bound.detach(), straight_through(bound.detach(), score), bound)
        if inf_terms == objective.terms(s):
            surrogate = straight_through(bound, score)  # score has no theta-dependence: serves both
            return BoundEstimate(bound.detach(), surrogate, surrogate)
        return BoundEstimate(bound.detach(), straight_through(combine(log_w, inf_terms), score), bound)
