"""Scaling curves: training time per step against the number of importance samples K, and the IS
evaluator's time and peak memory against its chunk size.

Training: the IWAE-paper MLP (784-200-200-50 tanh, Bernoulli decoder), IWAE bound, batch 100,
dynamic binarization, vaelab's `train_step` with objects built once; K in {1, 5, 50, 500}; median
seconds per step over --steps steps after 3 warm-up steps, scaled to a 50k-image epoch.

Evaluation: `importance_sampled_log_likelihood` with K = 5,000 on --points test images, for a range
of ``max_rows`` (decoder rows scored at once); each setting in a fresh process, its peak RSS mark reset
before the call (Linux), so the growth reported is the evaluation's own.

    VAELAB_DATA=../shared/data python benchmarks/bench_scaling.py [--steps 20] [--points 200]

Writes benchmarks/results/scaling.json and scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

KS = (1, 5, 50, 500)
ROWS = (500, 1300, 5000, 20000, 100000)


def _model():
    from vaelab.config import RunConfig
    from vaelab.models import build_model

    cfg = RunConfig().override(
        {"model.latent.dim": 50, "model.encoder": {"kind": "mlp", "hidden": [200, 200]}, "model.likelihood": "bernoulli"}
    )
    return build_model(cfg.model, (1, 28, 28))


def train_curve(x, steps: int) -> list[dict]:
    import torch

    from vaelab.data import iterate_batches
    from vaelab.estimators import ESTIMATORS
    from vaelab.objectives import OBJECTIVES
    from vaelab.train import train_step

    out = []
    for k in KS:
        torch.manual_seed(0)
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        obj, est = OBJECTIVES.build("iwae"), ESTIMATORS.build("reparam")
        groups = model.parameter_groups()
        batches = iterate_batches(x, 100, torch.Generator().manual_seed(0), True, True)
        times = []
        for i, batch in zip(range(steps + 3), batches):
            t = time.perf_counter()
            train_step(model, batch, opt, obj, est, k, "mc", groups=groups)
            if i >= 3:
                times.append(time.perf_counter() - t)
        step = statistics.median(times)
        out.append({"k": k, "s_per_step": step, "s_per_50k_epoch": step * 500})
        print(f"K = {k:4}: {step * 1e3:8.1f} ms per step, {step * 500:7.1f} s per 50k epoch", flush=True)
    return out


def eval_child(points: int, max_rows: int) -> None:
    import torch

    from vaelab.data import load_mnist
    from vaelab.evaluation import importance_sampled_log_likelihood

    torch.set_flush_denormal(True)
    x = torch.bernoulli(load_mnist(None).test[:points], generator=torch.Generator().manual_seed(1))
    model = _model()
    importance_sampled_log_likelihood(model, x[:2], k=50, max_rows=max_rows)  # warm-up
    rss0 = _reset_peak_rss()  # loading MNIST's pickle set a high-water mark far above what follows
    t = time.perf_counter()
    importance_sampled_log_likelihood(model, x, k=5000, max_rows=max_rows)
    seconds = time.perf_counter() - t
    print(json.dumps({"max_rows": max_rows, "seconds": seconds, "peak_rss_growth_mb": (_status_kb("VmHWM") - rss0) / 1024}))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the process's peak


def _reset_peak_rss() -> int:
    """Reset the peak-RSS mark to the current RSS (Linux: clear_refs 5) and return the RSS in kB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--eval-child":
        eval_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scaling"))
    args = ap.parse_args()
    if "VAELAB_DATA" not in os.environ:
        sys.exit("set VAELAB_DATA to the folder with mnist.pkl.gz")
    import torch

    from vaelab.data import load_mnist
    from vaelab.numerics import eval_rows

    torch.set_flush_denormal(True)
    x = load_mnist(None).train[: 100 * (args.steps + 3)].clone()
    train = train_curve(x, args.steps)
    default_rows = eval_rows(_model(), max(64, (16 * 2**20) // (4 * (4 * 784 + 64))))
    evals = []
    for rows in sorted({*ROWS, default_rows}):
        cmd = [sys.executable, __file__, "--eval-child", str(args.points), str(rows)]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        r["default"] = rows == default_rows
        evals.append(r)
        grow = r["peak_rss_growth_mb"]
        print(f"max_rows {rows:6}: {r['seconds']:6.1f} s for {args.points} points, +{grow:.0f} MB", flush=True)
    payload = {"args": vars(args), "threads": torch.get_num_threads(), "train": train, "eval": evals}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    lines = [
        "# Scaling curves (`benchmarks/bench_scaling.py`)",
        "",
        f"IWAE training step, 784-200-200-50 tanh, batch 100, {torch.get_num_threads()} threads, median of {args.steps}:",
        "",
        "| K | ms per step | s per 50k epoch | per sample vs K = 1 |",
        "|---:|---:|---:|---:|",
    ]
    base = train[0]["s_per_step"]
    lines += [
        f"| {r['k']} | {r['s_per_step'] * 1e3:.1f} | {r['s_per_50k_epoch']:.1f} | {r['s_per_step'] / base / r['k']:.2f} |"
        for r in train
    ]
    lines += [
        "",
        f"IS evaluation, K = 5,000 on {args.points} test images, by `max_rows` (decoder rows scored at once):",
        "",
        "| max_rows | seconds | peak RSS growth MB | |",
        "|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['max_rows']} | {r['seconds']:.1f} | {r['peak_rss_growth_mb']:.0f} | {'default' if r['default'] else ''} |"
        for r in evals
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
