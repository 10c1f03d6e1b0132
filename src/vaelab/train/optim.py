"""Optimizers over named parameter groups, and the device choice."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..models import check_groups

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:1' or 'auto' -> a device.

    Raises:
        ConfigError: CUDA asked for but unavailable.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is available; use device = 'cpu'")
    return dev


def build_optimizer(
    name: str, model, lr: float, adam_eps: float = 1e-8, extra_groups: dict[str, list] | None = None
) -> tuple[torch.optim.Optimizer, dict[str, list]]:
    """One optimizer with one named param group per parameter group of the model, plus
    ``extra_groups`` (a learned baseline, per-datapoint variational parameters, ...).

    Returns:
        (optimizer, {group name: parameters}).
    Raises:
        ConfigError: unknown optimizer.
        RuntimeError: a trainable parameter in no group or in two.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    groups = {**model.parameter_groups(), **(extra_groups or {})}
    check_groups(model, groups)
    kwargs = {"eps": adam_eps} if name == "adam" else {}
    param_groups = [{"params": ps, "name": g} for g, ps in groups.items() if ps]
    return OPTIMIZERS[name](param_groups, lr=lr, **kwargs), groups
