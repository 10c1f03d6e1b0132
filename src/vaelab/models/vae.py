"""The VAE: one class, parameterized by encoder, decoder, prior and likelihood.

The model only produces log-density terms; turning them into a loss is the job of
``vaelab.objectives`` (Pyro-style separation of model and objective).
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions import PRIORS, Likelihood, Prior, build_likelihood, reparameterize, rsample_one
from ..distributions.gaussian import diag_gaussian_scale
from ..errors import ConfigError, DataError
from ..nets import MLP, GaussianEncoder


class LogWeightTerms:
    """Per-sample log-density terms for K samples h_k ~ q(h|x) of a batch of B points, in nats.

    For L stochastic layers h = (z_1, ..., z_L), q(h|x) = q(z_1|x) prod_l q(z_l|z_{l-1}) and
    p(x, h) = p(x|z_1) prod_l p(z_l|z_{l+1}) p(z_L) (Burda et al. 2016, Sec. 2).

    Attributes:
        zs: per-layer samples, ``zs[l]`` of shape (K, B, D_l).
        z: ``zs[0]``, the layer the decoder of x reads.
        log_px_z: (K, B) log p(x | z_1).
        log_pz: (K, B) log p(h) = log p(z_L) + sum_l log p(z_l | z_{l+1}), computed on first access.
        log_qz: (K, B) log q(h | x), computed on first access.
        log_qz_stopped: (K, B) log q(h | x) with the inference network's parameters detached
            (same value; the gradient keeps only the path through h). Used by STL and DReG.
        posterior: q(z_1|x), batch shape (B,), event shape (D_1,).

    log p and log q are lazy because the analytic-KL ELBO never needs them, and computing them
    anyway costs ~10% of a training step on the IWAE-paper MLP.
    """

    def __init__(self, model: "VAE", zs: list[Tensor], log_px_z: Tensor, posteriors: list[Distribution]):
        self.zs, self.log_px_z, self._posteriors, self._model = zs, log_px_z, posteriors, model

    @property
    def z(self) -> Tensor:
        return self.zs[0]

    @property
    def posterior(self) -> Distribution:
        return self._posteriors[0]

    @cached_property
    def log_pz(self) -> Tensor:
        m = self._model
        log_p = m.prior.log_prob(self.zs[-1])  # (K, B)
        for layer, z_lower, z_upper in zip(m.upper_decoders, self.zs[:-1], self.zs[1:]):
            log_p = log_p + layer.posterior(z_upper).log_prob(z_lower)  # p(z_l | z_{l+1})
        return log_p

    @cached_property
    def log_qz(self) -> Tensor:
        return sum(q.log_prob(z) for q, z in zip(self._posteriors, self.zs))  # (K, B)

    @cached_property
    def log_qz_stopped(self) -> Tensor:
        q1 = self._posteriors[0].base_dist
        log_q = diag_gaussian_scale(q1.loc.detach(), q1.scale.detach()).log_prob(self.zs[0])  # (K, B)
        for layer, z_lower, z in zip(self._model.upper_encoders, self.zs[:-1], self.zs[1:]):
            log_q = log_q + layer.stopped_posterior(z_lower).log_prob(z)
        return log_q

    @property
    def log_w(self) -> Tensor:
        """Importance log-weights log p(x, h_k) - log q(h_k | x), shape (K, B)."""
        return self.log_px_z + self.log_pz - self.log_qz

    @property
    def log_w_stopped(self) -> Tensor:
        """``log_w`` with log q's parameters detached: equal values, path-only gradient (K, B)."""
        return self.log_px_z + self.log_pz - self.log_qz_stopped


class _TopPosterior:
    """x -> q(z_L | x) through the means of the lower layers: the VampPrior's components for L > 1."""

    def __init__(self, model: "VAE"):
        self.model = model

    def posterior(self, x: Tensor) -> Distribution:
        h, _ = self.model.encoder(x)
        for layer in self.model.upper_encoders[:-1]:
            h, _ = layer(h)
        return self.model.upper_encoders[-1].posterior(h)


class VAE(nn.Module):
    """Variational autoencoder with Gaussian q, any prior / likelihood, and L >= 1 stochastic layers.

    Args:
        encoder: q(z_1|x), a :class:`GaussianEncoder` (x -> mean, logvar).
        decoder: a network z_1 (..., D_1) -> likelihood parameters (..., likelihood.n_outputs).
        prior: a :class:`Prior` on the top layer z_L; a VampPrior is bound to this model's
            encoder (through the lower layers' means when L > 1).
        likelihood: a :class:`Likelihood` p(x|z_1).
        upper_encoders: L-1 Gaussian layers q(z_l | z_{l-1}), l = 2..L.
        upper_decoders: L-1 Gaussian layers p(z_{l-1} | z_l), l = 2..L, in the same order.

    Source: Kingma & Welling 2014 (AEVB), Rezende et al. 2014; the multi-layer form is Burda et
    al. 2016, Sec. 2 (2 layers: 784-200-200-100 and 100-100-100-50, mirrored decoder).
    """

    def __init__(self, encoder: GaussianEncoder, decoder: nn.Module, prior: Prior, likelihood: Likelihood,
                 upper_encoders=(), upper_decoders=()):
        super().__init__()
        if len(upper_encoders) != len(upper_decoders):
            raise ConfigError("a multi-layer VAE needs one generative layer per upper inference layer")
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
        self.upper_encoders = nn.ModuleList(upper_encoders)
        self.upper_decoders = nn.ModuleList(upper_decoders)
        if prior.z_dim != self.z_dims[-1]:
            raise ConfigError(f"prior dimension {prior.z_dim} != top latent dimension {self.z_dims[-1]}")
        if hasattr(prior, "attach_encoder"):
            prior.attach_encoder(encoder if not upper_encoders else _TopPosterior(self))

    @property
    def x_dim(self) -> int:
        return self.likelihood.x_dim

    @property
    def z_dims(self) -> tuple[int, ...]:
        """Latent dimensions (D_1, ..., D_L), bottom to top."""
        return (self.encoder.z_dim, *(e.z_dim for e in self.upper_encoders))

    @property
    def z_dim(self) -> int:
        """Dimension of the top layer, the one the prior is on."""
        return self.z_dims[-1]

    @property
    def n_layers(self) -> int:
        return 1 + len(self.upper_encoders)

    def inference_parameters(self) -> list[nn.Parameter]:
        """Parameters phi of q(h|x)."""
        return [*self.encoder.parameters(), *self.upper_encoders.parameters()]

    def generative_parameters(self) -> list[nn.Parameter]:
        """Parameters theta of p(x, h): decoders and prior (a VampPrior's pseudo-inputs included)."""
        return [*self.decoder.parameters(), *self.upper_decoders.parameters(), *self.prior.parameters()]

    def posterior(self, x: Tensor) -> Distribution:
        """q(z_1|x): batch shape (B,), event shape (D_1,)."""
        return self.encoder.posterior(x)

    def conditional(self, z: Tensor) -> Distribution:
        """p(x|z_1): batch shape z.shape[:-1], event shape (x_dim,)."""
        return self.likelihood.distribution(self.decode(z))

    def decode(self, z: Tensor) -> Tensor:
        """Decoder outputs for z_1 of shape (..., D_1) -> (..., n_outputs).

        Leading axes are flattened first: ``nn.Linear`` on a 2-D input is one fused addmm,
        while on (K, B, D) it falls back to matmul + add, ~15% slower per training step.
        """
        params = self.decoder(z.reshape(-1, z.shape[-1]))  # (K*B, n_outputs)
        return params.reshape(*z.shape[:-1], params.shape[-1])

    def log_weight_terms(self, x: Tensor, n_samples: int = 1, generator: torch.Generator | None = None,
                         posterior: Distribution | None = None) -> LogWeightTerms:
        """Draw K = ``n_samples`` reparameterized h ~ q(h|x) and score them.

        Args:
            x: (B, x_dim) data batch.
            n_samples: K.
            generator: optional RNG for reproducible evaluation.
            posterior: a precomputed q(z_1|x) for this x (saves an encoder pass when chunking).
        Returns:
            :class:`LogWeightTerms` with (K, B) terms.
        """
        q = self.posterior(x) if posterior is None else posterior
        z = reparameterize(q, n_samples, generator)  # (K, B, D_1)
        zs, posteriors = [z], [q]
        for layer in self.upper_encoders:
            q_l = layer.posterior(zs[-1])  # batch (K, B)
            posteriors.append(q_l)
            zs.append(rsample_one(q_l, generator))  # (K, B, D_l)
        log_px_z = self.conditional(z).log_prob(x)  # x (B, x_dim) broadcasts against (K, B)
        return LogWeightTerms(self, zs, log_px_z, posteriors)

    def score(self, x: Tensor, z: Tensor, q: Distribution) -> LogWeightTerms:
        """log p(x|z), log p(z), log q(z|x) for given samples z of shape (K, B, D); one layer only."""
        if self.n_layers != 1:
            raise ValueError("score(x, z, q) takes a single layer's samples; use log_weight_terms")
        return LogWeightTerms(self, [z], self.conditional(z).log_prob(x), [q])

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True) -> Tensor:
        """Generate n points: h ~ p(h), then E[x|z_1] (``mean=True``) or x ~ p(x|z_1). Shape (n, x_dim)."""
        z = self.prior.sample(n)  # (n, D_L)
        for layer in reversed(self.upper_decoders):
            z = layer.posterior(z).sample()  # (n, D_{l-1})
        params = self.decode(z)
        return self.likelihood.mean(params) if mean else self.likelihood.distribution(params).sample()

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x | z = mean of q(z|x)], shape (B, x_dim)."""
        mean, _ = self.encoder(x)
        return self.likelihood.mean(self.decode(mean))

    @torch.no_grad()
    def posterior_means(self, x: Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> list[Tensor]:
        """E_q[z_l | x] for every layer, each (B, D_l).

        Layer 1 is exact (the encoder mean); for l > 1, E_q[z_l|x] = E_{q(z_{l-1}|x)}[mu_l(z_{l-1})]
        is averaged over ``n_samples`` draws of the lower layers.
        """
        means = [self.encoder(x)[0]]  # (B, D_1)
        if self.n_layers > 1:
            terms = self.log_weight_terms(x, n_samples, generator)
            for layer, z_lower in zip(self.upper_encoders, terms.zs[:-1]):
                means.append(layer(z_lower.reshape(-1, z_lower.shape[-1]))[0].view(n_samples, x.shape[0], -1).mean(0))
        return means

    def check_input(self, x: Tensor, name: str = "data") -> None:
        """Raise :class:`DataError` if x is not (N, x_dim), finite, and in the likelihood's support."""
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise DataError(f"{name}: expected shape (N, {self.x_dim}), got {tuple(x.shape)}")
        bad = (~torch.isfinite(x)).sum().item()
        if bad:
            raise DataError(f"{name}: {bad} NaN/inf values; remove or impute them before training")
        self.likelihood.check_data(x, name)


def build_vae(model_cfg, x_dim: int, pseudo_init: Tensor | None = None) -> VAE:
    """Build a VAE from a :class:`vaelab.config.ModelConfig` for data of dimension ``x_dim``."""
    if model_cfg.prior not in PRIORS:
        raise ConfigError(f"prior must be one of {sorted(PRIORS)}, got {model_cfg.prior!r}")
    hidden = list(model_cfg.hidden)
    act = model_cfg.activation
    encoder = GaussianEncoder(x_dim, hidden, model_cfg.z_dim, act)
    likelihood = build_likelihood(model_cfg.likelihood, x_dim, model_cfg.decoder_variance,
                                  model_cfg.fixed_variance)
    decoder = MLP(model_cfg.z_dim, hidden[::-1], likelihood.n_outputs, act)
    dims = [model_cfg.z_dim, *(int(d) for d in model_cfg.upper_z_dims)]  # (D_1, ..., D_L)
    upper_hidden = [int(h) for h in model_cfg.upper_hidden]
    upper_enc = [GaussianEncoder(lo, upper_hidden, hi, act) for lo, hi in zip(dims[:-1], dims[1:])]
    upper_dec = [GaussianEncoder(hi, upper_hidden[::-1], lo, act) for lo, hi in zip(dims[:-1], dims[1:])]
    prior = PRIORS[model_cfg.prior](
        dims[-1],
        n_components=model_cfg.prior_components,
        weights=model_cfg.prior_weights,
        fixed_weights=model_cfg.prior_fixed_weights or None,
        x_dim=x_dim,
        pseudo_init=pseudo_init,
    )
    return VAE(encoder, decoder, prior, likelihood, upper_enc, upper_dec)
