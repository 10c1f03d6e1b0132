"""Relaxed gradients for discrete latents: Gumbel-softmax / Concrete (Jang et al. 2017; Maddison
et al. 2017) and its straight-through variant. The gradient comes from a relaxed bound; the value
that is logged is always the true discrete bound, from the engine's discrete samples."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Independent
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from ..errors import ConfigError
from ..objectives import combine
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


def relaxed_log_weights(model, x: Tensor, s: int, temperature: float, hard: bool) -> Tensor:
    """(S, B) log-weights log p(x|z) + log p(z) - log q(z|x) at relaxed samples, differentiable
    (one stochastic layer).

    z~ = sigmoid(y) or exp(y) with y ~ LogitRelaxedBernoulli / ExpRelaxedCategorical at the given
    temperature (the Gumbel-softmax sample, Jang et al. 2017, eq. 1; Maddison et al. 2017). The
    densities are the discrete ones, extended to relaxed values (Bernoulli: z log s + (1 - z) log(1 - s);
    categorical: sum z log pi), as in Jang et al.'s VAE, whose KL stays the discrete one: this bound
    tends to the discrete one as tau -> 0. (The Concrete densities of Maddison et al. would not: their
    log-ratio tends to a constant independent of the sample.) Hard (straight-through, Jang et al.
    Sec. 2.2): z is the discrete sample in the forward pass and z~'s gradient in the backward pass.
    """
    logits = model.encoder(x).reshape(x.shape[0], *model.latent.event_shape)  # (B, D) or (B, D, C)
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    binary = model.latent.support == "binary"
    family = LogitRelaxedBernoulli if binary else ExpRelaxedCategorical
    q = Independent(family(t, logits=logits, validate_args=False), 1)
    y = q.rsample((s,))  # (S, B, *event)
    z = torch.sigmoid(y) if binary else y.exp()
    if hard:
        discrete = (y > 0).to(y.dtype) if binary else torch.nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
        z = discrete + z - z.detach()  # forward: discrete; backward: relaxed
    q_discrete = model.latent.distribution(logits.reshape(x.shape[0], -1))  # q(z|x), from the same encoder pass
    return model.likelihood.log_prob(model.decode(z, x), x) + model.prior.log_prob(z) - q_discrete.log_prob(z)


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
        min_temperature, anneal_every: the schedule's floor and update interval (steps).
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
