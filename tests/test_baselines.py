"""Variance-reduced score-function estimators on the exactly enumerable binary-latent model of
test_discrete: unbiased (mean gradient = exact gradient within standard error), lower variance
than plain REINFORCE, and caught when their baseline peeks at the sample."""

import json
import math

import gradient_matrix
import pytest
import torch
from test_discrete import (
    OBJECTIVES,
    Z_CRIT,
    _flat_grad,
    assert_logs_the_true_bound,
    binary_data,
    binary_model,
    exact_bound,
    z_scores,
)

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS, RLOO, vimco_baselines
from vaelab.train import fit


def draws(estimator, objective, k, n=2000, seed=0):
    """n gradient estimates, each parameter from its own group's surrogate (as in training), and the
    exact gradient."""
    model, x = binary_model(), binary_data()
    d = gradient_matrix.draws(model, x, estimator, objective, k, chunks=n, replicas=1, seed=seed)  # (n, P)
    bound = exact_bound(model, x, 1 if type(objective).registry_name == "elbo" else k)  # (B,)
    return d, _flat_grad(bound.mean(), list(model.parameters()))


CASES = [("reinforce_ema", "elbo", 1), ("reinforce_ema", "iwae", 2), ("rloo", "elbo", 3), ("vimco", "iwae", 3)]


@pytest.mark.slow
@pytest.mark.parametrize("name,objective,k", CASES)
def test_baselined_estimators_are_unbiased_and_reduce_variance(name, objective, k):
    obj = OBJECTIVES.build(objective)
    d, exact = draws(ESTIMATORS.build(name), obj, k)
    assert z_scores(d, exact).max() < Z_CRIT
    plain, _ = draws(ESTIMATORS.build("reinforce"), obj, k)
    ratio = float(d.var(0).sum() / plain.var(0).sum())  # total variance of the gradient, vs plain REINFORCE
    assert ratio < 0.7, ratio


@pytest.mark.slow
def test_disarm_is_unbiased_and_reduces_variance_at_equal_cost():
    obj = OBJECTIVES.build("elbo")
    d, exact = draws(ESTIMATORS.build("disarm"), obj, 1)
    assert z_scores(d, exact).max() < Z_CRIT
    plain, _ = draws(ESTIMATORS.build("reinforce"), obj, 2)  # two evaluations of f, like one antithetic pair
    rloo, _ = draws(ESTIMATORS.build("rloo"), obj, 2)
    var = {name: float(g[:, :24].var(0).sum()) for name, g in [("disarm", d), ("plain", plain), ("rloo", rloo)]}
    assert var["disarm"] < 0.3 * var["plain"] and var["disarm"] < 1.1 * var["rloo"], var  # the 24 encoder numbers
    assert_logs_the_true_bound("disarm", 3, "elbo")


def test_disarm_matches_the_exact_logit_gradient_of_a_one_dimensional_expectation():
    from vaelab.estimators.disarm import disarm_logit_gradient

    torch.manual_seed(0)
    alpha = torch.tensor([[-1.3, 0.4, 2.0]])  # (B=1, D=3), f(b) = sum_i c_i b_i: exact gradient c p (1 - p)
    c = torch.tensor([2.0, -1.0, 0.5])
    g, _, _ = disarm_logit_gradient(alpha, torch.rand(200_000, 1, 3), lambda b: (b * c).sum(-1))
    p = torch.sigmoid(alpha)
    se = g.std(0) / math.sqrt(g.shape[0])
    assert ((g.mean(0) - c * p * (1 - p)).abs() < 4 * se).all()


def test_disarm_refuses_what_it_cannot_serve():
    from test_discrete import binary_model as bm

    est = ESTIMATORS.build("disarm")
    with pytest.raises(ConfigError, match="objective elbo"):
        est.check_objective(OBJECTIVES.build("iwae"), 5)
    cat = RunConfig().override(
        {
            "model.latent": {"kind": "categorical", "dim": 2, "classes": 3},
            "model.prior": "categorical",
            "model.likelihood": "bernoulli",
        }
    )
    from vaelab.models import build_model

    with pytest.raises(ConfigError, match="one layer of bernoulli latents"):
        est.check(build_model(cat.model, (4,)))
    est.check(bm())


class PeekingRLOO(RLOO):
    """Deliberately wrong: the baseline includes the sample's own value (leave-none-out)."""

    def signals(self, log_w, terms):
        s = log_w.shape[0]
        return (log_w - 0.5 * log_w.mean(0, keepdim=True) - 0.5 * log_w) / s


@pytest.mark.slow
def test_a_baseline_that_depends_on_the_sample_is_caught():
    d, exact = draws(PeekingRLOO(), OBJECTIVES.build("elbo"), 3)
    assert z_scores(d, exact).max() > Z_CRIT


def test_vimco_baselines_match_the_leave_one_out_formula():
    log_w = torch.tensor([[0.0], [1.0], [3.0]])  # (K=3, B=1)
    e = math.exp
    want = [
        math.log((e(2.0) + e(1.0) + e(3.0)) / 3),  # w_1 replaced by exp(mean(1, 3))
        math.log((e(0.0) + e(1.5) + e(3.0)) / 3),  # w_2 replaced by exp(mean(0, 3))
        math.log((e(0.0) + e(1.0) + e(0.5)) / 3),
    ]  # w_3 replaced by exp(mean(0, 1))
    torch.testing.assert_close(vimco_baselines(log_w).flatten(), torch.tensor(want))


@pytest.mark.parametrize(
    "estimator,objective,k,match",
    [
        ("vimco", "iwae", 1, "K >= 2 samples per group"),
        ("vimco", "elbo", 4, "K >= 2 samples per group"),
        ("rloo", "iwae", 4, "at least two independent groups"),
        ("rloo", "elbo", 1, "at least two independent groups"),
    ],
)
def test_estimators_refuse_sample_counts_they_cannot_use(tmp_path, estimator, objective, k, match):
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 4},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "train.estimator": estimator,
            "train.objective": objective,
            "train.n_samples": k,
        }
    )
    with pytest.raises(ConfigError, match=match):
        fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)


def test_the_moving_average_baseline_tracks_the_signal():
    est = ESTIMATORS.build("reinforce_ema", {"decay": 0.5})
    obj = OBJECTIVES.build("elbo")
    batches = [torch.tensor([[1.0, 3.0, 8.0], [3.0, 5.0, 0.0]]), torch.full((2, 3), 10.0), torch.full((2, 3), -2.0)]
    expected, b = [], None
    for log_w in batches:  # a varying input: each batch's mean enters after the batch has used the old b
        signals = est.signals(log_w, obj.terms(2))
        torch.testing.assert_close(signals, (log_w - (b if b is not None else 0.0)) / 2)  # c/m = 1/2 per sample
        mean = float(log_w.mean())
        b = mean if b is None else 0.5 * b + 0.5 * mean
        expected.append(b)
        assert est.baselines[0] == pytest.approx(b)
    assert expected == pytest.approx([10 / 3, 10 / 6 + 5, (10 / 6 + 5) / 2 - 1])
    with pytest.raises(ConfigError, match="decay must be in"):
        ESTIMATORS.build("reinforce_ema", {"decay": 1.0})


def _warm_nvil(steps=300):
    """NVIL with its baseline network fitted to the toy model's learning signal (encoder fixed)."""
    est = ESTIMATORS.build("nvil", {"hidden": [8], "normalize": False})
    model, x = binary_model(), binary_data()
    est.setup(model)
    opt = torch.optim.Adam(est.net.parameters(), 1e-2)
    torch.manual_seed(1)
    for _ in range(steps):
        bound = est(model.log_weight_terms(x, 1, reparameterize=False), OBJECTIVES.build("elbo"))
        opt.zero_grad()
        (-bound.extra["baseline"].mean()).backward()
        opt.step()
    return est


@pytest.mark.slow
def test_nvil_is_unbiased_and_its_learned_baseline_reduces_variance():
    est = _warm_nvil()
    obj = OBJECTIVES.build("elbo")
    d, exact = draws(est, obj, 1)
    assert z_scores(d, exact).max() < Z_CRIT
    plain, _ = draws(ESTIMATORS.build("reinforce"), obj, 1)
    assert float(d.var(0).sum() / plain.var(0).sum()) < 0.5


@pytest.mark.parametrize("estimator", ["nvil", "reinforce_ema"])
def test_resume_is_bit_identical_with_estimator_state(tmp_path, estimator):
    base = {
        "data.kind": "digits",
        "model.latent": {"kind": "bernoulli", "dim": 6},
        "model.prior": "bernoulli",
        "model.likelihood": "bernoulli",
        "model.encoder.hidden": [16],
        "train.estimator": estimator,
        "train.num_threads": 1,
        "train.diagnostics": False,
    }
    full = fit(RunConfig().override({**base, "train.epochs": 3}), tmp_path / "full", quiet=True, tensorboard=False)
    fit(RunConfig().override({**base, "train.epochs": 1}), tmp_path / "part", quiet=True, tensorboard=False)
    resumed = fit(
        RunConfig().override({**base, "train.epochs": 3}), tmp_path / "part", resume=True, quiet=True, tensorboard=False
    )
    assert [r["valid_elbo"] for r in resumed.history] == [r["valid_elbo"] for r in full.history]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_nvil_trains_its_baseline_in_its_own_parameter_group(tmp_path):
    from vaelab.checkpoint import load_checkpoint

    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 6},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "train.estimator": "nvil",
            "train.epochs": 2,
            "train.num_threads": 1,
        }
    )
    fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    ckpt = load_checkpoint(tmp_path / "r" / "last.pt")
    names = [n for g in ckpt["optimizer"]["param_groups"] for n in g["name"].split("+")]  # (one torch group: same options)
    assert names == ["inference", "generative", "baseline"]
    net = ckpt["estimator"]["net"]
    assert net and ckpt["estimator"]["seen"] and any(v.abs().sum() > 0 for v in net.values())
    with pytest.raises(ConfigError, match="'nvil' needs a bound with one term"):
        fit(cfg.override({"train.objective": "ciwae", "train.n_samples": 2}), tmp_path / "c", quiet=True)


def test_gradient_variance_measures_the_estimators_spread():
    from vaelab.evaluation import gradient_variance

    model, x = binary_model(), binary_data()
    plain = gradient_variance(model, x, "reinforce", "elbo", 3, draws=400)
    rloo = gradient_variance(model, x, "rloo", "elbo", 3, draws=400)
    assert abs(plain["total"] - sum(plain["per_tensor"].values())) < 1e-9
    assert set(plain["per_tensor"]) == {"encoder.0.weight", "encoder.0.bias"}
    assert rloo["total"] < 0.5 * plain["total"]  # the leave-one-out baseline, measured by the same tool
    d, _ = draws(ESTIMATORS.build("reinforce"), OBJECTIVES.build("elbo"), 3, n=400)  # the same draws by hand
    assert plain["total"] == pytest.approx(float(d[:, :24].var(0).sum()), rel=1e-6)  # 24 encoder numbers


def test_gradient_variance_is_logged_during_training_from_the_training_estimator(tmp_path):
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 8},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "train.epochs": 2,
            "train.estimator": "nvil",
            "model.encoder.hidden": [16],
            "train.num_threads": 1,
            "train.grad_variance_every": 7,
            "train.grad_variance_draws": 20,
            "train.grad_variance_points": 30,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "grad_variance.jsonl").read_text().splitlines()]
    steps = res.history[-1]["step"]
    assert [r["step"] for r in rows] == list(range(7, steps + 1, 7))
    assert all(r["estimator"] == "nvil" and r["points"] == 30 and r["total"] > 0 for r in rows)
    assert rows[-1]["total"] == pytest.approx(sum(rows[-1]["per_layer"].values()))
    assert set(rows[-1]["per_layer"]) == {"encoder.0", "encoder.2"}
    with pytest.raises(ConfigError, match="grad_variance_draws"):
        RunConfig().override({"train.grad_variance_draws": 1})


def test_nvil_elbo_gradient_for_the_encoder_is_the_scaled_signal_term_alone():
    # with the zero-mean -grad log q term left in, normalization by sigma would not scale the whole gradient
    import copy

    model, x = binary_model(), binary_data()
    enc = [p for p in model.parameter_groups()["inference"]]
    base = _warm_nvil()
    base.var = 400.0  # sigma = 20
    grads = {}
    for normalize in (True, False):
        est = copy.deepcopy(base)
        est.normalize = normalize
        torch.manual_seed(3)
        out = est(model.log_weight_terms(x, 2, reparameterize=False), OBJECTIVES.build("elbo"))
        grads[normalize] = _flat_grad(out.inference.mean(), enc)
    torch.testing.assert_close(20 * grads[True], grads[False])


def test_nvil_variance_is_measured_in_the_bounds_units():
    from vaelab.evaluation import gradient_variance

    model, x = binary_model(), binary_data()
    est = _warm_nvil()
    est.normalize, est.var = True, 400.0  # normalization would divide the signal by 20
    scaled = est.unscaled()
    assert scaled.normalize is False and est.normalize is True and scaled.var == 400.0
    measured = gradient_variance(model, x, est, "elbo", 1, draws=200)["total"]
    est.normalize = False
    assert measured == pytest.approx(gradient_variance(model, x, est, "elbo", 1, draws=200)["total"])


def test_gradient_variance_measures_a_built_estimator_as_it_stands_and_leaves_it_alone():
    from vaelab.evaluation import gradient_variance

    model, x = binary_model(), binary_data()
    stale = ESTIMATORS.build("reinforce_ema", {"decay": 0.999})
    stale.baselines = {0: -1000.0}  # a badly placed baseline: the measurement must see it
    v_stale = gradient_variance(model, x, stale, "elbo", 1, draws=100)["total"]
    assert stale.baselines == {0: -1000.0}  # measured on a copy
    v_fresh = gradient_variance(model, x, "reinforce_ema", "elbo", 1, draws=100, estimator_options={"decay": 0.999})
    assert v_stale > 100 * v_fresh["total"]


@pytest.mark.slow
@pytest.mark.parametrize("hard", [False, True])
def test_relaxed_gradient_bias_is_measurable_and_shrinks_with_the_temperature(hard):
    obj = OBJECTIVES.build("elbo")
    bias = {}
    for tau in (1.0, 0.1):
        d, exact = draws(ESTIMATORS.build("gumbel", {"temperature": tau, "hard": hard}), obj, 1, n=1000)
        bias[tau] = (d.mean(0) - exact.double(), d.std(0) / math.sqrt(len(d)))
    b1, se1 = bias[1.0]
    assert (b1.abs() / se1).max() > Z_CRIT  # biased, measurably, at tau = 1
    assert bias[0.1][0].norm() < b1.norm() / 3  # and much less at tau = 0.1


def test_gumbel_logs_the_true_discrete_bound_and_trains(tmp_path):
    assert_logs_the_true_bound("gumbel", 2)
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 8},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "train.epochs": 3,
            "train.estimator": {"kind": "gumbel", "temperature": 0.5, "hard": True},
            "train.lr": 3e-3,
            "model.encoder.hidden": [32],
            "train.num_threads": 1,
            "train.log_every": 5,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    assert res.history[-1]["valid_elbo"] > res.history[0]["valid_elbo"]
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert logged and all("relaxed_bound" in r and "bound" in r for r in logged)  # both, every log step
    with pytest.raises(ConfigError, match="'gumbel' relaxes one layer of bernoulli or categorical latents"):
        fit(RunConfig().override({"train.estimator": "gumbel"}), tmp_path / "g", quiet=True)


def test_gumbel_temperature_follows_jang_et_al_schedule_in_training(tmp_path):
    est = ESTIMATORS.build("gumbel", {"temperature": 1.0, "anneal_rate": 1e-3, "min_temperature": 0.5, "anneal_every": 10})
    seen = []
    for _ in range(1000):
        seen.append(est.current_temperature)
        est.step_done()
    assert seen[0] == seen[9] == 1.0 and seen[10] == pytest.approx(math.exp(-1e-2))  # held for 10 steps
    assert seen[500] == pytest.approx(math.exp(-0.5)) and seen[999] == 0.5  # floored at min_temperature
    assert ESTIMATORS.build("gumbel").current_temperature == 0.5  # fixed by default
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 8},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "train.epochs": 2,
            "train.estimator": {
                "kind": "gumbel",
                "temperature": 2.0,
                "anneal_rate": 0.01,
                "min_temperature": 0.1,
                "anneal_every": 1,
            },
            "model.encoder.hidden": [16],
            "train.num_threads": 1,
            "train.log_every": 1,
        }
    )
    fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    taus = [r["temperature"] for r in logged if "temperature" in r]
    assert taus[0] == pytest.approx(2.0 * math.exp(-0.01 * 0)) and taus == sorted(taus, reverse=True)
    assert taus[-1] == pytest.approx(2.0 * math.exp(-0.01 * (len(taus) - 1)), rel=1e-5)
    cfg = cfg.override({"train.epochs": 3})
    fit(cfg, tmp_path / "r", resume=True, quiet=True, tensorboard=False)
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    taus = [r["temperature"] for r in logged if "temperature" in r]
    assert len(taus) > 0 and taus == sorted(taus, reverse=True)  # the step count is resumed: no jump back to 2.0
    assert taus[-1] == pytest.approx(2.0 * math.exp(-0.01 * (len(taus) - 1)), rel=1e-5)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"anneal_rate": 1e-4, "min_temperature": 0.5}, "has no effect"),
        ({"min_temperature": 0.1}, "apply only with anneal_rate"),
        ({"temperature": 0.0}, "must be > 0"),
    ],
)
def test_gumbel_schedule_that_cannot_take_effect_is_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        ESTIMATORS.build("gumbel", options)


@pytest.mark.parametrize(
    "name,widths", [("sbn-linear", [(784, 200)]), ("sbn-nonlinear", [(784, 200), (200, 200), (200, 200)])]
)
def test_sbn_presets_build_the_literatures_architecture(name, widths):
    from pathlib import Path

    from torch import nn

    from vaelab import config as C
    from vaelab.models import build_model

    cfg = C.load(Path(__file__).parents[1] / "configs" / f"{name}.toml")
    model = build_model(cfg.model, (1, 28, 28))
    lin = [(m.in_features, m.out_features) for m in model.encoder.modules() if isinstance(m, nn.Linear)]
    assert lin == widths and model.latent.support == "binary" and model.latent.dim == 200
    assert cfg.data.kind == "static-mnist" and cfg.train.estimator.kind == "nvil"


def test_categorical_preset_builds_20_by_10_one_hot_latents_and_takes_a_step():
    from pathlib import Path

    from vaelab import config as C
    from vaelab.models import build_model
    from vaelab.train import train_step

    cfg = C.load(Path(__file__).parents[1] / "configs" / "categorical-20x10.toml")
    model = build_model(cfg.model, (1, 28, 28))
    assert model.latent.event_shape == (20, 10) and model.latent.support == "one_hot"
    est = ESTIMATORS.build(cfg.train.estimator.kind, cfg.train.estimator.options)
    assert est.current_temperature == 1.0 and est.anneal_rate > 0
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for name, objective, k in [("gumbel", "elbo", 1), ("vimco", "iwae", 3), ("rloo", "elbo", 2)]:
        out = train_step(model, x, opt, objective, name, k)
        assert math.isfinite(out["bound"])
