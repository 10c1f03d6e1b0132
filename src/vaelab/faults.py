"""Deterministic fault injection for the crash tests: ``VAELAB_FAULT=POINT:N`` kills the process
with SIGKILL the N-th time (1-based) execution reaches ``point(POINT)``; ``POINT:N:stop`` stops it
with SIGSTOP instead (a hung process). ``VAELAB_FAULT_RANK=r`` arms it on torchrun rank r only, and
only before the elastic agent's first restart (the restarted group must run through).

The points sit where a real crash hurts most: between a checkpoint's write and its rename, between
an epoch's metrics row and its checkpoint, halfway through a metrics line. With the variable
unset, :func:`point` is one dictionary lookup. Not for users; tests/test_faults.py drives it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "VAELAB_FAULT"
RANK_ENV = "VAELAB_FAULT_RANK"
POINTS = (
    "step",
    "checkpoint.before_rename",
    "checkpoint.after_rename",
    "epoch.logged",
    "metrics.torn_line",
    "resume.reconciled",
)
_seen: Counter = Counter()


def armed(name: str) -> bool:
    """True when this call to ``name`` is the one ``$VAELAB_FAULT`` names (counting every call)."""
    spec = os.environ.get(ENV)
    if not spec:
        return False
    target, _, n = spec.partition(":")
    n = n.split(":")[0]
    if target not in POINTS:
        raise ValueError(f"{ENV}={spec}: unknown fault point {target!r}; one of {', '.join(POINTS)}")
    if target != name or not _this_process():
        return False
    _seen[name] += 1
    return _seen[name] == int(n or 1)


def _this_process() -> bool:
    rank = os.environ.get(RANK_ENV)
    if rank is None:
        return True
    from .launch import restart_count

    return rank == os.environ.get("RANK", "0") and restart_count() == 0


def kill() -> None:
    """Die now, as ``kill -9`` would: no cleanup, no flushing of Python buffers."""
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Kill the process here when ``$VAELAB_FAULT`` names this call."""
    if armed(name):
        if os.environ[ENV].endswith(":stop"):
            os.kill(os.getpid(), signal.SIGSTOP)
        else:
            kill()
