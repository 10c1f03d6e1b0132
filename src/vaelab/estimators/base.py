"""Estimator registry, :class:`BoundEstimate`, and the straight-through surrogate.

An estimator turns a model's log-weight terms and an objective into a :class:`BoundEstimate`:
the true bound (what is logged) and, for each parameter group, a surrogate of the form
``value + (s - s.detach())`` whose value equals the bound and whose gradient is the estimator's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

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
        extra: surrogates for the estimator's own parameter groups (e.g. NVIL's "baseline": minus the
            baseline's squared error), by group name.
        reported: further (B,) values worth logging beside the bound (e.g. the relaxed bound).
    ``inference is generative`` when one backward pass serves both.
    """

    value: Tensor
    inference: Tensor
    generative: Tensor
    extra: dict = field(default_factory=dict)
    reported: dict = field(default_factory=dict)

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
    #: True when the gradient is that of the bound itself, so that a shaped ELBO (an analytic KL, a KL
    #: weight beta != 1, free bits) is a valid surrogate: the plain reparameterization gradient only
    shapes_elbo = False
    registry_name: str = ""  # set by ESTIMATORS.register
    #: True when the state is updated from each batch's statistics (one copy per process under torchrun)
    rank_local_state = False
    #: True when an estimate is device work only (no state updated and no value read on the host each
    #: step), so that ``train.cuda_graphs`` can capture the step (vaelab.train.graphs)
    graph_safe = False

    def check(self, model) -> None:
        """Refuse a model this estimator cannot serve.

        Raises:
            ConfigError: naming the estimator and what to use instead.
        """
        name = type(self).registry_name
        if not self.pathwise and not model.latent.scores_any_point:
            raise ConfigError(
                f"estimator '{name}' scores log q(z|x) at a detached sample, but latent family "
                f"'{type(model.latent).registry_name}' has a density only at its own samples (a flow without a "
                "closed-form inverse); use 'reparam', 'stl' or 'dreg'"
            )
        if self.pathwise and not model.reparameterized:
            raise ConfigError(
                f"estimator '{name}' differentiates through the samples, but latent family "
                f"'{type(model.latent).registry_name}' has no reparameterized sampler; use [train.estimator] "
                'kind = "reinforce" (score function) or a relaxed latent family'
            )

    def setup(self, model) -> None:
        """Build what depends on the model (e.g. a baseline network for its data shape, on its device)."""

    def parameter_groups(self) -> dict[str, list]:
        """The estimator's own trainable parameters, by optimizer group name (each its own group)."""
        return {}

    def state_dict(self) -> dict:
        """What a checkpoint must keep for a bit-identical resume (running averages, networks)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    def unscaled(self) -> Estimator:
        """A copy (state included) whose estimate is of the bound's gradient in its own units (nats per
        parameter): what gradient-variance measurements compare. Estimators that rescale their
        estimate (NVIL's variance normalization) undo that here."""
        return copy.deepcopy(self)

    def step_done(self) -> None:
        """Called by :func:`~vaelab.train.step.train_step` after each optimizer step (schedules,
        e.g. a temperature annealed with the step count)."""

    def check_objective(self, objective, n_samples: int) -> None:
        """Refuse an objective / sample count this estimator cannot serve (ConfigError); S = n_samples
        * objective.groups samples per point."""

    def __call__(self, terms, objective) -> BoundEstimate:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def shaping_allowed(objective_kind: str, estimator_kind: str) -> bool:
    """Whether an analytic KL, beta != 1 and free bits may train ``objective_kind`` with ``estimator_kind``
    (registry names): the ELBO with an estimator whose gradient is the bound's own (``shapes_elbo``).
    The one place of this rule; the config validator and the training bound both ask it."""
    return objective_kind == "elbo" and bool(getattr(ESTIMATORS[estimator_kind], "shapes_elbo", False))
