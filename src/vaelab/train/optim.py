"""Optimizers over named parameter groups, and the device choice."""

from __future__ import annotations

import torch

from ..config import OPTIMIZER_IMPLS
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


#: torch optimizers with a fused kernel, and the device types it runs on (torch 2.13)
FUSED = {"adam": ("cpu", "cuda"), "sgd": ("cpu", "cuda"), "adagrad": ("cpu",)}


def impl_options(name: str, impl: str, device: torch.device | str) -> dict[str, bool]:
    """The ``fused`` / ``foreach`` keyword arguments of optimizer ``name`` for ``train.optimizer_impl``.

    'auto' picks the fused kernel where torch has one for this optimizer on this device type: one
    pass over each parameter instead of ~10 ops per parameter, which on the IWAE-paper MLP takes
    Adam's step from 0.99 to 0.25 ms, ~12 % of a VAE step on a 2-core CPU (docs/performance.md). The
    updates agree with torch's for-loop to float rounding. Elsewhere 'auto' leaves torch's own default.

    Raises:
        ConfigError: an unknown implementation, or 'fused' where torch has no fused kernel.
    """
    if impl not in OPTIMIZER_IMPLS:
        raise ConfigError(f"train.optimizer_impl must be one of {OPTIMIZER_IMPLS}, got {impl!r}")
    dev = torch.device(device).type
    fusable = dev in FUSED.get(name, ())
    if impl == "fused" and not fusable:
        has = f"a fused kernel on {', '.join(FUSED[name])} only, not on {dev}" if name in FUSED else "no fused kernel"
        raise ConfigError(f"train.optimizer_impl = 'fused': torch's {name} has {has}; use 'auto', 'foreach' or 'for-loop'")
    if impl == "fused" or (impl == "auto" and fusable):
        return {"fused": True}
    if impl == "auto":
        return {}
    return {"foreach": impl == "foreach"}


def build_optimizer(
    name: str,
    model,
    lr: float,
    adam_eps: float = 1e-8,
    extra_groups: dict[str, list] | None = None,
    impl: str = "auto",
    adam_beta2: float = 0.999,
    weight_decay: float = 0.0,
) -> tuple[torch.optim.Optimizer, dict[str, list]]:
    """One optimizer over the parameter groups of the model, plus ``extra_groups`` (a learned
    baseline, per-datapoint variational parameters, ...).

    Named groups next to each other with the same options share one torch param group (its
    ``name`` joins theirs with "+"): torch's step loops over its param groups, and with the fused
    kernel each group is one more kernel call and bookkeeping pass a step (the VAE step's two
    groups cost ~1 % of it on a CPU; benchmarks/bench_ops.py). Which parameters the estimator treats
    as which group is the returned dict's business, not the optimizer's.

    ``impl`` is ``train.optimizer_impl`` (see :func:`impl_options`), resolved for the device of the
    model's parameters. ``weight_decay`` > 0 is torch's (coupled) L2 term on the weight matrices only
    (parameters of two or more dimensions): each named group is then two torch param groups of that
    name, its matrices decayed and its vectors not, as a Gaussian prior on the weights (Li & Turner's
    numpy VAE) puts no prior on biases.

    Returns:
        (optimizer, {group name: parameters}).
    Raises:
        ConfigError: unknown optimizer or implementation, or a fused kernel torch lacks.
        RuntimeError: a trainable parameter in no group or in two.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    groups = {**model.parameter_groups(), **(extra_groups or {})}
    check_groups(model, groups)
    kwargs = {"eps": adam_eps, "betas": (0.9, adam_beta2)} if name == "adam" else {}
    param_groups = [{"params": ps, "name": g} for g, ps in groups.items() if ps]
    if weight_decay > 0:
        param_groups = [
            {"params": part, "name": pg["name"], "weight_decay": wd}
            for pg in param_groups
            for part, wd in (
                ([p for p in pg["params"] if p.dim() > 1], weight_decay),
                ([p for p in pg["params"] if p.dim() <= 1], 0.0),
            )
            if part
        ]
    device = next((p.device for ps in groups.values() for p in ps), torch.device("cpu"))
    kwargs.update(impl_options(name, impl, device))
    return OPTIMIZERS[name](merge_neighbours(param_groups), lr=lr, **kwargs), groups


def merge_neighbours(param_groups: list[dict]) -> list[dict]:
    """Neighbouring param groups with the same options joined into one (the order of the parameters,
    and so the indices of torch's optimizer state, unchanged)."""
    merged: list[dict] = []
    for pg in param_groups:
        opts = {k: v for k, v in pg.items() if k not in ("params", "name")}
        last = merged[-1] if merged else None
        if last is not None and {k: v for k, v in last.items() if k not in ("params", "name")} == opts:
            last["params"] = [*last["params"], *pg["params"]]
            last["name"] = f"{last['name']}+{pg['name']}"
        else:
            merged.append(dict(pg))
    return merged


def regroup_state(saved: list[dict], current: list[dict]) -> list[dict] | None:
    """A checkpoint's param groups (torch's ``state_dict()["param_groups"]``: ``params`` are state
    indices) laid out as the optimizer's ``current`` param groups (only their sizes and names are
    read): consecutive saved groups joined where the current optimizer merged them (checkpoints
    written before :func:`merge_neighbours`). None when the layouts do not correspond."""
    if [len(g["params"]) for g in saved] == [len(g["params"]) for g in current]:
        return saved
    out, i = [], 0
    for cur in current:
        parts, n = [], 0
        while i < len(saved) and n < len(cur["params"]):
            parts.append(saved[i])
            n += len(saved[i]["params"])
            i += 1
        if n != len(cur["params"]):
            return None
        out.append({**parts[0], "params": [p for g in parts for p in g["params"]], "name": cur.get("name")})
    return out if i == len(saved) else None
