"""Experiment trackers (train.trackers): what training sends to MLflow and W&B is read back with
their own client / record schema, a resume continues the same tracked run, and a tracker that cannot
start is a one-line error before the first epoch."""

import re
from pathlib import Path

import pytest

from vaelab import RunConfig, fit
from vaelab.errors import ConfigError


def _cfg(tmp_path: Path, trackers: list, epochs: int = 2, **more) -> RunConfig:
    return RunConfig().override(
        {
            "data.n_train": 200,
            "model.latent.dim": 2,
            "model.encoder.hidden": [8],
            "train.epochs": epochs,
            "train.batch_size": 50,
            "train.trackers": trackers,
            "train.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            **more,
        }
    )


@pytest.mark.slow
def test_mlflow_gets_params_metrics_per_step_and_artifacts_and_resume_continues_the_run(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # MLflow's own default artifact root would be ./mlruns here
    run = tmp_path / "run"
    res = fit(_cfg(tmp_path, ["mlflow"]), run, quiet=True)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("vaelab").experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert res.tracked["mlflow"]["run_id"] == found.info.run_id
    assert list((tmp_path / "cwd").iterdir()) == []  # no ./mlruns: the artifacts sit beside the database
    assert (tmp_path / "mlartifacts" / "vaelab" / found.info.run_id / "artifacts" / "config.toml").is_file()
    assert found.data.params["train.lr"] == "0.001" and found.data.params["model.latent.dim"] == "2"
    history = client.get_metric_history(found.info.run_id, "valid_elbo")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["valid_elbo"]) for r in res.history]
    assert {a.path for a in client.list_artifacts(found.info.run_id)} == {"config.toml", "run.json", "metrics.csv"}
    fit(_cfg(tmp_path, ["mlflow"], epochs=3), run, resume=True, quiet=True)
    (again,) = client.search_runs([client.get_experiment_by_name("vaelab").experiment_id])
    assert again.info.run_id == found.info.run_id  # the same tracked run, one more epoch
    assert len(client.get_metric_history(found.info.run_id, "valid_elbo")) == 3


def _wandb_records(path: Path):
    """The records of a W&B run file (a LevelDB-style log after a 7-byte header), parsed with W&B's own schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, buf = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if left < 7 or (length == 0 and kind == 0):  # block trailer or zero padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # FULL / FIRST start a record, MIDDLE / LAST extend it
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


@pytest.mark.slow
def test_wandb_offline_run_files_hold_the_config_and_every_epoch_row(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    res = fit(_cfg(tmp_path, ["wandb", "tensorboard"]), run, quiet=True)
    import wandb

    # run.finish() returns before W&B's service process has written every record of the offline file
    # (read at once, under load, the file once held no history yet): shut the service down, which waits
    wandb.teardown()
    (log,) = run.glob("wandb/offline-run-*/run-*.wandb")
    records = list(_wandb_records(log))
    rows = [
        {"_step": r.history.step.num, **{i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}}
        for r in records
        if r.HasField("history")
    ]
    assert [(r["_step"], r["valid_elbo"]) for r in rows] == [(h["step"], h["valid_elbo"]) for h in res.history]
    config = {u.key: u.value_json for r in records if r.WhichOneof("record_type") == "run" for u in r.run.config.update}
    assert json.loads(config["train.lr"]) == 0.001
    assert (run / "tb").is_dir()  # tensorboard alongside
    run_id = json.loads((run / "trackers.json").read_text())["wandb"]["run_id"]
    assert res.tracked["wandb"]["run_id"] == run_id
    fit(_cfg(tmp_path, ["wandb"], epochs=3), run, resume=True, quiet=True)
    assert json.loads((run / "trackers.json").read_text())["wandb"]["run_id"] == run_id
    # offline-run-<time>-<id>, and W&B appends -1 when the resumed run starts within the same second
    assert all(re.fullmatch(rf"offline-run-\d+_\d+-{run_id}(-\d+)?", p.name) for p in run.glob("wandb/offline-run-*"))


def test_a_tracker_that_cannot_start_is_one_line_before_the_first_epoch(tmp_path, monkeypatch):
    import sys

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match=r"mlflow could not start") as e:
        fit(_cfg(tmp_path, ["mlflow"], **{"train.tracking_uri": "nosuchscheme://x"}), tmp_path / "a", quiet=True)
    assert "\n" not in str(e.value) and not (tmp_path / "a" / "last.pt").exists()
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'vaelab\[wandb\]'"):
        fit(_cfg(tmp_path, ["wandb"]), tmp_path / "b", quiet=True)
    assert not (tmp_path / "b" / "last.pt").exists()


def test_an_unreachable_mlflow_server_is_one_line_within_seconds_and_nothing_is_written(tmp_path, monkeypatch):
    import socket
    import time

    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"no MLflow server answered at http://127.0.0.1:{port}/ within") as e:
        fit(_cfg(tmp_path, ["mlflow"], **{"train.tracking_uri": f"http://127.0.0.1:{port}/"}), tmp_path / "a", quiet=True)
    assert time.perf_counter() - t0 < 30 and "\n" not in str(e.value)
    assert not (tmp_path / "a").exists()  # checked before the run directory is created


def test_trackers_are_validated_as_names():
    with pytest.raises(ConfigError, match="distinct names"):
        RunConfig().override({"train.trackers": ["comet"]})
    assert RunConfig().train.trackers == ["tensorboard"]


@pytest.mark.slow
def test_vaelab_train_names_the_tracked_run_in_its_last_lines(tmp_path, monkeypatch, capsys):
    import json

    from vaelab.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["train", "--set", "data.n_train=200", "--epochs", "1", "--hidden", "8", "--quiet", "--out", str(tmp_path / "r")]
    assert main([*argv, "--trackers", "mlflow", "--tracking-uri", uri]) == 0
    run_id = json.loads((tmp_path / "r" / "trackers.json").read_text())["mlflow"]["run_id"]
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"mlflow run {run_id} ({uri}, experiment 'vaelab')"
