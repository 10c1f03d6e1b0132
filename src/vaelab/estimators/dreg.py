"""Doubly reparameterized gradients (Tucker et al. 2019, eq. 7).

For one IWAE-K group, grad_phi IWAE = E[sum_k w~_k^2 d log w_k / d h_k  d h_k / d phi], the
surrogate sum_k stop(w~_k^2) log_w_stopped_k with w~ = softmax_k(log_w). A bound that is a sum
of MIWAE terms (``objectives.base``) gets the sum of their group-wise surrogates: the ELBO
(groups of one, w~ = 1) reduces to STL, MIWAE averages over groups, CIWAE mixes by beta.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..objectives import combine, group
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def dreg_iwae_surrogate(log_w: Tensor, log_w_stopped: Tensor) -> Tensor:
    """DReG surrogate for IWAE-K per data point (Tucker et al. 2019, eq. 7).

    Args:
        log_w: (..., K, B) log-weights (only their values are used).
        log_w_stopped: (..., K, B) log-weights with q's parameters detached.
    Returns:
        (..., B) tensor sum_k stop(w~_k^2) log_w_stopped_k (its value is not a bound).
    """
    w_norm = torch.softmax(log_w.detach(), dim=-2)  # (..., K, B)
    return (w_norm.pow(2) * log_w_stopped).sum(dim=-2)


def dreg_surrogate(log_w: Tensor, log_w_stopped: Tensor, terms) -> Tensor:
    """sum_j c_j mean over the m_j groups of the DReG surrogate: (S, B) -> (B,)."""
    out = torch.zeros_like(log_w[0])  # (B,)
    for c, m in terms:
        g, g_stopped = group(log_w, m), group(log_w_stopped, m)  # (M, K, B)
        out = out + c * dreg_iwae_surrogate(g, g_stopped).mean(dim=0)
    return out


@ESTIMATORS.register("dreg")
class DReG(Estimator):
    """DReG for the encoder, the plain gradient for the decoder."""

    def check(self, model) -> None:
        super().check(model)
        if getattr(model.prior, "depends_on_encoder", False):
            raise ConfigError(
                "estimator 'dreg' assumes log p(x, h) does not depend on the encoder, but the "
                f"'{type(model.prior).registry_name}' prior does; use 'reparam' or 'stl' with it"
            )

    def __call__(self, terms, objective) -> BoundEstimate:
        log_w, log_w_stopped = terms.log_w, terms.log_w_stopped  # (S, B)
        s = log_w.shape[0]
        bound = combine(log_w, objective.terms(s))
        inf_terms = objective.inference_terms(s)
        inference = straight_through(combine(log_w, inf_terms).detach(), dreg_surrogate(log_w, log_w_stopped, inf_terms))
        return BoundEstimate(bound.detach(), inference, bound)
