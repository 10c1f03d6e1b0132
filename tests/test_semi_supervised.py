"""Labels: the conditional VAE (Sohn et al. 2015) and Kingma et al. 2014's semi-supervised M2.

Identities first (the enumerated unlabelled bound against a slow loop, value and gradient; M2 with
one class is the plain VAE), then the data pipeline (balanced, seeded labelled subsets; unbiased
row weights), conditional generation on a toy set whose class is readable from x, the classifier's
error on the split asked for, IS of log p(x) with sampled labels against enumeration, refusals.
Resume and two ranks are in test_faults.py / test_distributed.py (FAMILIES, LABELLED)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.data import DataSplits, load_data
from vaelab.data.labels import balanced_subset, semi_supervised_batches
from vaelab.distributions.latents import GaussianLatent
from vaelab.errors import ConfigError, DataError
from vaelab.estimators import ESTIMATORS
from vaelab.evaluation import classification_error, evaluate_model, importance_sampled_log_likelihood
from vaelab.models import build_model
from vaelab.objectives import ELBO, IWAE
from vaelab.objectives.semi_supervised import unlabelled_bound
from vaelab.train import compute_bound, fit

C, D_X = 3, 6


def _model(n_classes: int = C, labels: str = "semi-supervised", **over):
    cfg = RunConfig().override(
        {
            "model.labels": labels,
            "model.encoder": {"kind": "mlp", "hidden": [8]},
            "model.latent": {"kind": "gaussian", "dim": 2},
            "model.likelihood": "bernoulli",
            **over,
        }
    )
    torch.manual_seed(0)
    return build_model(cfg.model, (D_X,), n_classes=n_classes)


@pytest.fixture
def noise_free(monkeypatch):
    """z = E_q[z] for every draw: two computations of the same bound see the same z."""
    monkeypatch.setattr(GaussianLatent, "draw", lambda self, q, n, generator=None: q.mean.expand(n, *q.mean.shape))
    monkeypatch.setattr(GaussianLatent, "draw_point", lambda self, q, generator=None: q.mean)


def _slow_unlabelled(model, x, k: int, iwae: bool):
    """sum_y q(y|x) (L(x, y) - log q(y|x)) with one conditional pass per class (a Python loop)."""
    log_qy = model.classify(x)  # (B, C)
    total = 0.0
    for c in range(model.n_classes):
        log_w = model.log_weight_terms(x, k, y=torch.full((x.shape[0],), c)).log_w  # (K, B)
        bound = torch.logsumexp(log_w, 0) - math.log(k) if iwae else log_w.mean(0)
        total = total + log_qy[:, c].exp() * (bound + model.log_py - log_qy[:, c])
    return total


@pytest.mark.parametrize("objective,k", [(ELBO(), 1), (IWAE(), 3)], ids=["elbo", "iwae-3"])
def test_enumerated_unlabelled_bound_equals_a_slow_loop_value_and_gradient(noise_free, objective, k):
    model = _model()
    x = torch.bernoulli(torch.full((5, D_X), 0.4), generator=torch.Generator().manual_seed(1))
    est, _ = compute_bound(model, x, objective, ESTIMATORS.build("reparam"), k)
    slow = _slow_unlabelled(model, x, k, isinstance(objective, IWAE))
    torch.testing.assert_close(est.value, slow.detach(), rtol=0, atol=1e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    g_fast = torch.autograd.grad(est.inference.mean(), params, allow_unused=True)
    g_slow = torch.autograd.grad(slow.mean(), params, allow_unused=True)
    for a, b in zip(g_fast, g_slow):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert any(b is not None and b.abs().sum() > 0 for b in g_slow[-4:])  # the classifier is trained


def test_unlabelled_bound_is_the_expectation_plus_entropy():
    g = torch.Generator().manual_seed(0)
    bounds, logits = torch.randn(4, 7, generator=g), torch.randn(7, 4, generator=g)
    log_qy = torch.log_softmax(logits, -1)
    q = log_qy.exp()
    expected = (q * (bounds.T - math.log(4))).sum(-1) - (q * log_qy).sum(-1)  # E_q[L] + H(q)
    torch.testing.assert_close(unlabelled_bound(bounds, log_qy, -math.log(4)), expected)
    with pytest.raises(ValueError, match="bounds"):
        unlabelled_bound(bounds, log_qy.T, 0.0)


def _fold_label_column(cond_linear, plain_linear, n_in: int) -> None:
    """A one-class one-hot input is a constant 1: its weight column is an extra bias."""
    with torch.no_grad():
        plain_linear.weight.copy_(cond_linear.weight[:, :n_in])
        plain_linear.bias.copy_(cond_linear.bias + cond_linear.weight[:, n_in])


def test_m2_with_one_class_is_the_plain_vae_bound(noise_free):
    m2, vae = _model(n_classes=1), _model(labels="none", n_classes=0)
    for cond, plain, n_in in ((m2.encoder, vae.encoder, D_X), (m2.decoder, vae.decoder, 2)):
        lin_c, lin_p = (
            [mm for mm in cond.net.modules() if isinstance(mm, torch.nn.Linear)],
            [mm for mm in plain.modules() if isinstance(mm, torch.nn.Linear)],
        )
        _fold_label_column(lin_c[0], lin_p[0], n_in)
        for a, b in zip(lin_c[1:], lin_p[1:]):
            b.load_state_dict(a.state_dict())
    vae.decoder.load_state_dict(vae.decoder.state_dict())
    x = torch.bernoulli(torch.full((6, D_X), 0.5), generator=torch.Generator().manual_seed(2))
    reparam = ESTIMATORS.build("reparam")
    a, _ = compute_bound(m2, x, ELBO(), reparam, 1)
    b, _ = compute_bound(vae, x, ELBO(), reparam, 1)
    torch.testing.assert_close(a.value, b.value, rtol=0, atol=1e-5)  # log p(y) = 0, H(q(y|x)) = 0


def test_balanced_subset_is_balanced_seeded_and_inside_the_training_split():
    data = load_data(RunConfig().override({"data.kind": "digits"}).data)
    picked = balanced_subset(data.train_labels, 50, seed=3)
    assert picked.unique().numel() == 50 and int(picked.max()) < data.train.shape[0]
    assert data.train_labels[picked].bincount().tolist() == [5] * 10
    assert torch.equal(picked, balanced_subset(data.train_labels, 50, seed=3))
    assert not torch.equal(picked, balanced_subset(data.train_labels, 50, seed=4))
    rows = {tuple(r.flatten().tolist()) for r in data.train[picked]}
    assert not rows & {tuple(r.flatten().tolist()) for r in data.valid}  # disjoint from the validation set
    for bad in (55, -10):
        with pytest.raises(DataError, match="multiple of the 10 classes"):
            balanced_subset(data.train_labels, bad, seed=0)
    with pytest.raises(DataError, match="fewer than"):
        balanced_subset(data.train_labels, 10 * 200, seed=0)


def test_semi_supervised_batches_cover_every_unlabelled_point_once_with_unbiased_weights():
    n = 103
    x, labels = torch.rand(n, 4), torch.arange(n) % 2
    labelled = balanced_subset(labels, 6, seed=0)
    gen = torch.Generator().manual_seed(0)
    seen_u, seen_l = [], []
    for b in semi_supervised_batches(x, labels, labelled, 20, 4, gen):
        lab = b.y >= 0
        assert int(lab.sum()) == 4 and torch.equal(b.y[lab], labels[b.index[lab]])
        assert torch.equal(b.x, x[b.index])
        assert b.weight.mean().item() == pytest.approx(1.0)  # (N_u / N) + (N_l / N)
        assert b.label_weight[lab].mean().item() * lab.float().mean().item() == pytest.approx(1.0)
        seen_u += b.index[~lab].tolist()
        seen_l += b.index[lab].tolist()
    assert sorted(seen_u) == sorted(set(range(n)) - set(labelled.tolist()))
    assert set(seen_l) == set(labelled.tolist())  # 5 batches x 4 = 20 draws cycle through all 6
    replay = [b.index for b in semi_supervised_batches(x, labels, labelled, 20, 4, torch.Generator().manual_seed(0))]
    first = [b.index for b in semi_supervised_batches(x, labels, labelled, 20, 4, torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(replay, first))


def _toy_splits(n: int = 600, c: int = 4, seed: int = 0) -> DataSplits:
    """x = 3 e_y + small noise: the class is the argmax of x."""
    g = torch.Generator().manual_seed(seed)

    def draw(m):
        y = torch.randint(c, (m,), generator=g)
        return 3.0 * torch.nn.functional.one_hot(y, c).float() + 0.1 * torch.randn(m, c, generator=g), y

    (tr, ytr), (va, yva), (te, yte) = draw(n), draw(200), draw(200)
    return DataSplits(tr, va, te, ytr, yva, yte, info={"source": "toy"})


def test_conditional_sampling_produces_the_requested_class(tmp_path):
    cfg = RunConfig().override(
        {
            "model.labels": "conditional",
            "model.encoder": {"kind": "mlp", "hidden": [16]},
            "model.latent": {"kind": "gaussian", "dim": 2},
            "train.epochs": 15,
            "train.batch_size": 50,
            "train.lr": 3e-3,
        }
    )
    res = fit(cfg, tmp_path / "cvae", data=_toy_splits(), quiet=True, tensorboard=False)
    torch.manual_seed(0)
    for c in range(4):
        x = res.model.sample(50, mean=True, y=torch.full((50,), c))
        assert (x.argmax(-1) == c).float().mean() > 0.95, c
    with pytest.raises(DataError, match="needs labels"):
        res.model.log_weight_terms(torch.zeros(3, 4), 1)


def test_m2_classifies_a_toy_set_and_reports_the_error_of_the_split_asked_for(tmp_path):
    cfg = RunConfig().override(
        {
            "model.labels": "semi-supervised",
            "data.labelled": 8,
            "model.encoder": {"kind": "mlp", "hidden": [16]},
            "model.latent": {"kind": "gaussian", "dim": 2},
            "train.epochs": 10,
            "train.batch_size": 50,
            "train.labelled_batch": 8,
            "train.lr": 3e-3,
        }
    )
    data = _toy_splits()
    res = fit(cfg, tmp_path / "m2", data=data, quiet=True, tensorboard=False)
    assert res.history[-1]["valid_error"] < 0.05
    out = evaluate_model(res.model, data.test, k=20, iwae_k=4, y=data.test_labels)
    direct = classification_error(res.model, data.test, data.test_labels)
    assert out["error"] == direct.error and out["error_se"] == pytest.approx(direct.se)
    flipped = (data.test_labels + 1) % 4  # the error is against the labels of the split given
    assert evaluate_model(res.model, data.test, k=20, iwae_k=4, y=flipped)["error"] > 0.9


def _log_mean_exp_and_se(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log mean_k w_k over axis 0 and its delta-method standard error sd(w) / (mean(w) sqrt(K))."""
    k = log_w.shape[0]
    w = (log_w - log_w.max(0).values).exp()  # (K, B)
    return torch.logsumexp(log_w, 0) - math.log(k), w.std(0) / (w.mean(0) * math.sqrt(k))


@torch.no_grad()
def test_is_with_sampled_labels_matches_enumerating_them():
    """log p(x) = log sum_y p(y) p(x|y): per-class IS estimates summed exactly, against IS over the
    joint proposal q(y|x) q(z|x, y). Tolerance: 4 standard errors of the difference (delta method)."""
    model = _model()
    x = torch.bernoulli(torch.full((8, D_X), 0.5), generator=torch.Generator().manual_seed(5))
    torch.manual_seed(1)
    joint, se_joint = _log_mean_exp_and_se(model.log_weight_terms(x, 20000).log_w)
    parts = [_log_mean_exp_and_se(model.log_weight_terms(x, 8000, y=torch.full((8,), c)).log_w) for c in range(C)]
    log_p = torch.stack([lp for lp, _ in parts]) + model.log_py  # (C, B) log p(y) p_hat(x|y)
    exact = torch.logsumexp(log_p, 0)
    share = (log_p - exact).exp()  # each class's share of p_hat(x)
    se_exact = (share**2 * torch.stack([se for _, se in parts]) ** 2).sum(0).sqrt()
    se = (se_joint**2 + se_exact**2).sqrt()
    assert ((joint - exact).abs() < 4 * se).all(), (joint - exact) / se
    via_api = importance_sampled_log_likelihood(model, x, k=20000, iwae_k=1, seed=3).per_point  # M2 path: q = None
    assert ((via_api - exact).abs() < 4 * (se_joint**2 + se**2).sqrt()).all()
    assert se.max() < 0.05  # the test has power: a bias of a tenth of a nat would fail it


@pytest.mark.parametrize(
    "over,match",
    [
        ({"model.prior": {"kind": "vamp", "components": 5}}, "pseudo-inputs carry no labels"),
        ({"data.labelled": 10, "model.labels": "none"}, "data.labelled has no effect with model.labels"),
        ({"model.conditional_prior": True, "model.labels": "none"}, "conditional_prior has no effect"),
        ({"train.free_bits": 0.1}, "free_bits"),
        ({"train.classification_weight": 0.5, "model.labels": "none"}, "classification_weight"),
    ],
    ids=["vamp", "labelled-unlabelled", "class-prior-unlabelled", "free-bits", "alpha-unlabelled"],
)
def test_options_that_cannot_take_effect_are_refused(tmp_path, over, match):
    with pytest.raises(ConfigError, match=match):  # when the config is read, or at the latest before training
        cfg = RunConfig().override({"model.labels": "semi-supervised", "train.epochs": 1, **over})
        fit(cfg, tmp_path / "r", data=_toy_splits(100), quiet=True, tensorboard=False)


def test_a_labelled_model_on_unlabelled_data_and_labels_for_an_unlabelled_model_are_refused(tmp_path):
    data = _toy_splits(100)
    data.train_labels = None
    with pytest.raises(DataError, match="has none"):
        fit(RunConfig().override({"model.labels": "conditional"}), tmp_path / "a", data=data, quiet=True)
    with pytest.raises(DataError, match="reads none"):
        _model(labels="none", n_classes=0).posterior(torch.zeros(2, D_X), torch.zeros(2, dtype=torch.long))
    with pytest.raises(DataError, match=r"0\.\.2"):
        _model().posterior(torch.zeros(2, D_X), torch.tensor([0, 3]))


def test_learned_conditional_prior_is_trained_and_scored_per_class(noise_free):
    model = _model(labels="conditional", **{"model.conditional_prior": True})
    assert {id(p) for p in model.class_prior.parameters()} <= {id(p) for p in model.generative_parameters()}
    with torch.no_grad():
        model.class_prior.loc[1] += 2.0
    x, y = torch.ones(2, D_X), torch.tensor([0, 1])
    terms = model.log_weight_terms(x, 1, y=y)
    z = terms.z[0]  # (B, D)
    expected = torch.distributions.Normal(model.class_prior.loc[y], 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(terms.log_pz[0], expected)
    p = torch.distributions.Independent(torch.distributions.Normal(model.class_prior.loc[y], 1.0), 1)
    torch.testing.assert_close(terms.kl(analytic=True)[0], torch.distributions.kl_divergence(terms.posterior, p))


def _exact_unlabelled(model, x, k: int, iwae: bool) -> torch.Tensor:
    """U(x) with the expectation over K-tuples of a binary z enumerated exactly (differentiable in
    q(z|x, y)'s parameters too), for every class: the reference for score-function estimators."""
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=2)))  # (4, 2)
    b = x.shape[0]
    tuples = torch.tensor(list(itertools.product(range(4), repeat=k)))  # (T, K)
    log_qy, per_class = model.classify(x), []
    for c in range(model.n_classes):
        y = torch.full((b,), c)
        z = states.unsqueeze(1).expand(4, b, 2)  # (4, B, 2)
        log_q = model.posterior(x, y).log_prob(z)  # (4, B)
        log_w = model.likelihood.log_prob(model.decode(z, y=y), x) + model.prior.log_prob(z) - log_q  # (4, B)
        lw, lq = log_w[tuples], log_q[tuples].sum(1)  # (T, K, B), (T, B)
        bound = torch.logsumexp(lw, 1) - math.log(k) if iwae else lw.mean(1)  # (T, B)
        per_class.append((lq.exp() * bound).sum(0))  # (B,)
    return unlabelled_bound(torch.stack(per_class), log_qy, model.log_py)


@pytest.mark.slow
@pytest.mark.parametrize(
    "estimator,objective,k", [("reinforce", ELBO(), 1), ("vimco", IWAE(), 2)], ids=["reinforce", "vimco"]
)
def test_score_function_gradients_of_m2_agree_with_exact_enumeration(estimator, objective, k):
    """A discrete z: each per-class bound by a score-function estimator, the sum over y exact. The mean
    of R estimates of every parameter's gradient is within 5 standard errors of the exact gradient."""
    model = _model(**{"model.latent": {"kind": "bernoulli", "dim": 2}, "model.prior": "bernoulli"})
    with torch.no_grad():  # sharp q(z|x, y) and p(x|z, y): gradients well above the estimators' noise
        for p in model.parameters():
            p.mul_(3.0)
    x = torch.bernoulli(torch.full((2, D_X), 0.5), generator=torch.Generator().manual_seed(7))
    est_obj = ESTIMATORS.build(estimator)
    groups = model.parameter_groups()
    exact = _exact_unlabelled(model, x, k, isinstance(objective, IWAE)).mean()
    params = [*groups["inference"], *groups["generative"]]
    reference = torch.autograd.grad(exact, params)
    torch.manual_seed(0)
    draws = []
    for _ in range(1000):
        est, _ = compute_bound(model, x, objective, est_obj, k)
        g_inf = torch.autograd.grad(est.inference.mean(), groups["inference"], retain_graph=True)
        g_gen = torch.autograd.grad(est.generative.mean(), groups["generative"])
        draws.append(torch.cat([g.flatten() for g in (*g_inf, *g_gen)]))
    g = torch.stack(draws)  # (R, P)
    mean, se = g.mean(0), g.std(0) / math.sqrt(g.shape[0])
    ref = torch.cat([r.flatten() for r in reference])
    z = (mean - ref).abs() / (se + 1e-4)
    assert (z < 5).all(), f"max {z.max():.1f} s.e. off"
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    at = sum(p.numel() for p in model.classifier.parameters())  # the encoder follows the classifier in the group
    ratio = ref[at : at + n_enc].abs() / (se[at : at + n_enc] + 1e-9)
    assert ratio.max() > 10  # power: q(z|x, y)'s gradient is resolved


def test_a_conv_network_reads_the_label_as_channels_and_text_models_refuse_labels():
    cfg = RunConfig().override(
        {
            "model.labels": "conditional",
            "model.encoder": {"kind": "conv", "channels": [4, 8]},
            "model.latent": {"kind": "gaussian", "dim": 2},
            "model.likelihood": "bernoulli",
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 8, 8), n_classes=3)
    assert model.encoder.channels and tuple(model.encoder.net.in_shape) == (1 + 3, 8, 8)  # image + 3 label planes
    x = torch.rand(4, 1, 8, 8)
    q0, q1 = model.posterior(x, torch.zeros(4, dtype=torch.long)), model.posterior(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(q0.mean, q1.mean)  # the label reaches the conv encoder
    assert model.sample(5, y=torch.arange(5) % 3).shape == (5, 1, 8, 8)
    text = RunConfig().override({"model.labels": "conditional", "model.encoder": "lstm", "model.likelihood": "categorical"})
    with pytest.raises(ConfigError, match="labelled text models"):
        build_model(text.model, (12,), vocab_size=20, n_classes=3)


def test_decoder_label_use_is_zero_for_a_decoder_that_ignores_the_label():
    from vaelab.evaluation import decoder_label_use

    model = _model(labels="conditional")
    x, y = torch.bernoulli(torch.full((20, D_X), 0.5), generator=torch.Generator().manual_seed(3)), torch.arange(20) % C
    assert abs(decoder_label_use(model, x, y).nats) > 1e-3
    first = next(m for m in model.decoder.net.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        first.weight[:, 2:] = 0.0  # the one-hot columns (z has 2 dimensions)
    assert decoder_label_use(model, x, y).nats == 0.0


def test_train_step_refuses_free_bits_for_m2_instead_of_ignoring_them():
    model = _model()
    with pytest.raises(ConfigError, match="free bits"):
        compute_bound(model, torch.zeros(2, D_X), ELBO(), ESTIMATORS.build("reparam"), 1, free_bits=0.1)


def test_m2_with_two_layers_has_posterior_means_for_each_and_its_diagnostics_run():
    """Unlabelled E_q[z_l|x] = sum_y q(y|x) E[z_l|x, y] for every layer (the config fuzzer found the upper
    layer missing, which broke validation's active-unit count of a two-layer M2)."""
    from vaelab.evaluation import latent_diagnostics

    torch.manual_seed(0)
    model = _model(**{"model.upper_z_dims": [2], "model.upper_hidden": [8]})
    x = torch.rand(5, D_X).bernoulli()
    g = torch.Generator().manual_seed(0)
    means = model.posterior_means(x, 3, g)
    assert [tuple(m.shape) for m in means] == [(5, model.latent.flat_dim), (5, 2)]
    q_y = model.classify(x).exp()  # (B, C)
    by_hand = sum(q_y[:, c : c + 1] * model.latent.mean(model.posterior(x, torch.full((5,), c))) for c in range(C))
    assert torch.allclose(means[0], by_hand, atol=1e-6)
    assert latent_diagnostics(model, x).active_units_per_layer.__len__() == 2
