"""NVIL (Mnih & Gregor 2014): the score function with an input-dependent learned baseline, a
running-mean centering and variance normalization of the learning signal.

Variance normalization divides the *whole* inference-network gradient by max(1, sigma), not only
the score-function term. For the ELBO the two are the same (phi's gradient is the signal term
alone, Mnih & Gregor 2014, eq. 8), but a multi-sample bound adds the pathwise term
-sum_k w~_k grad log q(z_k|x), whose expectation is not zero: scaling the signal alone pointed the
expected encoder gradient the wrong way (cosine -0.97 with the exact one at sigma = 20, IWAE-3).
Scaling the whole gradient by a number fixed before the step (sigma comes from earlier batches)
keeps its expected direction exact: an adaptive step size for phi.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor

from ..errors import ConfigError
from ..objectives import grouped
from .base import ESTIMATORS, BoundEstimate, straight_through
from .score_function import Reinforce, spread


@ESTIMATORS.register("nvil")
class NVIL(Reinforce):
    """Learning signal (v - c - b_psi(x)) / max(1, sigma) per group of a one-term bound (the ELBO's
    samples, IWAE's or MIWAE's groups), where b_psi is an MLP on x (Mnih & Gregor 2014, Sec. 3.2),
    c and sigma^2 running averages of the mean and variance of v - b_psi(x) (Sec. 3.3). b_psi is
    trained in its own parameter group ("baseline") on the squared centered signal.

    Args:
        hidden: widths of the baseline network's hidden layers (tanh).
        decay: alpha of the running mean / variance.
        normalize: divide phi's whole gradient by max(1, sigma) (the paper's variance normalization:
            the expected direction stays exact, its length shrinks; :meth:`unscaled` turns it off).
    """

    rank_local_state = True  # running statistics of each batch: refused under torchrun

    elbo_score_only = True  # phi's ELBO gradient is the signal's term alone (Mnih & Gregor 2014, eq. 8)

    def __init__(self, hidden: list = [100], decay: float = 0.9, normalize: bool = True):  # noqa: B006
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"train.estimator.decay must be in [0, 1), got {decay}")
        self.hidden, self.decay, self.normalize = list(hidden), decay, normalize
        self.net: torch.nn.Module | None = None
        self._baseline: Tensor | None = None  # b_psi(x) of the current step
        self._sq_error: Tensor | None = None
        self.mean, self.var = 0.0, 1.0
        self.seen = False

    def check(self, model) -> None:
        super().check(model)
        if model.likelihood.tokens:
            raise ConfigError(
                "estimator 'nvil' learns its baseline b(x) with an MLP on real-valued x, not on token ids; "
                "on text use 'vimco' or 'rloo' (baselines from the other samples)"
            )

    def setup(self, model) -> None:
        from ..nets import MLP

        param = next(model.parameters())
        self.net = MLP(model.x_shape, (1,), self.hidden, "tanh").to(param.device)

    def parameter_groups(self):
        return {"baseline": list(self.net.parameters())} if self.net is not None else {}

    def state_dict(self):
        net = {k: v.clone() for k, v in self.net.state_dict().items()} if self.net is not None else {}
        return {"net": net, "mean": self.mean, "var": self.var, "seen": self.seen}

    def load_state_dict(self, state):
        if state.get("net") and self.net is not None:
            self.net.load_state_dict(state["net"])
        self.mean, self.var, self.seen = state.get("mean", 0.0), state.get("var", 1.0), state.get("seen", False)

    def check_objective(self, objective, n_samples):
        self.check_objective_terms(objective.inference_terms(n_samples * objective.groups))

    def __call__(self, terms, objective) -> BoundEstimate:
        if self.net is None:
            self.setup(terms._model)
        assert self.net is not None
        self._baseline = self.net(terms.x).view(-1)  # (B,) b_psi(x), with gradient for its own group
        scale = max(1.0, math.sqrt(self.var)) if self.normalize else 1.0  # from earlier batches only
        est = super().__call__(terms, objective)
        assert self._sq_error is not None  # set by signals()
        est.extra = {"baseline": -self._sq_error}
        if scale != 1.0:  # the whole inference gradient, pathwise term included; theta's is untouched
            est.inference = straight_through(est.value, est.inference / scale)
        self._baseline = self._sq_error = None  # hold no graph between steps (and stay copyable)
        return est

    def unscaled(self) -> NVIL:
        twin = cast(NVIL, super().unscaled())
        twin.normalize = False  # the variance normalization only rescales the estimate
        return twin

    def signals(self, log_w: Tensor, terms) -> Tensor:
        self.check_objective_terms(terms)
        (c, m, alpha), s = terms[0], log_w.shape[0]
        v = grouped(log_w, m, alpha)  # (m, B) each group's bound, detached
        assert self._baseline is not None  # set by __call__
        b = self._baseline.detach()
        centered = v - b - self.mean  # (m, B)
        self._sq_error = (v - self.mean - self._baseline).pow(2).mean(0)  # (B,): the baseline's loss
        with torch.no_grad():  # running statistics of v - b(x), from this batch after use
            d = v - b
            mu, var = float(d.mean()), float(d.var()) if d.numel() > 1 else 0.0
            if self.seen:
                self.mean = self.decay * self.mean + (1 - self.decay) * mu
                self.var = self.decay * self.var + (1 - self.decay) * var
            else:
                self.mean, self.var, self.seen = mu, max(var, 1.0), True
        return spread((c / m) * centered, s)  # (S, B)

    @staticmethod
    def check_objective_terms(terms) -> None:
        if len(terms) != 1:
            raise ConfigError(
                "estimator 'nvil' needs a bound with one term (elbo, iwae, miwae, piwae); use 'reinforce_ema' for ciwae"
            )
