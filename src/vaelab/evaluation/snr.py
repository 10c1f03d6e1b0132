"""Gradient signal-to-noise ratio vs the number of importance samples (Rainforth et al. 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..estimators import ESTIMATORS
from ..numerics import denormals_flushed
from ..objectives import OBJECTIVES
from ..progress import bar


def snr_floor(draws: int) -> float:
    """E[|mean| / std] of R draws when the true SNR is 0: sqrt(2 / (pi R)). A measured SNR near this
    value cannot be told apart from a zero-mean gradient."""
    return math.sqrt(2.0 / (math.pi * draws))


def _flat_grads(surrogate: Tensor, params: list) -> Tensor:
    grads = torch.autograd.grad(-surrogate.mean(), params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def gradient_snr(
    model,
    x: Tensor,
    ks=(1, 4, 16, 64, 256),
    objective: str = "iwae",
    estimator: str = "reparam",
    draws: int = 256,
    seed: int = 0,
) -> list[dict]:
    """SNR of the mini-batch gradient of the inference (phi) and generative (theta) networks vs K.

    For each K, ``draws`` independent gradient estimates g_r of the loss -mean_b bound(x_b) are
    taken at the current parameters; per parameter component SNR_j = |mean_r g_rj| / std_r g_rj
    (Rainforth et al. 2018, eq. 4); the reported value is the mean over components with nonzero
    spread. Rainforth et al. show SNR(phi) falls like 1/sqrt(K) for IWAE with the plain
    reparameterization gradient while SNR(theta) grows like sqrt(K); DReG fixes the former
    (Tucker et al. 2019). Each row also carries ``snr_floor`` = sqrt(2 / (pi R)), the value this
    statistic takes for a gradient whose true mean is zero (0.10 at R = 64, 0.05 at R = 256).

    Args:
        model: a VAE; x: (B, *x_shape) a fixed mini-batch.
        ks: the K values; objective, estimator: registry names.
    Returns:
        one dict per K: ``{"k", "snr_inference", "snr_generative", "snr_floor", "draws", "estimator", "objective"}``.
    Raises:
        ConfigError: the estimator cannot serve this model (e.g. DReG with a VampPrior).
    """
    model.check_input(x, "SNR batch")
    obj, est = OBJECTIVES.build(objective), ESTIMATORS.build(estimator)
    est.check(model)
    groups = model.parameter_groups()
    inf_p = [p for p in groups["inference"] if p.requires_grad]
    gen_p = [p for p in groups["generative"] if p.requires_grad]
    rows = []
    with torch.random.fork_rng(devices=[]), denormals_flushed(x.device):
        torch.manual_seed(seed)
        shown = bar(total=len(ks) * draws, desc=f"gradient SNR, {estimator}", unit="draw")
        for k in ks:
            g_inf, g_gen = [], []
            for _ in range(draws):
                shown.update(1)
                bound = est(model.log_weight_terms(x, k, reparameterize=est.pathwise), obj)
                g_inf.append(_flat_grads(bound.inference, inf_p))
                g_gen.append(_flat_grads(bound.generative, gen_p))
            rows.append(
                {
                    "k": k,
                    "objective": objective,
                    "estimator": estimator,
                    "draws": draws,
                    "snr_inference": _snr(torch.stack(g_inf)),
                    "snr_generative": _snr(torch.stack(g_gen)),
                    "snr_floor": snr_floor(draws),
                }
            )
        shown.close()
    return rows


def _snr(g: Tensor) -> float:
    g = g.double()  # (R, P)
    mean, std = g.mean(0).abs(), g.std(0)
    keep = std > 0
    return float((mean[keep] / std[keep]).mean()) if keep.any() else float("nan")
