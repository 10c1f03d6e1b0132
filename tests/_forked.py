"""``vaelab`` commands in processes of their own that start in milliseconds, not seconds (not a test module).

The crash tests need a process to kill (SIGKILL at an injected point, vaelab.faults), but not a new
interpreter: starting Python and importing torch and vaelab took ~1.5 s of each such test's ~1.9 s. A
multiprocessing *forkserver* imports vaelab once; each command is a fork of that server, which has never
run a torch operation (so no thread pool is copied half-alive into the child), and calls
``vaelab.cli.main`` there. Tests of signals, exit statuses and the launcher keep real subprocesses.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["vaelab.cli", "vaelab.train", "vaelab.distributed"])


def _main(argv: list[str], env: dict[str, str], log: str) -> None:
    os.environ.update(env)
    with open(log, "w") as f:  # stdout and stderr of the command, for the test's failure message
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    from vaelab.cli import main

    sys.exit(main(argv))  # multiprocessing makes the status the process's exit code


def vaelab(argv: list[str], log: Path, timeout: float = 300, **env: str) -> tuple[int, str]:
    """Run ``vaelab ARGV`` in a forked process to its end: (exit status, -9 when SIGKILLed; what it printed)."""
    process = _CTX.Process(target=_main, args=(list(argv), {k: str(v) for k, v in env.items()}, str(log)))
    process.start()
    process.join(timeout)
    said = log.read_text() if log.exists() else ""
    if process.exitcode is None:
        process.kill()
        process.join()
        raise AssertionError(f"vaelab did not finish within {timeout} s:\n{said[-3000:]}")
    return process.exitcode, said
