"""Relaxed gradients for discrete latents: Gumbel-softmax / Concrete (Jang et al. 2017; Maddison
et al. 2017) and its straight-through variant. The gradient comes from a relaxed bound; the value
that is logged is always the true discrete bound, from the engine's discrete samples."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Independent
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from ..errors import ConfigError
from ..objectives import combine
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def extended_log_prob(logits: Tensor, z: Tensor, binary: bool) -> Tensor:
    """The discrete log-density extended linearly to relaxed values, differentiable in z.

    Bernoulli: sum_d z_d log s_d + (1 - z_d) log(1 - s_d), s = sigmoid(logits); categorical:
    sum_d sum_c z_dc log pi_dc, pi = softmax(logits) over the classes. At a one-hot / binary z it is
    the discrete log-probability. (``OneHotCategorical.log_prob`` takes the argmax of its argument,
    so it would pass no gradient through z.)

    Args:
        logits: (..., D) or (..., D, C), broadcastable against z.
        z: (S, B, D) in [0, 1] or (S, B, D, C) on the simplex.
    Returns:
        (S, B) nats.
    """
    if binary:
        return (z * F.logsigmoid(logits) + (1 - z) * F.logsigmoid(-logits)).sum(-1)
    return (z * F.log_softmax(logits, dim=-1)).sum((-2, -1))


def relaxed_log_weights(model, x: Tensor, s: int, temperature: float, hard: bool) -> Tensor:
    """(S, B) log-weights log p(x|z~) + log p~(z~) - log q~(z~|x) at relaxed samples, differentiable
    (one stochastic layer).

    z~ = sigmoid(y) or exp(y) with y ~ LogitRelaxedBernoulli / ExpRelaxedCategorical at the given
    temperature (the Gumbel-softmax sample, Jang et al. 2017, eq. 1; Maddison et al. 2017). p~ and q~
    are the discrete densities extended linearly to relaxed values (:func:`extended_log_prob`:
    Bernoulli z log s + (1 - z) log(1 - s), categorical sum_c z_c log pi_c), so the gradient flows
    through z~ into the decoder and into both log-densities, and the bound tends to the discrete one
    as tau -> 0. (The Concrete densities of Maddison et al. would not: their log-ratio tends to a
    constant independent of the sample.) Hard (straight-through, Jang et al. Sec. 2.2): z is the
    discrete sample in the forward pass and z~'s gradient in the backward pass.
    """
    logits = model.encoder(x).reshape(x.shape[0], *model.latent.event_shape)  # (B, D) or (B, D, C)
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    binary = model.latent.support == "binary"
    family = LogitRelaxedBernoulli if binary else ExpRelaxedCategorical
    q = Independent(family(t, logits=logits, validate_args=False), 1)
    y = q.rsample((s,))  # (S, B, *event)
    z = torch.sigmoid(y) if binary else y.exp()
    if hard:
        discrete = (y > 0).to(y.dtype) if binary else F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
        z = discrete + z - z.detach()  # forward: discrete; backward: relaxed
    log_q = extended_log_prob(logits, z, binary)  # (S, B)
    log_p = extended_log_prob(model.prior.logits, z, binary)  # (S, B); the prior's (*event) logits broadcast
    return model.likelihood.log_prob(model.decode(z, x), x) + log_p - log_q


@ESTIMATORS.register("gumbel")
class GumbelSoftmax(Estimator):
    """Relaxed-bound gradient for Bernoulli / categorical latents; logs the true discrete bound.

    Args:
        temperature: tau of the relaxation (its bias falls and its variance grows as tau -> 0); the
            starting temperature when annealed.
        hard: straight-through: discrete forward pass, relaxed backward pass.
        anneal_rate: r of Jang et al.'s schedule (Sec. 4): tau_t = max(min_temperature,
            temperature * exp(-r t)), t the optimizer step rounded down to a multiple of
            ``anneal_every`` (0 = a fixed temperature).
        min_temperature: the schedule's floor.
        anneal_every: the schedule's update interval, in optimizer steps.
    Raises:
        ConfigError: a temperature <= 0, a negative rate, or a schedule that cannot take effect.
    """

    pathwise = False  # the engine's samples are discrete and give the logged, true bound

    def __init__(
        self,
        temperature: float = 0.5,
        hard: bool = False,
        anneal_rate: float = 0.0,
        min_temperature: float = 0.5,
        anneal_every: int = 500,
    ):
        if temperature <= 0 or min_temperature <= 0:
            raise ConfigError(
                f"train.estimator.temperature and min_temperature must be > 0, got {temperature} and {min_temperature}"
            )
        if anneal_rate < 0 or anneal_every < 1:
            raise ConfigError(
                f"train.estimator.anneal_rate must be >= 0 and anneal_every >= 1, got {anneal_rate} and {anneal_every}"
            )
        if anneal_rate > 0 and min_temperature >= temperature:
            raise ConfigError(
                f"train.estimator.anneal_rate has no effect: min_temperature ({min_temperature}) is not "
                f"below the starting temperature ({temperature}); lower min_temperature"
            )
        if anneal_rate == 0 and (min_temperature, anneal_every) != (0.5, 500):
            raise ConfigError("train.estimator.min_temperature and anneal_every apply only with anneal_rate > 0")
        self.temperature, self.hard = temperature, hard
        self.anneal_rate, self.min_temperature, self.anneal_every = anneal_rate, min_temperature, anneal_every
        self.steps = 0
        self._categorical = False  # set by check(model): check_objective warns for categorical latents only

    @property
    def current_temperature(self) -> float:
        """tau at the current optimizer step."""
        if not self.anneal_rate:
            return self.temperature
        t = self.anneal_every * (self.steps // self.anneal_every)
        return max(self.min_temperature, self.temperature * math.exp(-self.anneal_rate * t))

    def step_done(self) -> None:
        self.steps += 1

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = int(state.get("steps", 0))

    def check(self, model) -> None:
        if model.latent.support not in ("binary", "one_hot") or model.n_layers != 1 or not hasattr(model.prior, "logits"):
            raise ConfigError(
                "estimator 'gumbel' relaxes one layer of bernoulli or categorical latents with a "
                "bernoulli / categorical prior; use 'reparam' for continuous latents"
            )
        self._categorical = model.latent.support == "one_hot"

    def check_objective(self, objective, n_samples: int) -> None:
        """Warn where straight-through's bias does not fall with tau: categorical latents under a
        bound with K > 1 samples per group (tests/test_gradient_matrix.py measures ~8-9 % relative
        bias at tau = 1, 0.5 and 0.1 for IWAE-3 and MIWAE(2, 2), where the soft relaxation's falls
        from 17 % to 2-3 %)."""
        if self.hard and self._categorical and objective.encoder_is_multi_sample(n_samples):
            warnings.warn(
                "estimator 'gumbel' with hard = true (straight-through) stays biased for categorical latents "
                f"under {type(objective).registry_name} with K = {n_samples} > 1 however low the temperature; "
                "use hard = false, or 'vimco' for an unbiased gradient",
                UserWarning,
                stacklevel=2,
            )

    def __call__(self, terms, objective) -> BoundEstimate:
        s = terms.log_w.shape[0]
        value = combine(terms.log_w, objective.terms(s)).detach()  # the true discrete bound
        tau = self.current_temperature
        relaxed = relaxed_log_weights(terms._model, terms.x, s, tau, self.hard)  # (S, B)
        relaxed_bound = combine(relaxed, objective.terms(s))
        # the training objective, beside the true bound
        reported = {"relaxed_bound": relaxed_bound.detach(), "temperature": torch.full_like(value, tau)}
        inference = straight_through(value, combine(relaxed, objective.inference_terms(s)))
        if objective.inference_terms(s) == objective.terms(s):
            return BoundEstimate(value, inference, inference, reported=reported)
        return BoundEstimate(value, inference, straight_through(value, relaxed_bound), reported=reported)
