"""The multiply importance-weighted bound and its partial (PIWAE) split."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError
from ._checks import check_log_w
from .base import OBJECTIVES, Objective, Term
from .iwae import iwae


def miwae(log_w: Tensor) -> Tensor:
    """MIWAE(M, K): the average of M independent IWAE-K bounds (Rainforth et al. 2018, eq. 9).

    Axis convention (samples first): ``log_w[m, k, b]`` is the k-th sample of the m-th group for
    data point b; the IWAE log-mean-exp runs over K (axis 1), the plain mean over M (axis 0).
    MIWAE(1, K) = IWAE-K and MIWAE(M, 1) = the M-sample ELBO.

    Args:
        log_w: (M, K, B) log-weights, nats.
    Returns:
        (B,) bound values in nats.
    Raises:
        ValueError: if log_w is not 3-D.
    """
    check_log_w(log_w, "miwae", dims=3)
    log_mean_w = torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])  # (M, B): one IWAE-K per group
    return log_mean_w.mean(dim=0)


def piwae(log_w: Tensor) -> tuple[Tensor, Tensor]:
    """PIWAE(M, K) targets (Rainforth et al. 2018, Sec. 4): the inference network is trained on
    MIWAE(M, K) and the generative network on IWAE(M*K) of the same M*K samples.

    Args:
        log_w: (M, K, B) log-weights, nats (same convention as :func:`miwae`).
    Returns:
        ``(inference_bound, generative_bound)``, each (B,) in nats. The generative bound,
        IWAE(M*K), is the tighter one and the value reported for PIWAE.
    Raises:
        ValueError: if log_w is not 3-D.
    """
    check_log_w(log_w, "piwae", dims=3)
    m, k, b = log_w.shape
    return miwae(log_w), iwae(log_w.reshape(m * k, b))


def ciwae(log_w: Tensor, beta: float) -> Tensor:
    """CIWAE(β) = β·ELBO + (1 - β)·IWAE-K on the same K samples (Rainforth et al. 2018, eq. 10).

    β = 1 gives the K-sample ELBO, β = 0 the IWAE-K bound.

    Args:
        log_w: (K, B) log-weights, nats.
        beta: mixing weight in [0, 1].
    Returns:
        (B,) bound values in nats.
    Raises:
        ValueError: if log_w is not 2-D or β is outside [0, 1].
    """
    check_log_w(log_w, "ciwae")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"ciwae: beta must be in [0, 1], got {beta}")
    return beta * log_w.mean(dim=0) + (1.0 - beta) * iwae(log_w)


def _groups_ok(groups: int) -> int:
    if not isinstance(groups, int) or groups < 1:
        raise ConfigError(f"train.objective.groups must be a positive integer (M), got {groups!r}")
    return groups


@OBJECTIVES.register("miwae")
class MIWAE(Objective):
    """MIWAE(M, K): the mean of M IWAE-K bounds over M groups of K = ``train.n_samples`` samples
    (Rainforth et al. 2018, eq. 9).

    Args:
        groups: M, independent groups per data point.
    """

    def __init__(self, groups: int = 1):
        self.groups = _groups_ok(groups)

    def terms(self, s):
        return [Term(1.0, self.groups)]


@OBJECTIVES.register("piwae")
class PIWAE(MIWAE):
    """PIWAE(M, K): encoder on MIWAE(M, K), decoder on IWAE(M*K) of the same samples
    (Rainforth et al. 2018, Sec. 4); the reported value is IWAE(M*K).

    Args:
        groups: M, independent groups per data point.
    """

    def terms(self, s):
        return [Term(1.0, 1)]

    def inference_terms(self, s):
        return [Term(1.0, self.groups)]


@OBJECTIVES.register("ciwae")
class CIWAE(Objective):
    """CIWAE(beta) = beta ELBO + (1 - beta) IWAE-K on the same K samples (Rainforth et al. 2018, eq. 10).

    Args:
        beta: mixing weight in [0, 1].
    """

    def __init__(self, beta: float = 0.5):
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"train.objective.beta must be in [0, 1], got {beta}")
        self.beta = beta

    def terms(self, s):
        return [Term(self.beta, s), Term(1.0 - self.beta, 1)]
