"""Coverage-guided fuzzing of vaelab's file readers with atheris (opt-in; not part of the test suite).

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/atheris_loaders.py --target array-npy --seconds 60 --out fuzz/results.jsonl

Targets: array-npy, array-npz, array-csv (``load_array`` + ``split_array``), amat (``read_amat``),
frey, caltech (their .mat readers), text (the ``text`` corpus loader), toml (``config.load``),
checkpoint (``load_checkpoint``). Each
input is written to a file and read back; the only exceptions allowed out are VaelabError with a
one-line message. Any other exception is a crash: atheris stops and writes the input that caused
it (``crash-*``) to the working folder. On a clean run, one JSON line with the target, inputs
tried and seconds goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from vaelab import config as config_mod
    from vaelab.checkpoint import load_checkpoint
    from vaelab.data.arrays import load_array, split_array
    from vaelab.data.caltech import read_caltech
    from vaelab.data.frey import read_frey
    from vaelab.data.static_mnist import read_amat
    from vaelab.data.text import load_text
    from vaelab.errors import VaelabError

FOLDER = Path(tempfile.mkdtemp(prefix="vaelab-fuzz-"))


def _array(suffix):
    def run(path):
        x, y = load_array(path)
        split_array(x, y, 0.1, 0.2, 0)

    return suffix, run


TARGETS = {
    "array-npy": _array(".npy"),
    "array-npz": _array(".npz"),
    "array-csv": _array(".csv"),
    "amat": (".amat", lambda p: read_amat(p, "valid")),
    "text": (".txt", lambda p: load_text(path=str(p), valid_fraction=0.2, test_fraction=0.2)),
    "frey": (".mat", read_frey),
    "caltech": (".mat", read_caltech),
    "toml": (".toml", config_mod.load),
    "checkpoint": (".pt", load_checkpoint),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=TARGETS, required=True)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--out", default="", help="append a JSON line with the counts here")
    args, rest = p.parse_known_args()
    suffix, run = TARGETS[args.target]
    path = FOLDER / f"input{suffix}"
    tried, t0 = 0, time.perf_counter()

    def one_input(data: bytes) -> None:
        nonlocal tried
        tried += 1
        if time.perf_counter() - t0 > args.seconds:
            _report(args, tried, time.perf_counter() - t0)
            os._exit(0)  # libFuzzer treats SystemExit as a crash
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run(path)
        except VaelabError as e:
            if "\n" in str(e) or not str(e):
                raise AssertionError(f"not a one-line message: {e!r}") from None

    atheris.Setup([sys.argv[0], *rest], one_input)
    atheris.Fuzz()


def _report(args, tried: int, seconds: float) -> None:
    line = json.dumps({"target": args.target, "inputs": tried, "seconds": round(seconds, 1), "crashes": 0})
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
