import json
import math
import warnings

import pytest
import torch
from conftest import tiny_config as tiny

from vaelab.checkpoint import load_checkpoint
from vaelab.errors import CheckpointError, TrainingDivergedError
from vaelab.numerics import denormals_flushed, flush_denormal_enabled
from vaelab.train import fit, load_run


def _strip(history):
    return [{k: v for k, v in r.items() if "time" not in k} for r in history]


def test_same_seed_gives_identical_numbers(tmp_path):
    a = fit(tiny(**{"model.prior": "mog"}), tmp_path / "a", quiet=True, tensorboard=False)
    b = fit(tiny(**{"model.prior": "mog"}), tmp_path / "b", quiet=True, tensorboard=False)
    assert _strip(a.history) == _strip(b.history)
    c = fit(tiny(**{"model.prior": "mog", "train.seed": 1}), tmp_path / "c", quiet=True, tensorboard=False)
    assert _strip(c.history) != _strip(a.history)


def test_resume_matches_an_uninterrupted_run(tmp_path):
    full = fit(tiny(**{"train.epochs": 3}), tmp_path / "full", quiet=True, tensorboard=False)
    fit(tiny(**{"train.epochs": 1}), tmp_path / "part", quiet=True, tensorboard=False)
    resumed = fit(tiny(**{"train.epochs": 3}), tmp_path / "part", resume=True, quiet=True, tensorboard=False)
    assert [r["valid_elbo"] for r in resumed.history] == [r["valid_elbo"] for r in full.history]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_resume_rewrites_a_metrics_csv_written_by_an_older_version_with_todays_columns(tmp_path):
    """metrics.csv gained valid_error (issue 31): a resume rebuilds the file from the checkpoint's history,
    so a run started before gets the current header and every row fits it."""
    import csv

    from vaelab.train.io import CSV_FIELDS

    fit(tiny(**{"train.epochs": 1}), tmp_path / "r", quiet=True, tensorboard=False)
    path = tmp_path / "r" / "metrics.csv"
    rows = list(csv.reader(path.read_text().splitlines()))
    path.write_text("\n".join(",".join(v for k, v in zip(rows[0], r) if k != "valid_error") for r in rows) + "\n")
    fit(tiny(**{"train.epochs": 2}), tmp_path / "r", resume=True, quiet=True, tensorboard=False)
    after = list(csv.reader(path.read_text().splitlines()))
    assert after[0] == CSV_FIELDS and len(after) == 3 and all(len(r) == len(CSV_FIELDS) for r in after)


def test_run_directory_contents_and_labels(tmp_path):
    res = fit(tiny(**{"train.kl_warmup_steps": 4, "train.beta": 0.5}), tmp_path / "r", quiet=True)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {
        "config.toml",
        "run.json",
        "metrics.csv",
        "metrics.jsonl",
        "diagnostics.jsonl",
        "last.pt",
        "best.pt",
        "tb",
    } <= names
    row = res.history[-1]
    assert math.isclose(row["train_elbo"], row["train_rec"] - row["train_kl"], rel_tol=1e-5)
    assert row["beta"] == 0.5  # warm-up finished: 12 steps > 4
    first = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0]
    assert '"beta": 0.125' in first  # first log after 2 steps; that step used beta = 0.5 * 1/4


def test_training_improves_the_elbo(tmp_path):
    res = fit(tiny(**{"train.epochs": 8, "data.n_train": 1000}), tmp_path / "r", quiet=True, tensorboard=False)
    assert res.history[-1]["valid_elbo"] > res.history[0]["valid_elbo"] + 0.3


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    fit(tiny(**{"train.epochs": 1}), tmp_path / "r", quiet=True, tensorboard=False)
    good = load_checkpoint(tmp_path / "r" / "last.pt")
    with (
        pytest.raises(TrainingDivergedError, match=r"last good checkpoint is .*last.pt \(epoch 1, step \d+\)"),
        pytest.warns(UserWarning, match="fresh sgd state"),
        pytest.warns(UserWarning, match="rolled back"),
    ):
        fit(
            tiny(**{"train.epochs": 3, "train.lr": 1e12, "train.optimizer": "sgd"}),
            tmp_path / "r",
            resume=True,
            quiet=True,
            tensorboard=False,
        )
    kept = load_checkpoint(tmp_path / "r" / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())
    assert all(torch.equal(good["model"][k], kept["model"][k]) for k in good["model"])


def test_divergence_before_any_checkpoint_says_so(tmp_path):
    with (
        pytest.raises(TrainingDivergedError, match="no checkpoint had been written yet"),
        pytest.warns(UserWarning, match="rolled back to the start of epoch 1"),
    ):
        fit(tiny(**{"train.lr": 1e12, "train.optimizer": "sgd"}), tmp_path / "r", quiet=True, tensorboard=False)


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    fit(tiny(**{"train.epochs": 1}), tmp_path / "r", quiet=True, tensorboard=False)
    (tmp_path / "r" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_run(tmp_path / "r", "best")
    with pytest.raises(CheckpointError, match="already holds a run"):
        fit(tiny(**{"train.epochs": 1}), tmp_path / "r", quiet=True, tensorboard=False)


def test_validation_and_checkpoints_can_be_turned_off(tmp_path):
    res = fit(tiny(**{"train.valid_every": 0, "train.checkpoint_every": 0}), tmp_path / "r", quiet=True, tensorboard=False)
    assert all(r["valid_elbo"] is None for r in res.history)
    assert not (tmp_path / "r" / "last.pt").exists() and not (tmp_path / "r" / "best.pt").exists()
    saved = []  # the epoch of last.pt on disk after each epoch (user callbacks run after the built-in ones)
    last = tmp_path / "s" / "last.pt"
    res = fit(
        tiny(**{"train.epochs": 5, "train.valid_every": 2, "train.checkpoint_every": 2}),
        tmp_path / "s",
        quiet=True,
        tensorboard=False,
        callbacks=[lambda loop, row: saved.append(load_checkpoint(last)["epoch"] if last.exists() else None)],
    )
    assert [r["valid_elbo"] is not None for r in res.history] == [False, True, False, True, False]
    assert saved == [None, 2, 2, 4, 5]  # every 2nd epoch, and the last one always


def test_empty_validation_set_warns_instead_of_diverging(tmp_path):
    from vaelab.data import load_data

    cfg = tiny()
    data = load_data(cfg.data)
    data.valid = data.valid[:0]
    with pytest.warns(UserWarning, match="validation set is empty"):
        res = fit(cfg, tmp_path / "r", data=data, quiet=True, tensorboard=False)
    assert (tmp_path / "r" / "last.pt").exists() and not (tmp_path / "r" / "best.pt").exists()
    assert res.history[-1]["valid_elbo"] is None


def test_data_from_python_is_recorded_as_such(tmp_path):
    from vaelab.data import load_data

    cfg = tiny()
    data = load_data(cfg.data)
    fit(cfg, tmp_path / "r", data=data, quiet=True, tensorboard=False)
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["data"].startswith("passed from Python") and run["x_shape"] == [2]
    assert "data passed from Python: the [data] table below was not used" in (tmp_path / "r" / "config.toml").read_text()


def test_fit_restores_the_callers_denormal_setting(tmp_path):
    torch.set_flush_denormal(False)
    assert not flush_denormal_enabled()
    fit(tiny(**{"train.epochs": 1}), tmp_path / "r", quiet=True, tensorboard=False)
    assert not flush_denormal_enabled()
    with denormals_flushed():
        assert flush_denormal_enabled()
    assert not flush_denormal_enabled()
    torch.set_flush_denormal(True)  # the suite's default (conftest)


def test_the_denormal_probe_does_not_depend_on_the_setting_at_import():
    import importlib

    import vaelab.numerics

    torch.set_flush_denormal(True)
    importlib.reload(vaelab.numerics)  # the probe is made while flushing is on
    try:
        torch.set_flush_denormal(False)
        assert not vaelab.numerics.flush_denormal_enabled()
        torch.set_flush_denormal(True)
        assert vaelab.numerics.flush_denormal_enabled()
    finally:
        torch.set_flush_denormal(True)  # the suite's default (conftest)


def test_fit_from_initial_weights(tmp_path):
    a = fit(tiny(**{"train.epochs": 3}), tmp_path / "a", quiet=True, tensorboard=False)
    b = fit(
        tiny(**{"train.epochs": 1, "train.lr": 1e-12}),
        tmp_path / "b",
        init=tmp_path / "a" / "last.pt",
        quiet=True,
        tensorboard=False,
    )
    assert abs(b.history[0]["valid_elbo"] - a.history[-1]["valid_elbo"]) < 1e-3


@pytest.mark.parametrize("prior", ["standard_normal", "mog", "vamp"])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_every_prior_trains_with_every_bound(tmp_path, prior, objective):
    res = fit(
        tiny(
            **{
                "model.prior": prior,
                "train.objective": objective,
                "train.n_samples": 3,
                "train.epochs": 4,
                "data.n_train": 600,
            }
        ),
        tmp_path / "r",
        quiet=True,
        tensorboard=False,
    )
    first, last = res.history[0], res.history[-1]
    assert last["valid_elbo"] > first["valid_elbo"]  # it learns, not just stays finite
    if objective == "iwae":
        assert last["train_bound"] >= last["train_elbo"] - 1e-4


def test_resume_without_a_checkpoint_starts_the_run(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.toml").write_text("")
    (tmp_path / "r" / "metrics.jsonl").write_text('{"step": 99}\n{"ste')  # the killed start's torn log
    with pytest.warns(UserWarning, match="stopped before its first checkpoint.*from the beginning"):
        res = fit(tiny(), tmp_path / "r", resume=True, quiet=True, tensorboard=False)
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert '"step": 99' not in (tmp_path / "r" / "metrics.jsonl").read_text()


def test_a_killed_fresh_start_leaves_no_headerless_metrics(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.csv").write_text("")
    (run / "metrics.jsonl").write_text('{"step": 99}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(tiny(), run, quiet=True, tensorboard=False)
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step") and len(lines) == 3
    assert '"step": 99' not in (run / "metrics.jsonl").read_text()


class _Inject:
    """Make train_step report a divergence at the given global step numbers (1-based)."""

    def __init__(self, at):
        import vaelab.train.loop as loop_mod

        self.at, self.calls, self.real = set(at), 0, loop_mod.train_step

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.at or "always" in self.at:
            raise TrainingDivergedError("the training bound is nan")
        return self.real(*args, **kwargs)


def test_divergence_rolls_back_the_epoch_and_retries(tmp_path, monkeypatch):
    import vaelab.train.loop as loop_mod

    full = fit(tiny(**{"train.epochs": 3}), tmp_path / "full", quiet=True, tensorboard=False)
    steps = full.history[0]["step"]  # per epoch
    monkeypatch.setattr(loop_mod, "train_step", _Inject({steps + 3}))  # third step of epoch 2
    with pytest.warns(UserWarning, match="rolled back to the start of epoch 2.*x1 \\(roll-back 1 of 3\\)"):
        same = fit(
            tiny(**{"train.epochs": 3, "train.divergence_lr_factor": 1.0}), tmp_path / "same", quiet=True, tensorboard=False
        )
    # with the learning rate kept, the retried epoch replays exactly: model, optimizer and RNGs were restored
    assert _strip(same.history) == _strip(full.history)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, same.model.state_dict()[k]), k
    events = [json.loads(ln) for ln in (tmp_path / "same" / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["epoch"], e["retry"]) for e in events] == [("divergence_roll_back", 2, 1)]
    monkeypatch.setattr(loop_mod, "train_step", _Inject({steps + 3}))
    with pytest.warns(UserWarning, match="x0.5"):
        half = fit(tiny(**{"train.epochs": 3}), tmp_path / "half", quiet=True, tensorboard=False)
    assert [r["lr"] for r in half.history] == [1e-3, 5e-4, 5e-4]
    assert load_checkpoint(tmp_path / "half" / "last.pt")["lr_scale"] == 0.5  # a resume keeps the lower rate


def test_divergence_stops_after_its_retries(tmp_path, monkeypatch):
    import vaelab.train.loop as loop_mod

    monkeypatch.setattr(loop_mod, "train_step", _Inject({"always"}))
    with (
        pytest.raises(
            TrainingDivergedError,
            match=r"at epoch 1, step 0.*no checkpoint.*after 2 roll-backs, the "
            r"learning rate at 0.25 x train.lr",
        ),
        pytest.warns(UserWarning),
    ):
        fit(tiny(**{"train.divergence_retries": 2}), tmp_path / "r", quiet=True, tensorboard=False)
    assert len((tmp_path / "r" / "events.jsonl").read_text().splitlines()) == 2


def test_unwritable_run_directory_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    from vaelab.cli import main

    (tmp_path / "file").write_text("in the way")
    with pytest.raises(CheckpointError, match="cannot write to the run directory .*file/r"):
        fit(tiny(), tmp_path / "file" / "r", quiet=True, tensorboard=False)
    import errno
    import os

    real = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "full"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "\n" not in err and not (tmp_path / "full" / "config.toml").exists()
    monkeypatch.setattr(os, "fsync", real)


def test_checkpoint_rename_is_made_durable(tmp_path, monkeypatch):
    import os
    import stat

    from vaelab.checkpoint import save_checkpoint

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    save_checkpoint({"model": {}, "config": {}}, tmp_path / "c.pt")
    assert synced == [False, True]  # the file's data, then the directory holding the rename


def test_early_stopping_stops_at_the_patience_and_returns_the_best_model(tmp_path):
    """30 points, a wide decoder and lr 0.03 overfit: the validation ELBO peaks, then falls. Training stops
    `patience` validations after the best one, and the model handed back is best.pt's, not the last one."""
    over = {"data.n_train": 30, "model.encoder.hidden": [64], "train.lr": 0.03, "train.batch_size": 10, "train.epochs": 300}
    res = fit(tiny(**over, **{"train.early_stopping": 4}), tmp_path / "r", quiet=True, tensorboard=False)
    v = [r["valid_elbo"] for r in res.history]
    best = v.index(max(v))
    assert len(v) < 300 and len(v) - 1 - best == 4  # stopped at the fourth validation without a gain
    best_pt = load_checkpoint(tmp_path / "r" / "best.pt")
    last_pt = load_checkpoint(tmp_path / "r" / "last.pt")
    assert best_pt["epoch"] == best + 1 and last_pt["epoch"] == len(v)  # last.pt holds the stopping epoch
    for k, t in res.model.state_dict().items():
        assert torch.equal(t, best_pt["model"][k]), k
    # issue 43: said and recorded, and a resume of the stopped run trains no further
    assert res.stopped_early == len(v) and last_pt["converged"] is True
    events = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    assert {"event": "early_stopping", "epoch": len(v), "best_epoch": best + 1, "patience": 4} in events
    again = fit(tiny(**over, **{"train.early_stopping": 4}), tmp_path / "r", resume=True, quiet=True, tensorboard=False)
    assert len(again.history) == len(v) and again.stopped_early == len(v)


def test_early_stopping_without_validation_is_refused(tmp_path):
    from vaelab.config import ConfigError

    with pytest.raises(ConfigError, match="train.early_stopping = 3 needs validation, but train.valid_every = 0"):
        fit(tiny(**{"train.early_stopping": 3, "train.valid_every": 0}), tmp_path / "r", quiet=True, tensorboard=False)


def test_a_run_shorter_than_log_every_still_logs_each_epochs_last_step(tmp_path):
    """Issue 43: metrics.jsonl was empty when a run had fewer steps than train.log_every."""
    fit(tiny(**{"train.log_every": 1000, "train.epochs": 2}), tmp_path / "r", quiet=True, tensorboard=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "step" in r and "epoch" not in r]
    assert steps == [6, 12], rows  # 300 points, batch 50: 6 steps an epoch
