"""train.precision = "bf16" and train.compile (issue 32): the same bound as float32 eager on a fixed
batch to a stated tolerance, float32 log-weights, checkpoints alike, compiled training resumed bit-exact."""

import warnings

import pytest
import torch
from _forked import vaelab

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.models.precision import precision_of, set_precision
from vaelab.objectives import OBJECTIVES
from vaelab.train import compute_bound
from vaelab.train.step import compiled_bound


def _model_and_batch():
    torch.manual_seed(0)
    cfg = RunConfig().override({"model.likelihood": "bernoulli", "model.latent.dim": 8})
    model = build_model(cfg.model, (64,))
    x = torch.bernoulli(torch.full((32, 64), 0.3))
    return model, x


def _bound(model, x, fn=compute_bound, k=5, seed=1):
    torch.manual_seed(seed)
    est, stats = fn(model, x, OBJECTIVES.build("iwae"), ESTIMATORS.build("reparam"), k)
    return est, stats


def test_bf16_networks_keep_float32_log_weights_and_the_bound_within_tolerance():
    """bf16 matrix products (8-bit mantissa) move a ~45-nat bound of this 64-pixel model by well under
    0.5 %; every number after the networks is float32, and the state dict is unchanged."""
    model, x = _model_and_batch()
    keys = list(model.state_dict())
    est32, s32 = _bound(model, x)
    set_precision(model, "bf16")
    assert precision_of(model) == "bf16" and list(model.state_dict()) == keys
    assert model.decode(torch.zeros(3, 8)).dtype == torch.float32
    terms = model.log_weight_terms(x, 5)
    assert terms.log_px_z.dtype == torch.float32
    est16, s16 = _bound(model, x)
    assert est16.value.dtype == torch.float32
    gap = (est16.value - est32.value).abs()  # (B,) nats
    assert gap.max() < 5e-3 * est32.value.abs().max()
    assert gap.max() > 0  # bf16 did run
    set_precision(model, "fp32")
    assert torch.equal(_bound(model, x)[0].value, est32.value)


def test_unknown_precision_is_refused():
    model, _ = _model_and_batch()
    with pytest.raises(ConfigError, match="train.precision must be one of fp32, bf16"):
        set_precision(model, "fp16")


@pytest.mark.slow
def test_compiled_bound_equals_eager_on_a_fixed_batch():
    """The same samples (torch's generator in both), the same arithmetic up to inductor's reordering."""
    model, x = _model_and_batch()
    eager, _ = _bound(model, x)
    comp, stats = _bound(model, x, compiled_bound())
    torch.testing.assert_close(comp.value, eager.value, rtol=1e-5, atol=1e-4)
    g_eager = torch.autograd.grad(eager.inference.mean(), list(model.parameters()))
    comp, _ = _bound(model, x, compiled_bound())
    g_comp = torch.autograd.grad(comp.inference.mean(), list(model.parameters()))
    for a, b in zip(g_eager, g_comp):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


TRAIN = ["train", "--quiet", "--dataset", "two-gaussians", "--num-threads", "1", "--hidden", "8", "8", "--z-dim", "2",
         "--set", "data.n_train=600", "--batch-size", "50", "--epochs", "2",
         "--set", "train.checkpoint_every_steps=5"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("option", ["train.compile=true", "train.precision='bf16'"])
def test_compiled_or_bf16_training_killed_and_resumed_is_bit_exact(tmp_path, option):
    """Each run a process of its own (forked from a warm server: tests/_forked.py), so the resumed one
    compiles afresh, as a restarted job would."""
    args = [*TRAIN, "--set", option]
    full = vaelab([*args, "--out", str(tmp_path / "full")], tmp_path / "full.log")
    assert full[0] == 0, full[1][-2000:]
    killed = vaelab([*args, "--out", str(tmp_path / "part")], tmp_path / "part.log", VAELAB_FAULT="step:13")
    assert killed[0] == -9, killed[1][-2000:]
    resumed = vaelab(["train", "--quiet", "--resume", str(tmp_path / "part")], tmp_path / "resume.log")
    assert resumed[0] == 0, resumed[1][-2000:]
    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=True)["model"] for d in ("full", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_on_a_cpu_where_it_is_slower_warns_once_with_the_measured_cost(monkeypatch):
    import vaelab.models.precision as P

    assert P.bf16_cost.__wrapped__("cpu") > 0  # the real measurement runs (its value depends on the CPU)
    monkeypatch.setattr(P, "bf16_cost", lambda device="cpu": 9.8)
    with pytest.warns(UserWarning, match=r"take 9\.8x their float32 time.*use precision = 'fp32'"):
        P.warn_if_slow("bf16", "cpu")
    monkeypatch.setattr(P, "bf16_cost", lambda device="cpu": 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.warn_if_slow("bf16", "cpu")  # faster here: nothing to say
        P.warn_if_slow("fp32", "cpu")
