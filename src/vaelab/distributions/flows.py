"""Normalizing-flow posteriors: q(z|x) = a diagonal Gaussian pushed through invertible steps.

z_0 = mu + sigma * eps, z_k = f_k(z_{k-1}), log q(z_K|x) = log N(z_0; mu, sigma^2) - sum_k log |det
df_k/dz_{k-1}| (Rezende & Mohamed 2015, eq. 6-7). A flow family is a :class:`FlowLatent` whose
``transforms(params)`` returns ``torch.distributions.Transform`` steps (:class:`FlowTransform`); the
distribution is a :class:`~torch.distributions.TransformedDistribution` whose steps cache their
input and output (``cache_size=1``), so ``log_prob`` of a sample the distribution drew needs no inverse.

What a flow cannot give, and how vaelab handles it:

- log q at a point the flow did not draw needs the inverse, which planar flows lack and IAF computes
  only in D sequential passes: ``log_prob`` of a foreign tensor raises ``ValueError``, and the
  score-function estimators (whose log q(z) is at a detached sample) refuse flow families.
- ``stopped(q)`` (STL, DReG): log q_{stop(phi)}(z(phi)) keeps the gradient through the sample path.
  Its value is log q(z); its gradient with respect to z is grad_z log q = J^{-T} grad_{z_0} F with
  F(z_0) = log q_0(z_0) - sum_k log |det J_k| and J = dz_K/dz_0 = J_K ... J_1 (inverse function
  theorem), applied step by step by each step's :meth:`FlowTransform.inverse_jacobian_transpose`.
- E_q[z] has no closed form: :meth:`FlowLatent.mean` is the flow of the base mean, f(mu).
- Closed-form KL: none; ``kl = "auto"`` uses the Monte Carlo KL (``closed_form_kl = False``).
- A VampPrior's components must have a density everywhere: with a flow posterior they are the base
  Gaussians q_0(z|u_c) (``density_everywhere``), a valid learned mixture prior (docs/design.md).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Transform, TransformedDistribution, constraints

from ..errors import ConfigError
from .latents import DiagonalNormal, GaussianLatent, LatentFamily, _noise
from .stopped import register_stopped


class FlowTransform(Transform):
    """One invertible step z -> f(z) on the last axis (event dim 1), cached (``cache_size=1``).

    Subclasses implement ``_call``, ``log_abs_det_jacobian(x, y)`` (shape x.shape[:-1]),
    :meth:`inverse_jacobian_transpose` and :meth:`detached` (the same step with parameters detached).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self):
        super().__init__(cache_size=1)

    def inverse_jacobian_transpose(self, x: Tensor, v: Tensor) -> Tensor:
        """J(x)^{-T} v for J = df/dx at x: (..., D), (..., D) -> (..., D)."""
        raise NotImplementedError

    def detached(self) -> FlowTransform:
        raise NotImplementedError

    def _inverse(self, y):
        raise ValueError(
            "a flow posterior's density is available only at the samples it drew itself (planar flows have no "
            "closed-form inverse); score-function estimators and foreign points need 'reparam', 'stl' or 'dreg'"
        )


class FlowPosterior(TransformedDistribution):
    """q(z|x): an ``Independent(DiagonalNormal)`` base through :class:`FlowTransform` steps."""

    transforms: list[FlowTransform]  # type: ignore[assignment]

    def __init__(self, base: Independent, transforms: list[FlowTransform]):
        super().__init__(base, cast(list[Transform], transforms), validate_args=False)

    def chain(self, z: Tensor) -> list[Tensor]:
        """[z_0, ..., z_K] for a sample z = z_K this distribution drew (from the steps' caches)."""
        xs = [z]
        for t in reversed(self.transforms):
            cached = t._cached_x_y
            if cached[1] is not xs[0]:
                t._inverse(xs[0])  # raises: not this flow's latest sample
            xs.insert(0, cast(Tensor, cached[0]))
        return xs


class FlowLatent(LatentFamily):
    """Base of the flow families: the encoder outputs (mu, log sigma^2) of the base Gaussian and then
    ``n_flow_params`` numbers per point for the steps (amortized flow parameters or a context h).

    Args:
        dim: D.
        n_flows: K, the number of steps.
    """

    closed_form_kl = False
    scores_any_point = False  # log q is known only at the flow's own samples

    def __init__(self, dim: int, n_flows: int):
        super().__init__(dim)
        if not isinstance(n_flows, int) or n_flows < 1:
            raise ConfigError(f"model.latent.n_flows must be a positive integer, got {n_flows!r}")
        self.n_flows = n_flows

    @property
    def n_flow_params(self) -> int:
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return 2 * self.dim + self.n_flow_params

    def transforms(self, flow_params: Tensor) -> list[FlowTransform]:
        """The K steps for encoder outputs (B, n_flow_params)."""
        raise NotImplementedError

    def distribution(self, params: Tensor) -> FlowPosterior:
        mean, logvar, rest = params.split([self.dim, self.dim, self.n_flow_params], dim=-1)
        base = Independent(DiagonalNormal(mean, logvar), 1, validate_args=False)
        return FlowPosterior(base, self.transforms(rest))

    def draw(self, q, n, generator=None):
        base = q.base_dist.base_dist
        z = base.loc + base.scale * _noise((n, *base.loc.shape), base.loc, generator, "normal")  # (n, B, D) z_0
        for t in q.transforms:
            z = t(z)  # cached: log_prob(z_K) reads z_{k-1} back
        return z

    def mean(self, q):
        z = q.base_dist.base_dist.loc
        for t in q.transforms:
            z = t._call(z)  # uncached: the samples' cache stays intact
        return z

    def conditional_family(self) -> LatentFamily:
        return GaussianLatent(self.dim)  # p(z_1 | z_2) is scored at q's samples: it needs a density everywhere

    def density_everywhere(self, q: Distribution) -> Distribution:
        """The base Gaussian q_0(z_0|x): what a VampPrior mixes (its components need log q anywhere)."""
        return cast(FlowPosterior, q).base_dist

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, n_flows={self.n_flows}"


class _StoppedFlow(Distribution):
    """log q_{stop(phi)}(z): the value of log q(z), the gradient grad_z log q . dz (module docstring)."""

    def __init__(self, q: FlowPosterior):
        self._q = q
        super().__init__(q.batch_shape, q.event_shape, validate_args=False)

    def log_prob(self, z: Tensor) -> Tensor:
        q = self._q
        xs = q.chain(z)  # [z_0, ..., z_K]
        base = cast(Independent, q.base_dist).base_dist
        steps = [t.detached() for t in q.transforms]
        with torch.enable_grad():
            z0 = xs[0].detach().requires_grad_()
            f = DiagonalNormal(base.loc.detach(), base.logvar.detach()).log_prob(z0).sum(-1)  # (S, B): log q_0(z_0)
            x = z0
            for t in steps:
                y = t._call(x)
                f = f - t.log_abs_det_jacobian(x, y)
                x = y
            (v,) = torch.autograd.grad(f.sum(), z0)  # (S, B, D): grad_{z_0} F
        for t, x in zip(steps, xs[:-1]):
            v = t.inverse_jacobian_transpose(x.detach(), v)  # J^{-T} = J_K^{-T} ... J_1^{-T}
        value = q.log_prob(z).detach()
        return value + (v.detach() * (z - z.detach())).sum(-1)


@register_stopped(FlowPosterior)
def _flow(q: FlowPosterior) -> Distribution:
    return _StoppedFlow(q)
