"""Two stochastic layers: exact log p(x) of a linear-Gaussian hierarchy matched by IS; every
objective trains with every prior; the IWAE learning-rate schedule."""

import math

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.evaluation import importance_sampled_log_likelihood, latent_diagnostics
from vaelab.models import build_vae
from vaelab.train import fit, scheduled_lr


class LinearHierarchy:
    """z2 ~ N(0, 1), z1 | z2 ~ N(A z2 + a, diag v1), x | z1 ~ N(W z1 + b, s2 I): p(x) is Gaussian.

    The vaelab model uses linear layers (hidden = [], upper_hidden = []); q(z2|z1) is set to the
    exact p(z2|z1) and q(z1|x) to the exact marginal posterior's mean with an over-dispersed
    diagonal variance, a good importance proposal."""

    def __init__(self, x_dim=3, d1=2, s2=0.3, seed=0):
        g = torch.Generator().manual_seed(seed)
        f64 = dict(generator=g, dtype=torch.float64)
        self.A, self.a = torch.randn(d1, 1, **f64), torch.randn(d1, **f64)
        self.v1 = 0.5 + torch.rand(d1, **f64)
        self.W, self.b = torch.randn(x_dim, d1, **f64), torch.randn(x_dim, **f64)
        self.s2, self.x_dim, self.d1 = s2, x_dim, d1
        self.cov_z1 = self.A @ self.A.T + torch.diag(self.v1)
        self.mean_x = self.W @ self.a + self.b
        self.cov_x = self.W @ self.cov_z1 @ self.W.T + s2 * torch.eye(x_dim, dtype=torch.float64)

    def log_px(self, x):
        return torch.distributions.MultivariateNormal(self.mean_x, self.cov_x).log_prob(x.double())

    def sample(self, n, seed=1):
        return torch.distributions.MultivariateNormal(self.mean_x, self.cov_x).sample((n,)).float()

    def vae(self):
        cfg = RunConfig().replace(z_dim=self.d1, hidden=[], upper_z_dims=[1], upper_hidden=[],
                                  likelihood="gaussian", fixed_variance=self.s2)
        model = build_vae(cfg.model, self.x_dim)
        d1 = self.d1
        # posterior z1 | x: covariance C = (cov_z1^-1 + W^T W / s2)^-1, mean = a + C W^T (x - mean_x) / s2
        C = torch.linalg.inv(torch.linalg.inv(self.cov_z1) + self.W.T @ self.W / self.s2)
        G = C @ self.W.T / self.s2  # (d1, x_dim)
        # q(z2 | z1) = p(z2 | z1): precision 1 + A^T V^-1 A, mean P^-1 A^T V^-1 (z1 - a)
        prec = 1 + (self.A.T / self.v1) @ self.A  # (1, 1)
        H = torch.linalg.inv(prec) @ (self.A.T / self.v1)  # (1, d1)
        with torch.no_grad():
            enc1 = model.encoder.net[0]
            enc1.weight.zero_(); enc1.bias.zero_()
            enc1.weight[:d1] = G.float()
            enc1.bias[:d1] = (self.a - G @ self.mean_x).float()
            enc1.bias[d1:] = torch.log(1.5 * torch.diagonal(C)).float()
            enc2 = model.upper_encoders[0].net[0]
            enc2.weight.zero_(); enc2.bias.zero_()
            enc2.weight[:1] = H.float()
            enc2.bias[:1] = (-(H @ self.a)).float()
            enc2.bias[1:] = -torch.log(prec).flatten().float()
            dec2 = model.upper_decoders[0].net[0]  # p(z1 | z2)
            dec2.weight.zero_(); dec2.bias.zero_()
            dec2.weight[:d1] = self.A.float()
            dec2.bias[:d1] = self.a.float()
            dec2.bias[d1:] = torch.log(self.v1).float()
            model.decoder[0].weight.copy_(self.W.float())
            model.decoder[0].bias.copy_(self.b.float())
        return model


def test_is_estimate_matches_exact_log_px_with_two_layers():
    h = LinearHierarchy()
    model = h.vae()
    x = h.sample(200)
    res = importance_sampled_log_likelihood(model, x, k=2000, seed=0)
    diff = res.per_point.double() - h.log_px(x)  # (N,) IS - exact, each an average of 2000 weights
    se = diff.std() / math.sqrt(len(diff))
    assert abs(diff.mean()) < 4 * se + 2e-3
    assert res.elbo_mean < res.mean  # the gap KL(q || p(h|x)) > 0 with a diagonal q


def test_two_layer_shapes_and_active_units_per_layer():
    cfg = RunConfig().replace(z_dim=4, hidden=[8], upper_z_dims=[3, 2], upper_hidden=[5], likelihood="bernoulli")
    model = build_vae(cfg.model, 6)
    assert model.z_dims == (4, 3, 2) and model.n_layers == 3 and model.z_dim == 2
    x = (torch.rand(7, 6) < 0.5).float()
    terms = model.log_weight_terms(x, 5)
    assert [tuple(z.shape) for z in terms.zs] == [(5, 7, 4), (5, 7, 3), (5, 7, 2)]
    assert terms.log_w.shape == (5, 7) and torch.isfinite(terms.log_w).all()
    torch.testing.assert_close(terms.log_w_stopped, terms.log_w)
    assert model.sample(9).shape == (9, 6)
    diag = latent_diagnostics(model, x)
    assert len(diag.active_units_per_layer) == 3 and diag.activity.shape == (9,)
    assert sum(diag.active_units_per_layer) == diag.active_units


@pytest.mark.parametrize("prior", ["standard_normal", "mog", "vamp"])
@pytest.mark.parametrize("objective,k,m", [("elbo", 2, 1), ("iwae", 3, 1), ("miwae", 2, 2), ("ciwae", 3, 1),
                                           ("piwae", 2, 2)])
def test_every_bound_trains_with_every_prior(tmp_path, prior, objective, k, m):
    cfg = RunConfig().replace(n_train=300, n_test=50, z_dim=2, hidden=[16], prior=prior, prior_components=3,
                              objective=objective, n_samples=k, n_groups=m, epochs=2, batch_size=50,
                              estimator="stl" if prior == "vamp" else "dreg", diagnostics=False, valid_iwae_k=20)
    res = fit(cfg, tmp_path / "run", quiet=True, tensorboard=False)
    first, last = res.history[0], res.history[-1]
    assert math.isfinite(last["valid_iwae"]) and last["valid_iwae"] >= last["valid_elbo"] - 0.5
    assert last["train_bound"] > first["train_bound"] - 0.5


def test_two_layer_vamp_prior_trains(tmp_path):
    cfg = RunConfig().replace(n_train=200, n_test=50, z_dim=3, hidden=[16], upper_z_dims=[2], upper_hidden=[8],
                              prior="vamp", prior_components=4, objective="iwae", n_samples=3, epochs=1,
                              batch_size=50, diagnostics=True)
    res = fit(cfg, tmp_path / "run", quiet=True, tensorboard=False)
    assert math.isfinite(res.history[-1]["valid_elbo"])


def test_iwae_schedule_has_3280_epochs_in_8_stages():
    cfg = RunConfig().replace(lr=1e-3, lr_schedule="iwae")
    lrs = [scheduled_lr(cfg, e) for e in range(3281)]
    stages = sorted(set(lrs), reverse=True)
    assert len(stages) == 8
    assert [lrs.count(v) for v in stages] == [1, 3, 9, 27, 81, 243, 729, 2187 + 1]  # epoch 3280 stays in stage 7
    assert stages[-1] == pytest.approx(1e-3 * 10 ** (-1))
    assert scheduled_lr(RunConfig().replace(lr=0.1), 500) == 0.1


@pytest.mark.parametrize("name,dims", [("iwae-1layer", (50,)), ("iwae-2layer", (100, 50))])
def test_paper_presets_build_the_papers_architecture(name, dims):
    from pathlib import Path

    from torch import nn

    from vaelab import config as C

    cfg = C.load(Path(__file__).parents[1] / "configs" / f"{name}.toml")
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.lr_schedule, cfg.train.adam_eps) == (20, 3280, "iwae", 1e-4)
    model = build_vae(cfg.model, 784)
    assert model.z_dims == dims

    def widths(m):
        return [(l.in_features, l.out_features) for l in m.modules() if isinstance(l, nn.Linear)]

    assert widths(model.encoder) == [(784, 200), (200, 200), (200, 2 * dims[0])]
    assert widths(model.decoder) == [(dims[0], 200), (200, 200), (200, 784)]
    if len(dims) == 2:
        assert widths(model.upper_encoders[0]) == [(100, 100), (100, 100), (100, 2 * 50)]
        assert widths(model.upper_decoders[0]) == [(50, 100), (100, 100), (100, 2 * 100)]
        assert all(isinstance(a, nn.Tanh) for a in model.upper_encoders[0].net if not isinstance(a, nn.Linear))
