"""Per-datapoint variational parameters and their gradient refinement ("inference as optimization").

lambda = (mu, log sigma^2) for a Gaussian latent: exactly what the encoder outputs, so an encoder's
prediction, a table row of non-amortized VI and a refined value are interchangeable, and
``model.latent.distribution(lambda)`` is q_lambda(z) in every case.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..progress import bar


def check_refinable(model) -> None:
    """Refuse models whose q cannot be refined by pathwise gradients.

    Raises:
        ConfigError: a latent family without ``rsample``, or several stochastic layers (the upper
            layers' q(z_l | z_{l-1}) are networks, not per-datapoint parameters).
    """
    if not model.reparameterized:
        raise ConfigError(
            "per-datapoint refinement of q needs a reparameterized latent family (e.g. gaussian); "
            f"'{type(model.latent).registry_name}' has no rsample"
        )
    if model.n_layers != 1:
        raise ConfigError(f"per-datapoint refinement of q supports one stochastic layer; this model has {model.n_layers}")


def encoder_params(model, x: Tensor) -> Tensor:
    """The amortized lambda(x) = enc_phi(x), (B, latent.n_params) (seed 001: "inference as prediction")."""
    return model.encoder(x).reshape(x.shape[0], -1)


def local_elbo(
    model, x: Tensor, params: Tensor, n_samples: int = 1, generator: torch.Generator | None = None, analytic_kl: bool = True
) -> Tensor:
    """ELBO(x, theta, lambda) = E_q_lambda[log p(x|z)] - KL(q_lambda(z) || p(z)) per point, (B,) nats.

    Monte Carlo over ``n_samples`` reparameterized draws; the KL in closed form when the prior has
    one and ``analytic_kl`` (seed 001, "Analytic formula for Gaussian family"), else by Monte Carlo.
    Differentiable in ``params`` and in the model's generative parameters.
    """
    q = model.latent.distribution(params)  # batch (B,)
    terms = model.log_weight_terms(x, n_samples, generator=generator, posterior=q)
    if analytic_kl and model.has_analytic_kl:
        return terms.mean_log_px_z - model.prior.analytic_kl(q)  # (B,)
    return terms.log_w.mean(0)


def refine(
    model,
    x: Tensor,
    params: Tensor,
    steps: int,
    lr: float,
    n_samples: int = 1,
    optimizer: str = "adam",
    differentiable: bool = False,
    schedule: str = "constant",
    generator: torch.Generator | None = None,
) -> Tensor:
    """K = ``steps`` gradient-ascent steps on each point's lambda for ELBO(x, theta, lambda), theta fixed.

    Points are independent: the loss is the *sum* of per-point ELBOs, so each lambda_i gets its
    own gradient, and Adam's moments are per element.

    Args:
        params: (B, P) initial lambda_0 (encoder output, table rows, or prior values).
        optimizer: "adam" (fresh moments per call) or "sgd" (lambda_k = lambda_{k-1} + lr * grad,
            the seed's update).
        differentiable: keep the graph of the SGD steps so that gradients reach whatever produced
            lambda_0 (semi-amortized VAEs, Kim et al. 2018, Sec. 3.2); needs ``optimizer = "sgd"``.
            Ignored when ``params`` carries no gradient (e.g. under ``torch.no_grad``).
        schedule: "constant" or "linear" (step size lr * (1 - k / steps), so that a one-sample
            gradient's noise does not keep lambda jittering around the optimum).
    Returns:
        (B, P) lambda_K; detached unless ``differentiable``. The model's parameters get no gradient.
    Raises:
        ConfigError: bad steps/lr/optimizer, or a model :func:`check_refinable` refuses.
    """
    check_refinable(model)
    if steps < 0 or lr <= 0 or optimizer not in ("adam", "sgd") or schedule not in ("constant", "linear"):
        raise ConfigError(
            f"refinement needs steps >= 0, lr > 0, optimizer adam|sgd and schedule constant|linear "
            f"(got {steps}, {lr}, {optimizer!r}, {schedule!r})"
        )
    if differentiable and optimizer != "sgd":
        raise ConfigError('differentiable refinement unrolls plain gradient steps: use optimizer = "sgd"')
    rate = (lambda k: 1 - k / steps) if schedule == "linear" else (lambda k: 1.0)  # noqa: E731
    if differentiable and params.requires_grad:
        lam = params
        for k in range(steps):
            with torch.enable_grad():
                objective = local_elbo(model, x, lam, n_samples, generator).sum()
                (grad,) = torch.autograd.grad(objective, lam, create_graph=True)
            lam = lam + lr * rate(k) * grad
        return lam
    lam = params.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([lam], lr=lr) if optimizer == "adam" else torch.optim.SGD([lam], lr=lr)
    for k in bar(range(steps), desc=f"refining q for {x.shape[0]} points", unit="step"):
        with torch.enable_grad():
            (lam.grad,) = torch.autograd.grad(-local_elbo(model, x, lam, n_samples, generator).sum(), lam)
        opt.param_groups[0]["lr"] = lr * rate(k)
        opt.step()
    return lam.detach()
