"""Flush-to-zero for denormal floats on CPU, entered and left cleanly.

Denormals cost 2-3x on the tanh MLPs of this field once weights and activations get small, so
every training and evaluation entry point runs under :func:`denormals_flushed`; it restores the
previous setting on exit, so a library call never changes the caller's numerics.
"""

from __future__ import annotations

import contextlib

import torch

# A denormal float32 (5.9e-39), made once (4 us a check, not 15) and from its bits: converting the
# float 1e-39 would give 0 if this module were imported while flushing is on.
_PROBE = torch.tensor([0x00400000], dtype=torch.int32).view(torch.float32)


def flush_denormal_enabled() -> bool:
    """Whether denormals are flushed now (torch has no getter: a denormal times 1 is 0 iff they are)."""
    return _PROBE.mul(1.0).item() == 0.0


_depth = 0  # nesting depth of denormals_flushed blocks (per process; torch's flag is per process too)


@contextlib.contextmanager
def denormals_flushed(device: torch.device | str | None = "cpu"):
    """Flush denormals to zero inside the block (CPU only; a no-op elsewhere), then restore.

    Nested blocks (``train_step`` inside ``fit``) cost nothing: only the outermost one reads and
    restores the setting."""
    global _depth
    if _depth or torch.device(device or "cpu").type != "cpu":
        yield
        return
    before = flush_denormal_enabled()
    torch.set_flush_denormal(True)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        torch.set_flush_denormal(before)


#: decoder outputs one evaluation pass may hold at once (float32: 256 MB)
EVAL_OUTPUTS = 2**26


def eval_rows(model, wanted: int) -> int:
    """Data points per evaluation pass: ``wanted``, or fewer when one point's decoder output is large
    (a vocabulary-sized logit vector per token of a sentence: 80 x 10,000 numbers on PTB), so that
    a pass holds at most ``EVAL_OUTPUTS`` numbers. MNIST-sized models are unaffected."""
    per_row = getattr(getattr(model, "likelihood", None), "n_outputs", 1)
    return max(1, min(int(wanted), EVAL_OUTPUTS // max(per_row, 1)))
