import math

import pytest
import torch
import torch.nn.functional as F

from vaelab.distributions import BernoulliLikelihood, GaussianLikelihood
from vaelab.errors import ConfigError, DataError


def test_gaussian_fixed_variance_log_prob_closed_form():
    lik = GaussianLikelihood(2, variance="fixed", fixed_variance=1.0)
    mean, x = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.5, 1.0]])
    expected = -math.log(2 * math.pi) - 0.5 * (1.0 + 4.0)
    torch.testing.assert_close(lik.distribution(mean).log_prob(x), torch.tensor([expected]))


def test_gaussian_learned_variances():
    per_dim = GaussianLikelihood(3, variance="per_dim")
    assert per_dim.n_outputs == 3 and "logvar" in dict(per_dim.named_parameters())
    per_pt = GaussianLikelihood(3, variance="per_datapoint")
    assert per_pt.n_outputs == 6
    params = torch.zeros(5, 4, 2, 3)  # (K, B, 2, D): mean and log-variance
    params[:, :, 1] = math.log(4.0)
    d = per_pt.distribution(params)
    assert d.batch_shape == (5, 4) and d.event_shape == (3,)
    torch.testing.assert_close(d.base_dist.scale, torch.full((5, 4, 3), 2.0))
    with pytest.raises(ConfigError):
        GaussianLikelihood(3, variance="sometimes")


def test_gaussian_sigmoid_mean_and_no_variance_floor():
    """Li & Turner's Frey decoder: mean sigmoid(output), log-variance unfloored (min_logvar = -inf)."""
    lik = GaussianLikelihood(3, variance="per_datapoint", mean="sigmoid", min_logvar=-math.inf)
    params = torch.tensor([[[0.0, 2.0, -1.0], [-30.0, 0.0, 1.0]]])  # (B, 2, D); log-variance -30 < the default floor -9
    x = torch.tensor([[0.5, 0.7, 0.2]])
    mu, sd = torch.sigmoid(params[:, 0]), torch.exp(0.5 * params[:, 1])
    want = torch.distributions.Normal(mu, sd).log_prob(x).sum(-1)
    torch.testing.assert_close(lik.distribution(params).log_prob(x), want)
    torch.testing.assert_close(lik.mean(params), mu)
    floored = GaussianLikelihood(3, variance="per_datapoint", mean="sigmoid").distribution(params)
    assert floored.base_dist.scale[0, 0] == pytest.approx(math.exp(-4.5))  # the default floor acts; -inf lifts it
    data = torch.rand(100, 3) * 0.8 + 0.1
    torch.testing.assert_close(torch.sigmoid(lik.marginal_params(data)[0]), data.mean(0))  # bias init inverts the sigmoid
    with pytest.raises(ConfigError, match="model.likelihood.mean"):
        GaussianLikelihood(3, mean="tanh")


def test_bernoulli_log_prob_is_negative_binary_cross_entropy():
    lik = BernoulliLikelihood(4)
    logits, x = torch.randn(3, 4), torch.bernoulli(torch.full((3, 4), 0.5))
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    torch.testing.assert_close(lik.distribution(logits).log_prob(x), expected)


def test_bernoulli_fast_path_on_image_shaped_samples():
    """(K, B, C, H, W) logits against (B, C, H, W) images: the flattened fast path equals the distribution's."""
    lik = BernoulliLikelihood((1, 4, 3))
    logits, x = torch.randn(5, 2, 1, 4, 3), torch.bernoulli(torch.full((2, 1, 4, 3), 0.4))
    torch.testing.assert_close(lik.log_prob(logits, x), lik.distribution(logits).log_prob(x))
    assert lik.log_prob(logits, x).shape == (5, 2)


def test_bernoulli_rejects_non_binary_data():
    with pytest.raises(DataError, match="binary"):
        BernoulliLikelihood(2).check_data(torch.tensor([[0.0, 0.3]]))


def test_image_event_shapes():
    lik = BernoulliLikelihood((1, 4, 4))
    params = torch.randn(5, 3, 16)  # (K, B, flat) reshaped by the model; here directly shaped
    d = lik.distribution(params.view(5, 3, 1, 4, 4))
    assert d.batch_shape == (5, 3) and d.event_shape == (1, 4, 4)
    g = GaussianLikelihood((1, 4, 4), variance="per_datapoint")
    assert g.param_shape == (2, 1, 4, 4)
    p = torch.zeros(3, 2, 1, 4, 4)
    p[:, 1] = math.log(9.0)
    assert torch.allclose(g.distribution(p).base_dist.scale, torch.full((3, 1, 4, 4), 3.0))


@pytest.mark.parametrize("shape", [(4,), (1, 3, 3)])
def test_bernoulli_fast_log_prob_equals_torch_distributions(shape):
    lik = BernoulliLikelihood(shape)
    params = torch.randn(5, 3, *shape)  # (S, B, *event)
    x = torch.bernoulli(torch.full((3, *shape), 0.5))
    torch.testing.assert_close(lik.log_prob(params, x), lik.distribution(params).log_prob(x))


def _reference_bernoulli(logits, x):
    return torch.distributions.Independent(torch.distributions.Bernoulli(logits=logits, validate_args=False), 1).log_prob(x)


@pytest.fixture(params=["small", "fused"])
def likelihood_path(request, monkeypatch):
    """Both forward paths of bernoulli_log_prob: torch's binary cross-entropy for small logits, the
    buffered relu / log-sigmoid-product form above SMALL_LIKELIHOOD numbers (forced here with 0)."""
    from vaelab.distributions import likelihoods

    if request.param == "fused":
        monkeypatch.setattr(likelihoods, "SMALL_LIKELIHOOD", 0)
    return request.param


@pytest.mark.parametrize("x_kind", ["binary", "intensities"])
def test_fused_bernoulli_log_prob_matches_torch_distributions_value_and_gradients(x_kind, likelihood_path):
    """bernoulli_log_prob against torch.distributions: value, d/dlogits, d/dx and second derivatives,
    with (B, D) data broadcasting against (S, B, D) logits, large logits included."""
    from vaelab.distributions.likelihoods import bernoulli_log_prob

    g = torch.Generator().manual_seed(0)
    logits = (8 * torch.randn(4, 3, 6, generator=g, dtype=torch.float64)).requires_grad_()  # (S, B, D)
    logits.data[0, 0, :2] = torch.tensor([40.0, -40.0], dtype=torch.float64)  # softplus's linear branch
    x = torch.rand(3, 6, generator=g, dtype=torch.float64)  # (B, D)
    x = (torch.bernoulli(x, generator=g) if x_kind == "binary" else x).requires_grad_()
    ours, ref = bernoulli_log_prob(logits, x), _reference_bernoulli(logits, x)
    torch.testing.assert_close(ours, ref)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)  # a non-uniform upstream gradient
    for a, b in zip(torch.autograd.grad((w * ours).sum(), (logits, x)), torch.autograd.grad((w * ref).sum(), (logits, x))):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(bernoulli_log_prob, (logits, x))
    assert torch.autograd.gradgradcheck(bernoulli_log_prob, (logits, x))


def test_fused_bernoulli_log_prob_with_data_broadcasting_over_logits(likelihood_path):
    """The other broadcast: (B, D) logits scored against (S, B, D) data."""
    from vaelab.distributions.likelihoods import bernoulli_log_prob

    g = torch.Generator().manual_seed(1)
    logits = (4 * torch.randn(3, 6, generator=g, dtype=torch.float64)).requires_grad_()  # (B, D)
    x = torch.rand(4, 3, 6, generator=g, dtype=torch.float64).requires_grad_()  # (S, B, D)
    ours, ref = bernoulli_log_prob(logits, x), _reference_bernoulli(logits, x)
    torch.testing.assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours.sum(), (logits, x)), torch.autograd.grad(ref.sum(), (logits, x))):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(bernoulli_log_prob, (logits, x))


def test_bernoulli_likelihood_gradient_in_float32_matches_bce():
    lik = BernoulliLikelihood((1, 4, 3))
    logits = torch.randn(5, 2, 1, 4, 3).mul(5).requires_grad_()  # (S, B, C, H, W)
    x = torch.bernoulli(torch.full((2, 1, 4, 3), 0.4))
    (grad,) = torch.autograd.grad(lik.log_prob(logits, x).sum(), logits)
    (ref,) = torch.autograd.grad(_reference_bernoulli(logits.flatten(2), x.flatten(1)).sum(), logits)
    torch.testing.assert_close(grad, ref)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 6, 7, 8, 9, 15, 16, 17, 784])
def test_grouped_sum_of_log_sigmoid_equals_the_plain_sum(d):
    """The likelihood's forward takes one log per group of sigmoid(|l|) factors: every width D, odd
    leftovers included, must give sum_d log sigmoid(|l_d|) (float64, so only the grouping can differ)."""
    from vaelab.distributions.likelihoods import _sum_log_sigmoid_abs

    logits = 6 * torch.randn(4, 3, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    logits[0, 0, 0] = 300.0  # sigmoid(|l|) rounds to 1
    torch.testing.assert_close(_sum_log_sigmoid_abs(logits), F.logsigmoid(logits.abs()).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_bernoulli_log_prob_float32_error_is_that_of_softplus(scale):
    """In float32 on MNIST-sized rows the grouped-log forward is as accurate as the softplus form
    (both against a float64 reference); the error of either is the rounding of a 784-term sum."""
    from vaelab.distributions.likelihoods import bernoulli_log_prob

    g = torch.Generator().manual_seed(2)
    logits = scale * torch.randn(20, 50, 784, generator=g)  # (S, B, D)
    x = torch.bernoulli(torch.full((50, 784), 0.3), generator=g)  # (B, D)
    exact = (logits.double() * x).sum(-1) - F.softplus(logits.double()).sum(-1)
    softplus_form = (logits * x).sum(-1) - F.softplus(logits).sum(-1)
    err, err_softplus = (bernoulli_log_prob(logits, x).double() - exact).abs(), (softplus_form.double() - exact).abs()
    assert err.max() <= 2 * err_softplus.max()
    assert err.mean() <= 2 * err_softplus.mean()
