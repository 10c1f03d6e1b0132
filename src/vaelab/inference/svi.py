"""Non-amortized stochastic VI for a deep generative model (seed 001, "Stochastic Variational
Inference"): per-datapoint lambda_i kept in a table indexed by ``Batch.index``; each minibatch
takes K gradient steps on its lambda_i with theta fixed, then one step on theta."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..data.batches import iterate_batches
from ..errors import ConfigError
from ..numerics import denormals_flushed
from .local import check_refinable, local_elbo, refine


class LocalPosteriors:
    """A (N, P) table of variational parameters lambda_i, one row per training point.

    Rows start at the prior's values (mu = 0, log sigma^2 = 0 for a Gaussian latent) or, with
    ``init = "random"``, at mu ~ N(0, 0.01^2) (the seed's "randomly initialize lambda_0").
    """

    def __init__(self, n: int, model, init: str = "prior", seed: int = 0):
        if init not in ("prior", "random"):
            raise ConfigError(f"init {init!r}: choose 'prior' or 'random'")
        check_refinable(model)
        p = model.latent.n_params
        device = next(model.parameters()).device
        self.params = torch.zeros(n, p, device=device)  # (N, P): (mu, log sigma^2) for a Gaussian
        if init == "random":
            g = torch.Generator(device=device).manual_seed(seed)
            self.params[:, : p // 2] = 0.01 * torch.randn(n, p // 2, generator=g, device=device)

    def __getitem__(self, index: Tensor) -> Tensor:
        return self.params[index]

    def update(self, index: Tensor, values: Tensor) -> None:
        self.params[index] = values.detach()


@dataclass
class NonAmortizedResult:
    """``posteriors``: the trained table; ``history``: per epoch {"epoch", "elbo" (train, nats, at
    the refined lambda), "seconds"}."""

    model: object
    posteriors: LocalPosteriors
    history: list = field(default_factory=list)


def fit_non_amortized(
    model,
    x: Tensor,
    epochs: int,
    batch_size: int = 100,
    inner_steps: int = 5,
    inner_lr: float = 0.05,
    lr: float = 1e-3,
    n_samples: int = 1,
    seed: int = 0,
    dynamic_binarization: bool = False,
    posteriors: LocalPosteriors | None = None,
    init: str = "prior",
    inner_schedule: str = "constant",
) -> NonAmortizedResult:
    """Train the generative model theta by non-amortized SVI; the encoder is not used (nor trained).

    Per minibatch b: lambda_b <- ``refine``(lambda_b, K = ``inner_steps`` Adam steps of size
    ``inner_lr``) with theta fixed, stored back; then one Adam step of size ``lr`` on theta for
    the minibatch ELBO at lambda_b (seed 001: lambda_k <- lambda_{k-1} + alpha grad_lambda ELBO,
    then theta <- theta + alpha grad_theta ELBO(x, theta, lambda_K)).

    Args:
        model: a one-layer VAE with a reparameterized latent (its decoder, prior, likelihood are theta).
        inner_schedule: "constant" or "linear" (each visit's K steps decay to 0; see ``refine``).
        x: (N, *x_shape) training data (probabilities in [0, 1] with ``dynamic_binarization``).
    Returns:
        :class:`NonAmortizedResult`.
    Raises:
        ConfigError: a model :func:`~vaelab.inference.local.check_refinable` refuses, bad options.
        DataError: x of the wrong shape or outside the likelihood's support.
    """
    if epochs < 1 or batch_size < 1 or inner_steps < 0:
        raise ConfigError("epochs and batch_size must be >= 1 and inner_steps >= 0")
    model.check_input(torch.bernoulli(x[:10]) if dynamic_binarization else x, "training data")
    posteriors = posteriors or LocalPosteriors(x.shape[0], model, init, seed)
    theta = model.parameter_groups()["generative"]
    opt = torch.optim.Adam(theta, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    result = NonAmortizedResult(model, posteriors)
    device = next(model.parameters()).device
    with denormals_flushed(device):
        for epoch in range(1, epochs + 1):
            start, total = time.perf_counter(), 0.0
            for batch in iterate_batches(x, batch_size, gen, dynamic_binarization=dynamic_binarization):
                xb = batch.x.to(device)
                lam = refine(
                    model, xb, posteriors[batch.index], inner_steps, inner_lr, n_samples, schedule=inner_schedule
                )  # (B, P)
                posteriors.update(batch.index, lam)
                elbo = local_elbo(model, xb, lam, n_samples)  # (B,)
                opt.zero_grad(set_to_none=True)
                (-elbo.mean()).backward(inputs=theta)
                opt.step()
                total += float(elbo.detach().sum())
            result.history.append({"epoch": epoch, "elbo": total / x.shape[0], "seconds": time.perf_counter() - start})
    return result
