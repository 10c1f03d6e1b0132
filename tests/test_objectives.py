import math

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES, ciwae, elbo, group, iwae, miwae, piwae


def test_iwae_with_one_sample_equals_elbo():
    log_w = torch.randn(1, 7)
    torch.testing.assert_close(iwae(log_w), elbo(log_w))


def test_iwae_is_log_mean_exp_and_elbo_is_mean():
    log_w = torch.tensor([[0.0, -1.0], [math.log(3.0), 2.0]])  # (K=2, B=2)
    torch.testing.assert_close(iwae(log_w), torch.tensor([math.log(2.0), math.log((math.exp(-1) + math.exp(2)) / 2)]))
    torch.testing.assert_close(elbo(log_w), torch.tensor([math.log(3.0) / 2, 0.5]))


def test_iwae_at_least_elbo_on_the_same_weights():
    # Jensen: log mean exp >= mean log, pointwise, for any weights
    log_w = 3 * torch.randn(50, 20)
    assert (iwae(log_w) >= elbo(log_w) - 1e-6).all()


def test_iwae_increases_with_k_in_expectation(linear_gaussian):
    model = linear_gaussian.vae(encoder_shift=0.8, encoder_logvar_shift=-0.5)
    x = linear_gaussian.sample(200)
    torch.manual_seed(0)
    with torch.no_grad():
        means = [iwae(model.log_weight_terms(x, k).log_w).mean().item() for k in (1, 5, 50)]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(2, 3, 4)])
def test_objectives_reject_wrong_shapes(bad):
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        iwae(bad)
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        elbo(bad)


# --- MIWAE / CIWAE / PIWAE (Rainforth et al. 2018) ---------------------------------------------


def test_miwae_with_one_group_equals_iwae():
    log_w = 2 * torch.randn(6, 5)  # (K, B)
    torch.testing.assert_close(miwae(log_w.unsqueeze(0)), iwae(log_w))


def test_miwae_with_groups_of_one_is_the_elbo():
    log_w = 2 * torch.randn(6, 5)
    torch.testing.assert_close(miwae(log_w.unsqueeze(1)), elbo(log_w))


def test_ciwae_endpoints_are_elbo_and_iwae():
    log_w = 2 * torch.randn(8, 4)
    torch.testing.assert_close(ciwae(log_w, 1.0), elbo(log_w))
    torch.testing.assert_close(ciwae(log_w, 0.0), iwae(log_w))
    torch.testing.assert_close(ciwae(log_w, 0.25), 0.25 * elbo(log_w) + 0.75 * iwae(log_w))


def test_group_axis_convention_is_m_major():
    # sample s = m*K + k: group m holds a consecutive block of K samples
    m, k, b = 3, 4, 2
    log_w = torch.arange(m * k, dtype=torch.float32)[:, None].expand(m * k, b)  # (S, B)
    g = group(log_w, m)  # (M, K, B)
    for mi in range(m):
        for ki in range(k):
            assert g[mi, ki, 0] == mi * k + ki


def test_miwae_averages_iwae_over_consecutive_blocks_and_not_over_strided_ones():
    m, k = 2, 3
    log_w = 3 * torch.randn(m * k, 5)
    blocks = torch.stack([iwae(log_w[i * k : (i + 1) * k]) for i in range(m)]).mean(0)
    torch.testing.assert_close(miwae(group(log_w, m)), blocks)
    # the M <-> K swap of a repeat-based implementation gives a different number: the test can fail
    swapped = miwae(log_w.view(k, m, -1).transpose(0, 1))
    assert not torch.allclose(swapped, blocks)


def test_piwae_pairs_miwae_for_inference_with_iwae_of_all_samples_for_generation():
    log_w = 2 * torch.randn(2, 4, 3)  # (M, K, B)
    inf, gen = piwae(log_w)
    torch.testing.assert_close(inf, miwae(log_w))
    torch.testing.assert_close(gen, iwae(log_w.reshape(8, 3)))
    assert (gen >= inf - 1e-6).all()  # IWAE(MK) is the tighter bound


def _obj(name, m=1, beta=0.3):
    return OBJECTIVES.build(name, {"groups": m} if name in ("miwae", "piwae") else {"beta": beta} if name == "ciwae" else {})


@pytest.mark.parametrize("name,m", [("elbo", 1), ("iwae", 1), ("miwae", 2), ("miwae", 3), ("ciwae", 1), ("piwae", 2)])
def test_registered_objectives_are_the_pure_bounds(name, m):
    log_w = 2 * torch.randn(6, 4)
    want = {
        "elbo": elbo(log_w),
        "iwae": iwae(log_w),
        "miwae": miwae(group(log_w, m)),
        "ciwae": ciwae(log_w, 0.3),
        "piwae": piwae(group(log_w, m))[1],
    }[name]
    torch.testing.assert_close(_obj(name, m)(log_w), want)


@pytest.mark.parametrize("objective,m", [("elbo", 1), ("iwae", 1), ("miwae", 2), ("ciwae", 1), ("piwae", 2)])
@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_estimators_change_gradients_not_values(objective, m, estimator):
    cfg = RunConfig().override({"model.latent.dim": 2, "model.encoder.hidden": [4]})
    torch.manual_seed(0)
    model = build_model(cfg.model, (3,))
    terms = model.log_weight_terms(torch.randn(5, 3), 6)
    est = ESTIMATORS.build(estimator)(terms, _obj(objective, m))
    ref = ESTIMATORS.build("reparam")(terms, _obj(objective, m))
    torch.testing.assert_close(est.value, ref.value)
    torch.testing.assert_close(est.inference, ref.inference)
    torch.testing.assert_close(est.generative, ref.generative)
    enc = list(model.encoder.parameters())
    g_est = torch.autograd.grad(est.inference.sum(), enc, retain_graph=True)
    g_ref = torch.autograd.grad(ref.inference.sum(), enc, retain_graph=True)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(g_est, g_ref))  # same value, different gradient
    dec = list(model.decoder.parameters())
    for a, b in zip(
        torch.autograd.grad(est.generative.sum(), dec, retain_graph=True), torch.autograd.grad(ref.generative.sum(), dec)
    ):
        torch.testing.assert_close(a, b)  # the decoder's gradient is the plain one under every estimator


def test_bound_errors_are_clear():
    with pytest.raises(ValueError, match="M=4"):
        group(torch.zeros(6, 2), 4)
    with pytest.raises(ValueError, match=r"\(M, K, B\)"):
        miwae(torch.zeros(6, 2))
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        ciwae(torch.zeros(6, 2), 1.5)
    with pytest.raises(ConfigError, match="unknown option 'objective.groups' for objective 'iwae'"):
        OBJECTIVES.build("iwae", {"groups": 2})
    with pytest.raises(ConfigError, match=r"train.objective.beta must be in \[0, 1\]"):
        OBJECTIVES.build("ciwae", {"beta": 2.0})
