"""Cross-field rules of a whole config: ranges, the options that apply only together, and the label
mode's own rules (asked of the mode, :mod:`vaelab.labels`)."""

from __future__ import annotations

import math
from dataclasses import fields

from ..errors import ConfigError
from ..labels import LABEL_MODES
from .schema import TrainConfig


def check(cfg) -> None:
    t = cfg.train
    for section in ("train", "data", "model"):
        for f in fields(getattr(cfg, section)):
            v = getattr(getattr(cfg, section), f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"config key '{section}.{f.name}' must be a finite number, got {v}")
    positive = {
        "train.n_samples": t.n_samples,
        "train.batch_size": t.batch_size,
        "train.lr": t.lr,
        "train.log_every": t.log_every,
        "train.adam_eps": t.adam_eps,
        "train.valid_iwae_points": t.valid_iwae_points,
        "train.grad_variance_points": t.grad_variance_points,
    }
    for key, v in positive.items():
        if v <= 0:
            raise ConfigError(f"config key '{key}' must be > 0, got {v}")
    _check_adam(t)
    for key in (
        "epochs",
        "kl_warmup_steps",
        "beta",
        "valid_every",
        "checkpoint_every",
        "early_stopping",
        "checkpoint_every_steps",
        "valid_iwae_k",
        "grad_clip",
        "weight_decay",
        "num_threads",
        "grad_variance_every",
        "labelled_batch",
        "classification_weight",
    ):
        if getattr(t, key) < 0:
            raise ConfigError(f"config key 'train.{key}' must be >= 0, got {getattr(t, key)}")
    if cfg.data.labelled < 0:
        raise ConfigError(f"config key 'data.labelled' must be >= 0, got {cfg.data.labelled}")
    if cfg.model.labels not in LABEL_MODES:
        raise ConfigError(f"config key 'model.labels' must be one of {LABEL_MODES.names()}, got {cfg.model.labels!r}")
    LABEL_MODES.build(cfg.model.labels).check_config(cfg)  # the options it honours, the training it can do
    if t.grad_variance_draws < 2:
        raise ConfigError(f"config key 'train.grad_variance_draws' must be >= 2, got {t.grad_variance_draws}")
    if any(d <= 0 or int(d) != d for d in [*cfg.model.upper_z_dims, *cfg.model.upper_hidden]):
        raise ConfigError("config keys 'model.upper_z_dims' / 'model.upper_hidden' must be positive integers")
    _check_shaping(cfg)
    if t.compile and t.cuda_graphs:
        raise ConfigError(
            "train.compile and train.cuda_graphs both take over the step: set one (compile: inductor kernels; "
            "cuda_graphs: the eager step captured and replayed)"
        )


def _check_adam(t: TrainConfig) -> None:
    if not 0 <= t.adam_beta2 < 1:
        raise ConfigError(f"config key 'train.adam_beta2' must be in [0, 1), got {t.adam_beta2}")
    if t.optimizer != "adam" and t.adam_beta2 != TrainConfig.adam_beta2:  # set away from its default
        raise ConfigError(f"train.adam_beta2 = {t.adam_beta2} has no effect with optimizer = '{t.optimizer}'; use adam")


def _check_shaping(cfg) -> None:
    """beta, its warm-up and the analytic KL: where they apply (``estimators.base.shaping_allowed``)."""
    from ..estimators.base import shaping_allowed

    t = cfg.train
    shaped = not shaping_allowed(t.objective.kind, t.estimator.kind)
    if shaped and (t.beta != 1 or t.kl_warmup_steps):
        raise ConfigError(
            "beta / kl_warmup_steps apply to the ELBO with estimator 'reparam' only; "
            "set train.beta = 1 and train.kl_warmup_steps = 0"
        )
    if t.kl == "analytic" and shaped:
        raise ConfigError('kl = "analytic" applies to the ELBO with estimator \'reparam\' only; set train.kl = "mc"')
    if t.kl == "analytic" and cfg.model.upper_z_dims:
        raise ConfigError(
            'kl = "analytic" has no closed form with several stochastic layers (KL(q(h|x) || p(h)) '
            'couples them); set train.kl = "mc" or "auto"'
        )
