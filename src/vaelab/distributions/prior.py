"""Base class of priors p(z) and their registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, kl_divergence

from ..errors import ConfigError
from ..registry import Registry

#: Context the model builder passes to every prior: ``latent`` (the latent family, whose event
#: shape the prior must match), ``x_shape`` (the data's event shape), ``x_range`` ((lo, hi) of
#: the data, or None for unbounded data) and ``pseudo_init`` (training points, for the VampPrior).
PRIORS = Registry("prior", context=("latent", "x_shape", "x_range", "pseudo_init"))


class Prior(nn.Module):
    """A (possibly trainable) prior over z, exposed as a ``torch.distributions`` object.

    Subclasses implement :meth:`distribution` (event shape = the latent family's, empty batch
    shape) and list the latent supports they accept in ``supports``; ``log_prob``, ``sample`` and
    ``analytic_kl`` follow. Parameters live on the module, so the optimizer trains them.
    """

    #: latent supports this prior is a density on (see ``LatentFamily.support``)
    supports: tuple[str, ...] = ("real",)
    #: True when KL(q(z|x) || p(z)) has a closed form for the latent family's q
    has_analytic_kl: bool = False

    _fixed: Distribution | None = None  # set inside ``fixed()``

    def __init__(self, latent):
        super().__init__()
        if latent.support not in self.supports:
            raise ConfigError(
                f"prior '{type(self).registry_name}' is a density on {'/'.join(self.supports)} latents, "
                f"but latent family '{type(latent).registry_name}' has {latent.support} support; "
                "choose a matching [model.prior] kind"
            )
        self.event_shape = tuple(latent.event_shape)

    @property
    def z_dim(self) -> int:
        return self.event_shape[0]

    def distribution(self) -> Distribution:
        """The prior as a distribution with event shape ``event_shape`` and empty batch shape."""
        raise NotImplementedError

    def current(self) -> Distribution:
        """``distribution()``, or inside :meth:`fixed` the one computed when the block began."""
        return self._fixed if self._fixed is not None else self.distribution()

    @contextmanager
    def fixed(self) -> Iterator[Distribution]:
        """Compute the prior once, without gradient, for a block of evaluation that does not change it.

        A VampPrior's distribution is its encoder run on every pseudo-input: an importance-sampled
        log p(x) that scores its samples chunk by chunk would otherwise rerun that encoder pass per
        chunk (500 pseudo-inputs cost 40 % of a 1,300-row chunk's decoder on the VampPrior paper's model).
        """
        outer = self._fixed
        with torch.no_grad():
            self._fixed = self.current()
        try:
            yield self._fixed
        finally:
            self._fixed = outer

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) in nats. z: (..., *event_shape) -> (...)."""
        return self.current().log_prob(z)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n samples from p(z), shape (n, *event_shape)."""
        return self.current().sample((n,))

    def analytic_kl(self, q: Distribution) -> Tensor:
        """KL(q || p) in closed form, shape q.batch_shape, in nats.

        Raises:
            NotImplementedError: if this prior has no closed-form KL (use ``kl = "mc"``).
            ValueError: q's event shape is not this prior's.
        """
        if not self.has_analytic_kl:
            raise NotImplementedError(f'{type(self).__name__} has no closed-form KL; use kl = "mc"')
        if tuple(q.event_shape) != self.event_shape:
            raise ValueError(f"analytic KL: q has event shape {tuple(q.event_shape)}, the prior {self.event_shape}")
        return kl_divergence(q, self.distribution())


def kl_per_variable(q: Distribution, prior: Prior) -> Tensor | None:
    """(B, D) KL(q(z_d|x) || p(z_d)) in nats, one term per latent variable, when q and the prior both
    factorize (``Independent``) with a registered KL; None otherwise (mixtures, VampPrior)."""
    p = prior.distribution()
    if not (isinstance(q, Independent) and isinstance(p, Independent)):
        return None
    try:
        base_p = p.base_dist.expand(q.base_dist.batch_shape)  # torch's Bernoulli KL does not broadcast
        return kl_divergence(q.base_dist, base_p)  # (B, D)
    except NotImplementedError:
        return None
