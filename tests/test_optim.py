"""train.optimizer_impl: torch's fused optimizer kernels where they exist, chosen and kept on resume."""

import pytest
import torch
from conftest import tiny_config as tiny

from vaelab.checkpoint import load_checkpoint
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.train import fit
from vaelab.train.optim import build_optimizer, impl_options


def test_auto_is_fused_where_torch_has_the_kernel():
    assert impl_options("adam", "auto", "cpu") == {"fused": True}
    assert impl_options("adagrad", "auto", "cpu") == {"fused": True}
    assert impl_options("adagrad", "auto", "cuda") == {}  # torch's fused Adagrad is CPU-only
    assert impl_options("rmsprop", "auto", "cpu") == {}
    assert impl_options("sgd", "foreach", "cpu") == {"foreach": True}
    assert impl_options("sgd", "for-loop", "cpu") == {"foreach": False}


def test_fused_where_torch_has_none_is_an_error():
    with pytest.raises(ConfigError, match="rmsprop has no fused kernel"):
        impl_options("rmsprop", "fused", "cpu")
    with pytest.raises(ConfigError, match="adagrad has a fused kernel on cpu only, not on cuda"):
        impl_options("adagrad", "fused", "cuda")
    with pytest.raises(ConfigError, match="optimizer_impl must be one of"):
        impl_options("adam", "fast", "cpu")


def test_build_optimizer_applies_the_choice_to_every_group():
    model = build_model(tiny().model, (2,))
    opt, groups = build_optimizer("adam", model, 1e-3)
    assert len([g for g in groups.values() if g]) > 1
    assert len(opt.param_groups) == 1  # named groups with the same options share one torch group (one fused call)
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for g in groups.values() for p in g]
    assert all(g["fused"] is True for g in opt.param_groups)
    opt, _ = build_optimizer("adam", model, 1e-3, impl="for-loop")
    assert all(not g["fused"] and g["foreach"] is False for g in opt.param_groups)


def _params(res):
    return torch.cat([p.detach().flatten() for p in res.model.parameters()])


def test_fused_and_for_loop_train_the_same_model(tmp_path):
    fused = fit(tiny(**{"train.optimizer_impl": "fused"}), tmp_path / "a", quiet=True, tensorboard=False)
    loop = fit(tiny(**{"train.optimizer_impl": "for-loop"}), tmp_path / "b", quiet=True, tensorboard=False)
    torch.testing.assert_close(_params(fused), _params(loop), rtol=1e-4, atol=1e-5)


def test_resume_keeps_this_runs_implementation(tmp_path):
    fit(tiny(**{"train.epochs": 1, "train.optimizer_impl": "for-loop"}), tmp_path / "r", quiet=True, tensorboard=False)
    assert all(not g["fused"] for g in load_checkpoint(tmp_path / "r" / "last.pt")["optimizer"]["param_groups"])
    fit(tiny(**{"train.epochs": 2}), tmp_path / "r", resume=True, quiet=True, tensorboard=False)
    assert all(g["fused"] is True for g in load_checkpoint(tmp_path / "r" / "last.pt")["optimizer"]["param_groups"])
    with pytest.raises(ConfigError, match="rmsprop"):
        fit(tiny(**{"train.optimizer": "rmsprop", "train.optimizer_impl": "fused"}), tmp_path / "x", quiet=True)


def test_weight_decay_is_the_gradient_of_a_gaussian_prior_on_the_weight_matrices_only():
    """One SGD step with weight_decay = lam moves each weight matrix by -lr * (grad + lam * W) and each
    bias by -lr * grad: the MAP step under an N(0, 1/lam) prior on the matrices (Li & Turner's numpy VAE)."""
    torch.manual_seed(0)
    model = build_model(tiny().model, (2,))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    opt, groups = build_optimizer("sgd", model, 0.1, weight_decay=0.3)
    assert {g["name"] for g in opt.param_groups} == {n for n, ps in groups.items() if ps}  # names kept
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))  # each once
    for n, p in model.named_parameters():
        p.grad = grads[n].clone()
    opt.step()
    for n, p in model.named_parameters():
        decay = 0.3 * before[n] if p.dim() > 1 else 0.0
        torch.testing.assert_close(p.detach(), before[n] - 0.1 * (grads[n] + decay))


def test_adam_beta2_reaches_torchs_adam_and_is_refused_elsewhere():
    model = build_model(tiny().model, (2,))
    opt, _ = build_optimizer("adam", model, 1e-3, adam_beta2=0.99)
    assert all(g["betas"] == (0.9, 0.99) for g in opt.param_groups)
    with pytest.raises(ConfigError, match="adam_beta2 = 0.99 has no effect with optimizer = 'sgd'"):
        tiny(**{"train.optimizer": "sgd", "train.adam_beta2": 0.99})
    with pytest.raises(ConfigError, match="'train.weight_decay' must be >= 0"):
        tiny(**{"train.weight_decay": -1.0})


def test_named_groups_merge_only_where_their_options_agree():
    model = build_model(tiny().model, (2,))
    opt, groups = build_optimizer("adam", model, 1e-3, weight_decay=0.1)
    decays = [g["weight_decay"] for g in opt.param_groups]
    assert decays == [0.1, 0.0] * len([g for g in groups.values() if g])  # matrices decayed, vectors not, per group
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(len(g) for g in groups.values())


def test_an_older_checkpoints_optimizer_state_is_regrouped_or_refused():
    from vaelab.train.optim import regroup_state

    now = [{"params": [0, 1, 2, 3, 4], "lr": 1e-3, "name": "inference+generative"}]
    old = [{"params": [0, 1], "lr": 1e-3, "name": "inference"}, {"params": [2, 3, 4], "lr": 1e-3, "name": "generative"}]
    assert regroup_state(old, now) == now
    assert regroup_state(now, now) is now
    assert regroup_state(old[:1], now) is None  # fewer parameters
    assert regroup_state([{"params": [0, 1, 2]}, {"params": [3, 4]}], [{"params": [0, 1]}, {"params": [2, 3, 4]}]) is None
