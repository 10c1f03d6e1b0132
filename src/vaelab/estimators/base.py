"""Estimator registry, :class:`BoundEstimate`, and the straight-through surrogate.

An estimator turns a model's log-weight terms and an objective into a :class:`BoundEstimate`:
the true bound (what is logged) and, for each parameter group, a surrogate of the form
``value + (s - s.detach())`` whose value equals the bound and whose gradient is the estimator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..errors import ConfigError
from ..registry import Registry

ESTIMATORS = Registry("estimator")


@dataclass
class BoundEstimate:
    """Attributes (each (B,), nats):
        value: the bound being optimized, as a number (what is logged and reported).
        inference: surrogate for the inference network's parameters phi.
        generative: surrogate for the generative network's parameters theta.
    ``inference is generative`` when one backward pass serves both.
    """

    value: Tensor
    inference: Tensor
    generative: Tensor

    @property
    def shared(self) -> bool:
        return self.inference is self.generative


def straight_through(value: Tensor, surrogate: Tensor) -> Tensor:
    """The value of ``value``, the gradient of ``surrogate``."""
    return value + (surrogate - surrogate.detach())


class Estimator:
    """Base class. ``pathwise``: gradients flow through the samples (needs ``rsample``); score-
    function estimators set it False and the model then draws samples without gradient."""

    pathwise = True

    def check(self, model) -> None:
        """Refuse a model this estimator cannot serve.

        Raises:
            ConfigError: naming the estimator and what to use instead.
        """
        name = type(self).registry_name
        if self.pathwise and not model.reparameterized:
            raise ConfigError(
                f"estimator '{name}' differentiates through the samples, but latent family "
                f"'{type(model.latent).registry_name}' has no reparameterized sampler; use [train.estimator] "
                "kind = \"reinforce\" (score function) or a relaxed latent family")

    def check_objective(self, objective, n_samples: int) -> None:
        """Refuse an objective / sample count this estimator cannot serve (ConfigError); S = n_samples
        * objective.groups samples per point."""

    def __call__(self, terms, objective) -> BoundEstimate:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
