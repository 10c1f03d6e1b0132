"""The model families a config can name (``model.kind``): one registered class each, built from the same
pieces (networks, latent family, prior, likelihood, stochastic layers) by :func:`vaelab.models.build_model`."""

from __future__ import annotations

from ..registry import Registry

#: model.kind -> a :class:`~vaelab.models.VAE` subclass ("vae": bottom-up inference; "top-down": Ladder VAE)
MODEL_KINDS = Registry("model kind")
