"""Latent diagnostics: active units and per-dimension KL, to make posterior collapse visible."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..distributions.prior import kl_per_variable
from ..labels import label_mode_of
from ..numerics import eval_rows
from ._labels import labels_of


@dataclass
class LatentDiagnostics:
    """Attributes:
    active_units: number of dimensions, over all stochastic layers, with Cov_x(E_q[z_d]) > threshold.
    active_units_per_layer: the same per layer, bottom (z_1) to top (z_L).
    activity: (D_1 + ... + D_L,) Cov_x(E_q[z_d]) per dimension, layers concatenated.
    kl_per_dim: (D,) mean over x of KL(q(z_d|x) || p(z_d)) in nats for a one-layer model whose
        q and p both factorize over latent variables with a closed-form KL per variable (Gaussian
        vs N(0, I), Bernoulli vs Bernoulli, categorical vs categorical); None otherwise (MoG,
        VampPrior, several layers), where a per-dimension KL is undefined.
    kl_mc: mean over x of a 1-sample Monte Carlo KL(q(z|x) || p(z)) in nats.
    """

    active_units: int
    active_units_per_layer: list
    activity: Tensor
    kl_per_dim: Tensor | None
    kl_mc: float

    def summary(self) -> dict:
        return {
            "active_units": self.active_units,
            "active_units_per_layer": self.active_units_per_layer,
            "activity": self.activity.tolist(),
            "kl_per_dim": None if self.kl_per_dim is None else self.kl_per_dim.tolist(),
            "kl_mc": self.kl_mc,
        }


@torch.no_grad()
def latent_diagnostics(
    model,
    x: Tensor,
    threshold: float = 1e-2,
    batch_size: int = 1000,
    n_samples: int = 20,
    seed: int = 0,
    y: Tensor | None = None,
) -> LatentDiagnostics:
    """Active units (Burda et al. 2016, Sec. 5.2: A_u = Cov_x(E_{u~q(u|x)}[u]) > 10^-2) and KL.

    E_q[z_1|x] is the mean of q(z_1|x) (for one-hot latents, each class probability counts as a
    unit); for upper layers it is averaged over ``n_samples`` draws of the layers below
    (:meth:`VAE.posterior_means`). Units: nats. A conditional model reads labels y (N,); a
    semi-supervised one without y uses E_q[z|x] = sum_y q(y|x) E[z|x, y] and its KL includes y's.
    """
    gen = torch.Generator(device=x.device).manual_seed(seed)
    means, kls, kl_mc, batch_size = [], [], 0.0, eval_rows(model, batch_size)
    factorized = model.n_layers == 1 and not label_mode_of(model).reads_labels  # p(z|y) or q(y|x): no per-dim KL
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], labels_of(y, start, batch_size)
        means.append(model.posterior_means(xb, n_samples, gen, **yb))  # per layer (B, D_l)
        if factorized:
            per_dim = kl_per_variable(model.posterior(xb), model.prior)  # (B, D) or None
            factorized = per_dim is not None
            if per_dim is not None:
                kls.append(per_dim)
        terms = model.log_weight_terms(xb, 1, gen, **yb)
        kl_mc += float((terms.log_qz - terms.log_pz).sum())
    per_layer = [torch.cat([m[j] for m in means]).var(dim=0) for j in range(model.n_layers)]  # (D_l,) each
    activity = torch.cat(per_layer)
    kl_per_dim = torch.cat(kls).mean(dim=0) if factorized else None
    return LatentDiagnostics(
        int((activity > threshold).sum()),
        [int((a > threshold).sum()) for a in per_layer],
        activity,
        kl_per_dim,
        kl_mc / x.shape[0],
    )
