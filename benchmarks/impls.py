"""The workloads of ``bench_workloads.py`` in plain PyTorch (the speed of light) and in vaelab.

Model: the IWAE paper's 784-200-200-50 tanh MLP, Bernoulli decoder, dynamic binarization, batch
100, Adam 1e-3, PyTorch's default init everywhere. Each function times only its loop and returns
seconds (the evaluations also return the mean log p(x) estimate, a check that every
implementation computes the same quantity).
"""

from __future__ import annotations

import functools
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = 1.8378770664093453


def _mlp_pair() -> tuple[nn.Sequential, nn.Sequential]:
    enc = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 100))
    dec = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784))
    return enc, dec


def _log_w(enc_out, dec, x, eps):
    """IWAE log-weights log p(x, z) - log q(z|x) for z = mu + std * eps: (K, B), nats."""
    mu, logvar = enc_out.chunk(2, dim=-1)  # (B, 50) each
    z = mu + torch.exp(0.5 * logvar) * eps  # (K, B, 50)
    logits = dec(z.reshape(-1, 50)).view(*z.shape[:2], 784)  # (K, B, 784): a 2-D input is one fused addmm
    rec = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    log_pz = -0.5 * (z.pow(2).sum(-1) + 50 * LOG_2PI)
    log_qz = -0.5 * (eps.pow(2).sum(-1) + 50 * LOG_2PI) - 0.5 * logvar.sum(-1)
    return rec + log_pz - log_qz


def hand_written_step(enc, dec, opt, x, k: int, device=None) -> None:
    """One optimizer step on a (B, 784) binary batch: the negative ELBO (K = 1) or IWAE-K bound."""
    if k == 1:  # the analytic-KL ELBO, as vaelab uses for a one-sample Gaussian ELBO
        mu, logvar = enc(x).chunk(2, dim=-1)  # (B, 50) each
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        loss = -(rec - kl).mean()
    else:
        log_w = _log_w(enc(x), dec, x, torch.randn(k, x.shape[0], 50, device=x.device))  # (K, B)
        loss = -(torch.logsumexp(log_w, 0) - math.log(k)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def hand_written(x_train, k: int, seed: int, fused: bool = False) -> float:
    """The smallest honest epoch in plain PyTorch: same model, same work per step; ``fused``: torch's
    fused Adam kernel, as vaelab's ``fit`` uses, so that the optimizer no longer hides per-step overhead."""
    torch.manual_seed(seed)
    enc, dec = _mlp_pair()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, fused=fused or None)
    g = torch.Generator().manual_seed(seed)
    x_train = x_train.reshape(x_train.shape[0], -1)  # (N, 784)
    t = time.perf_counter()
    perm = torch.randperm(x_train.shape[0], generator=g)
    for i in range(0, x_train.shape[0], 100):
        x = torch.bernoulli(x_train[perm[i : i + 100]], generator=g)  # (B, 784)
        hand_written_step(enc, dec, opt, x, k)
    return time.perf_counter() - t


def hand_written_is(x, k: int, seed: int, device=None) -> tuple[float, float]:
    """IS log p(x) with K samples per point, 100 points and ~1,300 decoder rows per pass."""
    torch.manual_seed(seed)
    device = device or x.device
    enc, dec = (m.to(device) for m in _mlp_pair())
    g = torch.Generator(device=device).manual_seed(seed)
    x = x.to(device)
    x = x.reshape(x.shape[0], -1)  # (N, 784)
    total = 0.0
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(0, x.shape[0], 100):
            xb = x[i : i + 100]
            enc_out = enc(xb)
            log_w = torch.empty(k, xb.shape[0], device=device)  # (K, B)
            c = max(1, 1300 // xb.shape[0])
            for s in range(0, k, c):
                n = min(c, k - s)
                log_w[s : s + n] = _log_w(enc_out, dec, xb, torch.randn(n, xb.shape[0], 50, generator=g, device=device))
            total += float((torch.logsumexp(log_w, 0) - math.log(k)).sum())
    return time.perf_counter() - t, total / x.shape[0]


def _model_cfg(k: int):
    from vaelab.config import RunConfig

    return RunConfig().override(
        {
            "data.kind": "mnist",
            "model.latent.dim": 50,
            "model.encoder": {"kind": "mlp", "hidden": [200, 200], "activation": "tanh"},
            "model.likelihood": "bernoulli",
            "model.decoder_bias": "default",  # the hand-written loop keeps PyTorch's init too
            "train.objective": "elbo" if k == 1 else "iwae",
            "train.n_samples": k,
            "train.batch_size": 100,
            "train.lr": 1e-3,
            "train.epochs": 1,
            "train.diagnostics": False,
            "train.valid_every": 0,
            "train.num_threads": 0,
        }
    )


def step_loop(x_train, k: int, seed: int) -> float:
    """vaelab's public `train_step` in a bare loop: the library's step without the trainer around it."""
    from vaelab.data import iterate_batches
    from vaelab.estimators import ESTIMATORS
    from vaelab.models import build_model
    from vaelab.objectives import OBJECTIVES
    from vaelab.train import train_step

    torch.manual_seed(seed)
    model = build_model(_model_cfg(k).model, (1, 28, 28))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kl = "analytic" if k == 1 else "mc"
    # objects, built once: passing registry names makes train_step build them every step
    objective, estimator = OBJECTIVES.build("elbo" if k == 1 else "iwae"), ESTIMATORS.build("reparam")
    groups = {**model.parameter_groups()}
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    for batch in iterate_batches(x_train, 100, g, True, True):
        train_step(model, batch, opt, objective, estimator, k, kl, groups=groups)
    return time.perf_counter() - t


def vaelab_fit(x_train, k: int, seed: int) -> float:
    """vaelab's trainer, as a user calls it: checkpoints and metrics files included."""
    import tempfile
    from pathlib import Path

    from vaelab.data.bundle import DataSplits
    from vaelab.train import fit

    data = DataSplits(train=x_train, valid=torch.zeros(0, 1, 28, 28), test=torch.zeros(0, 1, 28, 28))
    data.dynamic_binarization = True
    with tempfile.TemporaryDirectory() as tmp:
        res = fit(_model_cfg(k).override({"train.seed": seed}), Path(tmp) / "run", data=data, quiet=True, tensorboard=False)
    return res.history[0]["train_time_s"]


def vaelab_is(x, k: int, seed: int) -> tuple[float, float]:
    """vaelab's `importance_sampled_log_likelihood` at its defaults (batch 100, automatic chunks)."""
    from vaelab.evaluation.loglik import importance_sampled_log_likelihood
    from vaelab.models import build_model

    torch.manual_seed(seed)
    model = build_model(_model_cfg(1).model, (1, 28, 28))
    t = time.perf_counter()
    res = importance_sampled_log_likelihood(model, x, k=k, seed=seed)
    return time.perf_counter() - t, res.mean


TRAIN = {
    "hand-written": hand_written,
    "hand-written, fused Adam": functools.partial(hand_written, fused=True),
    "vaelab train_step": step_loop,
    "vaelab": vaelab_fit,
}
EVALUATE = {"hand-written": hand_written_is, "vaelab": vaelab_is}
