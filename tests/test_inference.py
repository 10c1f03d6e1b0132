"""Inference as optimization: per-datapoint refinement, non-amortized SVI, the semi-amortized
estimator, the amortization gap and ELBO surgery, checked on a linear-Gaussian model whose
posterior, log p(x), mutual information and aggregate posterior are known in closed form."""

import math

import pytest
import torch

from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS
from vaelab.evaluation import amortization_gap, elbo_surgery
from vaelab.inference import LocalPosteriors, fit_non_amortized, local_elbo, refine
from vaelab.objectives import OBJECTIVES
from vaelab.train.step import compute_bound

SHIFT, LOGVAR_SHIFT = 0.5, 0.3


def kl_to_posterior(lg):
    """KL(q || p(z|x)) for the encoder shifted by SHIFT (mean) and LOGVAR_SHIFT (log-variance)."""
    s = torch.diagonal(lg.S)
    r = math.exp(LOGVAR_SHIFT)
    return float(0.5 * (r - 1 - LOGVAR_SHIFT + SHIFT**2 / s).sum())


def test_amortization_gap_splits_the_inference_gap_in_closed_form(linear_gaussian):
    lg = linear_gaussian
    model = lg.vae(encoder_shift=SHIFT, encoder_logvar_shift=LOGVAR_SHIFT)
    x = lg.sample(200)
    r = amortization_gap(model, x, steps=300, lr=0.05, k=500, elbo_samples=200)
    exact = float(lg.log_px(x).mean())
    # the family holds the exact posterior: q* reaches it, so the approximation gap vanishes ...
    assert abs(r.log_px - exact) < 1e-3  # IS with the exact posterior as proposal has no variance
    assert abs(r.approximation_gap) < 0.02
    # ... and the amortization gap is KL(q_encoder || posterior) (the ELBOs' MC error is ~0.01)
    assert r.amortization_gap == pytest.approx(kl_to_posterior(lg), abs=0.03)
    assert r.inference_gap == pytest.approx(r.approximation_gap + r.amortization_gap, abs=1e-9)


def test_refinement_improves_the_elbo_with_the_number_of_steps(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=SHIFT)
    x = linear_gaussian.sample(300)
    lam0 = model.encoder(x).detach()
    g = torch.Generator().manual_seed(0)
    elbos = []
    for steps in (0, 3, 30):
        lam = refine(model, x, lam0, steps, lr=0.02)
        elbos.append(local_elbo(model, x, lam, n_samples=200, generator=g).mean().item())
    assert elbos[0] < elbos[1] < elbos[2]
    assert all(p.grad is None for p in model.parameters())  # refinement leaves the model alone


def test_non_amortized_svi_finds_each_points_posterior_by_index(linear_gaussian):
    lg = linear_gaussian
    model = lg.vae()
    x = lg.sample(120)
    torch.manual_seed(0)
    # lr = 0 keeps the true decoder: the table must converge to each point's exact posterior
    res = fit_non_amortized(
        model, x, epochs=8, batch_size=32, inner_steps=25, inner_lr=0.05, lr=0.0, n_samples=10, inner_schedule="linear"
    )
    mean, logvar = res.posteriors.params.chunk(2, dim=1)
    exact_mean = ((x.double() - lg.b) @ (lg.S @ lg.W.T / lg.s2).T).float()
    assert (mean - exact_mean).abs().max() < 0.2 and (mean - exact_mean).abs().mean() < 0.05  # prior start: 0.5 on average
    # log-variance gradients are noisier (10-sample reparameterization): judged on average
    assert (logvar - torch.log(torch.diagonal(lg.S)).float()).abs().mean() < 0.08


def test_non_amortized_svi_learns_the_generative_model(linear_gaussian):
    lg = linear_gaussian
    model = lg.vae()
    torch.manual_seed(0)
    with torch.no_grad():
        model.decoder.weight.normal_(0, 0.1)
    x = lg.sample(400)
    res = fit_non_amortized(model, x, epochs=15, batch_size=50, inner_steps=5, inner_lr=0.05, lr=0.02)
    first, last = res.history[0]["elbo"], res.history[-1]["elbo"]
    assert last > first + 1.0
    assert last < float(lg.log_px(x).mean()) + 0.05  # a bound, up to Monte Carlo error


def test_local_posteriors_refuse_what_cannot_be_refined(linear_gaussian):
    with pytest.raises(ConfigError, match="init"):
        LocalPosteriors(3, linear_gaussian.vae(), init="zeros")
    with pytest.raises(ConfigError, match="sgd"):
        refine(linear_gaussian.vae(), torch.zeros(2, 5), torch.zeros(2, 4), 2, 0.1, optimizer="adam", differentiable=True)


def _savae_value(model, x, est, seed=0):
    torch.manual_seed(seed)
    out, _ = compute_bound(model, x, OBJECTIVES.build("elbo"), est, 1)
    return out


def test_savae_end_to_end_gradient_is_the_derivative_of_the_unrolled_bound(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=SHIFT).double()
    x = linear_gaussian.sample(8).double()
    est = ESTIMATORS.build("savae", steps=3, lr=0.05, mode="end_to_end")
    w = model.encoder[0].weight
    out = _savae_value(model, x, est)
    (grad,) = torch.autograd.grad(out.inference.sum(), w)
    eps = 1e-6
    for idx in [(0, 0), (1, 3), (3, 2)]:
        values = []
        for delta in (eps, -2 * eps, eps):
            with torch.no_grad():
                w[idx] += delta
            values.append(_savae_value(model, x, est).value.sum().item())
        up, down = values[0], values[1]
        assert grad[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-6)


def test_savae_refined_bound_beats_the_amortized_one_and_targets_train_the_encoder(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=SHIFT)
    x = linear_gaussian.sample(500)
    torch.manual_seed(0)
    out, stats = compute_bound(model, x, OBJECTIVES.build("elbo"), ESTIMATORS.build("savae", steps=20, lr=0.05), 1)
    assert stats["bound"] > stats["amortized_bound"] + 0.5 * kl_to_posterior(linear_gaussian) / 2
    # refined_target: one encoder step along its surrogate moves the encoder towards the refined q
    est = ESTIMATORS.build("savae", steps=20, lr=0.05, mode="refined_target")
    enc = list(model.encoder.parameters())
    gap_before = abs(model.encoder(x)[:, :2].mean().item())
    for _ in range(20):
        out, _ = compute_bound(model, x, OBJECTIVES.build("elbo"), est, 1)
        grads = torch.autograd.grad(-out.inference.mean(), enc)
        with torch.no_grad():
            for p, g in zip(enc, grads):
                p -= 0.1 * g
    # the exact posterior means average ~0 over the data; the shifted encoder's average SHIFT
    assert abs(model.encoder(x)[:, :2].mean().item()) < 0.5 * gap_before


def test_savae_refuses_what_it_cannot_refine():
    with pytest.raises(ConfigError, match="mode"):
        ESTIMATORS.build("savae", mode="both")


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_elbo_surgery_with_discrete_latents_matches_enumeration(family):
    """The non-Gaussian branch (log q through log_prob): I_q(x; z) and KL(q(z) || p(z)) of the empirical
    aggregate posterior, enumerated over every latent state, within 5 standard errors of 5 seeds."""
    import gradient_matrix as G

    model, _ = G.build(family)
    x = torch.bernoulli(torch.full((6, G.D_X), 0.5), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = G.states(family, model)  # (N, *event)
        log_q = model.posterior(x).log_prob(z.unsqueeze(1))  # (N, B)
        q = log_q.exp()
        log_agg = torch.logsumexp(log_q, 1, keepdim=True) - math.log(x.shape[0])  # (N, 1): log q(z)
        mi = float((q * (log_q - log_agg)).sum(0).mean())
        agg = log_agg.squeeze(1)
        mkl = float((agg.exp() * (agg - model.prior.log_prob(z))).sum())
    runs = [elbo_surgery(model, x, n_samples=4000, seed=s) for s in range(5)]
    for name, exact in (("mutual_info", mi), ("marginal_kl", mkl)):
        v = torch.tensor([getattr(r, name) for r in runs], dtype=torch.float64)
        se = float(v.std() / math.sqrt(len(v)))
        assert abs(float(v.mean()) - exact) < 5 * se + 1e-4, (name, float(v.mean()), exact, se)
    assert mi > 0.1 and mkl > 0.01  # both terms non-trivial on this model


def test_elbo_surgery_gaussian_fast_path_equals_log_prob(linear_gaussian):
    from vaelab.evaluation.surgery import _log_q_matrix

    model = linear_gaussian.vae(encoder_shift=SHIFT)
    x = linear_gaussian.sample(7)
    params = model.encoder(x).reshape(7, -1).detach()
    z = torch.randn(11, linear_gaussian.z_dim)
    generic = model.latent.distribution(params).log_prob(z[:, None])  # (S, N) through log_prob
    torch.testing.assert_close(_log_q_matrix(model, params, z), generic, rtol=1e-5, atol=1e-4)


def test_elbo_surgery_matches_closed_forms(linear_gaussian):
    lg = linear_gaussian
    x = lg.sample(3000)
    mi_exact = -0.5 * float(torch.logdet(lg.S))  # I(x; z) = H[p(z)] - H[p(z|x)] for the exact posterior
    r = elbo_surgery(lg.vae(), x, n_samples=2)
    assert r.mutual_info == pytest.approx(mi_exact, abs=4 * r.mutual_info_stderr + 0.02)
    assert abs(r.marginal_kl) < 0.02  # the aggregate posterior of the exact posterior is the prior
    # shifting every posterior mean by SHIFT moves the aggregate posterior to N(SHIFT, I)
    r2 = elbo_surgery(lg.vae(encoder_shift=SHIFT), x, n_samples=2)
    assert r2.marginal_kl == pytest.approx(0.5 * lg.z_dim * SHIFT**2, abs=4 * r2.marginal_kl_stderr + 0.02)
    assert r2.mutual_info == pytest.approx(mi_exact, abs=4 * r2.mutual_info_stderr + 0.02)
    # the three terms are the ELBO (independent estimate, closed-form KL)
    with torch.no_grad():
        elbo = local_elbo(lg.vae(encoder_shift=SHIFT), x, lg.vae(encoder_shift=SHIFT).encoder(x), 50).mean()
    assert r2.reconstruction - r2.mutual_info - r2.marginal_kl == pytest.approx(r2.elbo, abs=1e-9)
    assert r2.elbo == pytest.approx(float(elbo), abs=4 * r2.elbo_stderr)
