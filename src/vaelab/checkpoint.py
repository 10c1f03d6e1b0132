"""Checkpoints written atomically (temp file + rename) and read with clear errors.

``torch.save`` is used rather than safetensors because a checkpoint also holds optimizer and
RNG state; loading uses ``weights_only=True`` so a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from . import faults
from .errors import CheckpointError


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Write ``payload`` to ``path`` so that a crash never leaves a half-written file there: a temp
    file beside it, flushed and fsynced, renamed over ``path``, then the directory fsynced so the
    rename itself survives a power loss."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        # a path, not a Python file object: torch then writes from C++. Given a file object, a
        # second Ctrl-C landing in torch.save's __exit__ left its zip writer unfinished, and the
        # writer's destructor later wrote to the closed file and aborted the process (SIGABRT)
        torch.save(payload, tmp)
        _fsync(tmp, os.O_RDWR)
        faults.point("checkpoint.before_rename")
        os.replace(tmp, path)
        faults.point("checkpoint.after_rename")
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; directories cannot be opened on Windows)."""
    if os.name == "posix":
        _fsync(folder, os.O_RDONLY)


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or not a vaelab checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; train a model first (vaelab train)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); use the other checkpoint "
            "(best.pt / last.pt) in the run directory or retrain"
        ) from None
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{path} is not a vaelab checkpoint (no model/config entries)")
    return payload
