"""VampPrior: a mixture of variational posteriors at trainable pseudo-inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import MixtureSameFamily

from ..errors import ConfigError
from .gaussian_mixture import mixture
from .prior import PRIORS, Prior

CONSTRAINTS = ("auto", "hardtanh", "sigmoid", "none")


@PRIORS.register("vamp")
class VampPrior(Prior):
    """p(z) = (1/C) sum_c q(z | u_c) (Tomczak & Welling 2018, eq. 9).

    The pseudo-inputs u_c (shape (C, *x_shape)) are trainable; q is the model's own encoder, so
    the prior changes whenever the encoder does. The encoder is attached by the VAE
    (:meth:`attach_encoder`) and deliberately not registered as a submodule here, so its
    parameters appear once in ``state_dict``.

    Args:
        components: C, the number of pseudo-inputs.
        constraint: how u is kept in the data's range: "hardtanh" clips the stored values to
            [lo, hi] (Tomczak & Welling's code: a hardtanh(0, 1) on the pseudo-inputs for binary
            data), "sigmoid" maps them through lo + (hi - lo) sigmoid(.), "none" leaves them free;
            "auto" is hardtanh for bounded data (``x_range`` known, e.g. binary images) and none
            for real-valued data.
        init: "data" starts the pseudo-inputs at random training points (``pseudo_init``, when the
            builder has them); "noise" at the middle of the data range plus N(0, 0.01^2) noise in the
            stored values (gray images: with ``constraint = "sigmoid"`` the VampPrior authors' sigmoid
            of N(-0.05, 0.01^2), their default when ``use_training_data_init`` is off).
    Raises:
        ConfigError: an unknown constraint or init, no data shape, fewer than one component.
    """

    x_range: Tensor  # buffer (2,): the data range the pseudo-inputs are constrained to

    #: log p(z) changes with the encoder's parameters (DReG's assumption fails)
    depends_on_encoder = True

    def __init__(
        self,
        latent,
        x_shape: tuple = (),
        x_range: tuple | None = None,
        pseudo_init: Tensor | None = None,
        components: int = 50,
        constraint: str = "auto",
        init: str = "data",
    ):
        super().__init__(latent)
        if not x_shape:
            raise ConfigError("VampPrior needs the data's event shape (x_shape)")
        if components < 1:
            raise ConfigError(f"model.prior.components must be >= 1, got {components}")
        if constraint not in CONSTRAINTS:
            raise ConfigError(f"model.prior.constraint must be one of {CONSTRAINTS}, got {constraint!r}")
        if init not in ("data", "noise"):
            raise ConfigError(f"model.prior.init must be 'data' or 'noise', got {init!r}")
        pseudo_init = pseudo_init if init == "data" else None
        if constraint == "auto":
            constraint = "hardtanh" if x_range is not None else "none"
        if constraint != "none" and x_range is None:
            raise ConfigError(f"model.prior.constraint = {constraint!r} needs bounded data; use 'none' for real-valued data")
        self.constraint = constraint
        lo, hi = x_range if x_range is not None else (0.0, 1.0)
        self.register_buffer("x_range", torch.tensor([float(lo), float(hi)]))
        shape = (components, *x_shape)
        if pseudo_init is not None:
            if tuple(pseudo_init.shape) != shape:
                raise ConfigError(f"pseudo_init must have shape {shape}, got {tuple(pseudo_init.shape)}")
            start = pseudo_init.detach().clone().float()
            if constraint == "sigmoid":  # store the pre-image, clamped away from the asymptotes
                p = ((start - lo) / (hi - lo)).clamp(0.05, 0.95)
                start = torch.log(p) - torch.log1p(-p)
        else:
            start = 0.01 * torch.randn(shape) + (0.0 if constraint == "sigmoid" else 0.5 * (lo + hi))
        self.pseudo_inputs = nn.Parameter(start)  # (C, *x_shape), unconstrained storage
        self.n_components = components
        self._encoder = None

    @property
    def inputs(self) -> Tensor:
        """The pseudo-inputs in data space, (C, *x_shape): constrained to ``x_range`` as configured."""
        lo, hi = self.x_range[0], self.x_range[1]
        if self.constraint == "hardtanh":
            return torch.clamp(self.pseudo_inputs, lo, hi)
        if self.constraint == "sigmoid":
            return lo + (hi - lo) * torch.sigmoid(self.pseudo_inputs)
        return self.pseudo_inputs

    def attach_encoder(self, posterior) -> None:
        """Use ``posterior(u) -> q(z|u)`` for the components. Called by the VAE."""
        # object.__setattr__ skips nn.Module registration: the VAE owns the encoder.
        object.__setattr__(self, "_encoder", posterior)

    def distribution(self) -> MixtureSameFamily:
        if self._encoder is None:
            raise RuntimeError("VampPrior has no encoder; build it through vaelab.models.VAE")
        components = self._encoder(self.inputs)  # batch (C,), event (D,)
        # a diagonal Gaussian q scores by matrix products (gaussian_mixture.py); other families by torch's mixture
        return mixture(self.pseudo_inputs.new_zeros(self.n_components), components)
