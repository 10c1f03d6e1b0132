"""Conditional stochastic layers: a network followed by a latent family, h -> q(z|h) or p(z|h).

Used for the upper layers of a multi-layer model (Burda et al. 2016, Sec. 2): the inference
layers q(z_l | z_{l-1}) and the generative layers p(z_{l-1} | z_l).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions import LatentFamily


class StochasticLayer(nn.Module):
    """h (..., D_in) -> a distribution with batch shape (...) and the family's event shape.

    Args:
        net: maps (N, D_in) -> (N, family.n_params).
        family: the latent family of the output (Gaussian for the built-in multi-layer model).
        in_event_ndim: trailing axes of h that form one input (2 when h is a (D, C) one-hot code).
    """

    family: LatentFamily

    def __init__(self, net: nn.Module, family: LatentFamily, in_event_ndim: int = 1):
        super().__init__()
        self.net = net
        self.family = family
        self.in_event_ndim = in_event_ndim

    def _flat(self, h: Tensor) -> tuple[Tensor, tuple]:
        lead = h.shape[: h.dim() - self.in_event_ndim]
        return h.reshape(-1, math.prod(h.shape[h.dim() - self.in_event_ndim :])), lead

    @property
    def z_dim(self) -> int:
        return self.family.dim

    def forward(self, h: Tensor) -> Distribution:
        flat, lead = self._flat(h)  # 2-D input keeps nn.Linear on the fused addmm path
        return self.family.distribution(self.net(flat).view(*lead, -1))

    def stopped(self, h: Tensor) -> Distribution:
        """The distribution with this layer's parameters detached but h still differentiable.

        The STL and DReG estimators need log q_{stop(phi)}(z(phi)): the path through z and
        through h (itself a sample of the layer below) is kept, the score term dropped
        (Roeder et al. 2017, eq. 8).
        """
        params = {n: p.detach() for n, p in self.net.named_parameters()}
        flat, lead = self._flat(h)
        out = torch.func.functional_call(self.net, params, (flat,))
        return self.family.distribution(out.view(*lead, -1))
