"""Base class of priors p(z)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence


class Prior(nn.Module):
    """A (possibly trainable) prior over z in R^D, exposed as a ``torch.distributions`` object.

    Subclasses implement :meth:`distribution`; ``log_prob``, ``sample`` and ``analytic_kl``
    follow from it. Parameters live on the module, so the optimizer trains them.
    """

    #: True when KL(q(z|x) || p(z)) has a closed form for a diagonal-Gaussian q.
    has_analytic_kl: bool = False

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = z_dim

    def distribution(self) -> Distribution:
        """The prior as a distribution with event shape (D,) and empty batch shape."""
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) in nats. z: (..., D) -> (...)."""
        return self.distribution().log_prob(z)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n samples from p(z), shape (n, D)."""
        return self.distribution().sample((n,))

    def analytic_kl(self, q: Distribution) -> Tensor:
        """KL(q || p) in closed form, shape q.batch_shape, in nats.

        Raises:
            NotImplementedError: if this prior has no closed-form KL (use ``kl = "mc"``).
        """
        if not self.has_analytic_kl:
            raise NotImplementedError(
                f"{type(self).__name__} has no closed-form KL; use kl = \"mc\""
            )
        return kl_divergence(q, self.distribution())
