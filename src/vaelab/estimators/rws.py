"""Reweighted wake-sleep (Bornschein & Bengio 2015; Le et al. 2019, "Revisiting Reweighted Wake-Sleep").

Wake-theta: the generative network ascends the importance-weighted bound with the samples held fixed,
sum_k w~_k grad_theta log p(x, z_k) (w~ the self-normalized weights of each group of K): the IWAE
gradient for theta. The inference network does *not* ascend the bound; it descends the inclusive KL
KL(p(z|x) || q(z|x)), whose gradient -E_p(z|x)[grad_phi log q(z|x)] is estimated either

- wake-phi: with the same K self-normalized samples, -sum_k w~_k grad_phi log q(z_k|x) (biased, the
  bias falling as K grows; Le et al.'s recommended update), or
- sleep-phi: with dreams (z, x~) ~ p(z) p(x~|z) from the model, -grad_phi log q(z|x~) (unbiased for the
  KL averaged over the model's own data, not the data's).

Neither needs a reparameterized sampler, so RWS trains discrete latents (sigmoid belief nets) as well
as continuous ones; the samples are detached (``pathwise = False``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..objectives import combine, group
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def wake_phi_surrogate(log_w: Tensor, log_q: Tensor, terms) -> Tensor:
    """sum_j c_j mean over groups of sum_k stop(w~_k) log q(z_k|x): (S, B) -> (B,). Its phi-gradient is
    the self-normalized estimate of -grad_phi KL(p(z|x) || q(z|x)) (Bornschein & Bengio 2015, eq. 9)."""
    out = torch.zeros_like(log_w[0])  # (B,)
    for c, m, _ in terms:
        w_norm = torch.softmax(group(log_w.detach(), m), dim=1)  # (M, K, B)
        out = out + c * (w_norm * group(log_q, m)).sum(1).mean(0)
    return out


@ESTIMATORS.register("rws")
class ReweightedWakeSleep(Estimator):
    """RWS: wake-theta for the generative network; wake-phi or sleep-phi for the inference network.

    Args:
        phase: "wake" (wake-phi, default) or "sleep" (sleep-phi on one dream per data point).
    Raises:
        ConfigError: an unknown phase; a bound that is not IWAE-type with K >= 2 per group (wake-phi
            with one sample has zero expected gradient); sleep with several layers or a text decoder.
    """

    pathwise = False

    def __init__(self, phase: str = "wake"):
        if phase not in ("wake", "sleep"):
            raise ConfigError(f'train.estimator.phase must be "wake" or "sleep", got {phase!r}')
        self.phase = phase

    def check(self, model) -> None:
        super().check(model)
        if self.phase == "sleep" and getattr(model, "n_classes", 0) > 0:  # a model that reads labels
            raise ConfigError(
                'estimator \'rws\' with phase = "sleep" dreams x without a label; use phase = "wake" for a labelled model'
            )
        if self.phase == "sleep" and (model.n_layers != 1 or model.autoregressive):
            raise ConfigError(
                "estimator 'rws' with phase = \"sleep\" dreams from one stochastic layer and a non-autoregressive "
                "decoder; use phase = \"wake\" (or 'reparam' / 'vimco')"
            )

    def check_objective(self, objective, n_samples: int) -> None:
        s = n_samples * objective.groups
        for t in objective.inference_terms(s):
            if t.c and t.alpha != 0.0:
                raise ConfigError(
                    f"estimator 'rws' weighs samples by their self-normalized importance weights, the gradient of "
                    f"an IWAE-type bound (Renyi order alpha = 0); {type(objective).registry_name} has alpha = "
                    f"{t.alpha:g}: use objective 'iwae' (or 'miwae'), or the estimator 'reparam' for VR-alpha"
                )
            if t.c and s // t.m < 2:
                raise ConfigError(
                    f"estimator 'rws' reweights groups of K >= 2 samples of an importance-weighted bound; "
                    f"{type(objective).registry_name} with K = {n_samples} has none: use objective 'iwae' (or "
                    "'miwae') with n_samples >= 2, or the estimator 'vimco'"
                )

    def __call__(self, terms, objective) -> BoundEstimate:
        log_w, log_q = terms.log_w, terms.log_qz  # (S, B); z is a plain sample: no path gradient
        s = log_w.shape[0]
        bound = combine(log_w, objective.terms(s))  # theta: sum_k w~_k grad log p(x, z_k)
        if self.phase == "wake":
            phi = wake_phi_surrogate(log_w, log_q, objective.inference_terms(s))
        else:
            phi = self._sleep(terms._model, log_w.shape[1], log_w.device)
        return BoundEstimate(bound.detach(), straight_through(bound.detach(), phi), bound)

    @staticmethod
    def _sleep(model, b: int, device) -> Tensor:
        """log q(z|x~) for b dreams (z, x~) ~ p(z) p(x~|z), (B,): its phi-gradient is -grad KL(p || q)."""
        with torch.no_grad():
            z = model.prior.sample(b).to(device)  # (B, *event)
            x = model.likelihood.distribution(model.decode(z)).sample()  # (B, *x_shape)
        return model.posterior(x).log_prob(z)

    def __repr__(self) -> str:
        return f"ReweightedWakeSleep(phase={self.phase!r})"
