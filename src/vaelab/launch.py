"""``vaelab train --nproc N``: torch's elastic agent (what ``torchrun`` runs), started in this process.

Why in-process rather than ``subprocess.call(["torchrun", ...])``: the launcher must turn what the
agent knows into one line and an exit status. Through a torchrun child, a Ctrl-C ended in torchrun's
``SignalException`` traceback, exit status 1, and the parent's own "aborted" line. Here:

- the first SIGINT / SIGTERM is forwarded once to every worker (each runs in its own session, so a
  terminal's Ctrl-C reaches only the launcher); rank 0 writes ``last.pt`` after its current step and
  says so; the launcher exits with 75 (``EXIT_STOPPED``), as a single process does;
- a second signal is forwarded too (the workers abort at once: exit 130, as a single process does);
- ``--max-restarts R``: a worker that dies (SIGKILL, OOM, a hung rank's collective timeout) makes the
  agent stop the group and start it again, at most R times; a restarted ``vaelab train`` finds its run
  directory and resumes from ``last.pt`` (:func:`restart_count`), so the finished run equals an
  uninterrupted one (tests/test_elastic.py);
- ``--nnodes M --rdzv-endpoint HOST:PORT``: the c10d rendezvous of ``torchrun --nnodes M``; run the
  same command on every machine (docs/performance.md, "Several machines").

Workers run ``python -m vaelab`` with this command's arguments, less the launcher's own options.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from dataclasses import dataclass

from .errors import EXIT_ABORTED, EXIT_ERROR, EXIT_STOPPED

LAUNCHER_FLAGS = ("--nproc", "--max-restarts", "--nnodes", "--rdzv-endpoint", "--rdzv-id")  # each takes one value
# torch's elastic agent logs each forwarded signal at WARNING; the launcher says it once instead
_QUIET_RECORDS = ("Received %s death signal", "Sending process %s closing signal")
# a logger's filter sees only the records logged on that logger itself: the two modules that log them
_QUIET_LOGGERS = ("torch.distributed.elastic.agent.server.api", "torch.distributed.elastic.multiprocessing.api")


def restart_count() -> int:
    """How many times torch's elastic agent has restarted this worker group (0 outside torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def worker_argv(argv: list[str]) -> list[str]:
    """``argv`` without the launcher's own options (``--nproc 2``, ``--max-restarts=3``, ...)."""
    out, it = [], iter(argv)
    for a in it:
        name = a.split("=", 1)[0]
        if name in LAUNCHER_FLAGS:
            if "=" not in a:
                next(it, None)
            continue
        out.append(a)
    return out


@dataclass
class Launch:
    """What ``vaelab train`` was asked to launch: processes per node, nodes, restarts, rendezvous."""

    nproc: int
    max_restarts: int = 0
    nnodes: int = 1
    rdzv_endpoint: str = ""
    rdzv_id: str = ""
    run_dir: str = ""  # what the workers train into (named in the line a failed group ends with)


class _Signals:
    """SIGINT / SIGTERM handler during the launch: counts them and hands each to the agent, which
    forwards it to the workers (the first: stop after the step; the second: abort)."""

    def __init__(self):
        self.count, self.name, self._old = 0, "", {}

    def __enter__(self) -> _Signals:
        for s in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(s) is not signal.SIG_IGN:  # a background job's ignored SIGINT stays ignored
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    def _handle(self, signum, frame) -> None:
        from torch.distributed.elastic.multiprocessing import SignalException

        self.count += 1
        self.name = signal.Signals(signum).name
        raise SignalException(f"{self.name}", sigval=signal.Signals(signum))


def _config(spec: Launch):
    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(
        min_nodes=spec.nnodes,
        max_nodes=spec.nnodes,
        nproc_per_node=spec.nproc,
        run_id=spec.rdzv_id or uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint=spec.rdzv_endpoint or "localhost:0",  # torchrun --standalone: a free port on this machine
        max_restarts=spec.max_restarts,
        monitor_interval=0.1,
        signals_to_handle="SIGHUP,SIGQUIT",  # SIGINT / SIGTERM: _Signals, which counts them
        shutdown_timeout=120,  # a stopping worker finishes its step and writes last.pt first
    )


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(str(record.msg).startswith(p) for p in _QUIET_RECORDS)


def launch(spec: Launch, argv: list[str]) -> int:
    """Run ``python -m vaelab *argv`` as ``spec`` describes, under torch's elastic agent.

    Returns:
        the exit status: 0 done, 75 stopped by a signal (``last.pt`` current), 130 aborted by a
        second signal, 2 when every failed worker failed with bad input (its message is above),
        1 otherwise (a one-line summary names the failed ranks).
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    quiet = _Quiet()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    try:
        with _Signals() as sig:
            try:
                elastic_launch(_config(spec), sys.executable)("-m", "vaelab", *worker_argv(argv))
            except SignalException:
                if sig.count > 1:
                    print(f"aborted by a second {sig.name}; last.pt holds the last checkpoint written", file=sys.stderr)
                    return EXIT_ABORTED
                return EXIT_STOPPED  # rank 0 said where last.pt stands and how to resume
            except ChildFailedError as e:
                return _failed(e, spec.run_dir)
    finally:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)
    return 0


def _failed(e, run_dir: str = "") -> int:
    """One line for a failed group; the workers' own messages are above it."""
    codes = {rank: f.exitcode for rank, f in e.failures.items()}
    if set(codes.values()) <= {EXIT_ERROR, EXIT_STOPPED, EXIT_ABORTED}:
        return max(codes.values()) if EXIT_ABORTED in codes.values() else min(codes.values())
    parts = []
    for rank, f in sorted(e.failures.items()):
        how = f"killed by {f.signal_name()}" if f.exitcode < 0 else f"exit status {f.exitcode}"
        parts.append(f"rank {rank} ({how})")
    last = os.path.join(run_dir, "last.pt")
    kept = f"{last} holds the last checkpoint (continue with --resume {run_dir})" if os.path.isfile(last) else (
        "no checkpoint was written")  # fmt: skip
    print(f"error: training failed: {', '.join(parts)}; {kept}", file=sys.stderr)
    return 1
