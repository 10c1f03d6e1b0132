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
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: tqdm draws nothing
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
