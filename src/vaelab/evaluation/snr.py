"""Gradient signal-to-noise ratio vs the number of importance samples (Rainforth et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..estimators import estimate_bound


def _flat_grads(surrogate: Tensor, params: list) -> Tensor:
    grads = torch.autograd.grad(-surrogate.mean(), params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def gradient_snr(model, x: Tensor, ks=(1, 4, 16, 64, 256), objective: str = "iwae", estimator: str = "reparam",
                 draws: int = 64, seed: int = 0) -> list[dict]:
    """SNR of the mini-batch gradient of the inference (phi) and generative (theta) networks vs K.

    For each K, ``draws`` independent gradient estimates g_r of the loss -mean_b bound(x_b) are
    taken at the current parameters; per parameter component SNR_j = |mean_r g_rj| / std_r g_rj
    (Rainforth et al. 2018, eq. 4); the reported value is the mean over components with nonzero
    spread. Rainforth et al. show SNR(phi) falls like 1/sqrt(K) for IWAE with the plain
    reparameterization gradient while SNR(theta) grows like sqrt(K); DReG fixes the former
    (Tucker et al. 2019).

    Args:
        model: a VAE; x: (B, x_dim) a fixed mini-batch.
        ks: the K values; objective: "iwae" or "elbo"; estimator: "reparam", "stl" or "dreg".
    Returns:
        one dict per K: ``{"k", "snr_inference", "snr_generative", "estimator", "objective"}``.
    """
    model.check_input(x, "SNR batch")
    inf_p = [p for p in model.inference_parameters() if p.requires_grad]
    gen_p = [p for p in model.generative_parameters() if p.requires_grad]
    rows = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for k in ks:
            g_inf, g_gen = [], []
            for _ in range(draws):
                terms = model.log_weight_terms(x, k)
                stopped = terms.log_w_stopped if estimator != "reparam" else None
                est = estimate_bound(terms.log_w, objective, estimator, 1, 0.5, stopped)
                g_inf.append(_flat_grads(est.inference, inf_p))
                g_gen.append(_flat_grads(est.generative, gen_p))
            rows.append({"k": k, "objective": objective, "estimator": estimator,
                         "snr_inference": _snr(torch.stack(g_inf)), "snr_generative": _snr(torch.stack(g_gen))})
    return rows


def _snr(g: Tensor) -> float:
    g = g.double()  # (R, P)
    mean, std = g.mean(0).abs(), g.std(0)
    keep = std > 0
    return float((mean[keep] / std[keep]).mean()) if keep.any() else float("nan")
