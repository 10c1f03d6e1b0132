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


class Forked:
    """A running ``vaelab`` command: :meth:`wait` gives its exit status (-9 when SIGKILLed), :attr:`output`
    what it printed."""

    def __init__(self, argv: list[str], log: Path, **env: str):
        self.log = log
        self.process = _CTX.Process(target=_main, args=(list(argv), {k: str(v) for k, v in env.items()}, str(log)))
        self.process.start()

    def wait(self, timeout: float = 300) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
            raise AssertionError(f"vaelab did not finish within {timeout} s:\n{self.output[-3000:]}")
        return self.process.exitcode

    @property
    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def vaelab(argv: list[str], log: Path, timeout: float = 300, **env: str) -> tuple[int, str]:
    """Run ``vaelab ARGV`` in a forked process to its end: (exit status, what it printed)."""
    p = Forked(argv, log, **env)
    return p.wait(timeout), p.output
