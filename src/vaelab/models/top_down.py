"""Top-down inference (Ladder VAE, Sønderby et al. 2016): ``model.kind = "top-down"``.

The generative model is the multi-layer VAE's, p(x|z_1) p(z_1|z_2) ... p(z_L). Inference differs: a
deterministic bottom-up pass gives each layer a Gaussian estimate q̂_l(z_l | x) (the encoder for layer 1,
then the upper inference layers applied to the previous estimate's mean), and a top-down pass samples
z_L ~ q̂_L, then for l = L-1, ..., 1

    q(z_l | z_{l+1}, x) = N(mu_q, sigma_q^2),  sigma_q^-2 = sigma_hat^-2 + sigma_p^-2,
                          mu_q = (mu_hat sigma_hat^-2 + mu_p sigma_p^-2) sigma_q^2

the precision-weighted merge of the bottom-up estimate with the generative layer p(z_l | z_{l+1})
(Sønderby et al. 2016, eq. 18-19). The posterior thus shares the top-down generative path: the prior
informs inference, which is what keeps upper units active. The modules (and so the checkpoint's keys)
are the bottom-up model's; only the inference pass changes.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..data.batch import Batch
from ..distributions import GaussianLatent, LatentFamily, stopped
from ..errors import ConfigError
from .kinds import MODEL_KINDS
from .terms import LogWeightTerms
from .vae import VAE


def merge(family: LatentFamily, bottom_up: Distribution, prior: Distribution) -> Distribution:
    """The precision-weighted product of two diagonal Gaussians, normalized (Sønderby et al. 2016, eq. 18-19):
    batch shape the two's broadcast."""
    prec_q, prec_p = 1.0 / bottom_up.variance, 1.0 / prior.variance
    var = 1.0 / (prec_q + prec_p)
    mean = (bottom_up.mean * prec_q + prior.mean * prec_p) * var
    return family.distribution(torch.cat([mean, var.log()], -1))


@MODEL_KINDS.register("top-down")
class TopDownVAE(VAE):
    """A multi-layer VAE with top-down inference (Ladder VAE). Arguments as :class:`VAE`; L >= 2
    Gaussian layers.

    ``posterior(x)`` is the bottom-up estimate q̂(z_1|x) (the merge's input, not the marginal q(z_1|x),
    which has no closed form); :meth:`log_weight_terms` and :meth:`posterior_means` run the top-down pass.

    Raises:
        ConfigError: one layer (that is the plain VAE), a non-Gaussian latent, a VampPrior or labels.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.n_layers < 2:
            raise ConfigError(f'model.kind = "{self.registry_name}" needs several stochastic layers (model.upper_z_dims)')
        if type(self.latent) is not GaussianLatent:
            raise ConfigError(
                f'model.kind = "{self.registry_name}" merges Gaussians: model.latent must be "gaussian", not {self.latent!r}'
            )
        if hasattr(self.prior, "attach_encoder") or self.n_classes:
            raise ConfigError(f'model.kind = "{self.registry_name}" takes a prior without pseudo-inputs and no labels')

    def combine(self, bottom_up: Distribution, prior: Distribution) -> Distribution:
        """q(z_l | z_{l+1}, x) from the bottom-up estimate and p(z_l | z_{l+1}): the precision-weighted merge."""
        return merge(self.latent, bottom_up, prior)

    def bottom_up(self, x: Tensor, q1: Distribution | None = None) -> list[Distribution]:
        """The deterministic pass: q̂_l(z_l | x) for l = 1..L, each with batch shape (B,)."""
        q = self.posterior(x) if q1 is None else q1
        out = [q]
        for layer in self.inference_layers:
            out.append(layer(out[-1].mean))  # (B, D_l) -> q̂_{l+1}
        return out

    def log_weight_terms(self, x, n_samples=1, generator=None, posterior=None, reparameterize=True, y=None):
        """S top-down samples h ~ q(h|x) and their terms (as :meth:`VAE.log_weight_terms`; ``posterior``
        is a precomputed bottom-up q̂(z_1|x))."""
        x = x.x if isinstance(x, Batch) else x
        if y is not None:
            raise ConfigError('model.kind = "top-down" reads no labels')
        est = self.bottom_up(x, posterior)
        qs: list[Distribution] = [est[-1]]
        zs = [self.latent.draw(est[-1], n_samples, generator)]  # (S, B, D_L)
        zs[0] = zs[0] if reparameterize else zs[0].detach()
        for hat, p_layer in zip(reversed(est[:-1]), reversed(list(self.upper_decoders))):
            q = self.combine(hat, p_layer(zs[0]))  # batch (S, B)
            z = self.latent.draw(q, 1, generator)[0]  # (S, B, D_l)
            qs.insert(0, q)
            zs.insert(0, z if reparameterize else z.detach())
        log_px_z = self.likelihood.log_prob(self.decode(zs[0], x), x)  # (S, B)
        return TopDownTerms(self, zs, log_px_z, qs, x, None, est)

    def log_posterior(self, x, zs, y=None, q=None) -> Tensor:
        """log q(h|x) = log q̂_L(z_L|x) + sum_l log q(z_l | z_{l+1}, x) at any h, nats."""
        return self.log_q(self.bottom_up(x, q), list(self.upper_decoders), zs)

    def log_q(self, estimates: list[Distribution], generative: list, zs: list[Tensor]) -> Tensor:
        """log q̂_L(z_L) + sum_l log q(z_l | z_{l+1}, x), each q combining ``estimates[l]`` with
        ``generative[l](z_{l+1})`` (the generative layers, or their stopped copies for DReG)."""
        log_q = estimates[-1].log_prob(zs[-1])
        for hat, p_layer, z_l, z_up in zip(estimates[:-1], generative, zs[:-1], zs[1:]):
            log_q = log_q + self.combine(hat, p_layer(z_up)).log_prob(z_l)
        return log_q

    @torch.no_grad()
    def posterior_means(self, x, n_samples=1, generator=None, y=None) -> list[Tensor]:
        """E_q[z_l | x] per layer, averaged over ``n_samples`` top-down passes (B, D_l); the top layer's exact."""
        terms = self.log_weight_terms(x, n_samples, generator)
        return [q.mean.mean(0) if q.mean.dim() == 3 else q.mean for q in terms.posteriors]  # (S, B, D_l) -> (B, D_l)


def residual(family: LatentFamily, bottom_up: Distribution, prior: Distribution) -> Distribution:
    """NVAE's posterior relative to the prior (Vahdat & Kautz 2020, eq. 2): N(mu_p + d_mu, sigma_p^2 d_sigma^2),
    the bottom-up estimate read as the shift d_mu and the scale d_sigma^2 (its mean and variance)."""
    mean = prior.mean + bottom_up.mean
    return family.distribution(torch.cat([mean, prior.variance.log() + bottom_up.variance.log()], -1))


@MODEL_KINDS.register("top-down-residual")
class ResidualTopDownVAE(TopDownVAE):
    """:class:`TopDownVAE` with NVAE's residual posterior: each q(z_l | z_{l+1}, x) is the generative layer's
    Gaussian shifted and scaled by the bottom-up estimate (:func:`residual`) instead of merged with it."""

    def combine(self, bottom_up: Distribution, prior: Distribution) -> Distribution:
        return residual(self.latent, bottom_up, prior)


class TopDownTerms(LogWeightTerms):
    """:class:`LogWeightTerms` of a top-down pass; ``posteriors[l]`` = q(z_l | z_{l+1}, x) (top: q̂_L)."""

    def __init__(self, model, zs, log_px_z, posteriors, x, y, bottom_up: list[Distribution]):
        super().__init__(model, zs, log_px_z, posteriors, x, y)
        self.bottom_up = bottom_up

    @cached_property
    def log_qz_stopped(self) -> Tensor:
        """log q(h|x) with every parameter detached but the samples live: the bottom-up estimates fully
        detached (they depend on x only), each generative layer p(z_l|z_{l+1}) re-run with detached
        weights on the live z_{l+1} (Roeder et al. 2017, eq. 8; Tucker et al. 2019 for the hierarchy)."""
        m = self._model
        return m.log_q([stopped(q) for q in self.bottom_up], [layer.stopped for layer in m.upper_decoders], self.zs)
