"""`vaelab sweep`: Optuna over config keys, every trial a run directory, workers sharing one storage."""

from pathlib import Path

import optuna  # test extras: missing, the sweep tests fail instead of skipping
import pytest

from vaelab import RunConfig, config
from vaelab.cli import main
from vaelab.errors import ConfigError

SPACE = """
["train.lr"]
distribution = "log-uniform"
low = 1e-4
high = 1e-2

["model.latent.dim"]
distribution = "int"
low = 1
high = 3

["train.objective"]
distribution = "categorical"
choices = ["elbo", "iwae"]
"""
BASE = ["--set", "train.epochs=2", "--set", "data.n_train=300", "--hidden", "8", "--set", "train.diagnostics=false"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_workers_on_one_sqlite_storage_run_every_trial_once(tmp_path, capsys):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "sw"
    argv = ["sweep", "--space", str(tmp_path / "space.toml"), "--trials", "4", "--workers", "2", "--out", str(out)]
    assert main([*argv, "--k", "20", "--compare-best", "2", "--sampler-seed", "0", "--quiet", *BASE]) == 0
    study = optuna.load_study(study_name="sw", storage=f"sqlite:///{out / 'optuna.db'}")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # none lost, none run twice
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    for t in trials:  # each trial is a normal run directory trained with its own values
        cfg = config.load(Path(t.user_attrs["run_dir"]) / "config.toml")
        assert cfg.model.latent.options["dim"] == t.params["model.latent.dim"]
        assert cfg.train.lr == t.params["train.lr"] and cfg.train.objective.kind == t.params["train.objective"]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # seeds differ per worker
    report = (out / "sweep.md").read_text()
    assert report.count("| complete |") + report.count("| pruned |") == 4 and "K = 20" in report
    assert "| N valid |" in report  # the compared trials are scored on the validation split, and say so
    assert (out / "history.png").is_file() and "best trial" in capsys.readouterr().out


def test_the_median_pruner_stops_a_trial_below_the_median_through_the_epoch_callback(tmp_path):
    from vaelab.sweep import Sweep, study_of, work

    base = RunConfig().override({"train.epochs": 4, "data.n_train": 300, "model.encoder.hidden": [8]})
    space = {"train.lr": {"distribution": "log-uniform", "low": 1e-9, "high": 1e-2}}
    sweep = Sweep(base.to_dict(), space, str(tmp_path), f"sqlite:///{tmp_path / 'o.db'}", "p", seed=0)
    study = study_of(sweep)
    for lr in (1e-2, 1e-2, 1e-9):  # two good runs set the median; a learning rate of 1e-9 learns nothing
        study.enqueue_trial({"train.lr": lr})
    work((sweep, 3, 0))
    good, _, bad = study_of(sweep).get_trials()
    assert good.state == optuna.trial.TrialState.COMPLETE and len(good.intermediate_values) == 4
    assert bad.state == optuna.trial.TrialState.PRUNED and len(bad.intermediate_values) < 4
    assert (Path(bad.user_attrs["run_dir"]) / "last.pt").is_file()  # the pruned trial's run is kept as it was


@pytest.mark.parametrize(
    "space, says",
    [
        ('["train.nope"]\ndistribution = "int"\nlow = 1\nhigh = 2\n', r'\["train.nope"\]: unknown config key'),
        ('["train.alpha"]\ndistribution = "uniform"\nlow = 0\nhigh = 1\n', "did you mean 'train.objective.alpha'"),
        ('["train.lr"]\ndistribution = "uniform"\nlow = 0.1\nhigh = 1\nstep = 0.1\n', "step has no effect"),
        ('["train.lr"]\ndistribution = "uniform"\nlow = 0.1\nhigh = 1\nchoices = [1]\n', "choices has no effect"),
        ('["train.lr"]\ndistribution = "gaussian"\n', "set distribution to one of"),
        ('["train.lr"]\ndistribution = "uniform"\nlow = 2\nhigh = 1\n', "low <= high"),
        ('["train.lr"]\ndistribution = "log-uniform"\nlow = 0\nhigh = 1\n', "low > 0"),
        ('["train.objective"]\ndistribution = "categorical"\nchoices = ["elbo", "nope"]\n', "'nope' is not valid"),
        ("", "empty"),
    ],
)
def test_a_bad_search_space_is_one_line_before_any_trial(space, says, tmp_path, capsys):
    from vaelab.sweep import read_space

    (tmp_path / "s.toml").write_text(space)
    with pytest.raises(ConfigError, match=says):
        read_space(tmp_path / "s.toml", RunConfig())
    assert main(["sweep", "--space", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_a_missing_space_file_is_named_as_one(tmp_path, capsys):
    assert main(["sweep", "--space", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "search space file not found" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_failing_trial_is_one_line_with_its_reason_in_sweep_md_and_leaves_no_folder(tmp_path, capsys):
    from vaelab.sweep import Sweep, study_of, work
    from vaelab.sweep_report import trial_table

    base = RunConfig().override(
        {"train.epochs": 1, "data.n_train": 200, "model.encoder.hidden": [8], "train.estimator": "dreg"}
    )
    space = {"train.objective": {"distribution": "categorical", "choices": ["elbo", "vr_max"]}}
    sweep = Sweep(base.to_dict(), space, str(tmp_path), f"sqlite:///{tmp_path / 'o.db'}", "f", seed=0)
    study = study_of(sweep)
    study.enqueue_trial({"train.objective": "vr_max"})  # refused by the estimator: a configuration error
    study.enqueue_trial({"train.objective": "elbo"})
    work((sweep, 2, 0))
    failed, done = study_of(sweep).get_trials()
    assert failed.state == optuna.trial.TrialState.FAIL and done.state == optuna.trial.TrialState.COMPLETE
    assert "'dreg' is undefined for VR-max" in failed.user_attrs["error"]
    assert not Path(failed.user_attrs["run_dir"]).exists()  # refused before its run directory was written
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"trial 0 failed: {failed.user_attrs['error']}"]  # no traceback, no Optuna log
    assert "| fail | – |" in trial_table(study_of(sweep), "valid_elbo") and "undefined for VR-max" in trial_table(
        study_of(sweep), "valid_elbo"
    )


def test_a_sweep_whose_every_trial_failed_exits_2(tmp_path, capsys, monkeypatch):
    import vaelab.train

    def failing_fit(*args, **kwargs):
        raise ConfigError("no data today")

    monkeypatch.setattr(vaelab.train, "fit", failing_fit)
    (tmp_path / "s.toml").write_text('["train.lr"]\ndistribution = "log-uniform"\nlow = 1e-4\nhigh = 1e-2\n')
    argv = ["sweep", "--space", str(tmp_path / "s.toml"), "--trials", "2", "--out", str(tmp_path / "o"), *BASE]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: every one of the 2 trials failed; trial 0: no data today"
    assert (tmp_path / "o" / "sweep.md").read_text().count("| no data today |") == 2


def test_an_unreachable_database_storage_is_one_line_within_seconds(tmp_path, capsys):
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "s.toml").write_text(SPACE)
    t0 = time.perf_counter()
    argv = ["sweep", "--space", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--trials", "1", *BASE]
    assert main([*argv, "--storage", f"postgresql://vaelab@127.0.0.1:{port}/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the study's storage" in err and time.perf_counter() - t0 < 30
    assert not (tmp_path / "o").exists()
