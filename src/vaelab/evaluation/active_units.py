"""Latent diagnostics: active units and per-dimension KL, to make posterior collapse visible."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LatentDiagnostics:
    """Attributes:
        active_units: number of dimensions with Cov_x(E_q[z_d]) > threshold.
        activity: (D,) Cov_x(E_q[z_d]) per dimension.
        kl_per_dim: (D,) mean over x of KL(q(z_d|x) || N(0, 1)) in nats, or None when the
            prior is not factorized (MoG, VampPrior) and a per-dimension KL is undefined.
        kl_mc: mean over x of a 1-sample Monte Carlo KL(q(z|x) || p(z)) in nats.
    """

    active_units: int
    activity: Tensor
    kl_per_dim: Tensor | None
    kl_mc: float

    def summary(self) -> dict:
        return {"active_units": self.active_units, "activity": self.activity.tolist(),
                "kl_per_dim": None if self.kl_per_dim is None else self.kl_per_dim.tolist(),
                "kl_mc": self.kl_mc}


@torch.no_grad()
def latent_diagnostics(model, x: Tensor, threshold: float = 1e-2, batch_size: int = 1000) -> LatentDiagnostics:
    """Active units (Burda et al. 2016, Sec. 5.2: A_u = Cov_x(E_{u~q(u|x)}[u]) > 10^-2) and KL.

    For a Gaussian q, E_q[z] is the encoder mean, so the activity is the variance over the data
    of mu(x). Units: nats.
    """
    means, kls, kl_mc = [], [], 0.0
    factorized = getattr(model.prior, "has_analytic_kl", False)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        mu, logvar = model.encoder(xb)  # (B, D) each
        means.append(mu)
        if factorized:
            kls.append(0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar))  # (B, D) KL to N(0,1) per dim
        q = model.posterior(xb)
        z = q.rsample()
        kl_mc += float((q.log_prob(z) - model.prior.log_prob(z)).sum())
    mu_all = torch.cat(means)  # (N, D)
    activity = mu_all.var(dim=0)
    kl_per_dim = torch.cat(kls).mean(dim=0) if factorized else None
    return LatentDiagnostics(int((activity > threshold).sum()), activity, kl_per_dim, kl_mc / x.shape[0])
