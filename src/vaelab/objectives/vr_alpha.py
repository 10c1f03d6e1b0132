"""The variational Renyi bounds VR-alpha and VR-max (Li & Turner 2016)."""

from __future__ import annotations

import math

from torch import Tensor

from ..errors import ConfigError
from ._checks import check_log_w
from .base import OBJECTIVES, Objective, Term, renyi
from .miwae import _groups_ok


def vr(log_w: Tensor, alpha: float) -> Tensor:
    """The Monte Carlo VR-alpha bound per point (Li & Turner 2016, eq. 11 with K samples):
    1/(1 - alpha) log (1/K) sum_k w_k^(1 - alpha).

    alpha = 0 is IWAE-K exactly, alpha -> 1 tends to the K-sample ELBO, alpha = -inf is VR-max
    (max_k log w_k, their Sec. 4.3); on fixed log-weights the value is non-increasing in alpha (a
    power mean of the weights of order 1 - alpha). For alpha < 0 the exact (K -> inf) VR bound lies
    above log p(x).

    Args:
        log_w: (K, B) log-weights, nats.
        alpha: any real != 1, or -inf.
    Returns:
        (B,) values in nats.
    Raises:
        ValueError: log_w not 2-D, or alpha = 1 / NaN / +inf.
    """
    check_log_w(log_w, "vr")
    if alpha == 1.0 or math.isnan(alpha) or alpha == math.inf:
        raise ValueError(f"vr: alpha must be a real number != 1 (alpha -> 1 is the ELBO) or -inf, got {alpha}")
    return renyi(log_w, float(alpha), dim=0)


def _alpha_ok(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or math.isnan(alpha) or alpha == math.inf:
        raise ConfigError(f"train.objective.alpha must be a real number or -inf, got {alpha!r}")
    if alpha == 1.0:
        raise ConfigError('train.objective.alpha = 1 is the ELBO, where VR-alpha is 0/0: use kind = "elbo"')
    return float(alpha)


@OBJECTIVES.register("vr")
class VR(Objective):
    """VR-alpha on M groups of K = ``train.n_samples`` samples: the mean over groups of each group's
    Renyi bound of order alpha (Li & Turner 2016, eq. 11; groups as in MIWAE, Rainforth et al. 2018).

    alpha = 0 is IWAE (MIWAE with M > 1), alpha -> 1 the ELBO, alpha = -inf VR-max.

    Args:
        alpha: the order, a real number != 1, or -inf (TOML ``-inf``).
        groups: M, independent groups per data point.
    Raises:
        ConfigError: alpha = 1, NaN or +inf; groups not a positive integer.
    """

    def __init__(self, alpha: float = 0.5, groups: int = 1):
        self.alpha = _alpha_ok(alpha)
        self.groups = _groups_ok(groups)

    def terms(self, s):
        return [Term(1.0, self.groups, self.alpha)]


@OBJECTIVES.register("vr_max")
class VRMax(VR):
    """VR-max (Li & Turner 2016, Sec. 4.3): the largest log-weight of each group of K samples;
    its reparameterization gradient back-propagates only that sample.

    Args:
        groups: M, independent groups per data point.
    """

    def __init__(self, groups: int = 1):
        super().__init__(-math.inf, groups)
