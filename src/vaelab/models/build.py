"""Build a :class:`VAE` from the ``[model]`` config tables through the registries."""

from __future__ import annotations

from torch import Tensor

from ..config import Component, ModelConfig
from ..distributions import LATENTS, LIKELIHOODS, PRIORS, GaussianLatent
from ..distributions.class_prior import ClassConditionalPrior
from ..errors import ConfigError, sizes_that_fit
from ..labels import LABEL_MODES
from ..nets import MLP, NETWORKS
from ..nets.conditioned import Conditioned
from .kinds import MODEL_KINDS
from .layers import StochasticLayer
from .vae import VAE


def decoder_component(cfg: ModelConfig) -> Component:
    """The decoder's table; unset, it mirrors the encoder (same kind, list options reversed)."""
    if cfg.decoder is not None:
        return cfg.decoder
    mirrored = {k: (v[::-1] if isinstance(v, list) else v) for k, v in cfg.encoder.options.items()}
    return Component(cfg.encoder.kind, mirrored)


def build_model(
    cfg: ModelConfig,
    x_shape: tuple[int, ...],
    pseudo_init: Tensor | None = None,
    vocab_size: int | None = None,
    n_classes: int = 0,
) -> VAE:
    """A VAE for data with event shape ``x_shape`` as ``cfg`` describes it.

    Args:
        cfg: the ``[model]`` section.
        x_shape: the data's event shape, e.g. (2,) or (1, 28, 28).
        pseudo_init: (C, *x_shape) training points to initialize a VampPrior's pseudo-inputs.
        vocab_size: the vocabulary size V of a text data set (token sequences), else None.
        n_classes: C, the number of classes a labelled model (``cfg.labels``) reads; 0 otherwise.
    Returns:
        the model, with ``model.spec`` = what a checkpoint needs to rebuild it.
    Raises:
        ConfigError: an unknown kind or option, pieces that do not fit together, or parameters
            that do not fit in memory.
    """
    with sizes_that_fit("the model", "make model.latent.dim, the networks' widths or model.prior.components smaller"):
        return _build(cfg, x_shape, pseudo_init, vocab_size, n_classes)


def _build(cfg: ModelConfig, x_shape, pseudo_init, vocab_size, n_classes) -> VAE:
    x_shape = tuple(int(d) for d in x_shape)
    check_text(cfg, vocab_size)
    likelihood = LIKELIHOODS.build(
        cfg.likelihood.kind, cfg.likelihood.options, "model.likelihood", event_shape=x_shape, vocab_size=vocab_size
    )
    latent = LATENTS.build(cfg.latent.kind, cfg.latent.options, "model.latent")
    mode = LABEL_MODES.build(cfg.labels, where="model.labels")
    n_classes = n_classes if mode.reads_labels else 0
    if mode.reads_labels and vocab_size:
        raise ConfigError(f"labelled text models are not supported: model.labels = {cfg.labels!r} reads labels")
    net = _network(n_classes, vocab_size)
    encoder = net(cfg.encoder, "model.encoder", x_shape, (latent.n_params,))
    decoder = net(decoder_component(cfg), "model.decoder", (latent.flat_dim,), likelihood.param_shape)
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
    classifier = mode.classifier(cfg, x_shape, n_classes, _network(0, None))  # q(y|x) reads x only
    class_prior = None
    if cfg.conditional_prior:
        class_prior = ClassConditionalPrior(top, n_classes)
    kind = MODEL_KINDS[cfg.kind]  # a VAE subclass (models/kinds.py)
    model = kind(encoder, decoder, latent, likelihood, prior, upper_enc, upper_dec, n_classes, mode, classifier, class_prior)
    model.spec = {"model": _model_dict(cfg), "x_shape": list(x_shape), "vocab_size": vocab_size, "n_classes": n_classes}
    return model


def _network(n_classes: int, vocab_size: int | None):
    """A builder of registered networks, each made to read the label when the model is labelled."""

    def build(comp: Component, where: str, in_shape, out_shape):
        if n_classes:
            return Conditioned(comp.kind, comp.options, in_shape, out_shape, n_classes, where)
        return NETWORKS.build(comp.kind, comp.options, where, in_shape=in_shape, out_shape=out_shape, vocab_size=vocab_size)

    return build


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
