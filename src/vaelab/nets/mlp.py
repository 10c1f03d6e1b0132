"""Multi-layer perceptrons and the Gaussian encoder built on them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Independent

from ..distributions.gaussian import diag_gaussian
from ..errors import ConfigError

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "softplus": nn.Softplus,
               "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Sequential):
    """Linear -> activation -> ... -> Linear. ``hidden=[200, 200]`` gives three linear layers.

    Args:
        in_dim, out_dim: input / output widths.
        hidden: widths of the hidden layers.
        activation: one of ``ACTIVATIONS``.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh"):
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)


class GaussianEncoder(nn.Module):
    """A diagonal-Gaussian conditional N(mu(x), diag sigma^2(x)); the network outputs (mu, log sigma^2).

    Used for q(z_1|x), for the upper inference layers q(z_l|z_{l-1}) and for the generative
    layers p(z_l|z_{l+1}) of a multi-layer model. Shapes: x (..., x_dim) -> mean, logvar (..., z_dim).
    """

    def __init__(self, x_dim: int, hidden: Sequence[int], z_dim: int, activation: str = "tanh"):
        super().__init__()
        self.net = MLP(x_dim, hidden, 2 * z_dim, activation)
        self.z_dim = z_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=-1)
        return mean, logvar

    def posterior(self, x: Tensor) -> Independent:
        """q(z|x) with batch shape x.shape[:-1] and event shape (z_dim,)."""
        flat = x.reshape(-1, x.shape[-1])  # 2-D input keeps nn.Linear on the fused addmm path
        mean, logvar = self(flat)
        return diag_gaussian(mean.view(*x.shape[:-1], -1), logvar.view(*x.shape[:-1], -1))

    def stopped_posterior(self, x: Tensor) -> Independent:
        """q(z|x) with this network's parameters detached but x still differentiable.

        The sticking-the-landing and DReG estimators need log q_{stop(phi)}(z(phi)): the path
        through z (and through x, when x is itself a sample of a lower layer) is kept, the
        score-function term is dropped (Roeder et al. 2017, eq. 8).
        """
        params = {n: p.detach() for n, p in self.named_parameters()}
        flat = x.reshape(-1, x.shape[-1])
        mean, logvar = torch.func.functional_call(self, params, (flat,))
        return diag_gaussian(mean.view(*x.shape[:-1], -1), logvar.view(*x.shape[:-1], -1))
