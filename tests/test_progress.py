"""Long operations show a tqdm bar on a terminal, nothing off one, and nothing under --quiet
(vaelab.progress). A fake terminal (a StringIO that says it is a TTY) stands in for stderr."""

import io
import sys

import numpy as np
import pytest
import torch

from vaelab import RunConfig, importance_sampled_log_likelihood, progress
from vaelab.evaluation import gradient_snr
from vaelab.experiments._study import run_pool
from vaelab.inference.local import refine
from vaelab.models import build_model
from vaelab.vi import BayesianGaussianMixture


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch) -> _Terminal:
    """Set inside the test body: pytest's capture swaps sys.stderr back between fixture setup and the call."""
    t = _Terminal()
    monkeypatch.setattr(sys, "stderr", t)
    return t


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = RunConfig().override({"model.latent.dim": 2, "model.encoder.hidden": [8]})
    return build_model(cfg.model, (3,))


def test_importance_sampling_draws_a_bar_on_a_terminal_only(model, monkeypatch):
    terminal = _terminal(monkeypatch)
    x = torch.randn(20, 3)
    importance_sampled_log_likelihood(model, x, k=10, batch_size=5)
    assert "IS log p(x), K=10" in terminal.getvalue() and "/20" in terminal.getvalue()
    terminal.truncate(0)
    with progress.quiet():
        importance_sampled_log_likelihood(model, x, k=10, batch_size=5)
    assert terminal.getvalue().strip("\0") == ""
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: a short evaluation writes nothing
    importance_sampled_log_likelihood(model, x, k=10, batch_size=5)
    assert sys.stderr.getvalue() == ""


def test_snr_and_local_refinement_show_progress(model, monkeypatch):
    terminal = _terminal(monkeypatch)
    gradient_snr(model, torch.randn(4, 3), [1, 2], "iwae", "reparam", draws=3)
    refine(model, torch.randn(4, 3), model.encoder(torch.randn(4, 3)).detach(), steps=3, lr=0.01)
    out = terminal.getvalue()
    assert "gradient SNR, reparam" in out and "/6" in out and "refining q for 4 points" in out


def test_classical_vi_is_verbose_in_the_scikit_learn_manner(monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    x = np.random.default_rng(0).normal(size=(100, 2))
    BayesianGaussianMixture(2, max_iter=4, tol=0).fit(x)
    assert capsys.readouterr().out == "" and terminal.getvalue() == ""  # verbose=0: silent
    BayesianGaussianMixture(2, max_iter=4, tol=0, verbose=1).fit(x)
    said = capsys.readouterr().out
    assert "restart 1: stopped without converging after 4 sweeps" in said and "sweep 1:" not in said
    assert "cavi restart 1/1" in terminal.getvalue()
    BayesianGaussianMixture(2, max_iter=4, tol=0, verbose=2).fit(x)
    assert capsys.readouterr().out.count("  sweep ") == 4


def test_a_study_logs_one_line_per_run_and_draws_one_overall_bar(monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    out = run_pool(abs, [-1, -2, -3], [1.0, 2.0, 3.0], workers=1, labels=["a", "b", "c"])
    assert out == [1, 2, 3]
    lines = [ln for ln in (capsys.readouterr().out + terminal.getvalue()).splitlines() if "done after" in ln]
    assert len(lines) == 3 and lines[-1].startswith("  [3/3] c done") and "3 runs" in terminal.getvalue()


class _Clock:
    """A fake time.perf_counter: the tests below never depend on how fast the machine is."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_off_a_terminal_long_work_writes_a_line_per_5_percent_and_30_s_whichever_is_rarer(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    log = io.StringIO()  # a batch job's log: not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    shown = progress.bar(total=1000, desc="IS log p(x), K=5000", unit="pt")
    assert isinstance(shown, progress.LogLines)
    for _ in range(100):  # 1 % and 10 s a step
        clock.t += 10.0
        shown.update(10)
    shown.close()
    lines = log.getvalue().splitlines()
    # 30 s pass every 3 steps (3 %): the 5 % rule is the rarer one, a line every 5 steps, 20 in all
    assert len(lines) == 21 and lines[0] == "IS log p(x), K=5000: 5% (50/1000 pt), 50 s, about 15.8 min left"
    assert lines[-1] == "IS log p(x), K=5000: done, 1000 pt in 16.7 min"
    log.truncate(0), log.seek(0)
    shown = progress.bar(total=10, desc="fast", unit="pt")
    for _ in range(10):  # 50 % and 10 s a step: the 30 s rule is the rarer one
        clock.t += 10.0
        shown.update(5)
    assert len(log.getvalue().splitlines()) == 3
    log.truncate(0), log.seek(0)
    for _ in progress.bar(range(50), desc="short"):  # done within 30 s: silent, no closing line either
        clock.t += 0.1
    with progress.quiet():
        assert not isinstance(progress.bar(total=5), progress.LogLines)
    assert log.getvalue() == ""


def test_training_off_a_terminal_logs_an_epoch_line_every_30_s_and_the_last(monkeypatch):
    from types import SimpleNamespace

    from vaelab.train.callbacks import EpochLines

    clock = _Clock()
    monkeypatch.setattr("vaelab.train.callbacks.time.perf_counter", clock)
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    lines, loop = EpochLines(), SimpleNamespace(epochs=10, t0=0.0)
    for e in range(1, 11):  # 12 s an epoch: a line at epochs 3, 6, 9 (30 s or more apart) and at the last
        clock.t = 12.0 * e
        lines(loop, {"epoch": e, "train_elbo": -100.0 + e, "valid_elbo": -101.0 + e, "total_time_s": clock.t})
    said = log.getvalue().splitlines()
    assert [s.split(":")[0] for s in said] == ["epoch 3/10", "epoch 6/10", "epoch 9/10", "epoch 10/10"]
    assert said[0] == "epoch 3/10: train ELBO -97.000, validation ELBO -98.000 nats; 0.6 min, about 1.4 min left"


def test_quiet_reaches_the_worker_processes_a_study_starts(monkeypatch, capsys):
    """--quiet must silence a study's spawned workers too (their progress lines would fill its log)."""
    import os

    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    with progress.quiet():
        assert os.environ[progress.QUIET_ENV] == "1"  # what a spawned worker inherits
        out = run_pool(_worker_is_quiet, [0, 1], [1.0, 1.0], workers=2, labels=["a", "b"])
    assert out == [True, True] and progress.QUIET_ENV not in os.environ


def _worker_is_quiet(_) -> bool:
    return progress.is_quiet()


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_study_killed_by_sigterm_takes_its_worker_processes_with_it(tmp_path):
    """`kill PID` of a study: the pool's workers end too (Python's default would leave them orphaned, running;
    Pool.terminate's SIGTERM alone left a worker inside fit waiting for its next task, the study hanging)."""
    import signal
    import subprocess
    import time

    script = tmp_path / "study.py"
    script.write_text(
        "import os, sys, time\n"
        "from vaelab.experiments._study import run_pool\n"
        "import vaelab\n"
        "def job(a):\n"
        "    open(os.path.join(sys.argv[1], f'worker-{os.getpid()}'), 'w').close()\n"
        "    cfg = vaelab.RunConfig().override({'train.epochs': 10000, 'data.n_train': 500, 'model.encoder.hidden': [8]})\n"
        "    vaelab.fit(cfg, os.path.join(sys.argv[1], f'run-{a}'), quiet=True)\n"  # a study's job
        "if __name__ == '__main__':\n"
        "    run_pool(job, [0, 1], [1.0, 1.0], 2, ['a', 'b'])\n"
    )
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("worker-*"))) < 2:  # both workers have started their job
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.1)
    pids = [int(f.name.split("-")[1]) for f in tmp_path.glob("worker-*")]
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} outlived the study"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) counts as gone
        return f.read().split(")")[-1].split()[0] != "Z"
