"""Experiment trackers on the callback seam: every epoch's metrics row to MLflow or Weights & Biases.

Each tracker starts in :func:`start_trackers`, before the first epoch, so a missing package or a bad
URI is a one-line :class:`ConfigError` and not a crash at epoch 1; it is then an end-of-epoch callback
``tracker(loop, row)`` and is closed with ``close(finished)``. The tracked run's id is kept in the run
directory (``trackers.json``): a resume continues the same MLflow / W&B run. Only the writing process
(rank 0 under torchrun) tracks. TensorBoard is written by :class:`~vaelab.train.io.RunWriter`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: MLflow's own recommendation since 3.x: its file store (./mlruns) is in maintenance mode and refuses
#: new runs unless MLFLOW_ALLOW_FILE_STORE=true; a SQLite file in the working directory needs no server
DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"

#: seconds a tracking server has to answer the check made before anything is written
CONNECT_TIMEOUT_S = 5.0

#: files of the run directory attached to the tracked run when training ends
ARTIFACTS = ("config.toml", "run.json", "metrics.csv")


def flat_config(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3, "objective": {"kind": "iwae"}}}`` -> ``{"train.lr": ..., "train.objective.kind": ...}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def numbers(row: dict) -> dict[str, float]:
    """The row's finite numeric entries (None, NaN and text are left out)."""
    return {
        k: float(v)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


def _package(name: str, extra: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(
            f"train.trackers includes {extra!r} but {name} is not installed: pip install 'vaelab[{extra}]'"
        ) from None


def artifacts(run_dir: Path) -> list[Path]:
    """The files of :data:`ARTIFACTS` that the run directory holds."""
    return [run_dir / name for name in ARTIFACTS if (run_dir / name).is_file()]


def _ids(run_dir: Path) -> dict:
    f = run_dir / "trackers.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def _run_id(entry) -> str | None:
    """trackers.json's entry: {"run_id": ..., ...} (a bare id before vaelab 0.2.1)."""
    return entry.get("run_id") if isinstance(entry, dict) else entry


def _remember(run_dir: Path, name: str, entry: dict) -> None:
    ids = _ids(run_dir)
    ids[name] = entry
    (run_dir / "trackers.json").write_text(json.dumps(ids, indent=2) + "\n")


class MLflowTracker:
    """MLflow through its client API (no global active run): params = the flattened config, one metric
    per numeric column of each epoch row at its optimizer step, and the run's files as artifacts."""

    def __init__(self, cfg, run_dir: Path, resume: bool):
        mlflow = _package("mlflow", "mlflow")
        from mlflow.entities import Param

        uri = mlflow_uri(cfg)
        self.client, self.run_dir = mlflow.tracking.MlflowClient(tracking_uri=uri), run_dir
        exp = self.client.get_experiment_by_name(cfg.train.experiment)
        exp_id = exp.experiment_id if exp is not None else self._create_experiment(cfg.train.experiment, uri)
        old = _run_id(_ids(run_dir).get("mlflow")) if resume else None
        if old:
            self.run_id = old
            self.client.update_run(old, status="RUNNING")
            return
        self.run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
        _remember(run_dir, "mlflow", {"run_id": self.run_id, "experiment": cfg.train.experiment, "uri": uri})
        params = [Param(k, str(v)[:6000]) for k, v in flat_config(cfg.to_dict()).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _create_experiment(self, name: str, uri: str) -> str:
        """A new experiment; in a SQLite store its artifacts go beside the database (``mlartifacts/``,
        as ``mlflow server`` does), not into ``./mlruns`` of whatever directory training ran in."""
        db = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
        where = (Path(db).resolve().parent / "mlartifacts" / name).as_uri() if db else None
        return self.client.create_experiment(name, artifact_location=where)

    def __call__(self, loop, row: dict) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["step"])
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in numbers(row).items()])

    def close(self, finished: bool) -> None:
        for path in artifacts(self.run_dir):
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED" if finished else "KILLED")


class WandbTracker:
    """Weights & Biases: the flattened config, each epoch row at its step, the run's files saved;
    ``WANDB_MODE=offline`` (or ``disabled``) is honoured by wandb itself."""

    def __init__(self, cfg, run_dir: Path, resume: bool):
        wandb = _package("wandb", "wandb")
        old = _run_id(_ids(run_dir).get("wandb")) if resume else None
        self.run_dir = run_dir
        self.run = wandb.init(
            project=cfg.train.experiment, name=run_dir.name, dir=str(run_dir), id=old, resume="allow" if old else None,
            config=flat_config(cfg.to_dict()),
        )  # fmt: skip
        if not old:
            _remember(run_dir, "wandb", {"run_id": self.run.id, "project": cfg.train.experiment})

    def __call__(self, loop, row: dict) -> None:
        self.run.log(numbers(row), step=int(row["step"]))

    def close(self, finished: bool) -> None:
        for path in artifacts(self.run_dir):
            self.run.save(str(path), base_path=str(self.run_dir), policy="now")
        self.run.finish(exit_code=0 if finished else 1)


TRACKER_CLASSES = {"mlflow": MLflowTracker, "wandb": WandbTracker}


def start_trackers(cfg, run_dir: Path, resume: bool, enabled: bool) -> list:
    """The configured trackers, started; [] where ``enabled`` is False (ranks other than 0).

    Raises:
        ConfigError: a tracker's package is missing or it could not start (bad URI, no W&B login), in one line.
    """
    out: list = []
    for name in cfg.train.trackers if enabled else ():
        if name not in TRACKER_CLASSES:
            continue  # tensorboard: the run writer's
        try:
            out.append(TRACKER_CLASSES[name](cfg, run_dir, resume))
        except ConfigError:
            raise
        except Exception as e:  # whatever the tracker's library raises, said in one line before training
            first = (str(e).strip().splitlines() or [""])[0]
            raise ConfigError(f"train.trackers: {name} could not start ({type(e).__name__}: {first})") from None
    return out


def mlflow_uri(cfg) -> str:
    """The tracking URI MLflow runs go to: ``MLFLOW_TRACKING_URI``, else ``train.tracking_uri``, else
    :data:`DEFAULT_MLFLOW_URI`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.train.tracking_uri or DEFAULT_MLFLOW_URI


def check_trackers(cfg, enabled: bool = True) -> None:
    """What can be known about the configured trackers before anything is written: their packages,
    and for an MLflow server (http/https URI) that it answers within :data:`CONNECT_TIMEOUT_S`.

    Raises:
        ConfigError: one line naming the tracker and what to do.
    """
    names = set(cfg.train.trackers) if enabled else set()
    if "wandb" in names:
        _package("wandb", "wandb")
    if "mlflow" not in names:
        return
    _package("mlflow", "mlflow")
    uri = mlflow_uri(cfg)
    if uri.startswith("sqlite:"):
        _package("sqlalchemy", "mlflow"), _package("alembic", "mlflow")  # mlflow-skinny's SQLite store needs them
    if uri.startswith(("http://", "https://")):
        _reach(uri)


def _reach(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=CONNECT_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # something answered (a proxy, a server without /health): MLflow's own client takes it from here
    except (OSError, ValueError) as e:
        why = getattr(e, "reason", None) or e
        raise ConfigError(
            f"train.trackers: no MLflow server answered at {uri} within {CONNECT_TIMEOUT_S:g} s ({why}); "
            "start it (mlflow server) or fix train.tracking_uri / MLFLOW_TRACKING_URI"
        ) from None


def tracked_runs(run_dir: Path, cfg) -> dict:
    """{tracker name: its entry in trackers.json} for the trackers this run used."""
    ids = _ids(Path(run_dir))
    return {k: v if isinstance(v, dict) else {"run_id": v} for k, v in ids.items() if k in cfg.train.trackers}


def close_trackers(trackers: list, finished: bool) -> None:
    for t in trackers:
        t.close(finished)
