"""Reweighted wake-sleep: the inference network's gradient against the exact inclusive-KL gradient by
enumeration (wake-phi: biased, the bias shrinking with K; sleep-phi: unbiased for the dreams' KL), the
refusals, and training an SBN. The generative network's gradient (the IWAE one) is checked in every
family by tests/test_gradient_matrix.py."""

from __future__ import annotations

import itertools

import gradient_matrix as G
import pytest
import torch

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS
from vaelab.estimators.base import BoundEstimate, straight_through
from vaelab.estimators.rws import ReweightedWakeSleep
from vaelab.objectives import OBJECTIVES
from vaelab.train import fit


def _inference_mask(model) -> torch.Tensor:
    inference = {id(p) for p in model.parameter_groups()["inference"]}
    return torch.cat([torch.full((p.numel(),), id(p) in inference) for p in model.parameters()])


def _grad_log_q(model, x, z, weights) -> torch.Tensor:
    """sum over states of weights (N, B) * grad log q(z_n | x_b), flattened over all parameters (P,)."""
    log_q = model.posterior(x).log_prob(z.unsqueeze(1))  # (N, B)
    grads = torch.autograd.grad((weights.detach() * log_q).sum() / x.shape[0], list(model.parameters()), allow_unused=True)
    return G._flatten(list(model.parameters()), grads)


def exact_wake_direction(model, x) -> torch.Tensor:
    """-grad_phi KL(p(z|x) || q(z|x)) = E_p(z|x)[grad_phi log q(z|x)], batch mean, by enumeration (P,)."""
    z = G.states("bernoulli", model)  # (N, D)
    log_joint = model.conditional(z.unsqueeze(1)).log_prob(x) + model.prior.log_prob(z).unsqueeze(1)  # (N, B)
    return _grad_log_q(model, x, z, torch.softmax(log_joint, dim=0))


def _wake_bias(k: int, est=None) -> float:
    model, x = G.build("bernoulli")
    mask = _inference_mask(model)
    obj = OBJECTIVES.build("iwae", {})
    d = G.draws(model, x, est or ESTIMATORS.build("rws", {}), obj, k, chunks=40, replicas=200)
    return G.relative_bias(d[:, mask], exact_wake_direction(model, x)[mask])


def test_wake_phi_targets_the_inclusive_kl_with_a_bias_that_shrinks_with_k():
    """Self-normalized importance sampling is biased at finite K, consistent as K grows (Le et al. 2019)."""
    bias = {k: _wake_bias(k) for k in (2, 8, 64)}
    assert bias[2] > bias[8] > bias[64] and bias[64] < 0.1, bias  # measured: 0.68, 0.27, 0.046


class _Unweighted(ReweightedWakeSleep):
    """Broken: equal weights 1/K instead of w~ (its expected gradient is E_q[grad log q] = 0)."""

    def __call__(self, terms, objective):
        est = super().__call__(terms, objective)
        k = terms.log_w.shape[0]
        phi = (terms.log_qz / k).sum(0)  # (B,)
        return BoundEstimate(est.value, straight_through(est.value, phi), est.generative)


def test_the_check_rejects_rws_without_its_weights():
    assert _wake_bias(64, _Unweighted()) > 0.9


def exact_sleep_direction(model) -> torch.Tensor:
    """E_p(z) p(x|z)[grad_phi log q(z|x)] by enumerating z and every binary x (P,)."""
    z = G.states("bernoulli", model)  # (N, D)
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=G.D_X)))  # (X, D_X)
    log_pzx = model.prior.log_prob(z).unsqueeze(1) + model.conditional(z.unsqueeze(1)).log_prob(xs)  # (N, X)
    log_q = model.posterior(xs).log_prob(z.unsqueeze(1))  # (N, X)
    grads = torch.autograd.grad((log_pzx.exp().detach() * log_q).sum(), list(model.parameters()), allow_unused=True)
    return G._flatten(list(model.parameters()), grads)


def test_sleep_phi_is_unbiased_for_the_dreams_inclusive_kl():
    model, x = G.build("bernoulli")
    mask = _inference_mask(model)
    d = G.draws(model, x, ESTIMATORS.build("rws", {"phase": "sleep"}), OBJECTIVES.build("iwae", {}), 3, chunks=50)
    z = G.z_scores(d[:, mask], exact_sleep_direction(model)[mask])
    assert z.max() < 5.0, float(z.max())


@pytest.mark.parametrize(
    "objective,k,match",
    [
        ("elbo", 5, "K >= 2"),
        ("iwae", 1, "K >= 2"),
        ("vr", 5, "IWAE-type bound .* vr has alpha = 0.5"),
        ("ciwae", 5, "K >= 2"),
    ],
)
def test_bounds_without_a_reweighted_group_are_refused(objective, k, match):
    with pytest.raises(ConfigError, match=match):
        ESTIMATORS.build("rws", {}).check_objective(OBJECTIVES.build(objective, {}), k)


def test_unknown_phase_is_refused():
    with pytest.raises(ConfigError, match="phase"):
        ESTIMATORS.build("rws", {"phase": "dream"})


def test_a_sigmoid_belief_net_trains_with_rws(tmp_path):
    """Binary latents, no reparameterization, no baseline: the IWAE-5 bound rises."""
    cfg = RunConfig().override(
        {
            "data.kind": "digits",
            "model.latent": {"kind": "bernoulli", "dim": 16},
            "model.prior": "bernoulli",
            "model.likelihood": "bernoulli",
            "model.encoder.hidden": [32],
            "model.decoder_bias": "default",
            "train.estimator": "rws",
            "train.objective": "iwae",
            "train.n_samples": 5,
            "train.epochs": 4,
            "train.lr": 3e-3,
            "train.num_threads": 1,
            "train.valid_iwae_k": 50,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    assert res.history[-1]["valid_iwae"] > res.history[0]["valid_iwae"] + 1.0
