"""Worker pools that end with their parent: studies and sweeps run their jobs in spawned processes."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def worker_pool(n: int) -> Iterator:
    """A spawn-context ``multiprocessing.Pool`` of ``n`` workers that dies with the block.

    SIGTERM to this process (``kill``, a batch system's time limit) raises SystemExit(143) here, and any
    exception leaving the block kills the workers (SIGKILL) before the pool is torn down. Python's default
    left them running, orphaned; and ``Pool.terminate``'s SIGTERM is not enough either: a worker inside
    ``vaelab.fit`` takes a first SIGTERM as "stop after this step", and then waits for the next task, so
    ``terminate`` joined it for ever. A study's runs start from scratch (``run_jobs``), so nothing is lost.
    """
    pool = mp.get_context("spawn").Pool(n)
    try:
        with _sigterm_exits():
            yield pool
        pool.close()
    except BaseException:
        for p in list(pool._pool):  # type: ignore[attr-defined]  # (multiprocessing keeps its workers here)
            p.kill()
        pool.terminate()
        raise
    finally:
        pool.join()


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Inside the block (main thread only), SIGTERM raises SystemExit(128 + 15)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
