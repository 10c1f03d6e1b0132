"""What a run is on disk: building its data and model, checkpoint payloads, and reloading.

Checkpoint format 2 records the model's spec (component tables and the data's event shape), so
:func:`load_run` rebuilds a registered model without looking at state-dict keys; a model built in
Python has no spec and is reloaded by passing it (the same constructor) back. Format-1 checkpoints
(vaelab 0.1: flat config, no spec) are migrated on load (docs/design.md, "Checkpoints").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import config as config_mod
from .._version import __version__ as _version
from ..checkpoint import load_checkpoint
from ..config import RunConfig
from ..data import DataSplits, load_data
from ..data.labels import n_classes
from ..distributions import PRIORS
from ..errors import CheckpointError
from ..labels import mode_class
from ..models import build_model, init_decoder_bias

FORMAT = 2


@dataclass
class TrainResult:
    """What :func:`~vaelab.train.fit` returns. Values in nats per data point."""

    run_dir: Path
    model: torch.nn.Module
    data: DataSplits
    history: list = field(default_factory=list)
    best_valid_elbo: float = float("-inf")
    seconds: float = 0.0
    stopped_early: int | None = None  # the epoch early stopping ended training at (``model`` is then best.pt's)
    tracked: dict = field(default_factory=dict)  # tracker name -> {"run_id", "uri"/"url"} (trackers.json)


def _likelihood_kind(cfg: RunConfig, model) -> str:
    if model is None:
        return cfg.model.likelihood.kind
    return getattr(type(model.likelihood), "registry_name", "gaussian")


def make_data_and_model(cfg: RunConfig, model=None, data: DataSplits | None = None) -> tuple[DataSplits, object, dict]:
    """The run's data (loaded from ``cfg.data`` unless given) and model (built from ``cfg.model``
    unless given), checked against each other; and a provenance dict for run.json."""
    provenance: dict[str, Any] = {"vaelab": _version, "data": "config [data]", "model": "config [model]"}
    if data is None:
        data = load_data(cfg.data, _likelihood_kind(cfg, model))
    else:
        provenance.update(
            data=f"passed from Python ({data.info.get('source', 'no source recorded')})",
            note="; data passed from Python: the [data] table below was not used",
        )
    built = model is None
    if built:
        pseudo = None
        if cfg.model.prior.kind == "vamp":
            c = cfg.model.prior.options.get("components", PRIORS.options("vamp")["components"].default)
            pseudo = data.train[torch.randperm(data.train.shape[0])[:c]]
            if pseudo.shape[0] < c:
                raise config_mod.ConfigError(
                    f"model.prior.components = {c} pseudo-inputs but only {data.train.shape[0]} training points"
                )
        c = n_classes(data.train_labels) if mode_class(cfg.model.labels).reads_labels else 0
        model = build_model(cfg.model, data.x_shape, pseudo_init=pseudo, vocab_size=data.info.get("vocab_size"), n_classes=c)
        if "vocab" in data.info:
            model.spec["vocab"] = list(data.info["vocab"])  # the checkpoint alone can print sentences
    else:
        provenance["model"] = f"built in Python: {type(model).__name__}"
    check = data.valid if data.dynamic_binarization else data.train
    model.check_input(check, "valid" if data.dynamic_binarization else "train")
    if built:  # after the data check: NaN data must not reach the bias
        init_decoder_bias(model, data.train, cfg.model.decoder_bias)
    spec = {k: v for k, v in (model.spec or {}).items() if k != "vocab"} if model.spec is not None else None
    info = {k: v for k, v in _jsonable(data.info).items() if k != "vocab"}  # 10k words belong in the checkpoint
    provenance.update(x_shape=list(data.x_shape), model_spec=spec, info=info)
    return data, model, provenance


def _jsonable(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool, list, type(None)))}


def restore(model, state: dict, source: str) -> None:
    """Load a state dict strictly, with a one-line error when the weights do not fit.

    Raises:
        CheckpointError: naming the first missing / unexpected / mis-shaped entry.
    """
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(
            f"the weights in {source} do not fit this model ({lines[1] if len(lines) > 1 else lines[0]}); "
            "rebuild the model exactly as it was trained"
        ) from None


def read_checkpoint(path: Path) -> tuple[dict, RunConfig]:
    """A checkpoint and its validated config, migrating format 1."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format", 1) < FORMAT:
        ckpt["config"] = config_mod.migrate(ckpt["config"])
        ckpt["model"] = config_mod.migrate_state(ckpt["model"])
    try:
        cfg = config_mod.from_dict(ckpt["config"])
    except config_mod.ConfigError as e:
        raise CheckpointError(f"{path}: its config does not validate ({e}); retrain with this vaelab") from None
    return ckpt, cfg


def load_run(
    run_dir: str | Path, which: str = "best", data: DataSplits | None = None, load_data_too: bool = True, model=None
) -> tuple[RunConfig, Any, DataSplits | None]:
    """Rebuild config, model (with trained weights) and, optionally, data from a run directory.

    Args:
        which: "best" (falls back to "last" when there is no best.pt) or "last".
        data: the run's data, if already loaded.
        load_data_too: load the data from the run's [data] table when ``data`` is None.
        model: for a model built in Python, a fresh instance of it (the same constructor); its
            weights are replaced by the checkpoint's.
    Raises:
        CheckpointError: the run directory or checkpoint is missing, unreadable, from a model
            built in Python without ``model=``, or the weights do not fit.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    path = run_dir / f"{which}.pt"
    if which == "best" and not path.exists():
        path = run_dir / "last.pt"
    ckpt, cfg = read_checkpoint(path)
    if data is None and load_data_too:
        check_data_source(run_dir)
        data = load_data(cfg.data, _likelihood_kind(cfg, model))
    if model is None:
        model = _rebuild(ckpt, cfg, data, path)
    restore(model, ckpt["model"], str(path))
    model.eval()
    return cfg, model, data


def check_data_source(run_dir: Path) -> None:
    """Refuse to reload a run's data from its [data] table when it was trained on data passed from Python.

    Raises:
        CheckpointError: saying to pass the data (``data=``) instead.
    """
    meta = Path(run_dir) / "run.json"
    if meta.is_file() and json.loads(meta.read_text()).get("data", "").startswith("passed from Python"):
        raise CheckpointError(
            f"{run_dir} was trained on data passed from Python, not on its [data] table; "
            "pass the same data: load_run(run_dir, data=...)"
        )


def _rebuild(ckpt: dict, cfg: RunConfig, data: DataSplits | None, path: Path):
    spec = ckpt.get("model_spec")
    if ckpt.get("format", 1) >= FORMAT and spec is None:
        raise CheckpointError(
            f"{path} holds a model built in Python; pass it back: "
            "load_run(run_dir, model=<your model, constructed as for training>)"
        )
    if spec is not None:
        model_cfg = config_mod.from_dict({"model": spec["model"]}).model
        model = build_model(
            model_cfg, tuple(spec["x_shape"]), vocab_size=spec.get("vocab_size"), n_classes=spec.get("n_classes", 0)
        )
        if "vocab" in spec and model.spec is not None:
            model.spec["vocab"] = spec["vocab"]
        return model
    if data is None:  # format 1 recorded no event shape: the data tells it
        data = load_data(cfg.data, cfg.model.likelihood.kind)
    return build_model(cfg.model, data.x_shape)
