"""Flush-to-zero for denormal floats on CPU, entered and left cleanly.

Denormals cost 2-3x on the tanh MLPs of this field once weights and activations get small, so
every training and evaluation entry point runs under :func:`denormals_flushed`; it restores the
previous setting on exit, so a library call never changes the caller's numerics.
"""

from __future__ import annotations

import contextlib

import torch


def flush_denormal_enabled() -> bool:
    """Whether denormals are flushed now (torch has no getter: a denormal times 1 is 0 iff they are)."""
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(1.0)[0]) == 0.0


@contextlib.contextmanager
def denormals_flushed(device: torch.device | str | None = "cpu"):
    """Flush denormals to zero inside the block (CPU only; a no-op elsewhere), then restore."""
    if torch.device(device or "cpu").type != "cpu":
        yield
        return
    before = flush_denormal_enabled()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
