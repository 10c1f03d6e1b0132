"""A linear-Gaussian model where log p(x) and the posterior are known exactly."""

import math

import torch

from vaelab.evaluation import importance_sampled_log_likelihood


def test_exact_posterior_makes_elbo_and_is_estimate_exact(linear_gaussian):
    model = linear_gaussian.vae()
    x = linear_gaussian.sample(64)
    exact = linear_gaussian.log_px(x)
    res = importance_sampled_log_likelihood(model, x, k=10, seed=0)
    # with q = p(z|x) every log-weight equals log p(x): no Monte Carlo error at all
    torch.testing.assert_close(res.per_point.double(), exact, atol=2e-4, rtol=0)
    torch.testing.assert_close(res.per_point_elbo.double(), exact, atol=2e-4, rtol=0)


def test_elbo_below_is_estimate_below_exact(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=0.7, encoder_logvar_shift=0.6)
    x = linear_gaussian.sample(300)
    exact = linear_gaussian.log_px(x).mean().item()
    res = importance_sampled_log_likelihood(model, x, k=500, seed=1)
    diff_is = res.per_point.double() - linear_gaussian.log_px(x)
    se = diff_is.std().item() / math.sqrt(len(diff_is))
    assert res.elbo_mean < res.mean - 10 * se  # the bound is clearly looser than the IS estimate
    assert res.mean <= exact + 3 * se  # IS is a stochastic lower bound: E[log p_hat] <= log p(x)


def test_is_estimate_converges_to_exact_as_k_grows(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=0.7, encoder_logvar_shift=0.6)
    x = linear_gaussian.sample(300)
    exact = linear_gaussian.log_px(x)
    gaps = []
    for k in (1, 10, 100, 2000):
        res = importance_sampled_log_likelihood(model, x, k=k, seed=2)
        gaps.append((exact - res.per_point.double()).mean().item())
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3]
    assert abs(gaps[3]) < 0.01  # nats


def test_is_estimator_is_reproducible_and_chunking_does_not_bias(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=0.5)
    x = linear_gaussian.sample(50)
    a = importance_sampled_log_likelihood(model, x, k=300, seed=3, batch_size=16, max_rows=100)
    b = importance_sampled_log_likelihood(model, x, k=300, seed=3, batch_size=16, max_rows=100)
    assert torch.equal(a.per_point, b.per_point)
    c = importance_sampled_log_likelihood(model, x, k=300, seed=3, batch_size=50, max_rows=10_000)
    diff = (a.per_point - c.per_point).double()
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(diff)) + 1e-6
    assert a.k == 300 and a.n == 50 and math.isclose(a.stderr, a.std / math.sqrt(50))


def test_is_estimator_rejects_bad_input(linear_gaussian):
    import pytest

    from vaelab.errors import DataError

    model = linear_gaussian.vae()
    with pytest.raises(DataError, match=r"expected shape \(N, 5\), got \(4, 3\)"):
        importance_sampled_log_likelihood(model, torch.zeros(4, 3), k=2)
    x = linear_gaussian.sample(4)
    x[2, 1] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        importance_sampled_log_likelihood(model, x, k=2)
