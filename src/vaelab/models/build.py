"""Build a :class:`VAE` from the ``[model]`` config tables through the registries."""

from __future__ import annotations

from torch import Tensor

from ..config import Component, ModelConfig
from ..distributions import LATENTS, LIKELIHOODS, PRIORS, GaussianLatent
from ..errors import ConfigError
from ..nets import MLP, NETWORKS
from .layers import StochasticLayer
from .vae import VAE


def decoder_component(cfg: ModelConfig) -> Component:
    """The decoder's table; unset, it mirrors the encoder (same kind, list options reversed)."""
    if cfg.decoder is not None:
        return cfg.decoder
    mirrored = {k: (v[::-1] if isinstance(v, list) else v) for k, v in cfg.encoder.options.items()}
    return Component(cfg.encoder.kind, mirrored)


def build_model(
    cfg: ModelConfig, x_shape: tuple[int, ...], pseudo_init: Tensor | None = None, vocab_size: int | None = None
) -> VAE:
    """A VAE for data with event shape ``x_shape`` as ``cfg`` describes it.

    Args:
        cfg: the ``[model]`` section.
        x_shape: the data's event shape, e.g. (2,) or (1, 28, 28).
        pseudo_init: (C, *x_shape) training points to initialize a VampPrior's pseudo-inputs.
        vocab_size: the vocabulary size V of a text data set (token sequences), else None.
    Returns:
        the model, with ``model.spec`` = what a checkpoint needs to rebuild it.
    Raises:
        ConfigError: an unknown kind or option, or pieces that do not fit together.
    """
    x_shape = tuple(int(d) for d in x_shape)
    check_text(cfg, vocab_size)
    likelihood = LIKELIHOODS.build(
        cfg.likelihood.kind, cfg.likelihood.options, "model.likelihood", event_shape=x_shape, vocab_size=vocab_size
    )
    latent = LATENTS.build(cfg.latent.kind, cfg.latent.options, "model.latent")
    encoder = NETWORKS.build(
        cfg.encoder.kind,
        cfg.encoder.options,
        "model.encoder",
        in_shape=x_shape,
        out_shape=(latent.n_params,),
        vocab_size=vocab_size,
    )
    dec = decoder_component(cfg)
    decoder = NETWORKS.build(
        dec.kind,
        dec.options,
        "model.decoder",
        in_shape=(latent.flat_dim,),
        out_shape=likelihood.param_shape,
        vocab_size=vocab_size,
    )
    upper_enc, upper_dec = _upper_layers(cfg, latent)
    top = upper_enc[-1].family if upper_enc else latent
    prior = PRIORS.build(
        cfg.prior.kind,
        cfg.prior.options,
        "model.prior",
        latent=top,
        x_shape=x_shape,
        x_range=likelihood.x_range,
        pseudo_init=pseudo_init,
    )
    model = VAE(encoder, decoder, latent, likelihood, prior, upper_enc, upper_dec)
    model.spec = {"model": _model_dict(cfg), "x_shape": list(x_shape), "vocab_size": vocab_size}
    return model


def check_text(cfg: ModelConfig, vocab_size: int | None) -> None:
    """Token data needs token networks and the categorical likelihood, and nothing else reads tokens.

    Raises:
        ConfigError: naming the table to change.
    """
    if not vocab_size:
        return
    dec = decoder_component(cfg)
    for where, kind in (("model.encoder", cfg.encoder.kind), ("model.decoder", dec.kind)):
        if kind != "lstm":
            raise ConfigError(f'{where} kind = "{kind}" cannot read token sequences; use kind = "lstm"')
    if cfg.likelihood.kind != "categorical":
        raise ConfigError(f'text data needs model.likelihood kind = "categorical", not "{cfg.likelihood.kind}"')
    if cfg.prior.kind == "vamp" or cfg.upper_z_dims:
        raise ConfigError(
            "text models support one stochastic layer and a prior without pseudo-inputs "
            "(VampPrior pseudo-inputs would be token sequences)"
        )


def _upper_layers(cfg: ModelConfig, latent) -> tuple[list, list]:
    """Gaussian layers q(z_l|z_{l-1}) and p(z_{l-1}|z_l) with tanh MLPs of ``upper_hidden`` (Burda et al.)."""
    act = cfg.encoder.options.get("activation", "tanh") if cfg.encoder.kind == "mlp" else "tanh"
    hidden = [int(h) for h in cfg.upper_hidden]
    dims = [latent.flat_dim, *(int(d) for d in cfg.upper_z_dims)]
    enc, dec = [], []
    for i, (lo, hi) in enumerate(zip(dims[:-1], dims[1:])):
        in_ndim = len(latent.event_shape) if i == 0 else 1
        enc.append(StochasticLayer(MLP((lo,), (2 * hi,), hidden, act), GaussianLatent(hi), in_ndim))
        lower = latent.conditional_family() if i == 0 else GaussianLatent(lo)
        dec.append(StochasticLayer(MLP((hi,), (lower.n_params,), hidden[::-1], act), lower))
    return enc, dec


def _model_dict(cfg: ModelConfig) -> dict:
    from ..config import RunConfig

    return RunConfig(model=cfg).to_dict()["model"]
