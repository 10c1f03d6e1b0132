"""Numerical edge cases: extreme posteriors, K = 5000 in float32, pixels exactly 0 and 1,
all-zero images, one-point data sets, a batch larger than the data. Every log-likelihood finite,
every error one line."""

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import LinearGaussian
from conftest import tiny_config as tiny

from vaelab.config import RunConfig
from vaelab.distributions import BernoulliLikelihood
from vaelab.errors import DataError
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.evaluation.elbo import evaluate_elbo
from vaelab.train import fit


@pytest.mark.parametrize(
    "mean_shift,logvar_shift", [(1e4, 0.0), (1e6, 0.0), (0.0, 40.0), (0.0, -40.0), (1e4, 60.0), (0.0, 80.0), (0.0, -80.0)]
)
def test_extreme_posteriors_give_finite_bounds_below_log_px(mean_shift, logvar_shift):
    """|z| up to 1e6 and posterior log-variances of +-80 (std e^40): log-weights in the -1e34 range
    must stay finite through the log-sum-exp (a naive log(mean(exp)) gives -inf)."""
    lg = LinearGaussian()
    x = lg.sample(20)
    model = lg.vae(mean_shift, logvar_shift)
    r = importance_sampled_log_likelihood(model, x, k=64, seed=0)
    elbo = evaluate_elbo(model, x, seed=0)
    exact = float(lg.log_px(x).mean())
    assert math.isfinite(r.mean) and math.isfinite(elbo) and torch.isfinite(r.per_point).all()
    assert elbo <= r.mean + 1e-3 * abs(r.mean) and r.mean < exact


def test_k_5000_in_float32_matches_the_exact_log_likelihood():
    lg = LinearGaussian()
    x = lg.sample(30)
    exact = lg.log_px(x)  # (30,) float64
    r = importance_sampled_log_likelihood(lg.vae(), x, k=5000, seed=0)  # exact posterior: every weight is p(x)
    assert r.per_point.dtype == torch.float32
    assert torch.allclose(r.per_point.double(), exact, atol=2e-4)
    r = importance_sampled_log_likelihood(lg.vae(encoder_shift=0.3), x, k=5000, seed=0)
    assert abs(r.mean - float(exact.mean())) < 4 * r.stderr / math.sqrt(30) + 1e-3


def test_bernoulli_pixels_exactly_0_and_1_under_saturated_logits():
    lik = BernoulliLikelihood((4,))
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]])  # (B, D)
    logits = torch.tensor([[[-1e4, 1e4, 1e4, -1e4]]])  # (K, B, D): two right, two wrong by 1e4
    lp = lik.log_prob(logits, x)
    assert torch.isfinite(lp).all() and torch.allclose(lp, torch.tensor([[-2e4]]))
    assert lik.log_prob(torch.tensor([[[-1e4, 1e4, -1e4, 1e4]]]), x).item() == 0.0


def _array_run(tmp_path, x, **over):
    path = tmp_path / "x.npy"
    np.save(path, x)
    cfg = RunConfig().override(
        {
            "data.kind": "array",
            "data.path": str(path),
            "model.encoder.hidden": [8],
            "model.latent.dim": 2,
            "train.epochs": 2,
            "train.batch_size": 16,
            "train.num_threads": 1,
            "train.diagnostics": False,
            **over,
        }
    )
    return fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)


def test_all_zero_images_train_and_evaluate_finitely(tmp_path):
    res = _array_run(
        tmp_path, np.zeros((40, 1, 4, 4), dtype=np.float32), **{"model.likelihood": "bernoulli", "train.lr": 1e-2}
    )
    r = importance_sampled_log_likelihood(res.model, res.data.test, k=200, seed=0)
    assert all(math.isfinite(row["valid_elbo"]) for row in res.history)
    assert math.isfinite(r.mean) and r.mean < 0


def test_a_one_point_data_set(tmp_path):
    with pytest.raises(DataError, match="2 points are too few") as e:
        _array_run(tmp_path, np.ones((2, 3)), **{"data.valid_fraction": 0.5, "data.test_fraction": 0.5})
    assert "\n" not in str(e.value)
    with pytest.warns(UserWarning, match="validation set is empty"):
        res = _array_run(tmp_path, np.ones((1, 3)))
    assert [r["step"] for r in res.history] == [1, 2] and math.isfinite(res.history[-1]["train_elbo"])


def test_a_batch_larger_than_the_data(tmp_path):
    res = fit(tiny(**{"train.batch_size": 10_000}), tmp_path / "r", quiet=True, tensorboard=False)
    assert [r["step"] for r in res.history] == [1, 2]
    assert all(math.isfinite(r["valid_elbo"]) for r in res.history)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importance_sampled_log_likelihood(res.model, res.data.test, k=10, batch_size=10_000, seed=0)
