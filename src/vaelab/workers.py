"""Worker pools that end with their parent: studies and sweeps run their jobs in spawned processes."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """Inside the block, SIGTERM (``kill``, a batch system's time limit) raises SystemExit(143), so that
    a ``with Pool(...)`` inside it terminates its workers: Python's default action ends this process
    alone and leaves them running, orphaned. Outside the main thread (where no handler can be set) a
    no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
