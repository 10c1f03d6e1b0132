"""train.malloc: glibc's thresholds fixed so a step's large temporaries stay in the heap."""

import subprocess
import sys

import pytest

from vaelab import allocator

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's mallopt/mallinfo2 only")

# In a fresh process (the setting is process-wide and one-way): allocate and free a 20 MB tensor,
# then report how many bytes glibc holds in mmapped blocks while a second one is alive.
PROBE = """
import ctypes, sys, torch
from vaelab.allocator import tune_malloc

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
print(tune_malloc(sys.argv[1], sys.argv[2]))
before = libc.mallinfo2().hblkhd
t = torch.empty(5 * 2**20)  # 20 MiB of float32
print(libc.mallinfo2().hblkhd - before)
"""


def _probe(mode: str, device: str = "cpu") -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, device], capture_output=True, text=True, check=True)
    applied, mapped = out.stdout.split()
    return applied == "True", int(mapped)


@pytest.mark.slow
@glibc_only
def test_tuned_keeps_a_20_mb_temporary_out_of_mmap():
    applied, mapped = _probe("tuned")
    assert applied and mapped == 0
    system_applied, system_mapped = _probe("system")  # glibc's default: 128 KiB until a mapped block is freed
    assert not system_applied and system_mapped >= 20 * 2**20


@pytest.mark.slow
@glibc_only
def test_auto_tunes_on_cpu_only():
    assert _probe("auto", "cpu")[0]
    assert _probe("auto", "meta") == (False, _probe("system")[1])


def test_unknown_mode_and_non_glibc(monkeypatch):
    with pytest.raises(ValueError, match="train.malloc"):
        allocator.tune_malloc("fast")
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    monkeypatch.setattr(allocator, "_applied", False)
    with pytest.warns(UserWarning, match='"tuned" has no effect'):
        assert not allocator.tune_malloc("tuned")
    assert not allocator.tune_malloc("auto")  # the default stays silent where it cannot apply


@pytest.mark.slow
def test_fit_applies_the_configured_mode(monkeypatch, tmp_path):
    import torch

    from vaelab.config import RunConfig
    from vaelab.data.bundle import DataSplits
    from vaelab.train import fit, loop

    seen = []
    monkeypatch.setattr(loop, "tune_malloc", lambda mode, device: seen.append((mode, torch.device(device).type)))
    x = torch.bernoulli(torch.full((20, 6), 0.5))
    cfg = (
        RunConfig()
        .override({"data.kind": "mnist", "model.likelihood": "bernoulli", "train.epochs": 1, "train.batch_size": 10})
        .override({"train.malloc": "system"})
    )
    fit(cfg, tmp_path / "run", data=DataSplits(train=x, valid=x[:4], test=x[:4]), quiet=True, tensorboard=False)
    assert seen == [("system", "cpu")]


def test_importance_sampling_applies_its_mode(monkeypatch):
    import torch

    from vaelab.config import RunConfig
    from vaelab.evaluation import loglik
    from vaelab.models import build_model

    seen = []
    monkeypatch.setattr(loglik, "tune_malloc", lambda mode, device: seen.append((mode, torch.device(device).type)))
    model = build_model(RunConfig().override({"data.kind": "mnist", "model.likelihood": "bernoulli"}).model, (6,))
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    loglik.importance_sampled_log_likelihood(model, x, k=3)
    loglik.importance_sampled_log_likelihood(model, x, k=3, malloc="system")
    assert seen == [("auto", "cpu"), ("system", "cpu")]
