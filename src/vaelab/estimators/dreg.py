"""Doubly reparameterized gradients (Tucker et al. 2019, eq. 7).

For one IWAE-K group, grad_phi IWAE = E[sum_k w~_k^2 d log w_k / d h_k  d h_k / d phi], the
surrogate sum_k stop(w~_k^2) log_w_stopped_k with w~ = softmax_k(log_w). A bound that is a sum
of MIWAE terms (``objectives.base``) gets the sum of their group-wise surrogates: the ELBO
(groups of one, w~ = 1) reduces to STL, MIWAE averages over groups, CIWAE mixes by beta.

For a group's Renyi bound of order alpha (VR-alpha, Li & Turner 2016) the same argument gives the
weights alpha w~_k + (1 - alpha) w~_k^2 with w~ = softmax_k((1 - alpha) log_w): the pathwise
gradient sum_k w~_k d log w_k, minus the score term E[w~_k d_phi log q(z_k)] rewritten by the
reparameterization identity as (1 - alpha) w~_k (1 - w~_k) d log w_k / d z_k dz_k / d phi. At
alpha = 0 this is Tucker et al.'s eq. 7; as alpha -> 1 the weights tend to 1/K (STL). VR-max
(alpha = -inf) is refused: its weight is an indicator of z, where the identity does not hold.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError
from ..objectives import combine, group
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def dreg_iwae_surrogate(log_w: Tensor, log_w_stopped: Tensor, alpha: float = 0.0) -> Tensor:
    """DReG surrogate for IWAE-K (alpha = 0) or VR-alpha per data point (Tucker et al. 2019, eq. 7).

    Args:
        log_w: (..., K, B) log-weights (only their values are used).
        log_w_stopped: (..., K, B) log-weights with q's parameters detached.
        alpha: the Renyi order, finite.
    Returns:
        (..., B) tensor sum_k stop(alpha w~_k + (1 - alpha) w~_k^2) log_w_stopped_k (not a bound).
    """
    w_norm = torch.softmax((1.0 - alpha) * log_w.detach(), dim=-2)  # (..., K, B)
    weight = w_norm.pow(2) if alpha == 0.0 else alpha * w_norm + (1.0 - alpha) * w_norm.pow(2)
    return (weight * log_w_stopped).sum(dim=-2)


def dreg_surrogate(log_w: Tensor, log_w_stopped: Tensor, terms) -> Tensor:
    """sum_j c_j mean over the m_j groups of the DReG surrogate: (S, B) -> (B,)."""
    out = torch.zeros_like(log_w[0])  # (B,)
    for c, m, alpha in terms:
        g, g_stopped = group(log_w, m), group(log_w_stopped, m)  # (M, K, B)
        out = out + c * dreg_iwae_surrogate(g, g_stopped, alpha).mean(dim=0)
    return out


@ESTIMATORS.register("dreg")
class DReG(Estimator):
    """DReG for the encoder, the plain gradient for the decoder."""

    graph_safe = True  # device work only: train.cuda_graphs may capture it

    def check(self, model) -> None:
        super().check(model)
        if getattr(model.prior, "depends_on_encoder", False):
            raise ConfigError(
                "estimator 'dreg' assumes log p(x, h) does not depend on the encoder, but the "
                f"'{type(model.prior).registry_name}' prior does; use 'reparam' or 'stl' with it"
            )

    def check_objective(self, objective, n_samples: int) -> None:
        if any(t.alpha == -math.inf for t in objective.inference_terms(n_samples * objective.groups)):
            raise ConfigError(
                "estimator 'dreg' is undefined for VR-max (its sample weight is an indicator of z, where the "
                "reparameterization identity behind DReG fails); use 'reparam' (Li & Turner's VR-max estimator)"
                + (", or 'stl' (at K = 1 VR-max is the ELBO)" if n_samples == 1 else "")
            )

    def __call__(self, terms, objective) -> BoundEstimate:
        log_w, log_w_stopped = terms.log_w, terms.log_w_stopped  # (S, B)
        s = log_w.shape[0]
        bound = combine(log_w, objective.terms(s))
        inf_terms = objective.inference_terms(s)
        inference = straight_through(combine(log_w, inf_terms).detach(), dreg_surrogate(log_w, log_w_stopped, inf_terms))
        return BoundEstimate(bound.detach(), inference, bound)
