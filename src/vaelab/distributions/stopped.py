"""``stopped(q)``: the same distribution with its parameters detached.

Used by the path-derivative estimators (STL, Roeder et al. 2017; DReG, Tucker et al. 2019) for
log q_{stop(phi)}(z(phi)), and by score-function estimators for a q whose density carries no
gradient. Dispatched on the distribution's type, like ``torch.distributions.kl.register_kl``:
a new family registers its own rule with :func:`register_stopped`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.distributions import (
    Bernoulli,
    Distribution,
    Independent,
    Normal,
    OneHotCategorical,
    RelaxedBernoulli,
    RelaxedOneHotCategorical,
)

_RULES: dict[type, Callable[[Distribution], Distribution]] = {}


def register_stopped(cls: type) -> Callable:
    """Decorator registering ``fn(q) -> q with detached parameters`` for distributions of type ``cls``."""

    def deco(fn):
        _RULES[cls] = fn
        return fn

    return deco


def stopped(q: Distribution) -> Distribution:
    """q with every parameter detached: same values of ``log_prob``, gradient only through the sample.

    Raises:
        NotImplementedError: no rule is registered for ``type(q)`` or its bases.
    """
    for cls in type(q).__mro__:
        if cls in _RULES:
            return _RULES[cls](q)
    raise NotImplementedError(f"no stopped() rule for {type(q).__name__}; add one with @register_stopped")


@register_stopped(Independent)
def _independent(q: Independent) -> Independent:
    return Independent(stopped(q.base_dist), q.reinterpreted_batch_ndims, validate_args=False)


@register_stopped(Normal)
def _normal(q: Normal) -> Normal:
    return Normal(q.loc.detach(), q.scale.detach(), validate_args=False)


@register_stopped(Bernoulli)
def _bernoulli(q: Bernoulli) -> Bernoulli:
    return Bernoulli(logits=q.logits.detach(), validate_args=False)


@register_stopped(OneHotCategorical)
def _one_hot(q: OneHotCategorical) -> OneHotCategorical:
    return OneHotCategorical(logits=q.logits.detach(), validate_args=False)


@register_stopped(RelaxedBernoulli)
def _relaxed_bernoulli(q: RelaxedBernoulli) -> RelaxedBernoulli:
    return RelaxedBernoulli(q.temperature, logits=q.logits.detach(), validate_args=False)


@register_stopped(RelaxedOneHotCategorical)
def _relaxed_one_hot(q: RelaxedOneHotCategorical) -> RelaxedOneHotCategorical:
    return RelaxedOneHotCategorical(q.temperature, logits=q.logits.detach(), validate_args=False)
