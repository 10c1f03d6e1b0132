"""STL and DReG: same expectation as the reparameterization gradient, zero variance at the optimum.

Each check draws R one-particle gradient estimates with common random numbers (both estimators
see the same samples), and tests every parameter's mean difference against 4.5 standard errors.
"""

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES
from vaelab.train import backward, compute_bound


def estimate(terms, objective, estimator, m=1, beta=0.5):
    opts = {"groups": m} if objective in ("miwae", "piwae") else {"beta": beta} if objective == "ciwae" else {}
    return ESTIMATORS.build(estimator)(terms, OBJECTIVES.build(objective, opts))


Z_CRIT = 4.5  # ~40 parameters per check: family-wise false-alarm rate < 1e-3


def _grads(model, surrogate, params):
    g = torch.autograd.grad(-surrogate.mean(), params, retain_graph=True, allow_unused=True)
    return torch.cat([(gi if gi is not None else torch.zeros_like(p)).flatten() for gi, p in zip(g, params)])


def _paired_draws(model, x, objective, estimator, k, m=1, draws=400, seed=0):
    """(R, P) differences estimator - reparam for the inference and the generative parameters."""
    torch.manual_seed(seed)
    inf_p, gen_p = model.inference_parameters(), model.generative_parameters()
    d_inf, d_gen = [], []
    for _ in range(draws):
        terms = model.log_weight_terms(x, k * m)
        ref = estimate(terms, objective, "reparam", m)
        est = estimate(terms, objective, estimator, m)
        d_inf.append(_grads(model, est.inference, inf_p) - _grads(model, ref.inference, inf_p))
        d_gen.append(_grads(model, est.generative, gen_p) - _grads(model, ref.generative, gen_p))
    return torch.stack(d_inf).double(), torch.stack(d_gen).double()


def _z_scores(d):
    se = d.std(0) / d.shape[0] ** 0.5
    return d.mean(0).abs() / (se + 1e-9)


def _small_model(upper=(), seed=0):
    cfg = RunConfig().override(
        {
            "model.latent.dim": 2,
            "model.encoder.hidden": [4],
            "model.upper_z_dims": list(upper),
            "model.upper_hidden": [3],
            "model.likelihood.fixed_variance": 0.5,
        }
    )
    torch.manual_seed(seed)
    return build_model(cfg.model, (3,))


CASES = [
    ("elbo", "stl", 1, 1),
    ("elbo", "stl", 3, 1),
    ("elbo", "dreg", 2, 1),
    ("iwae", "dreg", 5, 1),
    ("miwae", "dreg", 3, 2),
    ("ciwae", "dreg", 4, 1),
    ("piwae", "dreg", 3, 2),
    ("piwae", "stl", 1, 3),
]


@pytest.mark.parametrize("objective,estimator,k,m", CASES)
def test_estimator_is_unbiased_for_reparam_gradient(objective, estimator, k, m):
    model = _small_model()
    x = torch.randn(3, 3) * 2
    d_inf, d_gen = _paired_draws(model, x, objective, estimator, k, m)
    assert d_inf.abs().max() > 1e-4, "the estimators should differ draw by draw"
    assert _z_scores(d_inf).max() < Z_CRIT
    assert _z_scores(d_gen).max() < Z_CRIT


@pytest.mark.slow
def test_dreg_is_unbiased_with_two_stochastic_layers():
    model = _small_model(upper=[2])
    x = torch.randn(3, 3) * 2
    d_inf, d_gen = _paired_draws(model, x, "iwae", "dreg", 4)
    assert d_inf.abs().max() > 1e-4
    assert _z_scores(d_inf).max() < Z_CRIT
    assert _z_scores(d_gen).max() < Z_CRIT


@pytest.mark.slow
def test_the_check_detects_a_biased_estimator():
    # STL is biased for IWAE with K > 1 (Tucker et al. 2019, Sec. 4): the same check must reject it
    model = _small_model()
    x = torch.randn(3, 3) * 2
    d_inf, _ = _paired_draws(model, x, "iwae", "stl", 5, draws=800)
    assert _z_scores(d_inf).max() > Z_CRIT


@pytest.mark.parametrize("objective,estimator,k", [("elbo", "stl", 1), ("elbo", "stl", 4), ("iwae", "dreg", 8)])
def test_path_gradient_vanishes_at_the_exact_posterior(linear_gaussian, objective, estimator, k):
    # q = p(z|x) makes log w = log p(x) for every z: the path-only encoder gradient is exactly zero,
    # while the plain reparameterization gradient is zero only in expectation
    model = linear_gaussian.vae()
    x = linear_gaussian.sample(16)
    torch.manual_seed(0)
    terms = model.log_weight_terms(x, k)
    inf_p = model.inference_parameters()
    est = estimate(terms, objective, estimator)
    ref = estimate(terms, objective, "reparam")
    assert _grads(model, est.inference, inf_p).abs().max() < 1e-4
    assert _grads(model, ref.inference, inf_p).abs().max() > 1e-2


def test_piwae_routes_miwae_to_the_encoder_and_iwae_to_the_decoder():
    from vaelab.objectives import group, iwae, miwae

    model = _small_model()
    x = torch.randn(4, 3)
    torch.manual_seed(1)
    est, _ = compute_bound(model, x, OBJECTIVES.build("piwae", {"groups": 2}), ESTIMATORS.build("reparam"), 3)
    model.zero_grad()
    backward(est, model.parameter_groups())
    got_inf = torch.cat([p.grad.flatten() for p in model.inference_parameters()])
    got_gen = torch.cat([p.grad.flatten() for p in model.generative_parameters()])
    torch.manual_seed(1)
    log_w = model.log_weight_terms(x, 6).log_w  # same draw
    want_inf = _grads(model, miwae(group(log_w, 2)), model.inference_parameters())
    want_gen = _grads(model, iwae(log_w), model.generative_parameters())
    torch.testing.assert_close(got_inf, want_inf)
    torch.testing.assert_close(got_gen, want_gen)
    assert not torch.allclose(want_inf, _grads(model, iwae(log_w), model.inference_parameters()))


@pytest.mark.parametrize("objective,estimator,m", [("iwae", "dreg", 1), ("piwae", "reparam", 2), ("piwae", "dreg", 2)])
def test_a_learned_decoder_variance_gets_its_gradient_under_two_pass_estimators(objective, estimator, m):
    # issue 8 a: the likelihood's parameters were in neither group, so DReG / PIWAE never trained them
    cfg = RunConfig().override({"model.latent.dim": 2, "model.encoder.hidden": [4], "model.likelihood.variance": "per_dim"})
    torch.manual_seed(0)
    model = build_model(cfg.model, (3,))
    groups = model.parameter_groups()
    assert any(p is model.likelihood.logvar for p in groups["generative"])
    obj = OBJECTIVES.build(objective, {"groups": m} if m > 1 else {})
    est, _ = compute_bound(model, torch.randn(5, 3) * 2, obj, ESTIMATORS.build(estimator), 3)
    model.zero_grad()
    backward(est, groups)
    assert model.likelihood.logvar.grad is not None and model.likelihood.logvar.grad.abs().max() > 0


def test_a_parameter_outside_every_group_is_refused():
    from vaelab.train import build_optimizer

    model = _small_model()
    model.extra = torch.nn.Linear(2, 2)  # a submodule the groups do not know
    with pytest.raises(RuntimeError, match="parameters in no group"):
        build_optimizer("adam", model, 1e-3)


def test_compute_bound_refuses_a_kl_weight_it_cannot_apply():
    from vaelab.errors import ConfigError

    model = _small_model()
    with pytest.raises(ConfigError, match="beta != 1 or free bits apply to the ELBO with estimator 'reparam' only"):
        compute_bound(model, torch.randn(4, 3), OBJECTIVES.build("iwae"), ESTIMATORS.build("dreg"), 2, beta=0.5)


@pytest.mark.parametrize("shaping", [{"beta": 0.3}, {"free_bits": 5.0}, {"beta": 0.3, "kl": "analytic"}])
def test_a_kl_weight_or_free_bits_log_the_true_elbo_and_the_trained_objective_apart(shaping):
    """Issue 27: during KL annealing the logged bound was the beta-weighted objective. The value and
    'bound' are the ELBO at beta = 1; the differentiated objective is 'train_objective'."""
    model, x = _small_model(), torch.randn(6, 3)
    elbo, reparam = OBJECTIVES.build("elbo"), ESTIMATORS.build("reparam")
    kl = shaping.get("kl", "mc")
    torch.manual_seed(0)
    est, stats = compute_bound(model, x, elbo, reparam, 2, kl, shaping.get("beta", 1.0), shaping.get("free_bits", 0.0))
    torch.manual_seed(0)
    _, plain = compute_bound(model, x, elbo, reparam, 2, kl)
    torch.testing.assert_close(stats["bound"], plain["bound"])  # the true ELBO, same draws
    torch.testing.assert_close(est.value.mean(), plain["bound"])
    assert float(stats["train_objective"]) < float(stats["bound"]) - 1e-3 or "beta" in shaping
    if "beta" in shaping:  # rec - 0.3 KL > rec - KL
        torch.testing.assert_close(stats["train_objective"], stats["rec"] - 0.3 * stats["kl"])
    g = torch.autograd.grad(est.inference.mean(), list(model.parameters()), allow_unused=True)
    assert any(t is not None and t.abs().sum() > 0 for t in g)  # the surrogate still trains
