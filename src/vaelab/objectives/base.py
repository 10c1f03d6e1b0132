"""The objective registry and the one mechanism every bound shares.

Each registered objective describes itself as a weighted sum of multiply-importance-weighted
bounds over the same S samples per point: ``sum_j c_j MIWAE_alpha_j(m_j groups)``, where MIWAE
with m groups splits the S samples into m consecutive blocks of S/m (:func:`group`) and averages
each block's Renyi bound of order alpha (alpha = 0: the IWAE log-mean-exp; Li & Turner 2016,
eq. 11). The ELBO is MIWAE(S groups of 1), IWAE-S is MIWAE(1 group), CIWAE(beta) = beta ELBO +
(1 - beta) IWAE, PIWAE trains the encoder on MIWAE(M) and the decoder on IWAE(MK), and VR-alpha is
one group of order alpha. Estimators (reparam, STL, DReG, score function) work on this
description, so a new bound needs no estimator code.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from ..registry import Registry
from ._checks import check_log_w, group

OBJECTIVES = Registry("objective")


class Term(NamedTuple):
    """One term c * MIWAE_alpha(m groups) of a bound: the mean over m groups of each group's Renyi
    bound of order alpha (0: IWAE's log-mean-exp, -inf: the maximum log-weight, VR-max)."""

    c: float
    m: int
    alpha: float = 0.0


#: the bound is sum_j c_j MIWAE_alpha_j(m_j groups)
Terms = list[Term]


class Objective:
    """A training bound. ``groups`` is M, the number of independent groups per point (S = M * K)."""

    groups: int = 1
    registry_name: str = ""  # set by OBJECTIVES.register

    def __init_subclass__(cls, **kwargs):
        # a bound may return plain (c, m) pairs (alpha = 0): estimators always see Term triples
        super().__init_subclass__(**kwargs)
        for name in ("terms", "inference_terms"):
            if name in vars(cls):
                setattr(cls, name, _as_terms(vars(cls)[name]))

    def terms(self, s: int) -> Terms:
        """The bound on S samples per point (the value that is logged and reported)."""
        raise NotImplementedError

    def inference_terms(self, s: int) -> Terms:
        """The bound the inference network ascends (PIWAE differs from :meth:`terms`)."""
        return self.terms(s)

    def encoder_is_multi_sample(self, n_samples: int) -> bool:
        """Whether the bound the inference network ascends has a group of K > 1 samples (IWAE-type),
        where estimators that drop the score term's zero-mean part (STL, straight-through) are biased."""
        s = n_samples * self.groups
        return any(s // t.m > 1 for t in self.inference_terms(s) if t.c)

    def check_samples(self, n_samples: int) -> None:
        """A one-line warning where a Renyi order cannot take effect: a group of one sample gives its
        own log-weight, the ELBO, for every alpha (Li & Turner 2016, eq. 11 with K = 1)."""
        s = n_samples * self.groups
        orders = sorted({t.alpha for t in self.terms(s) if t.c and t.alpha != 0.0 and s // t.m == 1})
        if orders:
            warnings.warn(
                f"objective '{self.registry_name}': the Renyi order alpha = {', '.join(f'{a:g}' for a in orders)} has "
                f"no effect with n_samples = {n_samples} (a group of one sample is the ELBO for every alpha); "
                "set train.n_samples >= 2",
                stacklevel=3,
            )

    def __call__(self, log_w: Tensor) -> Tensor:
        """The bound per point, (S, B) -> (B,), nats."""
        return combine(log_w, self.terms(log_w.shape[0]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _as_terms(method):
    @functools.wraps(method)
    def wrapped(self, s: int) -> Terms:
        return [Term(*t) for t in method(self, s)]

    return wrapped


def renyi(g: Tensor, alpha: float, dim: int) -> Tensor:
    """The Renyi bound of order alpha over axis ``dim`` of log-weights (Li & Turner 2016, eq. 11):
    1/(1 - alpha) log (1/K) sum_k w_k^(1 - alpha); alpha = 0 is IWAE, -inf the max (VR-max)."""
    if alpha == 0.0:
        return torch.logsumexp(g, dim=dim) - math.log(g.shape[dim])
    if alpha == -math.inf:
        return g.amax(dim=dim)
    return (torch.logsumexp((1.0 - alpha) * g, dim=dim) - math.log(g.shape[dim])) / (1.0 - alpha)


def grouped(log_w: Tensor, m: int, alpha: float = 0.0) -> Tensor:
    """Renyi bound (IWAE at alpha = 0) of each of m consecutive groups: (S, B) -> (m, B). m = S
    gives the log-weights themselves."""
    s = log_w.shape[0]
    if m == s:
        return log_w
    if m == 1:
        return renyi(log_w, alpha, dim=0).unsqueeze(0)
    return renyi(group(log_w, m), alpha, dim=1)  # (M, K, B) -> (M, B)


def combine(log_w: Tensor, terms: Terms) -> Tensor:
    """sum_j c_j MIWAE_alpha_j(m_j) per point: (S, B) -> (B,)."""
    check_log_w(log_w, "objective")
    out: Tensor | None = None
    for c, m, alpha in terms:
        v = grouped(log_w, m, alpha).mean(dim=0)  # (B,)
        v = v if c == 1.0 else c * v
        out = v if out is None else out + v
    assert out is not None, "an objective has at least one term"
    return out
