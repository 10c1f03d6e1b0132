"""DisARM (Dong, Mnih & Tucker 2020): an antithetic, unbiased gradient for Bernoulli latents.

ARM (Yin & Zhou 2019) writes b = 1[u < sigmoid(alpha)] with u ~ U(0, 1) and pairs it with its
antithetic twin b~ = 1[1 - u < sigmoid(alpha)]; DisARM integrates out the augmenting u given the
pair, which leaves (Dong et al. 2020, eq. 5), per latent dimension i and for the logits alpha:

    g_i = 1/2 (f(b) - f(b~)) (-1)^{b~_i} 1[b_i != b~_i] sigmoid(|alpha_i|),

an unbiased estimate of d/d alpha_i E_{q(b)}[f(b)] that costs two evaluations of f and never
exceeds ARM's variance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..objectives import combine
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def disarm_logit_gradient(alpha: Tensor, u: Tensor, f: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """DisARM's estimate of d/d alpha E_{b ~ Bernoulli(sigmoid(alpha))}[f(b)], per sample pair.

    Args:
        alpha: (B, D) logits; u: (S, B, D) uniforms, one antithetic pair per row s;
        f: maps (2S, B, D) binary samples to (2S, B) values.
    Returns:
        (g, f_b, f_anti): g (S, B, D), detached, and the two halves' values (S, B) each.
    """
    p = torch.sigmoid(alpha)  # (B, D)
    b, anti = (u < p).to(alpha.dtype), (1 - u < p).to(alpha.dtype)  # (S, B, D) each
    values = f(torch.cat([b, anti]))  # (2S, B)
    f_b, f_anti = values.chunk(2)
    sign = 1.0 - 2.0 * anti  # (-1)^{b~}
    g = 0.5 * (f_b - f_anti).detach().unsqueeze(-1) * sign * (b != anti).to(alpha.dtype) * torch.sigmoid(alpha.abs())
    return g.detach(), f_b, f_anti


@ESTIMATORS.register("disarm")
class DisARM(Estimator):
    """DisARM for the ELBO of one layer of Bernoulli latents: S antithetic pairs per point (2S
    decoder passes), the logits' gradient from :func:`disarm_logit_gradient` with f = log p(x, b) -
    log q(b|x), the generative gradient from the pairs' log-weights. The term E[grad log q(b|x)] of
    the total derivative is zero and left out. The logged value is the true ELBO of the engine's S
    samples.
    """

    pathwise = False

    def check(self, model) -> None:
        if model.latent.support != "binary" or model.n_layers != 1:
            raise ConfigError(
                "estimator 'disarm' serves one layer of bernoulli latents; for categorical or "
                "several layers use 'reinforce_ema', 'vimco', 'rloo' or 'nvil' (for continuous latents 'reparam')"
            )

    def check_objective(self, objective, n_samples):
        if type(objective).registry_name != "elbo":
            raise ConfigError(
                "estimator 'disarm' estimates the ELBO's gradient (objective elbo); for "
                f"{type(objective).registry_name} use 'reinforce_ema' (or 'vimco' for iwae / miwae / piwae)"
            )

    def __call__(self, terms, objective) -> BoundEstimate:
        self.check_objective(objective, 1)
        model, x = terms._model, terms.x
        s = terms.log_w.shape[0]
        value = combine(terms.log_w, objective.terms(s)).detach()  # (B,) the true ELBO
        alpha = model.encoder(x).reshape(x.shape[0], model.latent.dim)  # (B, D) logits of q(b|x)
        q = model.latent.distribution(alpha)  # the same q(b|x), without a second encoder pass

        def log_joint(b: Tensor) -> Tensor:  # (2S, B): log p(x|b) + log p(b), q's part kept for f below
            return model.likelihood.log_prob(model.decode(b, x), x) + model.prior.log_prob(b)

        def f(b: Tensor) -> Tensor:
            return log_joint(b) - q.log_prob(b).detach()

        u = torch.rand(s, *alpha.shape, dtype=alpha.dtype, device=alpha.device)
        g, f_b, f_anti = disarm_logit_gradient(alpha, u, f)
        inference = (g * alpha).sum(-1).mean(0)  # (B,): its gradient w.r.t. alpha is the DisARM estimate
        generative = 0.5 * (f_b + f_anti).mean(0)  # (B,): pathwise in theta, both halves of each pair
        surrogate = straight_through(value, inference + generative)  # disjoint parameters: one pass serves both
        return BoundEstimate(value, surrogate, surrogate)
