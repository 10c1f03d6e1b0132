"""Learning-rate and KL-weight schedules."""

from __future__ import annotations

import math

from ..errors import ConfigError


def scheduled_lr(lr: float, schedule: str, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``. 'iwae': Burda et al. 2016, Sec. 5 — stage i = 0..7 runs
    3^i epochs at lr * 10^(-i/7) (3,280 epochs); 'iwae-2': the same with stages of 2^i epochs (255
    epochs; Li & Turner 2016, App. D, for Caltech silhouettes). Epochs past the schedule stay in
    the last stage."""
    if schedule == "constant":
        return lr
    base = 2 if schedule == "iwae-2" else 3
    stage, end = 0, 1
    while epoch >= end and stage < 7:
        stage += 1
        end += base**stage
    return lr * 10 ** (-stage / 7)


def warmup_beta(beta: float, warmup_steps: int, step: int) -> float:
    """KL weight after ``step`` steps of a linear warm-up from 0 (Bowman et al. 2016; off when 0)."""
    return beta * min(1.0, step / warmup_steps) if warmup_steps else beta


def _logistic(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def kl_weight(beta: float, anneal: str, steps: int, step: int, cycle_ratio: float = 0.5) -> float:
    """KL weight after ``step`` optimizer steps (``steps`` = 0: always ``beta``).

    - "linear": beta * min(1, step / steps) (Bowman et al. 2016, Sec. 3.1).
    - "sigmoid": the logistic curve sigma(10 (t - 1/2)) of Bowman et al.'s released code, t = step /
      steps, shifted and scaled to run from exactly 0 at step 0 to exactly beta at ``steps`` (the
      raw curve gives 0.007 and 0.993: the ELBO would never be trained at weight 1), beta after.
    - "cyclical": Fu et al. 2019, eq. 5 with cycles of ``steps`` steps: tau = (step mod steps) / steps,
      beta * min(1, tau / cycle_ratio), so beta rises over the first ``cycle_ratio`` of every cycle.
    """
    if not steps:
        return beta
    if anneal == "linear":
        return warmup_beta(beta, steps, step)
    if anneal == "sigmoid":
        t = min(1.0, step / steps)
        lo, hi = _logistic(-5.0), _logistic(5.0)
        return beta * (_logistic(10.0 * (t - 0.5)) - lo) / (hi - lo)
    tau = (step % steps) / steps
    return beta * min(1.0, tau / cycle_ratio)


def check_schedules(t) -> None:
    """Refuse KL-annealing and divergence options that cannot take effect (a [train] config).

    Raises:
        ConfigError: naming the option.
    """
    if t.kl_anneal != "linear" and not t.kl_warmup_steps:
        raise ConfigError(f'train.kl_anneal = "{t.kl_anneal}" needs train.kl_warmup_steps > 0 (the warm-up or cycle length)')
    if t.kl_anneal == "cyclical" and not 0 < t.kl_cycle_ratio <= 1:
        raise ConfigError(f"train.kl_cycle_ratio must be in (0, 1], got {t.kl_cycle_ratio}")
    if t.kl_cycle_ratio != 0.5 and t.kl_anneal != "cyclical":
        raise ConfigError('train.kl_cycle_ratio applies to kl_anneal = "cyclical" only')
    if t.free_bits < 0:
        raise ConfigError(f"train.free_bits must be >= 0 nats per dimension, got {t.free_bits}")
    if t.divergence_retries < 0 or not 0 < t.divergence_lr_factor <= 1:
        raise ConfigError(
            "train.divergence_retries must be >= 0 and train.divergence_lr_factor in (0, 1], got "
            f"{t.divergence_retries} and {t.divergence_lr_factor}"
        )
    if t.kl_warmup_steps < 0:
        raise ConfigError(f"train.kl_warmup_steps must be >= 0, got {t.kl_warmup_steps}")
