"""Annealed importance sampling and BDMC (vaelab.evaluation.ais) against the linear-Gaussian model's exact
log p(x), and HMC's invariance on a correlated Gaussian."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import LinearGaussian

from vaelab.errors import ConfigError
from vaelab.evaluation.ais import ais_log_likelihood, bdmc, hmc, schedule


def _paired(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a - b).double()
    return float(d.mean()), float(d.std() / math.sqrt(d.numel()))


def test_started_at_the_exact_posterior_every_chain_weighs_exactly_p_x(linear_gaussian):
    """f_0 = q(z|x) = p(z|x): every increment log p(x, z) - log q(z|x) is log p(x), whatever the moves."""
    x = linear_gaussian.sample(20)
    r = ais_log_likelihood(linear_gaussian.vae(), x, steps=5, chains=4, start="encoder")
    torch.testing.assert_close(r.per_point, linear_gaussian.log_px(x), atol=2e-5, rtol=0)
    assert r.ess == pytest.approx(4.0)


@pytest.mark.slow
def test_ais_from_the_prior_is_within_0_02_nats_of_the_exact_log_px(linear_gaussian):
    torch.set_num_threads(1)
    x = linear_gaussian.sample(100)
    r = ais_log_likelihood(linear_gaussian.vae(), x, steps=1000, chains=32)  # T = 1,000, C = 32
    mean, se = _paired(r.per_point, linear_gaussian.log_px(x))
    assert abs(mean) + 3 * se < 0.02, (mean, se)
    assert 0.5 < r.accept < 0.8  # the step size was adapted toward 0.65


def test_ais_rises_toward_the_exact_value_as_the_number_of_steps_grows():
    lg = LinearGaussian(s2=0.05)  # a posterior much narrower than the prior: few steps fall well short
    vae, x = lg.vae(), lg.sample(400)
    torch.set_num_threads(1)  # (tiny tensors: threads only add overhead; restored by conftest)
    runs = [ais_log_likelihood(vae, x, steps=t, chains=16).per_point for t in (3, 10, 100)]
    for lo, hi in zip(runs, runs[1:]):
        gain, se = _paired(hi, lo)  # the same points: the paired difference
        assert gain > 3 * se, (gain, se)
    below, se = _paired(runs[-1], lg.log_px(x))
    assert below < 3 * se  # a lower bound in expectation: never significantly above


def test_bdmc_brackets_the_exact_log_px_and_its_gap_shrinks_with_more_steps(linear_gaussian):
    vae, out = linear_gaussian.vae(), {}
    for t in (10, 100):
        b = bdmc(vae, n=100, steps=t, chains=8, seed=3)
        exact = linear_gaussian.log_px(b.x)
        lo, lo_se = _paired(b.forward.per_point, exact)
        hi, hi_se = _paired(b.reverse.per_point, exact)
        assert lo < 3 * lo_se and hi > -3 * hi_se, (t, lo, hi)
        out[t] = b.gap
    assert out[100] < out[10] / 3, out


def _gaussian_moments(correct: bool, step_size: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """20,000 chains started from N(0, S) exactly, after 10 HMC transitions targeting it: the largest
    deviation of the mean and of the covariance in units of their standard errors."""
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    target = torch.distributions.MultivariateNormal(torch.zeros(2), cov)
    chol = torch.linalg.cholesky(cov)
    h = (torch.randn(1, 20000, 2, generator=g) @ chol.T).contiguous()  # (1, N, 2)
    torch.manual_seed(1)
    eps = torch.full(h.shape[:2], step_size)
    for _ in range(10):
        h, _ = hmc(h, lambda z: (target.log_prob(z), ()), eps, 5, correct=correct)
    z = h[0]
    n = z.shape[0]
    mean_dev = z.mean(0).abs() / (cov.diagonal().sqrt() / math.sqrt(n))  # (2,) in s.e.
    emp = torch.cov(z.T)
    se = ((cov**2 + torch.outer(cov.diagonal(), cov.diagonal())) / n).sqrt()  # Var(S_ij) for a Gaussian
    return mean_dev.max(), ((emp - cov).abs() / se).max(), h


def test_hmc_leaves_a_correlated_gaussian_invariant_and_the_check_catches_a_broken_transition():
    mean_dev, cov_dev, _ = _gaussian_moments(correct=True, step_size=0.5)
    assert mean_dev < 4 and cov_dev < 4, (mean_dev, cov_dev)
    # power: without the accept / reject step the leapfrog's energy error changes the spread
    _, cov_broken, _ = _gaussian_moments(correct=False, step_size=0.5)
    assert cov_broken > 8, cov_broken


def test_schedule_runs_from_0_to_1_increasing_and_bad_settings_are_refused():
    b = schedule(50)
    assert b[0] == 0 and b[-1] == 1 and bool((b.diff() > 0).all())
    with pytest.raises(ConfigError, match="at least one annealing step"):
        schedule(0)


def test_models_ais_cannot_anneal_are_refused_with_one_line():
    from vaelab.config import RunConfig
    from vaelab.models import build_model

    discrete = {"model.latent": {"kind": "bernoulli", "dim": 4}, "model.prior": "bernoulli", "model.likelihood": "bernoulli"}
    sbn = build_model(RunConfig().override(discrete).model, (6,))
    with pytest.raises(ConfigError, match="AIS needs continuous latents"):
        ais_log_likelihood(sbn, torch.zeros(3, 6), steps=2)
    planar = build_model(RunConfig().override({"model.latent": {"kind": "planar", "dim": 2}}).model, (3,))
    with pytest.raises(ConfigError, match="start from the prior"):
        ais_log_likelihood(planar, torch.zeros(3, 3), steps=2, start="encoder")
    assert math.isfinite(ais_log_likelihood(planar, torch.randn(3, 3), steps=3, chains=2).mean)  # a flow, from the prior


def test_vaelab_evaluate_reports_ais_beside_is_and_bdmc_bounds(tmp_path, capsys):
    from conftest import tiny_config

    from vaelab.cli import main
    from vaelab.train import fit

    run = tmp_path / "r"
    fit(tiny_config(**{"train.epochs": 1, "model.latent.dim": 2}), run, quiet=True, tensorboard=False)
    argv = ["evaluate", str(run), "--k", "50", "--limit", "40", "--ais", "--ais-steps", "20", "--ais-chains", "4",
            "--bdmc", "--bdmc-points", "20", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    ev = json.loads((run / "evaluation_test.json").read_text())
    assert ev["ais_steps"] == 20 and ev["ais_chains"] == 4 and ev["n"] == 40
    assert ev["is_minus_ais"] == pytest.approx(ev["log_px"] - ev["ais_log_px"], abs=1e-9)
    assert ev["bdmc_n"] == 20 and ev["bdmc_gap"] == pytest.approx(ev["bdmc_upper"] - ev["bdmc_lower"])
    assert "per_point_log_px" not in ev
    out = capsys.readouterr().out
    assert "log p(x) by AIS, T=20, C=4 from the prior" in out and "BDMC on 20 simulated points" in out


def test_on_a_two_layer_model_ais_from_the_prior_and_from_the_encoder_agree_with_long_run_is():
    from vaelab.config import RunConfig
    from vaelab.evaluation import importance_sampled_log_likelihood
    from vaelab.models import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    over = {"model.latent.dim": 3, "model.upper_z_dims": [2], "model.upper_hidden": [8], "model.encoder.hidden": [16]}
    model, x = build_model(RunConfig().override(over).model, (4,)), torch.randn(30, 4)
    reference = importance_sampled_log_likelihood(model, x, k=20000).per_point.double()  # h = (z_1, z_2): 5 dims
    for start in ("prior", "encoder"):
        mean, se = _paired(ais_log_likelihood(model, x, steps=200, chains=16, start=start).per_point, reference)
        assert abs(mean) < 3 * se + 0.02, (start, mean, se)


def test_a_study_marks_ais_rows_that_did_not_converge():
    from vaelab.experiments._study import ais_converged

    good = {"is_minus_ais": -0.3, "is_minus_ais_se": 0.1, "ais_accept": 0.65, "ais_ess": 6.0}
    assert ais_converged(good)
    assert not ais_converged({**good, "is_minus_ais": 3.4, "is_minus_ais_se": 0.4})  # IS significantly above AIS
    assert not ais_converged({**good, "ais_accept": 0.09})
    assert not ais_converged({**good, "ais_ess": 1.0})
