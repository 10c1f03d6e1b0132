"""Variance reduction for the score function: a moving-average baseline, leave-one-out baselines
(RLOO) and VIMCO's multi-sample baselines. Each subtracts from every sample's learning signal a
baseline that does not depend on that sample, so the expected gradient is unchanged
(E[b grad log q(z|x)] = 0) while its variance falls."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..objectives import grouped, renyi
from .base import ESTIMATORS
from .score_function import Reinforce, learning_signals, spread


class _LeaveOneOut(Reinforce):
    """Estimators whose signals raise ConfigError for sample layouts they cannot use: checked once,
    before training, on a dry run of the signals (they keep no state)."""

    def check_objective(self, objective, n_samples):
        s = n_samples * objective.groups
        self.signals(torch.zeros(s, 1), objective.inference_terms(s))


@ESTIMATORS.register("reinforce_ema")
class MovingAverageBaseline(Reinforce):
    """REINFORCE with an exponential moving average of each term's learning signal as baseline
    (e.g. Mnih & Gregor 2014, Sec. 3.1's centering). The baseline is updated after it is used, from
    the batch mean, so it never depends on the current sample.

    Args:
        decay: alpha in b <- alpha b + (1 - alpha) mean(signal).
    """

    rank_local_state = True  # running statistics of each batch: refused under torchrun

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"train.estimator.decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.baselines: dict[int, float] = {}  # term index -> b

    def state_dict(self):
        return {"baselines": dict(self.baselines)}

    def load_state_dict(self, state):
        self.baselines = {int(k): float(v) for k, v in state.get("baselines", {}).items()}

    def signals(self, log_w, terms):
        out = learning_signals(log_w, terms)
        for j, (c, m, alpha) in enumerate(terms):
            values = grouped(log_w, m, alpha)  # (m, B): each group's bound
            b = self.baselines.get(j)
            if b is not None:
                out = out - (c / m) * b
            mean = float(values.mean())
            self.baselines[j] = mean if b is None else self.decay * b + (1 - self.decay) * mean
        return out


@ESTIMATORS.register("rloo")
class RLOO(_LeaveOneOut):
    """REINFORCE leave-one-out (Kool et al. 2019): each of the m >= 2 independent groups of a term
    (for the ELBO, each of the S samples) is baselined by the mean value of the other groups:
    signal_g = (c / m) (v_g - mean_{h != g} v_h). Needs S >= 2 (the ELBO) or MIWAE with M >= 2;
    IWAE has one group: use ``vimco``."""

    def signals(self, log_w, terms):
        s = log_w.shape[0]
        out = 0.0
        for c, m, alpha in terms:
            if m < 2:
                raise ConfigError(
                    "estimator 'rloo' needs at least two independent groups of samples (the ELBO with "
                    "n_samples >= 2, or miwae with groups >= 2); use 'vimco' for iwae, 'reinforce_ema' for any bound"
                )
            v = grouped(log_w, m, alpha)  # (m, B)
            loo = (v.sum(0, keepdim=True) - v) / (m - 1)  # (m, B): mean of the others
            out = out + spread((c / m) * (v - loo), s)
        return out


def vimco_baselines(log_w: Tensor, alpha: float = 0.0) -> Tensor:
    """VIMCO's per-sample baselines L_{-k} for one group (Mnih & Rezende 2016, eq. 8-9).

    Args:
        log_w: (..., K, B) log-weights, K >= 2.
        alpha: the order of the group's Renyi bound (0: IWAE; -inf: VR-max).
    Returns:
        (..., K, B): L_{-k} = the group's bound with w_k replaced by w^_{-k}, the geometric mean of
        the other K - 1 weights (for IWAE: log (1/K)(sum_{j != k} w_j + w^_{-k})).
    """
    k = log_w.shape[-2]
    others_mean = (log_w.sum(-2, keepdim=True) - log_w) / (k - 1)  # (..., K, B)
    eye = torch.eye(k, dtype=torch.bool, device=log_w.device).view(*([1] * (log_w.dim() - 2)), k, k, 1)
    rows = log_w.unsqueeze(-3).expand(*log_w.shape[:-2], k, k, log_w.shape[-1])  # row i: all K log-weights
    replaced = torch.where(eye, others_mean.unsqueeze(-2), rows)  # row i: w_i replaced by w^_{-i}
    return renyi(replaced, alpha, dim=-2)


@ESTIMATORS.register("vimco")
class VIMCO(_LeaveOneOut):
    """VIMCO (Mnih & Rezende 2016): for a multi-sample bound, sample k's learning signal is
    L - L_{-k}, the bound minus the bound with w_k replaced by the geometric mean of the others.
    Applies to IWAE / MIWAE / VR-alpha terms with K >= 2 samples per group."""

    def signals(self, log_w, terms):
        s, b = log_w.shape
        out = 0.0
        for c, m, alpha in terms:
            k = s // m
            if k < 2:
                raise ConfigError(
                    "estimator 'vimco' needs K >= 2 samples per group of a multi-sample bound "
                    "(objective iwae / miwae with n_samples >= 2); use 'rloo' for the elbo, 'reinforce_ema' for any bound"
                )
            g = log_w.view(m, k, b)  # (M, K, B)
            bound = renyi(g, alpha, dim=1).unsqueeze(1)  # (M, 1, B)
            out = out + (c / m) * (bound - vimco_baselines(g, alpha)).reshape(s, b)
        return out
