import math

import pytest
import torch

from vaelab.distributions import GaussianLatent, MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from vaelab.errors import ConfigError
from vaelab.nets import mlp

L2 = GaussianLatent(2)


def diag_gaussian(mean, logvar):
    return GaussianLatent(mean.shape[-1]).distribution(torch.cat([mean, logvar], dim=-1))


def _integrate_2d(log_prob, lim=12.0, n=601):
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)
    dens = log_prob(zz.float()).double().exp().reshape(n, n)
    return torch.trapezoid(torch.trapezoid(dens, g, dim=1), g).item()


def _vamp(n_components=5):
    torch.manual_seed(0)
    enc = mlp(3, [8], 4)
    prior = VampPrior(L2, x_shape=(3,), components=n_components, pseudo_init=torch.randn(n_components, 3))
    prior.attach_encoder(lambda u: L2.distribution(enc(u)))
    return prior


@pytest.mark.parametrize(
    "make",
    [
        lambda: MixtureOfGaussiansPrior(L2, components=3, weights="trainable", init_scale=2.0),
        lambda: MixtureOfGaussiansPrior(L2, components=2, weights="fixed"),
        _vamp,
        lambda: StandardNormalPrior(L2),
    ],
)
def test_prior_density_integrates_to_one_in_2d(make):
    torch.manual_seed(1)
    prior = make()
    with torch.no_grad():
        assert abs(_integrate_2d(prior.log_prob) - 1.0) < 1e-3


def test_mog_log_prob_matches_manual_mixture():
    torch.manual_seed(0)
    p = MixtureOfGaussiansPrior(L2, components=2, weights="fixed", fixed_weights=(0.3, 0.7))
    z = torch.randn(10, 2)
    comps = [diag_gaussian(p.means[c], p.logvars[c]).log_prob(z) for c in range(2)]
    manual = torch.logsumexp(torch.stack([math.log(0.3) + comps[0], math.log(0.7) + comps[1]]), dim=0)
    torch.testing.assert_close(p.log_prob(z), manual)


def test_mog_weights_fixed_vs_trainable():
    fixed = MixtureOfGaussiansPrior(L2, components=2, weights="fixed")
    assert "logits" not in dict(fixed.named_parameters())
    torch.testing.assert_close(fixed.weights, torch.tensor([0.5, 0.5]))
    trainable = MixtureOfGaussiansPrior(L2, components=2, weights="trainable")
    assert "logits" in dict(trainable.named_parameters())
    with pytest.raises(ConfigError, match="sum"):
        MixtureOfGaussiansPrior(L2, components=2, fixed_weights=(0.5, 0.6))


def test_vamp_prior_is_mean_of_encoder_posteriors_at_pseudo_inputs():
    prior = _vamp(4)
    z = torch.randn(6, 2)
    q = prior._encoder(prior.inputs)  # batch (4,)
    manual = torch.logsumexp(q.log_prob(z[:, None, :]), dim=1) - math.log(4)  # (6,)
    torch.testing.assert_close(prior.log_prob(z), manual)
    # pseudo-inputs receive gradients
    prior.log_prob(z).sum().backward()
    assert prior.pseudo_inputs.grad is not None and prior.pseudo_inputs.grad.abs().sum() > 0


def test_analytic_kl_equals_monte_carlo_kl_within_standard_error():
    torch.manual_seed(0)
    q = diag_gaussian(torch.randn(4, 3), torch.randn(4, 3))
    prior = StandardNormalPrior(GaussianLatent(3))
    analytic = prior.analytic_kl(q)  # (4,)
    z = q.sample((200_000,))
    kl_samples = (q.log_prob(z) - prior.log_prob(z)).double()  # (S, 4)
    mc, se = kl_samples.mean(0), kl_samples.std(0) / math.sqrt(z.shape[0])
    assert ((mc - analytic.double()).abs() < 4 * se).all()


def test_non_gaussian_priors_have_no_analytic_kl():
    q = diag_gaussian(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(NotImplementedError, match="mc"):
        MixtureOfGaussiansPrior(L2).analytic_kl(q)


def test_prior_samples_have_the_prior_moments():
    torch.manual_seed(0)
    p = MixtureOfGaussiansPrior(L2, components=2, weights="fixed", fixed_weights=(0.3, 0.7))
    s = p.sample(100_000)
    expected = 0.3 * p.means[0] + 0.7 * p.means[1]
    se = s.std(0) / math.sqrt(len(s))
    assert ((s.mean(0) - expected).abs() < 4 * se).all()


def test_standard_normal_closed_form_kl_matches_torch_kl_divergence():
    from torch.distributions import kl_divergence

    q = diag_gaussian(3 * torch.randn(5, 4), 2 * torch.randn(5, 4))
    p = StandardNormalPrior(GaussianLatent(4))
    torch.testing.assert_close(p.analytic_kl(q), kl_divergence(q, p.distribution()))


def test_analytic_kl_checks_dimensions():
    q = diag_gaussian(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="event shape"):
        StandardNormalPrior(L2).analytic_kl(q)


@pytest.mark.parametrize("constraint,lo,hi", [("hardtanh", 0.0, 1.0), ("sigmoid", 0.0, 1.0), ("auto", 0.0, 1.0)])
def test_vamp_pseudo_inputs_stay_in_the_data_range(constraint, lo, hi):
    prior = VampPrior(L2, x_shape=(3,), x_range=(lo, hi), components=4, constraint=constraint, pseudo_init=torch.rand(4, 3))
    with torch.no_grad():
        prior.pseudo_inputs.add_(5 * torch.randn(4, 3))  # as an optimizer step far out of range would
    u = prior.inputs
    assert (u >= lo).all() and (u <= hi).all()
    free = VampPrior(L2, x_shape=(3,), x_range=None, components=4, pseudo_init=torch.rand(4, 3))
    with torch.no_grad():
        free.pseudo_inputs.add_(5)
    assert (free.inputs > 1).all()  # real-valued data: unconstrained
    with pytest.raises(ConfigError, match="bounded data"):
        VampPrior(L2, x_shape=(3,), x_range=None, components=4, constraint="hardtanh")


def test_vamp_pseudo_inputs_are_constrained_after_training_on_binary_data(tmp_path):
    from vaelab.config import RunConfig
    from vaelab.train import fit

    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.likelihood": "bernoulli",
            "model.prior": "vamp",
            "model.prior.components": 20,
            "train.epochs": 3,
            "train.lr": 0.05,
            "model.encoder.hidden": [16],
            "train.num_threads": 1,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    raw, u = res.model.prior.pseudo_inputs, res.model.prior.inputs
    assert ((raw < 0) | (raw > 1)).float().mean() > 0.01  # the optimizer pushed values out of range ...
    assert ((u >= 0) & (u <= 1)).all()  # ... and the prior only ever sees them clipped


def test_diagonal_normal_is_the_normal_of_its_log_variance_in_value_and_gradient():
    from torch.distributions import Independent, Normal

    from vaelab.distributions import stopped
    from vaelab.distributions.latents import DiagonalNormal

    torch.manual_seed(0)
    loc, logvar = torch.randn(3, 4, requires_grad=True), (2 * torch.randn(3, 4)).requires_grad_()
    z = torch.randn(5, 3, 4)  # (S, B, D)
    ours, ref = DiagonalNormal(loc, logvar), Normal(loc, torch.exp(0.5 * logvar))
    torch.testing.assert_close(ours.log_prob(z), ref.log_prob(z))
    g_ours = torch.autograd.grad(ours.log_prob(z).sum(), [loc, logvar])
    g_ref = torch.autograd.grad(ref.log_prob(z).sum(), [loc, logvar])
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)
    assert type(ours.expand((2, 3, 4))) is Normal and ours.expand((2, 3, 4)).batch_shape == (2, 3, 4)
    assert type(stopped(Independent(ours, 1)).base_dist) is Normal
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    with pytest.raises(ValueError, match="one shape"):
        DiagonalNormal(loc, logvar[:, :2])


def test_standard_normal_log_prob_and_kl_match_torch_for_any_normal_posterior():
    from torch.distributions import Independent, Normal, kl_divergence

    torch.manual_seed(0)
    p = StandardNormalPrior(GaussianLatent(4))
    z = 3 * torch.randn(6, 5, 4)
    torch.testing.assert_close(p.log_prob(z), p.distribution().log_prob(z))
    q = Independent(Normal(torch.randn(5, 4), torch.rand(5, 4) + 0.1), 1)  # a plain Normal: no logvar kept
    torch.testing.assert_close(p.analytic_kl(q), kl_divergence(q, p.distribution()))


def test_gaussian_latent_clips_the_log_variance_like_a_hardtanh():
    latent = GaussianLatent(2, min_logvar=-6.0, max_logvar=2.0)
    params = torch.tensor([[0.0, 0.0, -9.0, 1.0], [0.0, 0.0, 5.0, -6.5]], requires_grad=True)
    q = latent.distribution(params)
    assert q.base_dist.logvar.tolist() == [[-6.0, 1.0], [2.0, -6.0]]
    q.base_dist.logvar.sum().backward()
    assert params.grad[:, 2:].tolist() == [[0.0, 1.0], [0.0, 0.0]]  # no gradient where clipped
    assert GaussianLatent(2).logvar_range is None
    with pytest.raises(ConfigError, match="min_logvar must be below max_logvar"):
        GaussianLatent(2, min_logvar=1.0, max_logvar=1.0)


@pytest.mark.parametrize("constraint", ["hardtanh", "sigmoid"])
def test_vamp_noise_init_ignores_the_training_points(constraint):
    data = torch.ones(5, 3)
    torch.manual_seed(0)
    noise = VampPrior(
        L2, x_shape=(3,), x_range=(0.0, 1.0), components=5, pseudo_init=data, constraint=constraint, init="noise"
    )
    assert (noise.inputs - 0.5).abs().max() < 0.05  # gray images, not the ones given
    from_data = VampPrior(L2, x_shape=(3,), x_range=(0.0, 1.0), components=5, pseudo_init=data, constraint=constraint)
    assert (from_data.inputs > 0.9).all()
    with pytest.raises(ConfigError, match="model.prior.init must be"):
        VampPrior(L2, x_shape=(3,), components=5, init="zeros")
