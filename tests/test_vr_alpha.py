"""VR-alpha and VR-max (Li & Turner 2016): the identities on log-weights, the M-group layout, and the
refusals. Their gradients (reparam, DReG's alpha weights, score-function estimators) are checked
against exact enumeration and the reparameterization reference in tests/test_gradient_matrix.py."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS
from vaelab.objectives import OBJECTIVES, elbo, iwae, miwae, vr


def _log_w(k=5, b=3, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(k, b, generator=g, dtype=torch.float64)  # (K, B)


def test_alpha_zero_is_iwae_exactly():
    log_w = _log_w()
    assert torch.equal(vr(log_w, 0.0), iwae(log_w))


def test_alpha_to_one_tends_to_the_elbo():
    log_w = _log_w()
    gaps = [float((vr(log_w, 1.0 - eps) - elbo(log_w)).abs().max()) for eps in (1e-1, 1e-2, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2, gaps  # O(1 - alpha): the variance term


def test_alpha_minus_infinity_is_the_largest_log_weight():
    log_w = _log_w()
    assert torch.equal(vr(log_w, -math.inf), log_w.max(0).values)
    assert torch.allclose(vr(log_w, -200.0), log_w.max(0).values, atol=0.02)  # the limit, approached


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5.0, 5.0, allow_subnormal=False), min_size=3, max_size=3, unique=True), st.integers(0, 2**31 - 1))
def test_non_increasing_in_alpha_on_fixed_log_weights(alphas, seed):
    log_w = _log_w(k=7, b=4, seed=seed)
    alphas = sorted(a for a in alphas if abs(a - 1.0) > 1e-3)
    values = [vr(log_w, a) for a in [-math.inf, *alphas]]
    for lo, hi in zip(values[1:], values[:-1]):
        assert (lo <= hi + 1e-9).all()


@pytest.mark.parametrize("m,k", [(2, 3), (3, 2), (4, 1)])
def test_groups_average_each_groups_bound(m, k):
    """M != K: sample s = m*K + k (consecutive blocks), each block's VR-alpha, then the mean."""
    log_w = _log_w(k=m * k, b=3, seed=m)
    obj = OBJECTIVES.build("vr", {"alpha": -0.5, "groups": m})
    by_hand = torch.stack([vr(log_w[j * k : (j + 1) * k], -0.5) for j in range(m)]).mean(0)  # (B,)
    assert torch.allclose(obj(log_w), by_hand)
    assert torch.allclose(OBJECTIVES.build("vr", {"alpha": 0.0, "groups": m})(log_w), miwae(log_w.view(m, k, 3)))


def test_vr_max_is_its_own_objective():
    log_w = _log_w(k=6)
    assert torch.equal(OBJECTIVES.build("vr_max", {"groups": 2})(log_w), log_w.view(2, 3, -1).amax(1).mean(0))


@pytest.mark.parametrize("alpha", [1, 1.0, math.inf, math.nan, "max", True])
def test_undefined_orders_are_refused(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        OBJECTIVES.build("vr", {"alpha": alpha})
    if isinstance(alpha, float):
        with pytest.raises(ValueError, match="alpha"):
            vr(_log_w(), alpha)


def test_dreg_refuses_vr_max_and_names_the_estimator_that_works():
    obj = OBJECTIVES.build("vr_max", {})
    with pytest.raises(ConfigError, match="VR-max.*'reparam'"):
        ESTIMATORS.build("dreg", {}).check_objective(obj, 5)
    ESTIMATORS.build("dreg", {}).check_objective(OBJECTIVES.build("vr", {"alpha": -1.0}), 5)  # finite: fine


def test_the_reparameterization_gradient_of_vr_max_is_the_best_samples():
    """Li & Turner's VR-max estimator back-propagates only the sample with the largest weight."""
    log_w = _log_w().requires_grad_()
    vr(log_w, -math.inf).sum().backward()
    assert torch.equal(log_w.grad, (log_w == log_w.max(0, keepdim=True).values).double())


@pytest.mark.parametrize("alpha", [-1.0, 2.0])
def test_dregs_alpha_weights_agree_with_the_reparameterization_gradient_off_the_matrix_layout(alpha):
    """alpha < 0 (weights alpha w~ + (1 - alpha) w~^2 can be negative) and alpha > 1, on the Gaussian
    family of the matrix: DReG's mean gradient equals the reparameterization gradient's."""
    import gradient_matrix as G

    model, x = G.build("gaussian")
    obj = OBJECTIVES.build("vr", {"alpha": alpha})
    ref = G.draws(model, x, ESTIMATORS.build("reparam"), obj, 3, chunks=100, replicas=400, seed=1)
    d = G.draws(model, x, ESTIMATORS.build("dreg"), obj, 3)
    z = G.z_scores(d, ref.mean(0), ref.std(0) / math.sqrt(ref.shape[0]))
    assert z.max() < 5.5, float(z.max())
