"""Variance of the encoder gradient over repeated estimates at fixed parameters, per estimator:
the measure that separates score-function estimators (REINFORCE, baselines, NVIL, RLOO, VIMCO)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..estimators import ESTIMATORS, Estimator
from ..numerics import denormals_flushed
from ..objectives import OBJECTIVES, Objective
from .snr import _flat_grads


def gradient_variance(
    model,
    x: Tensor,
    estimator: str | Estimator = "reinforce",
    objective: str | Objective = "elbo",
    n_samples: int = 1,
    draws: int = 100,
    seed: int = 0,
    estimator_options: dict | None = None,
) -> dict:
    """Sum over encoder parameters of the variance of the mini-batch gradient of -mean_b bound(x_b).

    Draws R = ``draws`` independent estimates at the current parameters; neither the model nor a
    passed estimator is changed (a stateful estimator, e.g. NVIL's baseline or a moving average,
    is measured as it stands, on a copy). Every estimator is measured in the bound's units: NVIL's
    variance normalization, a rescaling, is undone (:meth:`Estimator.unscaled`).

    Args:
        model: a VAE.
        x: (B, *x_shape) a fixed mini-batch.
        estimator: a registry name or a built estimator (e.g. a training run's).
        objective: a registry name or a built objective.
        n_samples: K per group.
        estimator_options: options when ``estimator`` is a name.
    Returns:
        {"total": sum_j Var_r(g_rj), "per_tensor": {parameter name: its summed variance},
         "per_layer": {module name: its summed variance}, "mean_sq_norm": ||mean_r g_r||^2,
         "draws": R, "estimator": name} (squared gradient units, nats^2 per parameter^2).
    Raises:
        ConfigError: the estimator cannot serve this model or objective, or draws < 2.
    """
    if draws < 2:
        raise ConfigError(f"gradient_variance needs draws >= 2, got {draws}")
    est, obj = _estimator(model, estimator, estimator_options), _objective(objective)
    est.check_objective(obj, n_samples)
    names = {id(p): n for n, p in model.named_parameters()}
    params = [p for p in model.parameter_groups()["inference"] if p.requires_grad]
    rows = []
    with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []), denormals_flushed(x.device):
        torch.manual_seed(seed)
        for _ in range(draws):
            bound = est(model.log_weight_terms(x, n_samples * obj.groups, reparameterize=est.pathwise), obj)
            rows.append(_flat_grads(bound.inference, params).double())
    g = torch.stack(rows)  # (R, P)
    var = g.var(0).split([p.numel() for p in params])
    per_tensor = {names[id(p)]: float(v.sum()) for p, v in zip(params, var)}
    per_layer: dict[str, float] = {}
    for name, v in per_tensor.items():
        layer = name.rsplit(".", 1)[0]  # "encoder.0.weight" -> "encoder.0"
        per_layer[layer] = per_layer.get(layer, 0.0) + v
    return {
        "total": sum(per_tensor.values()),
        "per_tensor": per_tensor,
        "per_layer": per_layer,
        "mean_sq_norm": float(g.mean(0).pow(2).sum()),
        "draws": draws,
        "estimator": type(est).registry_name,
    }


def _estimator(model, estimator, options) -> Estimator:
    if isinstance(estimator, Estimator):
        if options:
            raise ConfigError("estimator_options apply to an estimator given by name, not to a built one")
        return estimator.unscaled()  # a copy: measuring must not move its running statistics
    est = ESTIMATORS.build(estimator, options or {})
    est.check(model)
    est.setup(model)
    return est


def _objective(objective) -> Objective:
    return OBJECTIVES.build(objective) if isinstance(objective, str) else objective
