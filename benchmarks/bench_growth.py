"""Cost growth: seconds and peak memory as the data (N), the importance samples of IS evaluation (K)
and the number of processes grow, with the fitted exponent b of seconds ~ a * N^b (least squares on
the logs). ``bench_scaling.py`` has the other two curves (K in training, the IS chunk size).

- **Training, N**: one IWAE-5 epoch of ``fit`` (784-200-200-50 tanh MLP, Bernoulli decoder, batch 100)
  on the first --base MNIST images repeated x1, x4, x16; ``train_time_s`` of metrics.csv, and the peak
  resident memory of the process above what it held after loading the data.
- **IS evaluation, N and K**: ``importance_sampled_log_likelihood`` on N test images with K samples;
  seconds and peak memory growth (the chunking should keep memory flat in N and in K).
- **Processes**: an IWAE-5 epoch on MNIST's 50k images with ``vaelab train --nproc P``, P = 1, 2 (gloo).

Every measurement runs in a fresh process, its peak-RSS mark reset after loading (Linux clear_refs).

    VAELAB_DATA=../shared/data python benchmarks/bench_growth.py [--base 2500]

Writes benchmarks/results/growth.json and growth.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(kind: str, a: int, b: int) -> dict:
    import bench_scaling
    import impls
    import torch

    from vaelab import progress
    from vaelab.data import load_data
    from vaelab.evaluation import importance_sampled_log_likelihood
    from vaelab.train import fit

    torch.set_flush_denormal(True)
    cfg = impls._model_cfg(5)
    data = load_data(cfg.data, "bernoulli")
    with progress.quiet():
        if kind == "train":  # a = base images, b = repetitions
            import dataclasses

            train = data.train[:a].repeat(b, 1, 1, 1)  # (a*b, 1, 28, 28): the data set tiled b times
            splits = dataclasses.replace(data, train=train, valid=data.valid[:100])
            rss0 = bench_scaling._reset_peak_rss()
            with tempfile.TemporaryDirectory() as d:
                res = fit(cfg, Path(d) / "r", data=splits, quiet=True, tensorboard=False)
            seconds = res.history[-1]["train_time_s"]
        else:  # IS: a = points, b = K
            model = bench_scaling._model()
            x = data.test[:a]
            importance_sampled_log_likelihood(model, x[:2], k=50)  # warm-up
            rss0 = bench_scaling._reset_peak_rss()
            t = time.perf_counter()
            importance_sampled_log_likelihood(model, x, k=b, seed=0)
            seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_mb": (bench_scaling._status_kb("VmHWM") - rss0) / 1024}


def run_child(kind: str, a: int, b: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(a), str(b)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if r.returncode:
        sys.exit(f"{kind} {a} {b} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def processes(nproc: int) -> dict:
    """One IWAE-5 epoch of MNIST's 50k images through the CLI with ``--nproc`` processes (one thread
    each of this machine's two: the two settings use the same cores); seconds of training (metrics.csv)."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "vaelab", "train", "--quiet", "--dataset", "mnist", "--hidden", "200", "200",
               "--z-dim", "50", "--objective", "iwae", "--n-samples", "5", "--epochs", "1", "--batch-size", "100",
               "--set", "train.valid_every=0", "--nproc", str(nproc), "--out", f"{d}/r"]  # fmt: skip
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(2 // nproc)})
        wall = time.perf_counter() - t
        if r.returncode:
            return {"nproc": nproc, "error": r.stderr[-500:]}
        row = Path(f"{d}/r/metrics.csv").read_text().splitlines()[1].split(",")
    return {"nproc": nproc, "seconds": float(row[11]), "wall_s": wall}


def exponent(xs: list[float], ys: list[float]) -> float:
    """b of y ~ a x^b by least squares on log y against log x."""
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sum((u - mx) ** 2 for u in lx)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=2500)
    args = ap.parse_args()
    reps = (1, 4, 16)
    train = [{"n": args.base * r, **run_child("train", args.base, r)} for r in reps]
    is_n = [{"n": n, "k": 500, **run_child("is", n, 500)} for n in (100, 400, 1600)]
    is_k = [{"n": 100, "k": k, **run_child("is", 100, k)} for k in (50, 500, 5000)]
    procs = [processes(p) for p in (1, 2)]
    fits = {
        "train_time_vs_n": exponent([r["n"] for r in train], [r["seconds"] for r in train]),
        "is_time_vs_n": exponent([r["n"] for r in is_n], [r["seconds"] for r in is_n]),
        "is_time_vs_k": exponent([r["k"] for r in is_k], [r["seconds"] for r in is_k]),
    }
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args), "train": train, "is_n": is_n, "is_k": is_k,
           "processes": procs, "exponents": fits}  # fmt: skip
    (HERE / "results" / "growth.json").write_text(json.dumps(out, indent=2))
    lines = [f"Cost growth (`benchmarks/bench_growth.py`, {out['date']}); exponent b of seconds ~ a N^b.", "",
             "| what | size | seconds | peak memory growth (MB) |", "|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| IWAE-5 training epoch, N images | {r['n']} | {r['seconds']:.2f} | {r['peak_mb']:.0f} |" for r in train]
    lines += [f"| IS, K = 500, N points | {r['n']} | {r['seconds']:.2f} | {r['peak_mb']:.0f} |" for r in is_n]
    lines += [f"| IS, 100 points, K samples | {r['k']} | {r['seconds']:.2f} | {r['peak_mb']:.0f} |" for r in is_k]
    lines += [f"| IWAE-5 epoch on 50k images, processes | {r['nproc']} | {r.get('seconds', float('nan')):.2f} | |"
              for r in procs]  # fmt: skip
    lines += ["", "| fitted exponent | b |", "|---|---:|"] + [f"| {k} | {v:.2f} |" for k, v in fits.items()]
    (HERE / "results" / "growth.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
