"""Variance of the encoder gradient over repeated estimates at fixed parameters, per estimator:
the measure that separates score-function estimators (REINFORCE, baselines, NVIL, RLOO, VIMCO)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..estimators import ESTIMATORS
from ..numerics import denormals_flushed
from ..objectives import OBJECTIVES
from .snr import _flat_grads


def gradient_variance(model, x: Tensor, estimator: str = "reinforce", objective: str = "elbo", n_samples: int = 1,
                      draws: int = 100, seed: int = 0, estimator_options: dict | None = None) -> dict:
    """Sum over encoder parameters of the variance of the mini-batch gradient of -mean_b bound(x_b).

    Draws R = ``draws`` independent estimates at the current parameters (the model is not changed).

    Args:
        model: a VAE; x: (B, *x_shape) a fixed mini-batch.
        estimator, objective: registry names; n_samples: K per group.
    Returns:
        {"total": sum_j Var_r(g_rj), "per_tensor": {parameter name: its summed variance},
         "mean_sq_norm": ||mean_r g_r||^2, "draws": R, "estimator": name} (squared gradient units).
    Raises:
        ConfigError: the estimator cannot serve this model or objective.
    """
    est = ESTIMATORS.build(estimator, estimator_options or {})
    obj = OBJECTIVES.build(objective)
    est.check(model)
    est.check_objective(obj, n_samples)
    est.setup(model)
    names = {id(p): n for n, p in model.named_parameters()}
    params = [p for p in model.parameter_groups()["inference"] if p.requires_grad]
    rows = []
    with torch.random.fork_rng(devices=[]), denormals_flushed(x.device):
        torch.manual_seed(seed)
        for _ in range(draws):
            bound = est(model.log_weight_terms(x, n_samples * obj.groups, reparameterize=est.pathwise), obj)
            rows.append(_flat_grads(bound.inference, params).double())
    g = torch.stack(rows)  # (R, P)
    var = g.var(0).split([p.numel() for p in params])
    per_tensor = {names[id(p)]: float(v.sum()) for p, v in zip(params, var)}
    return {"total": sum(per_tensor.values()), "per_tensor": per_tensor, "mean_sq_norm": float(g.mean(0).pow(2).sum()),
            "draws": draws, "estimator": estimator}
