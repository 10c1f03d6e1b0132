"""The importance-weighted bound."""

import math

import torch
from torch import Tensor

from ._checks import check_log_w
from .base import OBJECTIVES, Objective, Term


def iwae(log_w: Tensor) -> Tensor:
    """IWAE bound L_K = log (1/K) sum_k w_k per data point (Burda et al. 2016, eq. 8).

    With K = 1 it equals the single-sample ELBO; it increases with K in expectation and tends
    to log p(x) as K -> infinity, so with large K it is the importance-sampled log-likelihood.

    Args:
        log_w: log-weights log p(x, z_k) - log q(z_k|x), shape (K, B), in nats.
    Returns:
        (B,) bound values in nats.
    Raises:
        ValueError: if log_w is not 2-D.
    """
    check_log_w(log_w, "iwae")
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


@OBJECTIVES.register("iwae")
class IWAE(Objective):
    """The IWAE bound on all S samples (Burda et al. 2016, eq. 8)."""

    def terms(self, s):
        return [Term(1.0, 1)]
