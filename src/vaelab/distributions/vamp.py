"""VampPrior: a mixture of variational posteriors at trainable pseudo-inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, MixtureSameFamily

from ..errors import ConfigError
from .prior import Prior


class VampPrior(Prior):
    """p(z) = (1/C) sum_c q(z | u_c) (Tomczak & Welling 2018, eq. 9).

    The pseudo-inputs u_c (shape (C, x_dim)) are trainable; q is the model's own encoder, so
    the prior changes whenever the encoder does. The encoder is attached by the VAE
    (:meth:`attach_encoder`) and deliberately not registered as a submodule here, so its
    parameters appear once in ``state_dict``.

    Args:
        z_dim: D.
        n_components: C, the number of pseudo-inputs.
        x_dim: dimension of the data.
        pseudo_init: optional (C, x_dim) tensor to initialize u (e.g. random training points);
            otherwise u ~ N(0, 0.01^2) elementwise.
    """

    def __init__(self, z_dim: int, n_components: int = 50, x_dim: int | None = None,
                 pseudo_init: Tensor | None = None, **_unused):
        super().__init__(z_dim)
        if x_dim is None:
            raise ConfigError("VampPrior needs x_dim (the data dimension)")
        if n_components < 1:
            raise ConfigError(f"prior_components must be >= 1, got {n_components}")
        if pseudo_init is not None:
            if pseudo_init.shape != (n_components, x_dim):
                raise ConfigError(
                    f"pseudo_init must have shape ({n_components}, {x_dim}), got {tuple(pseudo_init.shape)}"
                )
            init = pseudo_init.detach().clone().float()
        else:
            init = 0.01 * torch.randn(n_components, x_dim)
        self.pseudo_inputs = nn.Parameter(init)  # (C, x_dim)
        self.n_components = n_components
        self._encoder = None

    def attach_encoder(self, encoder) -> None:
        """Use ``encoder(x) -> (mean, logvar)`` as q(z|u). Called by the VAE."""
        # object.__setattr__ skips nn.Module registration: the VAE owns the encoder.
        object.__setattr__(self, "_encoder", encoder)

    def distribution(self) -> MixtureSameFamily:
        if self._encoder is None:
            raise RuntimeError("VampPrior has no encoder; build it through vaelab.models.VAE")
        components = self._encoder.posterior(self.pseudo_inputs)  # batch (C,), event (D,)
        mix = Categorical(logits=torch.zeros(self.n_components, device=self.pseudo_inputs.device))
        return MixtureSameFamily(mix, components)
