"""The bound of a batch and its gradient surrogates, from the model's log-weight terms: the leaf that
every training path (the plain step, a label mode's bound, a compiled step) calls.

An analytic KL, a KL weight beta != 1 and free bits are surrogates of the ELBO under the plain
reparameterization gradient and of nothing else: the rule is
:func:`~vaelab.estimators.base.shaping_allowed`, which the config validator asks by registry names
and :func:`check_shaping` here by objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..distributions.prior import kl_per_variable
from ..errors import ConfigError
from ..estimators import BoundEstimate, Estimator, straight_through
from ..objectives import ELBO, Objective, elbo


def plain_elbo(objective: Objective, estimator: Estimator) -> bool:
    """:func:`~vaelab.estimators.base.shaping_allowed` for built objects: the ELBO under an estimator whose
    gradient is the bound's own."""
    return isinstance(objective, ELBO) and estimator.shapes_elbo


def check_shaping(objective: Objective, estimator: Estimator, kl: str, beta: float, free_bits: float) -> None:
    """Raises ConfigError when an analytic KL, beta != 1 or free bits meet another objective or estimator."""
    if (kl == "analytic" or beta != 1.0 or free_bits) and not plain_elbo(objective, estimator):
        raise ConfigError(
            "an analytic KL, beta != 1 or free bits apply to the ELBO with estimator 'reparam' only, "
            f"not to {type(objective).registry_name} with {type(estimator).registry_name}"
        )


def resolve_kl(kl: str, model, objective: Objective, estimator: Estimator) -> str:
    """'analytic' or 'mc' for ``kl`` in {'auto', 'analytic', 'mc'}.

    The closed-form KL (Kingma & Welling 2014, eq. 7) is valid for the ELBO with the plain
    reparameterization gradient, one stochastic layer and a prior with a closed form; 'auto'
    picks it exactly then.

    Raises:
        ConfigError: 'analytic' asked for where it does not apply.
    """
    plain = plain_elbo(objective, estimator)
    closed = model.has_analytic_kl
    if kl == "auto":
        return "analytic" if plain and closed and model.reparameterized else "mc"
    if kl == "analytic" and not closed:
        why = (
            "several stochastic layers couple the KL terms"
            if model.n_layers > 1
            else f"prior '{type(model.prior).registry_name}' has no closed-form KL with this latent family"
        )
        raise ConfigError(f'kl = "analytic" is unavailable: {why}; use kl = "mc" or "auto"')
    if kl == "analytic" and not plain:
        raise ConfigError('kl = "analytic" applies to the ELBO with estimator \'reparam\' only; use kl = "mc"')
    return kl


@dataclass(frozen=True)
class BoundOptions:
    """How a batch's bound is formed, besides the objective and estimator (see
    :func:`vaelab.train.step.compute_bound`).

    Attributes:
        n_samples: K per objective group.
        kl: "analytic" or "mc" (:func:`resolve_kl`).
        beta: the KL weight (1 = the true bound is trained).
        free_bits: lambda, nats per latent dimension (0 = off).
        global_mean: under torchrun, this rank's share-mean of a statistic -> the global batch's
            (free bits decide their clamp from it); None in one process.
        classification_weight: a semi-supervised model's alpha / N (Kingma et al. 2014, eq. 9);
            None: the label mode's default.
    """

    n_samples: int = 1
    kl: str = "mc"
    beta: float = 1.0
    free_bits: float = 0.0
    global_mean: Callable[[Tensor], Tensor] | None = None
    classification_weight: float | None = None


def estimate(
    model, terms, objective: Objective, estimator: Estimator, opts: BoundOptions
) -> tuple[BoundEstimate, Tensor, Tensor]:
    """The estimate on given terms, and per point (B,) the sample means of log p(x|z) and of the KL:
    log q - log p, or with ``opts.kl == "analytic"`` the closed form (see :func:`compute_bound`); the two
    carry gradient only where the estimate is formed from them (the caller reads their values)."""
    kl, beta, free_bits = opts.kl, opts.beta, opts.free_bits
    mean_rec = terms.mean_log_px_z  # (B,)
    if kl != "analytic" and beta == 1.0 and not free_bits:  # the estimator's own gradient
        return estimator(terms, objective), mean_rec, elbo(terms.kl())
    # the closed form per point is not expanded over samples: (1/S) sum_s log p(x|z_s) - KL (eq. 7)
    mean_kl = terms.analytic_kl() if kl == "analytic" else elbo(terms.kl())  # (B,)
    if kl == "analytic" and beta == 1.0 and not free_bits:  # the trained bound is the true one: no surrogate
        bound = mean_rec - mean_kl  # (B,)
        return BoundEstimate(bound.detach(), bound, bound), mean_rec, mean_kl
    true = (mean_rec - mean_kl).detach()  # (B,) the ELBO at beta = 1: what is logged
    if free_bits:
        trained = mean_rec - beta * free_bits_kl(model, terms, free_bits, opts.global_mean)  # (B,)
    else:
        trained = mean_rec - beta * mean_kl  # (B,)
    surrogate = straight_through(true, trained)
    shaped = {"train_objective": trained.detach()} if free_bits or beta != 1.0 else {}
    return BoundEstimate(true, surrogate, surrogate, reported=shaped), mean_rec, mean_kl


def free_bits_kl(model, terms, free_bits: float, global_mean: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """A surrogate for sum_j max(lambda, KL_j), KL_j = mean_b KL(q(z_j|x_b) || p(z_j)) over the
    batch, in nats (Kingma et al. 2016, App. C.8), with that gradient: dimension j's batch-mean KL
    where KL_j >= lambda, nothing where it is clamped.

    Which dimensions are clamped is decided from ``global_mean`` of this share's per-dimension
    means (the global batch's KL_j under torchrun), so that each rank's gradient, weighted by its
    share and summed, is the single-process gradient. The value is this share's: only the gradient
    is used.

    Raises:
        ConfigError: no per-dimension KL in closed form (several layers, a mixture or VampPrior).
    """
    kl_dims = kl_per_variable(terms.posterior, model.prior) if model.n_layers == 1 else None  # (B, D)
    if kl_dims is None:
        raise ConfigError(
            "train.free_bits needs one latent layer whose posterior and prior factorize with a "
            "per-dimension KL in closed form (e.g. Gaussian under standard_normal); set free_bits = 0"
        )
    local = kl_dims.mean(0)  # (D,)
    decided = global_mean(local.detach()) if global_mean is not None else local.detach()  # (D,)
    return torch.where(decided >= free_bits, local, torch.full_like(local, free_bits)).sum()
