"""Back-to-back two-rank torchrun launches of one tests/test_distributed.py case beside a competing CPU
load, counting the launches in which a rank aborted (exit code -6, SIGABRT) or failed otherwise.

Every rank runs with Python's faulthandler on (the Python stack of every thread at the abort) and core
files enabled; for an aborted launch the script prints the rank's stderr and, when gdb is on the PATH,
the native backtrace of every thread read from the core file (docs/reliability.md).

    python benchmarks/two_rank_loop.py [--launches 300] [--load 1] [--case vimco] [--keep DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_distributed import CASES, SCRIPT, SMALL, TRAIN  # noqa: E402  (the cases the tests launch)


def _spin() -> None:
    while True:
        pass


def _cores_on() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _backtrace(core: Path) -> str:
    if not shutil.which("gdb"):
        return "(gdb not found)"
    cmd = ["gdb", "-batch", "-ex", "thread apply all bt 25", sys.executable, str(core)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout


def launch(case: str, work: Path, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    """One standalone 2-rank launch of ``case`` in ``work`` (the ranks' working directory: core files land there)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
           *TRAIN, *SMALL, "--epochs", "2", *CASES[case], "--out", str(work / "run")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NOISE_FREE": "1", "PYTHONFAULTHANDLER": "1",
           "TORCH_SHOW_CPP_STACKTRACES": "1"}  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=work, preexec_fn=_cores_on)


def _report(i: int, done: subprocess.CompletedProcess, work: Path, abort: bool, keep: Path | None) -> None:
    print(f"launch {i + 1}: exit {done.returncode} ({'SIGABRT' if abort else 'failed'})\n{done.stderr[-8000:]}")
    for core in work.glob("core*"):
        print(f"--- {core.name}:\n{_backtrace(core)}")
    if keep:
        shutil.copytree(work, keep / f"launch{i + 1}", dirs_exist_ok=True)
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--launches", type=int, default=300)
    ap.add_argument("--load", type=int, default=1, help="busy-looping processes beside the launches")
    ap.add_argument("--case", choices=sorted(CASES), default="vimco")
    ap.add_argument("--keep", type=Path, help="keep the folders of failed launches here")
    ap.add_argument("--script", type=Path, default=SCRIPT, help="the worker script (default: tests/_dist_script.py)")
    args = ap.parse_args()
    load = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for p in load:
        p.start()
    aborted = failed = 0
    t0 = time.perf_counter()
    try:
        for i in range(args.launches):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                done = launch(args.case, work, args.script.resolve())
                if done.returncode != 0:
                    abort = "(exitcode: -6)" in done.stderr
                    aborted, failed = aborted + abort, failed + (not abort)
                    _report(i, done, work, abort, args.keep)
            if (i + 1) % 25 == 0:
                print(f"{i + 1} launches, {aborted} aborted, {failed} failed, {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        for p in load:
            p.terminate()
    print(f"{args.launches} launches of '{args.case}' beside {args.load} busy process(es): "
          f"{aborted} aborted (SIGABRT), {failed} failed otherwise, {time.perf_counter() - t0:.0f} s")  # fmt: skip
    sys.exit(1 if aborted or failed else 0)


if __name__ == "__main__":
    main()
