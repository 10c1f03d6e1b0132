"""Runs checkpointed by an older vaelab (tests/fixtures/resume/, made by make_resume_fixture.py at the
commit in made.json, before issue 42 moved the run state and the label modes) resume under today's
code to what the same runs reach uninterrupted.

Bit for bit where the CPU runs the same kernels as the machine that made the fixture (torch picks
its vectorized kernels by CPU capability, and AVX2 and AVX512 sum in different orders); within float32
rounding elsewhere, which still fails on any wrong piece of restored state (one wrong generator, step
or optimizer moment moves the weights by orders of magnitude more).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from vaelab import config as config_mod
from vaelab.train import fit

FIXTURE = Path(__file__).parent / "fixtures" / "resume"
MADE = json.loads((FIXTURE / "made.json").read_text())
SAME_KERNELS = torch.backends.cpu.get_cpu_capability() == MADE["cpu_capability"]
RUNS = sorted(p.name for p in FIXTURE.iterdir() if p.is_dir())


def _numbers(history):
    return [{k: v for k, v in r.items() if "time" not in k} for r in history]


@pytest.mark.parametrize("name", RUNS)
def test_a_run_checkpointed_by_an_older_vaelab_resumes_to_the_uninterrupted_run(tmp_path, name):
    run = tmp_path / "part"
    shutil.copytree(FIXTURE / name / "part", run)
    cfg = config_mod.load(FIXTURE / name / "config.toml")
    expected = torch.load(FIXTURE / name / "expected.pt", weights_only=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fresh optimizer state", no restarted random streams
        res = fit(cfg, run, resume=True, quiet=True, tensorboard=False)
    got = res.model.state_dict()
    assert got.keys() == expected["model"].keys()
    for k, v in expected["model"].items():
        if SAME_KERNELS:
            assert torch.equal(got[k], v), k
        else:
            torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5, msg=k)
    if SAME_KERNELS:  # bit for bit, but the logged ELBO, rec and KL, which are batch means of per-point means since
        # the fixture was made (means over all S*B samples before, and the ELBO a difference of means): float32 rounding
        rounded = {"train_elbo": 0, "train_rec": 0, "train_kl": 0}
        for a, b in zip(_numbers(res.history), _numbers(expected["history"]), strict=True):
            assert {k: a[k] for k in rounded} == pytest.approx({k: b[k] for k in rounded}, rel=1e-6)
            assert {**a, **rounded} == {**b, **rounded}
    else:
        for a, b in zip(_numbers(res.history), _numbers(expected["history"]), strict=True):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-4), k


def _same(a, b, where: str) -> None:
    """Recursive bit-for-bit equality of nested dicts / lists of tensors and plain values."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), where  # (NaN == NaN here)


@pytest.mark.parametrize("name", RUNS)
def test_restoring_an_older_checkpoint_and_capturing_it_again_gives_back_every_piece(tmp_path, name):
    """restore() then capture() (vaelab.train.state) round-trips the fixture's state exactly, on any CPU."""
    from vaelab.checkpoint import load_checkpoint
    from vaelab.distributed import Dist
    from vaelab.train.loop import _build
    from vaelab.train.optim import regroup_state
    from vaelab.train.state import capture

    run = tmp_path / "part"
    shutil.copytree(FIXTURE / name / "part", run)
    cfg = config_mod.load(FIXTURE / name / "config.toml")
    loop, _, _ = _build(cfg, run, None, None, None, True, torch.device("cpu"), Dist())
    saved, now = load_checkpoint(run / "last.pt"), capture(loop)
    assert saved["mid_epoch"]["batch"] >= 1  # killed within an epoch: the position is part of the state
    # the fixture's optimizer has one param group per named group; today's joins neighbours with the same
    # options (train.optim.merge_neighbours): its state is the saved one, regrouped
    opt = saved["optimizer"]
    saved["optimizer"] = {**opt, "param_groups": regroup_state(opt["param_groups"], now["optimizer"]["param_groups"])}
    for key in ("model", "optimizer", "estimator", "torch_rng", "shuffle_rng", "epoch", "step", "best_valid_elbo",
                "history", "lr_scale", "divergence_retries_used", "mid_epoch"):  # fmt: skip
        _same(now[key], saved[key], key)
