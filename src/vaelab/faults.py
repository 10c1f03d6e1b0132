"""Deterministic fault injection for the crash tests: ``VAELAB_FAULT=POINT:N`` kills the process
with SIGKILL the N-th time (1-based) execution reaches ``point(POINT)``.

The points sit where a real crash hurts most: between a checkpoint's write and its rename, between
an epoch's metrics row and its checkpoint, halfway through a metrics line. With the variable
unset, :func:`point` is one dictionary lookup. Not for users; tests/test_faults.py drives it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "VAELAB_FAULT"
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
    if target not in POINTS:
        raise ValueError(f"{ENV}={spec}: unknown fault point {target!r}; one of {', '.join(POINTS)}")
    if target != name:
        return False
    _seen[name] += 1
    return _seen[name] == int(n or 1)


def kill() -> None:
    """Die now, as ``kill -9`` would: no cleanup, no flushing of Python buffers."""
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Kill the process here when ``$VAELAB_FAULT`` names this call."""
    if armed(name):
        kill()
