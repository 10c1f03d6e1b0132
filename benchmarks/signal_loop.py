"""The signal tests of tests/test_faults.py, repeatedly, in both SIGINT dispositions, beside a competing
CPU load: pytest is exec'd with SIGINT at SIG_DFL (an interactive start) or SIG_IGN (a background job,
nohup, some CI runners), so the result does not depend on how this script itself was started.

    VAELAB_DATA=../shared/data python benchmarks/signal_loop.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import subprocess
import sys

SELECT = "signal or sigint or interrupt or ignored"


def _spin() -> None:
    while True:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    load = multiprocessing.Process(target=_spin, daemon=True)  # one busy core of the two
    load.start()
    failed = runs = 0
    try:
        for i in range(args.rounds):
            for name, disp in (("default", signal.SIG_DFL), ("ignored", signal.SIG_IGN)):
                cmd = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-rf",
                    "-p",
                    "no:cacheprovider",
                    "tests/test_faults.py",
                    "-k",
                    SELECT,
                ]
                p = subprocess.run(
                    cmd, capture_output=True, text=True, preexec_fn=lambda d=disp: signal.signal(signal.SIGINT, d)
                )
                runs, failed = runs + 1, failed + (p.returncode != 0)
                print(f"round {i + 1} SIGINT {name}: exit {p.returncode}; {p.stdout.strip().splitlines()[-1]}", flush=True)
                if p.returncode:
                    print(p.stdout[-6000:], p.stderr[-2000:], sep="\n", flush=True)
    finally:
        load.terminate()
    print(f"{runs} runs, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
