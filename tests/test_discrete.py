"""Discrete latents through the one VAE class: exact enumeration of a tiny binary-latent model
checks the score-function (REINFORCE) gradient, the IS estimator with a Bernoulli proposal, and
the refusal of pathwise estimators; ``stopped(q)`` is checked for every latent family."""

import itertools
import math

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.distributions import LATENTS, stopped
from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS, Reinforce
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES
from vaelab.train import fit

Z_CRIT = 4.5  # ~50 parameters per check: family-wise false-alarm rate < 1e-3
D_Z, D_X = 4, 5


def binary_model(seed=0):
    """Seed 002's model, small: binary x, Bernoulli latents with p(z) = Ber(0.5), linear sigmoid
    encoder and decoder (logits), so all 2^4 latent states can be enumerated."""
    cfg = RunConfig().override(
        {
            "model.latent": {"kind": "bernoulli", "dim": D_Z},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "model.encoder.hidden": [],
        }
    )
    torch.manual_seed(seed)
    model = build_model(cfg.model, (D_X,))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # sharper q and p(x|z): a gradient worth estimating
    return model


def binary_data(n=6, seed=1):
    return torch.bernoulli(torch.full((n, D_X), 0.5), generator=torch.Generator().manual_seed(seed))


STATES = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D_Z)))  # (2^d, d)


def exact_log_joint(model, x):
    """log p(x, z) and log q(z|x) for every latent state: each (2^d, B)."""
    z = STATES[:, None, :]  # (2^d, 1, d) broadcasts over the batch
    log_pxz = model.conditional(z).log_prob(x) + model.prior.log_prob(z)
    return log_pxz, model.posterior(x).log_prob(z)


def exact_bound(model, x, k):
    """Exact IWAE-k (k = 1: the ELBO) per point, by enumerating all (2^d)^k sample tuples."""
    log_pxz, log_q = exact_log_joint(model, x)
    log_w = log_pxz - log_q  # (2^d, B)
    total = 0.0
    for idx in itertools.product(range(len(STATES)), repeat=k):
        idx = list(idx)
        prob = log_q[idx].sum(0).exp()  # (B,) q(z_1..z_k | x)
        total = total + prob * (torch.logsumexp(log_w[idx], dim=0) - math.log(k))
    return total  # (B,)


def _flat_grad(value, params):
    return torch.cat([g.flatten() for g in torch.autograd.grad(value, params, retain_graph=True)])


def reinforce_draws(model, x, estimator, objective, k, draws, seed=0):
    torch.manual_seed(seed)
    params = list(model.parameters())
    out = []
    for _ in range(draws):
        terms = model.log_weight_terms(x, k, reparameterize=estimator.pathwise)
        out.append(_flat_grad(estimator(terms, objective).inference.mean(), params))
    return torch.stack(out).double()  # (R, P)


def z_scores(draws, exact):
    se = draws.std(0) / math.sqrt(draws.shape[0])
    return (draws.mean(0) - exact.double()).abs() / (se + 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("objective,k", [("elbo", 1), ("elbo", 3), ("iwae", 2)])
def test_reinforce_gradient_matches_exact_enumeration(objective, k):
    model, x = binary_model(), binary_data()
    exact = _flat_grad(exact_bound(model, x, 1 if objective == "elbo" else k).mean(), list(model.parameters()))
    draws = reinforce_draws(model, x, ESTIMATORS.build("reinforce"), OBJECTIVES.build(objective), k, draws=3000)
    assert exact.abs().max() > 0.05  # a non-trivial gradient
    assert z_scores(draws, exact).max() < Z_CRIT


class NoScoreTerm(Reinforce):
    """A deliberately wrong estimator: only the pathwise part (z is not differentiable): biased."""

    def __call__(self, terms, objective):
        est = super().__call__(terms, objective)
        bound = OBJECTIVES.build("elbo")(terms.log_w)
        return type(est)(est.value, bound, bound)


class WrongSignal(Reinforce):
    """A deliberately wrong estimator: the learning signal leaves out log p(z) - log q(z|x)."""

    def __call__(self, terms, objective):
        signal = terms.log_px_z.detach()
        surrogate = objective(terms.log_w) + ((signal * terms.log_qz) - (signal * terms.log_qz).detach()).sum(0)
        return type(super().__call__(terms, objective))(surrogate.detach(), surrogate, surrogate)


@pytest.mark.slow
@pytest.mark.parametrize("wrong", [NoScoreTerm(), WrongSignal()])
def test_the_exact_gradient_check_rejects_wrong_estimators(wrong):
    model, x = binary_model(), binary_data()
    exact = _flat_grad(exact_bound(model, x, 1).mean(), list(model.parameters()))
    draws = reinforce_draws(model, x, wrong, OBJECTIVES.build("elbo"), 1, draws=3000)
    assert z_scores(draws, exact).max() > Z_CRIT


def assert_logs_the_true_bound(estimator: str, k: int, objective: str = "iwae") -> None:
    """The estimate's value (and its surrogate's value) is the true bound (IWAE-k by default) of the
    discrete samples."""
    model, x = binary_model(), binary_data()
    torch.manual_seed(0)
    terms = model.log_weight_terms(x, k, reparameterize=False)
    est = ESTIMATORS.build(estimator)(terms, OBJECTIVES.build(objective))
    torch.testing.assert_close(est.value, OBJECTIVES.build(objective)(terms.log_w).detach())
    torch.testing.assert_close(est.inference.detach(), est.value)


def test_reinforce_logs_the_true_bound():
    assert_logs_the_true_bound("reinforce", 4)


def test_is_estimate_with_a_bernoulli_proposal_converges_to_exact_log_px():
    model, x = binary_model(), binary_data(40)
    with torch.no_grad():
        log_pxz, _ = exact_log_joint(model, x)
        exact = torch.logsumexp(log_pxz, dim=0).double()  # (B,)
        res = importance_sampled_log_likelihood(model, x, k=40_000, seed=0)
        small = importance_sampled_log_likelihood(model, x, k=400, seed=0)
    d = res.per_point.double() - exact
    assert d.abs().mean() < 0.03 and abs(d.mean()) < 4 * d.std() / math.sqrt(len(d))
    # the error shrinks like 1/sqrt(K): 100x the samples, about a tenth of the error
    assert (small.per_point.double() - exact).abs().mean() > 4 * d.abs().mean()
    elbo = exact_bound(model, x, 1).detach().double()
    assert abs(res.elbo_mean - float(elbo.mean())) < 0.05  # the mean log-weight is the exact ELBO


@pytest.mark.parametrize("estimator", ["reparam", "stl", "dreg"])
def test_pathwise_estimators_refuse_discrete_latents(estimator):
    with pytest.raises(ConfigError, match=f"estimator '{estimator}' differentiates through the samples.*reinforce"):
        ESTIMATORS.build(estimator).check(binary_model())


def test_the_binary_latent_model_trains_with_reinforce(tmp_path):
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 16},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "model.encoder.hidden": [32],
            # PyTorch's init, so the decoder has the data's marginal to learn: "it trains" in 6 epochs.
            # Plain REINFORCE (no baseline) gains little from its latents here: measured over 30 epochs,
            # both starts end at a validation ELBO of -27.5 (the data-mean start begins there)
            "model.decoder_bias": "default",
            "train.estimator": "reinforce",
            "train.epochs": 6,
            "train.lr": 3e-3,
            "train.num_threads": 1,
            "train.valid_iwae_k": 50,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    first, last = res.history[0], res.history[-1]
    assert last["valid_elbo"] > first["valid_elbo"] + 1.0 and last["valid_iwae"] >= last["valid_elbo"]
    assert res.model.latent.support == "binary" and not res.model.reparameterized


def test_categorical_latents_train_with_reinforce(tmp_path):
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "categorical", "dim": 4, "classes": 5},
            "model.prior": "categorical",
            "model.likelihood": "bernoulli",
            "model.encoder.hidden": [32],
            "model.decoder_bias": "default",  # as above
            "train.estimator": "reinforce",
            "train.objective": "iwae",
            "train.n_samples": 4,
            "train.epochs": 4,
            "train.lr": 3e-3,
            "train.num_threads": 1,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    assert res.history[-1]["valid_elbo"] > res.history[0]["valid_elbo"]
    z = res.model.log_weight_terms(res.data.test[:3], 2).z
    assert z.shape == (2, 3, 4, 5) and torch.equal(z.sum(-1), torch.ones(2, 3, 4))  # one-hot


@pytest.mark.parametrize("kind", LATENTS.names())
def test_stopped_keeps_values_and_the_path_but_drops_parameter_gradients(kind):
    family = LATENTS.build(kind, {"dim": 3})
    params = torch.randn(2, family.n_params, requires_grad=True)
    q = family.distribution(params)
    z = family.draw(q, 4, torch.Generator().manual_seed(0))  # (4, 2, *event)
    if family.relaxed:
        z = z.clamp(1e-4, 1 - 1e-4)
    if not family.scores_any_point:  # flows: a density only at their own sample (tests/test_flows.py)
        torch.testing.assert_close(stopped(q).log_prob(z), q.log_prob(z))
        with pytest.raises(ValueError, match="only at the samples it drew"):
            q.log_prob(z.detach())
        return
    zd = z.detach()
    torch.testing.assert_close(stopped(q).log_prob(zd), q.log_prob(zd))
    assert not stopped(q).log_prob(zd).requires_grad  # no path from the parameters of stopped(q)
    assert torch.autograd.grad(q.log_prob(zd).sum(), params, retain_graph=True)[0].abs().max() > 0  # unlike q's
    if family.has_rsample:  # the path through a reparameterized z survives
        (g_path,) = torch.autograd.grad(stopped(q).log_prob(z).sum(), params)
        assert g_path.abs().max() > 0
