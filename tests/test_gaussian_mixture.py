"""The matrix-product log density of diagonal Gaussian mixtures (MoG, VampPrior, class-conditional
marginals) against the direct formula, and the prior fixed once per evaluation."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vaelab.config import RunConfig
from vaelab.distributions import GaussianLatent, MixtureOfGaussiansPrior, VampPrior, gaussian_mixture
from vaelab.distributions.class_prior import ClassConditionalPrior
from vaelab.distributions.gaussian_mixture import DiagonalGaussianMixture, mixture
from vaelab.distributions.planar import PlanarLatent
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.models import build_model


def direct(logits, loc, logvar, z):
    """logsumexp_c log pi_c + sum_d log N(z_d; mu_cd, exp(logvar_cd)), the (..., C, D) broadcast."""
    diff = z.unsqueeze(-2) - loc  # (..., C, D)
    comp = -0.5 * (diff * diff * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)  # (..., C)
    return torch.logsumexp(torch.log_softmax(logits, 0) + comp, -1)


def _params(c=7, d=5, dtype=torch.float64, offset=3.0, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = offset + spread * torch.randn(c, d, generator=g, dtype=dtype)
    logvar = torch.randn(c, d, generator=g, dtype=dtype) - 1.0
    logits = torch.randn(c, generator=g, dtype=dtype)
    return logits, loc, logvar


@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)])
def test_log_prob_is_the_direct_formula_in_float64(shape):
    logits, loc, logvar = _params()
    z = 3.0 + 2.0 * torch.randn(*shape, loc.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = DiagonalGaussianMixture(logits, loc, logvar).log_prob(z)
    assert got.shape == shape
    torch.testing.assert_close(got, direct(logits, loc, logvar, z), rtol=0, atol=1e-9)


def test_log_prob_chunks_rows_without_changing_the_value(monkeypatch):
    logits, loc, logvar = _params()
    z = torch.randn(50, 5, dtype=torch.float64)
    monkeypatch.setattr(gaussian_mixture, "MAX_TABLE", 3 * 7)  # 3 rows per chunk: 17 chunks
    torch.testing.assert_close(
        DiagonalGaussianMixture(logits, loc, logvar).log_prob(z),
        direct(logits, loc, logvar, z),
        rtol=0,
        atol=1e-9,
    )


def test_gradients_are_the_direct_formulas_in_float64():
    params = [p.requires_grad_() for p in _params()]
    z = torch.randn(6, 3, 5, dtype=torch.float64, requires_grad=True)
    grads = [
        torch.autograd.grad(f(*params, z).sum(), [*params, z])
        for f in (lambda *a: DiagonalGaussianMixture(*a[:3]).log_prob(a[3]), direct)
    ]
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_float32_stays_accurate_far_from_the_origin_with_narrow_components():
    # means near 10, standard deviations near 0.1: the uncentred expansion's terms are ~1e4 times the answer
    logits, loc, logvar = _params(c=50, d=40, offset=10.0, spread=0.5)
    logvar = logvar - 3.0
    z = loc[torch.arange(200) % 50] + torch.exp(0.5 * logvar[torch.arange(200) % 50]) * torch.randn(
        200, 40, dtype=torch.float64
    )
    exact = direct(logits, loc, logvar, z)
    got = DiagonalGaussianMixture(logits.float(), loc.float(), logvar.float()).log_prob(z.float()).double()
    assert (got - exact).abs().max() < 2e-3  # float32 has ~7 digits; |log p| here is ~100 nats


def test_mixture_takes_the_matrix_path_only_for_diagonal_gaussians():
    logits, loc, logvar = _params()
    assert isinstance(mixture(logits, Independent(Normal(loc, torch.exp(0.5 * logvar)), 1)), DiagonalGaussianMixture)
    q = GaussianLatent(5).distribution(torch.cat([loc, logvar], -1))  # the encoder's DiagonalNormal keeps logvar
    m = mixture(logits, q)
    assert isinstance(m, DiagonalGaussianMixture) and m.logvar is q.base_dist.logvar
    other = mixture(logits, Independent(torch.distributions.Laplace(loc, torch.ones_like(loc)), 1))
    assert type(other) is MixtureSameFamily
    z = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(m.log_prob(z), direct(logits, loc, logvar, z), rtol=0, atol=1e-9)


def test_wrong_event_size_and_parameter_shapes_are_errors():
    logits, loc, logvar = _params()
    with pytest.raises(ValueError, match=r"event shape \(5,\)"):
        DiagonalGaussianMixture(logits, loc, logvar).log_prob(torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="logits"):
        DiagonalGaussianMixture(logits[:3], loc, logvar)


def test_samples_and_moments_are_torchs_mixture():
    logits, loc, logvar = _params(dtype=torch.float32)
    ours = DiagonalGaussianMixture(logits, loc, logvar)
    ref = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, torch.exp(0.5 * logvar)), 1))
    torch.testing.assert_close(ours.mean, ref.mean)
    torch.testing.assert_close(ours.variance, ref.variance)
    torch.manual_seed(0)
    a = ours.sample((5,))
    torch.manual_seed(0)
    torch.testing.assert_close(a, ref.sample((5,)))


def _vamp_prior(latent, d_in=6):
    torch.manual_seed(0)
    enc = torch.nn.Linear(d_in, latent.n_params).double()
    prior = VampPrior(latent, x_shape=(d_in,), components=9, pseudo_init=torch.randn(9, d_in)).double()
    prior.attach_encoder(lambda u: latent.density_everywhere(latent.distribution(enc(u))))
    return prior, enc


def test_mog_and_vamp_priors_score_as_torchs_mixture():
    z = torch.randn(5, 3, 4, dtype=torch.float64)
    mog = MixtureOfGaussiansPrior(GaussianLatent(4), components=6, weights="trainable", init_scale=2.0).double()
    ref = MixtureSameFamily(Categorical(logits=mog.logits), Independent(Normal(mog.means, torch.exp(0.5 * mog.logvars)), 1))
    torch.testing.assert_close(mog.log_prob(z), ref.log_prob(z), rtol=0, atol=1e-9)
    vamp, enc = _vamp_prior(GaussianLatent(4))
    q = GaussianLatent(4).distribution(enc(vamp.inputs))
    ref = MixtureSameFamily(Categorical(logits=torch.zeros(9, dtype=torch.float64)), q)
    torch.testing.assert_close(vamp.log_prob(z), ref.log_prob(z), rtol=0, atol=1e-9)


def test_a_flow_vamp_prior_scores_under_its_base_gaussians_as_torchs_mixture():
    latent = PlanarLatent(4, n_flows=2)
    vamp, enc = _vamp_prior(latent)
    components = latent.density_everywhere(latent.distribution(enc(vamp.inputs)))  # q_0(z|u_c): batch (C,)
    z = torch.randn(3, 4, dtype=torch.float64)
    ref = MixtureSameFamily(Categorical(logits=torch.zeros(9, dtype=torch.float64)), components).log_prob(z)
    torch.testing.assert_close(vamp.log_prob(z), ref, rtol=0, atol=1e-9)


def test_class_conditional_marginal_is_the_mixture_over_classes():
    prior = ClassConditionalPrior(GaussianLatent(4), n_classes=3).double()
    with torch.no_grad():
        prior.loc.normal_()
        prior.log_var.normal_(0, 0.3)
    z = torch.randn(8, 4, dtype=torch.float64)
    per_class = torch.stack([prior.given(torch.full((8,), y)).log_prob(z) for y in range(3)])  # (3, 8)
    torch.testing.assert_close(prior.marginal().log_prob(z), torch.logsumexp(per_class, 0) - math.log(3), rtol=0, atol=1e-9)
    log_py = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    expected = torch.logsumexp(per_class + log_py[:, None], 0)
    torch.testing.assert_close(prior.marginal(log_py).log_prob(z), expected, rtol=0, atol=1e-9)


def _vamp_model():
    cfg = RunConfig().override(
        {
            "model.latent": {"kind": "gaussian", "dim": 3},
            "model.encoder.hidden": [8],
            "model.likelihood": "bernoulli",
            "model.prior": {"kind": "vamp", "components": 11},
        }
    )
    torch.manual_seed(0)
    return build_model(cfg.model, (10,), pseudo_init=(torch.rand(11, 10) < 0.5).float())


def test_the_prior_is_computed_once_per_evaluation_and_gives_the_same_estimate(monkeypatch):
    model = _vamp_model()
    x = (torch.rand(20, 10, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    with torch.no_grad():  # the per-chunk estimate, prior recomputed each time
        monkeypatch.setattr(VampPrior, "fixed", property(lambda self: None))
        per_chunk = importance_sampled_log_likelihood(model, x, k=40, batch_size=7, max_rows=21).per_point
    monkeypatch.undo()
    calls = []
    original = VampPrior.distribution
    monkeypatch.setattr(VampPrior, "distribution", lambda self: calls.append(1) or original(self))
    fixed = importance_sampled_log_likelihood(model, x, k=40, batch_size=7, max_rows=21).per_point
    assert len(calls) == 1  # 3 batches x 14 chunks without it
    torch.testing.assert_close(fixed, per_chunk, rtol=0, atol=1e-5)
    assert model.prior._fixed is None and model.training  # released, mode restored


def test_fixed_prior_is_computed_with_the_model_in_eval_mode(monkeypatch):
    model = _vamp_model()
    seen = []
    original = VampPrior.fixed
    monkeypatch.setattr(VampPrior, "fixed", lambda self: seen.append(model.training) or original(self))
    importance_sampled_log_likelihood(model, (torch.rand(5, 10) < 0.5).float(), k=4)
    assert seen == [False] and model.training
    with torch.no_grad():
        expected = model.prior.distribution().log_prob(torch.ones(2, 3))
    with model.prior.fixed() as p:
        assert not p.logvar.requires_grad
        torch.testing.assert_close(model.prior.log_prob(torch.ones(2, 3)), expected)
