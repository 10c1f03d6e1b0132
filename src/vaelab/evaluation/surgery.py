"""ELBO surgery (Hoffman & Johnson 2016): the average ELBO as reconstruction minus the mutual
information between x and z minus the KL from the aggregate posterior to the prior."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..numerics import denormals_flushed, eval_rows
from ._stats import mean_se


@dataclass
class SurgeryResult:
    """Nats per data point, averaged over the N evaluation points (s.e. over points).

    elbo = reconstruction - mutual_info - marginal_kl, and average_kl = mutual_info + marginal_kl
    (= E_n KL(q(z|x_n) || p(z))), per sample exactly (Hoffman & Johnson 2016, eq. 3–4).
    """

    n: int
    n_samples: int
    elbo: float
    reconstruction: float
    average_kl: float
    mutual_info: float
    marginal_kl: float
    mutual_info_cap: float  # log N: the most an N-point aggregate posterior can carry
    elbo_stderr: float
    mutual_info_stderr: float
    marginal_kl_stderr: float

    def summary(self) -> dict:
        return {**asdict(self), "units": "nats per data point"}


def _log_q_matrix(model, params: Tensor, z: Tensor) -> Tensor:
    """log q(z_s | x_m) for every sample s and every point m: (S, N). Diagonal Gaussians as one
    matmul (the quadratic form expanded); other families through ``log_prob`` in small chunks."""
    if type(model.latent).registry_name == "gaussian":
        mu, logvar = params.double().chunk(2, dim=-1)  # (N, D)
        prec = torch.exp(-logvar)
        zd = z.double()
        quad = (zd**2) @ prec.T - 2 * zd @ (mu * prec).T + (mu**2 * prec).sum(1)  # (S, N)
        const = logvar.sum(1) + mu.shape[1] * math.log(2 * math.pi)  # (N,)
        return (-0.5 * (quad + const)).float()
    q = model.latent.distribution(params)  # batch (N,)
    return torch.cat([q.log_prob(zc[:, None]) for zc in z.split(16)])  # (S, N)


@torch.no_grad()
def elbo_surgery(
    model, x: Tensor, n_samples: int = 1, params: Tensor | None = None, batch_size: int = 500, seed: int = 0
) -> SurgeryResult:
    """Split the average ELBO over x_1..x_N into E[log p(x|z)] - I_q(x; z) - KL(q(z) || p(z)).

    Estimator: z_ns ~ q(z|x_n), S = ``n_samples`` per point; the aggregate posterior
    q(z) = (1/N) sum_m q(z|x_m) is evaluated *exactly* at every sample (all N components, the
    sample's own included), so I_q = E[log q(z|x) - log q(z)] and KL(q(z) || p(z)) =
    E[log q(z) - log p(z)] are unbiased Monte Carlo estimates for the empirical aggregate
    posterior of these N points. Bias w.r.t. the population aggregate posterior: I_q <= log N
    (an N-component mixture cannot carry more), so when the q(z|x_n) barely overlap the
    mutual information is underestimated and the marginal KL overestimated by the same amount;
    ``mutual_info_cap`` reports log N to compare with. Cost O(S N^2 D).

    Args:
        model: a one-layer VAE. x: (N, *x_shape) data.
        params: optional (N, latent.n_params) per-point variational parameters (e.g. optimized
            ones) instead of the encoder's.
    Returns:
        :class:`SurgeryResult` (nats per data point).
    Raises:
        ConfigError: a model with several stochastic layers.
    """
    if model.n_layers != 1:
        raise ConfigError("ELBO surgery is implemented for one stochastic layer")
    model.check_input(x, "evaluation data")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    batch_size = eval_rows(model, batch_size)
    with denormals_flushed(device):
        x = x.to(device)
        if params is None:
            params = torch.cat([model.encoder(xb).reshape(xb.shape[0], -1) for xb in x.split(batch_size)])
        rec, log_q_own, log_p, log_agg = [], [], [], []
        for start in range(0, x.shape[0], batch_size):
            xb, pb = x[start : start + batch_size], params[start : start + batch_size]
            terms = model.log_weight_terms(xb, n_samples, generator=gen, posterior=model.latent.distribution(pb))
            z = terms.z  # (S, B, *event)
            rec.append(terms.log_px_z)
            log_q_own.append(terms.log_qz)
            log_p.append(terms.log_pz)
            flat = z.reshape(-1, *model.latent.event_shape)  # (S*B, *event)
            agg = torch.logsumexp(_log_q_matrix(model, params, flat), 1) - math.log(x.shape[0])
            log_agg.append(agg.reshape(z.shape[:2]))  # (S, B)
    rec_n, q_own_n, p_n, agg_n = (torch.cat(t, 1).double().mean(0) for t in (rec, log_q_own, log_p, log_agg))  # (N,)
    mi, mkl = q_own_n - agg_n, agg_n - p_n  # (N,) per point
    elbo = rec_n - mi - mkl
    return SurgeryResult(
        n=x.shape[0],
        n_samples=n_samples,
        elbo=float(elbo.mean()),
        reconstruction=float(rec_n.mean()),
        average_kl=float((mi + mkl).mean()),
        mutual_info=float(mi.mean()),
        marginal_kl=float(mkl.mean()),
        mutual_info_cap=math.log(x.shape[0]),
        elbo_stderr=mean_se(elbo)[1],
        mutual_info_stderr=mean_se(mi)[1],
        marginal_kl_stderr=mean_se(mkl)[1],
    )
