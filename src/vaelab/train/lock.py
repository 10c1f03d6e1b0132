"""One training process per run directory.

``fit`` holds an advisory lock (``fcntl.flock``) on ``RUN_DIR/.lock`` for the whole run, so a second
process training into the same directory is refused instead of interleaving metrics rows and
overwriting checkpoints. The kernel drops the lock when its holder dies, however it dies (SIGKILL
included), so a lock left by a killed run is stale by construction: the next start takes it over
and says so. The file records the holder (pid, host, start time) for the message; it is emptied,
not deleted, on a clean exit (deleting a lock file races with a process that just opened it).
POSIX only: where ``fcntl`` is missing (Windows) runs are not locked. Network file systems may
not honour ``flock``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import RunInUseError

fcntl: types.ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory's lock for the duration of the block (the directory must exist).

    Raises:
        RunInUseError: a live process holds it, named in the message.
    """
    if fcntl is None:
        yield
        return
    path = Path(run_dir) / LOCK_NAME
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise RunInUseError(f"{run_dir} is being trained by {holder}; wait for it to finish or use another --out") from None
    try:
        f.seek(0)
        stale = f.read().strip()
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        f.flush()
        if stale:
            warnings.warn(f"{run_dir}: took over the lock of {stale}, which is no longer running", stacklevel=3)
        yield
    finally:
        f.seek(0)
        f.truncate()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
