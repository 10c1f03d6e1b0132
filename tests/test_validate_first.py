"""Validate before writing (issue 43): every configuration mistake is one line and exit 2 before the run
directory exists; under --nproc the launcher makes the same check before any rank starts."""

import os
import subprocess
import sys

import pytest

from vaelab.cli import main

BASE = ["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--batch-size", "100"]


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--latent", "planar", "--estimator", "reinforce"], "has a density only at its own samples"),
        (["--objective", "vr", "--set", "train.objective.alpha=1"], "alpha = 1 is the ELBO"),
        (["--objective", "vr", "--set", "train.objective.alpha=nan"], "must be a real number or -inf"),
        (["--objective", "vr_max", "--estimator", "dreg"], "'dreg' is undefined for VR-max"),
        (["--objective", "vr_max", "--estimator", "dreg", "--n-samples", "4"], "'dreg' is undefined for VR-max"),
        (["--latent", "planar", "--estimator", "rws"], "has a density only at its own samples"),
        (["--estimator", "rws", "--set", "train.estimator.phase=bogus"], 'must be "wake" or "sleep"'),
        (["--early-stopping", "3", "--valid-every", "0"], "needs validation"),
        (["--set", "data.labelled=5"], "data.labelled has no effect"),
        (["--estimator", "savae", "--set", "model.labels=conditional"], "without a label"),
        (["--latent", "planar", "--set", "model.latent.n_flows=0"], "n_flows must be a positive integer"),
        (["--objective", "vr", "--estimator", "rws", "--n-samples", "3"], "has alpha = 0.5"),
        (["--set", "train.alpha=0.5"], "did you mean 'train.objective.alpha'"),
        (["--set", "model.kind=top-down", "--estimator", "reinforce"], "top-down"),
    ],
)
def test_a_configuration_mistake_is_one_line_exit_2_and_nothing_on_disk(tmp_path, flags, match, capsys):
    out = tmp_path / "run"
    assert main([*BASE, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and match in err, err
    assert not out.exists()


def test_vr_with_one_sample_warns_that_alpha_has_no_effect(tmp_path):
    with pytest.warns(UserWarning, match="alpha = 0.5 has no effect with n_samples = 1") as caught:
        assert main([*BASE, "--objective", "vr", "--n-samples", "1", "--out", str(tmp_path / "r")]) == 0
    assert len(caught) == 1


def test_the_dry_step_leaves_the_run_bit_identical(tmp_path):
    """fit's step before anything is written is undone: the run equals one trained without it."""
    import torch

    import vaelab.train.loop as loop_mod
    from vaelab import RunConfig, fit

    cfg = RunConfig().override({"data.kind": "digits", "train.epochs": 1, "train.n_samples": 2, "train.objective": "iwae"})
    a = fit(cfg, tmp_path / "a", quiet=True, tensorboard=False)
    dry, loop_mod.Loop.dry_step = loop_mod.Loop.dry_step, lambda self: None
    try:
        b = fit(cfg, tmp_path / "b", quiet=True, tensorboard=False)
    finally:
        loop_mod.Loop.dry_step = dry
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert a.history[0]["train_elbo"] == b.history[0]["train_elbo"]


def test_a_fresh_start_into_a_folder_an_earlier_start_left_clears_its_tensorboard_events(tmp_path):
    out = tmp_path / "run"
    (out / "tb").mkdir(parents=True)
    stale = out / "tb" / "events.out.tfevents.1.stale"
    stale.write_bytes(b"x")
    assert main([*BASE, "--out", str(out)]) == 0
    assert not stale.exists() and len(list((out / "tb").glob("events.out.tfevents.*"))) == 1


@pytest.mark.subprocess
@pytest.mark.slow
def test_under_nproc_a_configuration_error_is_refused_before_any_rank_starts(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vaelab", *BASE, "--estimator", "nvil", "--latent", "bernoulli", "--prior", "bernoulli",
           "--nproc", "2", "--max-restarts", "2", "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "keeps running statistics" in r.stderr and "E" not in r.stderr[:1]
    assert r.stdout == "" and not out.exists()  # no rank started: no retry, no torch log line, no folder


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--dataset", "two-gaussians", "--set", "model.encoder.kind=conv"], "needs images (C, H, W) on one side"),
        (["--dataset", "two-gaussians", "--set", "data.valid_fraction=-0.1"], "data.valid_fraction must be a number >= 0"),
        (["--set", "data.test_fraction=inf"], "data.test_fraction must be a fraction in [0, 1)"),
        (["--set", "train.lr=nan"], "'train.lr' must be a finite number"),
        (["--n-samples", str(10**12)], "a training step does not fit in memory"),
        (["--set", "model.latent.dim=100000000000"], "the model does not fit in memory"),
        (["--set", "train.valid_iwae_k=1000000000000"], "lower train.valid_iwae_k"),
    ],
)
def test_values_found_by_the_config_fuzzer_are_one_line_and_nothing_on_disk(tmp_path, flags, match, capsys):
    out = tmp_path / "run"
    assert main([*BASE, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not out.exists()


def test_text_data_refuse_what_reads_real_valued_x_and_an_empty_split_is_not_evaluated(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\na dog ran in the park\n" * 20)
    text = ["train", "--dataset", "text", "--set", f"data.path={corpus}", "--set", "model.encoder.kind=lstm",
            "--likelihood", "categorical", "--epochs", "1", "--quiet"]  # fmt: skip
    assert (
        main([*text, "--latent", "bernoulli", "--prior", "bernoulli", "--estimator", "nvil", "--out", str(tmp_path / "a")])
        == 2
    )
    assert "'nvil' learns its baseline b(x) with an MLP on real-valued x" in capsys.readouterr().err
    assert main([*text, "--set", "data.standardize=true", "--out", str(tmp_path / "b")]) == 2
    assert "applies to real-valued data, not to token ids" in capsys.readouterr().err
    assert main([*text, "--set", "model.encoder.embed_dim=-1", "--out", str(tmp_path / "d")]) == 2
    assert "embed_dim must be a positive integer" in capsys.readouterr().err
    assert main([*BASE, "--set", "data.test_fraction=0", "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "c"), "--k", "3"]) == 2
    assert "hold no points (an empty split)" in capsys.readouterr().err


def test_max_restarts_without_nproc_says_what_it_does(tmp_path, monkeypatch, capsys):
    """One process under the elastic agent, restarted when it dies: said in one line (not silently accepted)."""
    import vaelab.launch

    launched = []
    monkeypatch.setattr(vaelab.launch, "launch", lambda spec, argv: launched.append(spec) or 0)
    assert main([*BASE, "--max-restarts", "2", "--out", str(tmp_path / "r")]) == 0
    assert "one process under torch's elastic agent, restarted at most 2 time(s) if it dies" in capsys.readouterr().out
    assert launched[0].nproc == 1 and launched[0].max_restarts == 2 and not (tmp_path / "r").exists()
