"""The CUDA path (skipped without a GPU; run on a lent GPU machine, benchmarks/results.md): training,
resume, IS evaluation, bf16 and the compiled bound on cuda, with everything on the model's device."""

import os
import subprocess
import sys

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.estimators import ESTIMATORS
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.models import build_model
from vaelab.models.precision import set_precision
from vaelab.objectives import OBJECTIVES
from vaelab.train import compute_bound, fit
from vaelab.train.step import compiled_bound

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = {"train.device": "cuda", "data.kind": "two-gaussians", "data.n_train": 600, "train.batch_size": 50}


def test_fit_on_cuda_keeps_every_tensor_on_the_device_and_resumes_bit_exact(tmp_path):
    cfg = RunConfig().override({**CUDA, "train.epochs": 2, "train.objective": "iwae", "train.n_samples": 5})
    full = fit(cfg, tmp_path / "full", quiet=True)
    assert all(p.device.type == "cuda" for p in full.model.parameters())
    part = cfg.override({"train.epochs": 1})
    fit(part, tmp_path / "part", quiet=True)
    resumed = fit(cfg, tmp_path / "part", resume=True, quiet=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # cuBLAS without atomics: deterministic run to run


def test_is_evaluation_on_cuda_agrees_with_cpu_within_standard_errors():
    torch.manual_seed(0)
    cfg = RunConfig().override({"model.likelihood": "bernoulli", "model.latent.dim": 8})
    model = build_model(cfg.model, (64,))
    x = torch.bernoulli(torch.full((40, 64), 0.3))
    cpu = importance_sampled_log_likelihood(model, x, k=2000, seed=0)
    gpu = importance_sampled_log_likelihood(model.cuda(), x.cuda(), k=2000, seed=0)
    d = cpu.per_point - gpu.per_point.cpu()  # (N,) the same points, independent IS noise
    assert float(d.mean().abs()) < 4 * float(d.std()) / len(d) ** 0.5 + 1e-3


@pytest.mark.parametrize("mode", ["bf16", "compile"])
def test_bf16_and_compiled_bound_on_cuda_match_fp32_eager(mode):
    torch.manual_seed(0)
    cfg = RunConfig().override({"model.likelihood": "bernoulli", "model.latent.dim": 8})
    model = build_model(cfg.model, (64,)).cuda()
    x = torch.bernoulli(torch.full((32, 64), 0.3)).cuda()
    args = (OBJECTIVES.build("iwae"), ESTIMATORS.build("reparam"), 5)
    torch.manual_seed(1)
    ref = compute_bound(model, x, *args)[0].value
    fn = compiled_bound() if mode == "compile" else compute_bound
    if mode == "bf16":
        set_precision(model, "bf16")
    torch.manual_seed(1)
    got = fn(model, x, *args)[0].value
    assert got.dtype == torch.float32
    tol = 5e-3 * float(ref.abs().max()) if mode == "bf16" else 1e-3
    assert float((got - ref).abs().max()) < tol


def test_cli_train_and_evaluate_on_cuda(tmp_path):
    env = {**os.environ}
    run = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "vaelab", "train", "--quiet", "--dataset", "two-gaussians", "--epochs", "2",
                        "--set", "train.device='cuda'", "--set", "train.precision='bf16'", "--out", str(run)],
                       capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "vaelab", "evaluate", str(run), "--k", "100", "--limit", "200"],
                       capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]


def test_cuda_graphs_train_what_eager_trains_and_resume_bit_exact(tmp_path):
    """train.cuda_graphs on a GPU: every step replayed (no fallback warning), weights close to the eager
    run's (the graph's kernels and random offsets may differ from eager's in the last bits), the
    statistics finite, and a killed-and-resumed graphed run bit for bit the uninterrupted one."""
    import warnings

    cfg = RunConfig().override({**CUDA, "train.epochs": 2, "train.objective": "iwae", "train.n_samples": 5})
    graphs = cfg.override({"train.cuda_graphs": True})
    eager = fit(cfg, tmp_path / "eager", quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a capture that falls back warns: here it must not
        full = fit(graphs, tmp_path / "full", quiet=True)
    assert all(r["train_bound"] == r["train_bound"] for r in full.history)
    diff = abs(full.history[-1]["train_bound"] - eager.history[-1]["train_bound"])
    assert diff < 1.0, diff  # nats: the same training, whatever the last bits
    fit(graphs.override({"train.epochs": 1}), tmp_path / "part", quiet=True)
    resumed = fit(graphs, tmp_path / "part", resume=True, quiet=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
