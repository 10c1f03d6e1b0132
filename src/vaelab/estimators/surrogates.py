"""Surrogate objectives whose gradients are the reparameterization, STL or DReG estimators.

Notation: S = M*K samples per data point, ``log_w`` (S, B) the log-weights
log p(x, h_s) - log q(h_s|x), and ``log_w_stopped`` (S, B) the same numbers computed with the
parameters of q detached inside log q (so its gradient keeps only the path through h_s).

- reparam: differentiate the bound itself (Kingma & Welling 2014; Burda et al. 2016, eq. 14).
- stl, "sticking the landing" (Roeder et al. 2017): the inference network differentiates the
  bound of ``log_w_stopped``, dropping the score term, whose expectation is zero for the ELBO.
  For IWAE-type bounds with K > 1 this is biased (Tucker et al. 2019, Sec. 4); use dreg there.
- dreg, doubly reparameterized (Tucker et al. 2019, eq. 7): for one IWAE-K group,
  grad_phi IWAE = E[sum_k w~_k^2 d log w_k / d h_k  d h_k / d phi], the surrogate
  sum_k stop(w~_k^2) log_w_stopped_k, w~ = softmax_k(log_w). For the ELBO (K = 1 per group,
  w~ = 1) it is STL. MIWAE averages it over groups; CIWAE mixes the ELBO and IWAE forms.

The generative network always gets the plain gradient of its bound (for PIWAE, IWAE(M*K)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..objectives import ciwae, elbo, group, iwae, miwae, piwae

ESTIMATORS = ("reparam", "stl", "dreg")


@dataclass
class BoundEstimate:
    """Attributes (each (B,), nats):
        value: the bound being optimized, as a number (what is logged and reported).
        inference: surrogate for the inference network's parameters phi.
        generative: surrogate for the generative network's parameters theta.
    ``inference is generative`` when one backward pass serves both.
    """

    value: Tensor
    inference: Tensor
    generative: Tensor

    @property
    def shared(self) -> bool:
        return self.inference is self.generative


def _straight_through(value: Tensor, surrogate: Tensor) -> Tensor:
    # the value of `value`, the gradient of `surrogate`
    return value + (surrogate - surrogate.detach())


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


def _bound(objective: str, log_w: Tensor, m: int, beta: float) -> Tensor:
    if objective == "elbo":
        return elbo(log_w)
    if objective == "iwae":
        return iwae(log_w)
    if objective == "ciwae":
        return ciwae(log_w, beta)
    if objective == "miwae":
        return miwae(group(log_w, m))
    raise ValueError(f"unknown objective {objective!r}")


def _dreg(objective: str, log_w: Tensor, log_w_stopped: Tensor, m: int, beta: float) -> Tensor:
    k = log_w.shape[0]
    if objective == "elbo":
        return log_w_stopped.mean(dim=0)  # K groups of one sample: STL
    if objective == "iwae":
        return dreg_iwae_surrogate(log_w, log_w_stopped)
    if objective == "ciwae":
        return beta * log_w_stopped.mean(dim=0) + (1 - beta) * dreg_iwae_surrogate(log_w, log_w_stopped)
    if objective in ("miwae", "piwae"):
        shape = (m, k // m, log_w.shape[1])
        return dreg_iwae_surrogate(log_w.view(shape), log_w_stopped.view(shape)).mean(dim=0)  # (M,B)->(B,)
    raise ValueError(f"unknown objective {objective!r}")


def estimate_bound(log_w: Tensor, objective: str = "iwae", estimator: str = "reparam", n_groups: int = 1,
                   ciwae_beta: float = 0.5, log_w_stopped: Tensor | None = None) -> BoundEstimate:
    """The bound and its gradient surrogates, from S = M*K log-weights per point.

    Args:
        log_w: (S, B) log-weights, nats; for MIWAE / PIWAE grouped as M consecutive blocks of K
            (see :func:`vaelab.objectives.group`).
        objective: one of ``vaelab.objectives.OBJECTIVES``.
        estimator: "reparam", "stl" or "dreg" (module docstring).
        n_groups: M (MIWAE, PIWAE); must be 1 otherwise.
        ciwae_beta: β of CIWAE.
        log_w_stopped: (S, B) log-weights with q's parameters detached; required by stl and dreg.
    Returns:
        :class:`BoundEstimate`. For PIWAE ``value`` is IWAE(M*K), the generative network's bound.
    Raises:
        ValueError: unknown objective / estimator, wrong shapes, M not dividing S, or a missing
            ``log_w_stopped``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if log_w.dim() != 2:
        raise ValueError(f"log_w must have shape (M*K, B), got {tuple(log_w.shape)}")
    if n_groups != 1 and objective not in ("miwae", "piwae"):
        raise ValueError(f"n_groups = {n_groups} applies to miwae / piwae only, not {objective!r}")
    if estimator != "reparam" and (log_w_stopped is None or log_w_stopped.shape != log_w.shape):
        raise ValueError(f"estimator {estimator!r} needs log_w_stopped of shape {tuple(log_w.shape)}")

    if objective == "piwae":
        inf_bound, gen_bound = piwae(group(log_w, n_groups))
        value = gen_bound.detach()
        generative = gen_bound
        if estimator == "reparam":
            inf_surrogate = inf_bound
        elif estimator == "stl":
            inf_surrogate = miwae(group(log_w_stopped, n_groups))
        else:
            inf_surrogate = _dreg("piwae", log_w, log_w_stopped, n_groups, ciwae_beta)
        return BoundEstimate(value, _straight_through(inf_bound.detach(), inf_surrogate), generative)

    bound = _bound(objective, log_w, n_groups, ciwae_beta)  # (B,)
    if estimator == "reparam":
        return BoundEstimate(bound.detach(), bound, bound)
    if estimator == "stl":
        # log_w_stopped has the same theta-gradient as log_w, so one surrogate serves both networks
        s = _straight_through(bound.detach(), _bound(objective, log_w_stopped, n_groups, ciwae_beta))
        return BoundEstimate(bound.detach(), s, s)
    s = _straight_through(bound.detach(), _dreg(objective, log_w, log_w_stopped, n_groups, ciwae_beta))
    return BoundEstimate(bound.detach(), s, bound)
