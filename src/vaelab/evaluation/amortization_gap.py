"""The amortization gap (Cremer, Li & Duvenaud 2018): how much of the inference gap
log p(x) - ELBO comes from the encoder predicting lambda instead of optimizing it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..inference.local import check_refinable, encoder_params, local_elbo, refine
from ..numerics import denormals_flushed
from ._stats import mean_se
from .loglik import importance_sampled_log_likelihood


@dataclass
class AmortizationGapResult:
    """Nats per data point (means over N points, s.e. of paired differences).

    log p(x) - ELBO[q_amortized] = (log p(x) - ELBO[q*]) + (ELBO[q*] - ELBO[q_amortized])
    inference gap                = approximation gap     + amortization gap
    (Cremer et al. 2018, Sec. 3), q* the per-point optimum in the same family.
    """

    n: int
    amortized_elbo: float
    optimized_elbo: float
    log_px: float
    approximation_gap: float
    amortization_gap: float
    inference_gap: float
    amortization_gap_stderr: float
    approximation_gap_stderr: float
    steps: int
    lr: float
    k: int
    seconds: float

    def summary(self) -> dict:
        return {**asdict(self), "units": "nats per data point"}


def optimize_posteriors(
    model,
    x: Tensor,
    steps: int = 500,
    lr: float = 1e-2,
    n_samples: int = 4,
    init: Tensor | None = None,
    batch_size: int = 100,
) -> Tensor:
    """Per-point lambda* by ``steps`` Adam steps on ELBO(x_i, theta, lambda_i), (N, latent.n_params),
    the step size decayed linearly to 0 (``refine(schedule="linear")``) so that lambda settles.

    Starts from ``init`` (N, P), by default the encoder's prediction (so lambda* is never worse
    than the amortized one in expectation); the model is not changed.
    """
    check_refinable(model)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        with torch.no_grad():
            lam0 = encoder_params(model, xb) if init is None else init[start : start + batch_size]
        out.append(refine(model, xb, lam0, steps, lr, n_samples, schedule="linear"))
    return torch.cat(out)


@torch.no_grad()
def elbo_per_point(model, x: Tensor, params: Tensor, n_samples: int, seed: int = 0, batch_size: int = 100) -> Tensor:
    """(N,) ELBO of q_lambda_i for each point, ``n_samples`` draws each (closed-form KL where the prior has one), nats."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    return torch.cat(
        [
            local_elbo(model, x[s : s + batch_size], params[s : s + batch_size], n_samples, gen)
            for s in range(0, x.shape[0], batch_size)
        ]
    ).double()  # (N,)


def amortization_gap(
    model,
    x: Tensor,
    steps: int = 500,
    lr: float = 1e-2,
    k: int = 5000,
    elbo_samples: int = 100,
    seed: int = 0,
    batch_size: int = 100,
    refine_samples: int = 4,
) -> AmortizationGapResult:
    """Amortized ELBO, per-point optimized ELBO and log p_hat(x) on the same N points.

    q* takes ``steps`` Adam steps of ``refine_samples``-sample gradients from the encoder's
    lambda, step size ``lr`` decayed linearly to 0. ELBOs are averaged over ``elbo_samples`` draws
    per point (KL in closed form where the prior has one); log p_hat(x) is importance sampling
    with K = ``k`` samples and the optimized q*(z|x) as proposal (closer to the posterior than
    the encoder's, so lower variance; an estimate, a stochastic lower bound in expectation).

    Args:
        model: a one-layer VAE with a reparameterized latent. x: (N, *x_shape), binarized for
            Bernoulli decoders.
    Raises:
        ConfigError: a model whose q cannot be refined. DataError: bad x.
    """
    model.check_input(x, "evaluation data")
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    x = x.to(device)
    with denormals_flushed(device):
        with torch.no_grad():
            amortized = torch.cat([encoder_params(model, xb) for xb in x.split(batch_size)])
        optimized = optimize_posteriors(model, x, steps, lr, refine_samples, init=amortized, batch_size=batch_size)
        e_amort = elbo_per_point(model, x, amortized, elbo_samples, seed)
        e_opt = elbo_per_point(model, x, optimized, elbo_samples, seed)
    ll = importance_sampled_log_likelihood(model, x, k=k, seed=seed, proposal=optimized).per_point.double()
    amort_gap, approx_gap = e_opt - e_amort, ll - e_opt
    return AmortizationGapResult(
        n=x.shape[0],
        amortized_elbo=float(e_amort.mean()),
        optimized_elbo=float(e_opt.mean()),
        log_px=float(ll.mean()),
        approximation_gap=float(approx_gap.mean()),
        amortization_gap=float(amort_gap.mean()),
        inference_gap=float((ll - e_amort).mean()),
        amortization_gap_stderr=mean_se(amort_gap)[1],
        approximation_gap_stderr=mean_se(approx_gap)[1],
        steps=steps,
        lr=lr,
        k=k,
        seconds=time.perf_counter() - t0,
    )
