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


def _two_paths(model, x, y=None, **kw):
    """The one-sample terms per point and the same draw with the sample axis (the path S > 1 takes)."""
    point = model.log_weight_terms(x, 1, generator=torch.Generator().manual_seed(5), y=y, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(model), "one_sample_point_path", property(lambda self: False))
        axis = model.log_weight_terms(x, 1, generator=torch.Generator().manual_seed(5), y=y, **kw)
    return point, axis


@pytest.mark.parametrize(
    "over,x_shape,n_classes",
    [
        ({}, (2,), 0),  # Gaussian likelihood with a learned variance
        ({"model.likelihood": "bernoulli"}, (1, 3, 3), 0),  # image-shaped data: parameters read flat
        ({"model.likelihood": "bernoulli", "model.labels": "conditional"}, (6,), 3),  # the decoder reads y
    ],
    ids=["gaussian", "bernoulli-image", "conditional"],
)
def test_one_sample_terms_per_point_are_the_sample_axis_terms(over, x_shape, n_classes):
    torch.manual_seed(0)
    model = build_model(tiny_config(**over).model, x_shape, n_classes=n_classes)
    assert model.one_sample_point_path
    x = torch.bernoulli(torch.full((7, *x_shape), 0.4)) if over else torch.randn(7, *x_shape)
    y = torch.arange(7) % 3 if n_classes else None
    point, axis = _two_paths(model, x, y)
    assert point.zs[0].shape == axis.zs[0].shape == (1, 7, model.latent.flat_dim)
    assert point.mean_log_px_z.shape == (7,) and point.log_px_z.shape == (1, 7)
    for name in ("log_px_z", "log_pz", "log_qz", "log_w"):
        torch.testing.assert_close(getattr(point, name), getattr(axis, name), rtol=0, atol=1e-6, msg=name)
    torch.testing.assert_close(point.mean_log_px_z, axis.mean_log_px_z, rtol=0, atol=1e-6)
    params = [p for p in model.parameters() if p.requires_grad]
    for objective, kl in (("elbo", "analytic"), ("elbo", "mc"), ("iwae", "mc")):  # each bound's gradient, both paths
        est_p, rec_p, kl_p = estimate(model, point, OBJECTIVES.build(objective), ESTIMATORS.build("reparam"),
                                      BoundOptions(1, kl))  # fmt: skip
        est_a, rec_a, kl_a = estimate(model, axis, OBJECTIVES.build(objective), ESTIMATORS.build("reparam"),
                                      BoundOptions(1, kl))  # fmt: skip
        assert rec_p.shape == kl_p.shape == est_p.value.shape == (7,)
        torch.testing.assert_close(est_p.value, est_a.value, rtol=0, atol=1e-5)
        got = torch.autograd.grad(est_p.inference.sum(), params, retain_graph=True, allow_unused=True)
        want = torch.autograd.grad(est_a.inference.sum(), params, retain_graph=True, allow_unused=True)
        for g, w in zip(got, want):
            assert (g is None) == (w is None)
            if g is not None:
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_one_sample_terms_detach_the_sample_for_score_function_estimators():
    model = _model()
    point, axis = _two_paths(model, torch.randn(5, 2), reparameterize=False)
    assert not point.zs[0].requires_grad and not axis.zs[0].requires_grad
    torch.testing.assert_close(point.log_w, axis.log_w, rtol=0, atol=1e-6)


def test_models_whose_samples_need_their_axis_keep_it():
    flows = build_model(tiny_config(**{"model.latent": {"kind": "planar", "n_flows": 2}}).model, (2,))
    two_layers = build_model(tiny_config(**{"model.upper_z_dims": [2]}).model, (2,))
    assert not flows.one_sample_point_path and not two_layers.one_sample_point_path
    assert flows.log_weight_terms(torch.randn(3, 2), 1).mean_log_px_z.shape == (3,)


@pytest.mark.parametrize("likelihood,x_shape", [("bernoulli", (1, 2, 3)), ("gaussian", (2, 3)), ("bernoulli", (4,))])
def test_likelihood_rows_score_flat_parameters_as_log_prob_scores_shaped_ones(likelihood, x_shape):
    from vaelab.distributions import LIKELIHOODS

    lik = LIKELIHOODS.build(likelihood, event_shape=x_shape)
    params = torch.randn(5, lik.n_outputs)  # as a dense decoder outputs them
    x = torch.bernoulli(torch.full((5, *x_shape), 0.5))
    want = lik.log_prob(params.reshape(5, *lik.param_shape), x)
    torch.testing.assert_close(lik.log_prob_rows(params, x), want, rtol=0, atol=1e-6)
    torch.testing.assert_close(lik.log_prob_rows(params.reshape(5, *lik.param_shape), x), want, rtol=0, atol=1e-6)


def test_bound_stats_are_views_of_one_vector_in_order():
    from vaelab.labels import BoundStats, stats_vector

    rec, kl = torch.tensor([-3.0, -5.0]), torch.tensor([1.0, 2.0])
    stats = BoundStats.of_points({"rec": rec, "kl": kl, "elbo": rec - kl})
    assert list(stats) == ["rec", "kl", "elbo"] and stats["elbo"].shape == ()
    assert stats_vector(stats).tolist() == [-4.0, 1.5, -5.5] == [float(v) for v in stats.values()]
    assert stats_vector({"a": torch.tensor(1.0), "b": torch.tensor(2.0)}).tolist() == [1.0, 2.0]  # any dict
