"""Latent families: how encoder outputs become q(z|x), a ``torch.distributions`` object.

A family maps encoder outputs of shape (..., n_params) to a distribution with batch shape (...)
and event shape ``event_shape``; the VAE draws with ``rsample`` when the family is
reparameterizable and with ``sample`` otherwise. Every family draws through an optional
``torch.Generator`` so evaluations are reproducible without touching the global RNG.

Families: ``gaussian`` (diagonal, Kingma & Welling 2014), ``bernoulli`` (factorized, e.g. the
sigmoid belief networks of Mnih & Gregor 2014), ``categorical`` (D one-hot variables of C
classes), and the Concrete / Gumbel-softmax relaxations of the last two (Maddison et al. 2017;
Jang et al. 2017): ``relaxed_bernoulli``, ``relaxed_categorical``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import (
    Bernoulli,
    Distribution,
    Independent,
    Normal,
    OneHotCategorical,
    RelaxedBernoulli,
    RelaxedOneHotCategorical,
)

from ..errors import ConfigError
from ..registry import Registry

LATENTS = Registry("latent family")
LOG_2PI = math.log(2 * math.pi)


class LatentFamily(nn.Module):
    """Base class. Subclasses set ``support`` ("real", "binary", "one_hot", "unit_interval",
    "simplex"), ``has_rsample``, ``event_shape`` and ``n_params``, and implement
    :meth:`distribution` and :meth:`draw`."""

    support = "real"
    has_rsample = True
    relaxed = False
    #: False when no prior has a closed-form KL against this family's q (normalizing flows)
    closed_form_kl = True
    #: False when log q(z|x) is known only at the family's own samples (flows): score-function
    #: estimators, which score a detached sample, refuse such families
    scores_any_point = True
    #: True when :meth:`draw_point` gives one sample without a sample axis that q scores like any sample
    #: (not flows: their log q reads the transforms' cache of the very tensor drawn)
    draws_point = False

    def __init__(self, dim: int):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"latent dim must be a positive integer, got {dim!r}")
        self.dim = dim

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def flat_dim(self) -> int:
        """Numbers per latent sample that a decoder reads (the event flattened)."""
        return math.prod(self.event_shape)

    @property
    def n_params(self) -> int:
        """Numbers per data point that the encoder must output."""
        raise NotImplementedError

    def distribution(self, params: Tensor) -> Distribution:
        """q(z|x) from encoder outputs (..., n_params): batch shape (...), event ``event_shape``."""
        raise NotImplementedError

    def draw(self, q: Distribution, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples (n, *batch, *event): differentiable when ``has_rsample``."""
        if generator is None:
            return q.rsample((n,)) if self.has_rsample else q.sample((n,))
        return self._draw(q, n, generator)

    def _draw(self, q: Distribution, n: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def draw_point(self, q: Distribution, generator: torch.Generator | None = None) -> Tensor:
        """One sample without a sample axis, (*batch, *event): ``draw(q, 1)[0]`` with the same random
        numbers, minus the view and its backward node (the one-sample training path; ``draws_point``)."""
        raise NotImplementedError(f"{type(self).__name__} draws samples with their sample axis only")

    def mean(self, q: Distribution) -> Tensor:
        """E_q[z], shape (*batch, *event)."""
        return q.mean

    def conditional_family(self) -> LatentFamily:
        """The family of a generative conditional p(z | z_above) on this layer's values: this one, except
        for flows, whose density is known only at their own samples (a diagonal Gaussian then)."""
        return self

    def density_everywhere(self, q: Distribution) -> Distribution:
        """A distribution with a density at every point standing in for q where one is needed (a
        VampPrior's components): q itself, except for flows (``flows.py``)."""
        return q

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"


def _noise(shape, like: Tensor, generator: torch.Generator | None, kind: str) -> Tensor:
    fn = torch.randn if kind == "normal" else torch.rand
    return fn(shape, generator=generator, device=like.device, dtype=like.dtype)


class DiagonalNormal(Normal):
    """N(loc, exp(logvar)) elementwise, built from the encoder's log-variance and keeping it.

    A :class:`~torch.distributions.Normal` in every respect (``scale = exp(logvar / 2)``; KL rules,
    ``stopped`` and ``expand`` see a Normal), plus ``logvar``: the closed-form KL then needs no
    log of the scale. The constructor skips ``Normal``'s broadcasting of loc against scale, since
    both halves come from one ``chunk``; together these save ~2 % of a VAE step on the IWAE-paper
    MLP (docs/performance.md).
    """

    def __init__(self, loc: Tensor, logvar: Tensor):
        if loc.shape != logvar.shape:
            raise ValueError(f"loc {tuple(loc.shape)} and logvar {tuple(logvar.shape)} must have one shape")
        self.loc, self.logvar, self.scale = loc, logvar, torch.exp(0.5 * logvar)
        Distribution.__init__(self, loc.shape, validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        # -1/2 ((v - mu)^2 / s^2 + log s^2 + log 2 pi): the same value as Normal.log_prob with half its
        # operations on the (S, B, D) samples, from the stored logvar
        return -0.5 * ((value - self.loc).pow(2) * torch.exp(-self.logvar) + self.logvar + LOG_2PI)

    def expand(self, batch_shape, _instance=None) -> Normal:
        return Normal(self.loc.expand(batch_shape), self.scale.expand(batch_shape), validate_args=False)


@LATENTS.register("gaussian")
class GaussianLatent(LatentFamily):
    """Diagonal Gaussian N(mu, diag sigma^2); the encoder outputs (mu, log sigma^2).

    Args:
        dim: D, the latent dimension.
        min_logvar: the encoder's log-variance is clipped to [min_logvar, max_logvar] (a hardtanh, no
            gradient outside: the VampPrior authors' code uses [-6, 2]); unbounded by default.
        max_logvar: see min_logvar.
    Raises:
        ConfigError: min_logvar >= max_logvar.
    """

    def __init__(self, dim: int = 2, min_logvar: float = -math.inf, max_logvar: float = math.inf):
        super().__init__(dim)
        if not min_logvar < max_logvar:
            raise ConfigError(f"model.latent: min_logvar must be below max_logvar, got {min_logvar} and {max_logvar}")
        self.logvar_range = (min_logvar, max_logvar) if math.isfinite(min_logvar) or math.isfinite(max_logvar) else None

    @property
    def n_params(self) -> int:
        return 2 * self.dim

    def distribution(self, params: Tensor) -> Independent:
        mean, logvar = params.chunk(2, dim=-1)
        if self.logvar_range is not None:
            logvar = torch.clamp(logvar, *self.logvar_range)  # hardtanh: no gradient outside the range
        return Independent(DiagonalNormal(mean, logvar), 1, validate_args=False)

    draws_point = True

    def draw(self, q, n, generator=None):
        # written out rather than q.rsample: the same draw without Normal.rsample's shape bookkeeping,
        # which is a measurable share of a training step on the IWAE-paper MLP (docs/design.md, Speed)
        if n == 1:  # drawn as (*batch, D) and given its axis after: broadcasting (B, D) against (1, B, D)
            return self.draw_point(q, generator).unsqueeze(0)  # would make the backward sum over that axis
        base = q.base_dist
        return base.loc + base.scale * _noise((n, *base.loc.shape), base.loc, generator, "normal")  # (n, *batch, D)

    def draw_point(self, q, generator=None):
        base = q.base_dist
        return base.loc + base.scale * _noise(base.loc.shape, base.loc, generator, "normal")  # mu + sigma eps (eq. 10)


@LATENTS.register("bernoulli")
class BernoulliLatent(LatentFamily):
    """Factorized Bernoulli q(z|x) = prod_d Ber(z_d; sigmoid(logit_d)); not reparameterizable.

    Args:
        dim: D, the number of binary latent units.
    """

    support = "binary"
    has_rsample = False

    def __init__(self, dim: int = 200):
        super().__init__(dim)

    @property
    def n_params(self) -> int:
        return self.dim

    def distribution(self, params: Tensor) -> Independent:
        return Independent(Bernoulli(logits=params, validate_args=False), 1)

    def _draw(self, q, n, generator):
        p = q.base_dist.probs
        return torch.bernoulli(p.detach().expand(n, *p.shape), generator=generator)


@LATENTS.register("categorical")
class CategoricalLatent(LatentFamily):
    """D independent categorical variables of C classes, one-hot: event shape (D, C).

    Args:
        dim: D, the number of categorical variables.
        classes: C, classes per variable.
    """

    support = "one_hot"
    has_rsample = False

    def __init__(self, dim: int = 20, classes: int = 10):
        super().__init__(dim)
        if classes < 2:
            raise ConfigError(f"model.latent.classes must be >= 2, got {classes}")
        self.classes = classes

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.dim, self.classes)

    @property
    def n_params(self) -> int:
        return self.dim * self.classes

    def distribution(self, params: Tensor) -> Independent:
        logits = params.reshape(*params.shape[:-1], self.dim, self.classes)
        return Independent(OneHotCategorical(logits=logits, validate_args=False), 1)

    def _draw(self, q, n, generator):
        logits = q.base_dist.logits.detach()
        gumbel = -torch.log(-torch.log(_noise((n, *logits.shape), logits, generator, "uniform").clamp_min(1e-20)))
        idx = (logits + gumbel).argmax(-1)  # Gumbel-max: an exact categorical draw
        return nn.functional.one_hot(idx, self.classes).to(logits.dtype)


@LATENTS.register("relaxed_bernoulli")
class RelaxedBernoulliLatent(BernoulliLatent):
    """Binary Concrete relaxation of Bernoulli latents (Maddison et al. 2017), reparameterizable.

    Args:
        dim: D.
        temperature: lambda > 0; the relaxation approaches Bernoulli as lambda -> 0.
    """

    temperature: Tensor  # buffer, 0-d

    support = "unit_interval"
    has_rsample = True
    relaxed = True

    def __init__(self, dim: int = 200, temperature: float = 0.5):
        super().__init__(dim)
        if temperature <= 0:
            raise ConfigError(f"model.latent.temperature must be > 0, got {temperature}")
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def distribution(self, params: Tensor) -> Independent:
        return Independent(RelaxedBernoulli(self.temperature, logits=params, validate_args=False), 1)

    def _draw(self, q, n, generator):
        logits = q.base_dist.logits
        u = _noise((n, *logits.shape), logits, generator, "uniform").clamp(1e-6, 1 - 1e-6)
        return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)

    def mean(self, q):
        return torch.sigmoid(q.base_dist.logits)  # the mean of the Bernoulli it relaxes


@LATENTS.register("relaxed_categorical")
class RelaxedCategoricalLatent(CategoricalLatent):
    """Gumbel-softmax / Concrete relaxation of one-hot categorical latents (Jang et al. 2017).

    Args:
        dim: D variables.
        classes: C classes per variable.
        temperature: tau > 0.
    """

    temperature: Tensor  # buffer, 0-d

    support = "simplex"
    has_rsample = True
    relaxed = True

    def __init__(self, dim: int = 20, classes: int = 10, temperature: float = 0.5):
        super().__init__(dim, classes)
        if temperature <= 0:
            raise ConfigError(f"model.latent.temperature must be > 0, got {temperature}")
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def distribution(self, params: Tensor) -> Independent:
        logits = params.reshape(*params.shape[:-1], self.dim, self.classes)
        return Independent(RelaxedOneHotCategorical(self.temperature, logits=logits, validate_args=False), 1)

    def _draw(self, q, n, generator):
        logits = q.base_dist.logits
        u = _noise((n, *logits.shape), logits, generator, "uniform").clamp_min(1e-20)
        return torch.softmax((logits - torch.log(-torch.log(u))) / self.temperature, dim=-1)

    def mean(self, q):
        return torch.softmax(q.base_dist.logits, dim=-1)
