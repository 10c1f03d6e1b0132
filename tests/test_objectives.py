import math

import pytest
import torch

from vaelab.objectives import elbo, iwae


def test_iwae_with_one_sample_equals_elbo():
    log_w = torch.randn(1, 7)
    torch.testing.assert_close(iwae(log_w), elbo(log_w))


def test_iwae_is_log_mean_exp_and_elbo_is_mean():
    log_w = torch.tensor([[0.0, -1.0], [math.log(3.0), 2.0]])  # (K=2, B=2)
    torch.testing.assert_close(iwae(log_w), torch.tensor([math.log(2.0), math.log((math.exp(-1) + math.exp(2)) / 2)]))
    torch.testing.assert_close(elbo(log_w), torch.tensor([math.log(3.0) / 2, 0.5]))


def test_iwae_at_least_elbo_on_the_same_weights():
    # Jensen: log mean exp >= mean log, pointwise, for any weights
    log_w = 3 * torch.randn(50, 20)
    assert (iwae(log_w) >= elbo(log_w) - 1e-6).all()


def test_iwae_increases_with_k_in_expectation(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=0.8, encoder_logvar_shift=-0.5)
    x = linear_gaussian.sample(200)
    torch.manual_seed(0)
    with torch.no_grad():
        means = [iwae(model.log_weight_terms(x, k).log_w).mean().item() for k in (1, 5, 50)]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(2, 3, 4)])
def test_objectives_reject_wrong_shapes(bad):
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        iwae(bad)
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        elbo(bad)
