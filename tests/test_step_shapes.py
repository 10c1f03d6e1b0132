"""The training step's bookkeeping shortcuts (issue 45) compute what the samples-first formulas do:
the closed-form KL per point against its (S, B) broadcast, the one-sample Gaussian draw against the
S-sample stream, and the decoder's autoregressive flag however it is set."""

import pytest
import torch
from conftest import tiny_config
from torch import nn

from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES
from vaelab.train.bound import BoundOptions, estimate


def _model():
    torch.manual_seed(0)
    return build_model(tiny_config().model, (2,))


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_the_closed_form_kl_per_point_gives_the_bound_and_gradient_of_its_sample_broadcast(beta):
    model, x = _model(), torch.randn(7, 2)
    terms = model.log_weight_terms(x, 4, generator=torch.Generator().manual_seed(1))
    kl_b, kl_s = terms.analytic_kl(), terms.kl(analytic=True)
    assert kl_b.shape == (7,) and kl_s.shape == (4, 7) and torch.equal(kl_s, kl_b.expand(4, 7))
    est, rec, kl = estimate(
        model, terms, OBJECTIVES.build("elbo"), ESTIMATORS.build("reparam"), BoundOptions(4, "analytic", beta)
    )
    expected_value = (terms.log_px_z - kl_s).mean(0)  # eq. 7 over S = 4 samples, written samples-first
    expected_trained = (terms.log_px_z - beta * kl_s).mean(0)
    torch.testing.assert_close(est.value, expected_value, rtol=0, atol=1e-5)
    torch.testing.assert_close(est.inference.detach(), expected_value, rtol=0, atol=1e-5)  # the value is the true bound
    params = [p for p in model.parameters() if p.requires_grad]
    got = torch.autograd.grad(est.inference.sum(), params, retain_graph=True)
    want = torch.autograd.grad(expected_trained.sum(), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    assert torch.equal(kl, kl_b) and (est.inference is est.generative)


def test_one_gaussian_sample_is_the_first_of_the_sample_stream():
    model = _model()
    q = model.posterior(torch.randn(5, 2))
    torch.manual_seed(3)
    one = model.latent.draw(q, 1)  # (1, B, D), drawn without broadcasting
    torch.manual_seed(3)
    eps = torch.randn(1, 5, model.latent.flat_dim)
    assert one.shape == (1, 5, model.latent.flat_dim)
    assert torch.equal(one, q.base_dist.loc + q.base_dist.scale * eps)  # same numbers as the (S, B, D) draw
    gen = torch.Generator().manual_seed(4)
    assert model.latent.draw(q, 3, gen).shape == (3, 5, model.latent.flat_dim)


class _Flagged(nn.Linear):
    autoregressive = True


def test_the_decoders_autoregressive_flag_is_read_from_its_class_or_instance():
    model = _model()
    assert model.autoregressive is False  # an MLP has no flag: no AttributeError raised and caught
    model.decoder = _Flagged(1, 1)
    assert model.autoregressive is True
    plain = nn.Linear(1, 1)
    plain.autoregressive = True  # set on the instance
    model.decoder = plain
    assert model.autoregressive is True
