"""`train.compile` and `train.precision = "bf16"` against float32 eager: speed per step, and the test
bound after the same training budget.

Workloads: the IWAE paper's MNIST model (784-200-200-50 tanh MLP, Bernoulli decoder, batch 100) trained
as a VAE (K = 1), IWAE-5 and IWAE-50.

- **Speed**: vaelab's ``train_step`` in the three modes, interleaved in one process on the same
  batches (blocks of --block steps, --rounds rounds, medians; compile time excluded and reported
  apart), as a ratio to float32 eager.
- **Bound at equal budget**: each mode trains the same model from the same seed with ``fit`` for
  --epochs epochs on --train-size images, then the test log p(x) is estimated by IS (K = --k-is, float32
  networks for every mode) on --points test images; reported as the paired difference to float32
  eager with its standard error over points. That error covers the evaluation only: two training runs
  differ by more (float rounding alone sends them apart), so the same difference for float32 eager
  from another seed is printed as the control.

    VAELAB_DATA=../shared/data python benchmarks/bench_precision.py [--device cuda] [--epochs 1]

Writes benchmarks/results/precision[_DEVICE].json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_limit  # noqa: E402
import impls  # noqa: E402

MODES = ("fp32 eager", "compile", "bf16")
CUDA_MODES = (*MODES, "cuda graphs")  # train.cuda_graphs: on a CPU it would be the eager step again


def modes(device) -> tuple[str, ...]:
    return CUDA_MODES if torch.device(device).type == "cuda" else MODES


def step_arms(k: int, device: torch.device, x: torch.Tensor) -> tuple[dict, dict]:
    """{mode: one step} and {mode: seconds its first call (the compilation) took}."""
    from vaelab.data import Batch
    from vaelab.estimators import ESTIMATORS
    from vaelab.models import build_model
    from vaelab.models.precision import set_precision
    from vaelab.objectives import OBJECTIVES
    from vaelab.train import compute_bound, train_step
    from vaelab.train.optim import build_optimizer
    from vaelab.train.step import compiled_bound

    g = torch.Generator().manual_seed(1)
    batches = [torch.bernoulli(x[torch.randint(0, len(x), (100,), generator=g)], generator=g).to(device) for _ in range(8)]
    arms, first = {}, {}
    for mode in modes(device):
        torch.manual_seed(0)
        model = set_precision(
            build_model(impls._model_cfg(k).model, (1, 28, 28)).to(device), "bf16" if mode == "bf16" else "fp32"
        )
        opt, groups = build_optimizer("adam", model, 1e-3)
        obj, est = OBJECTIVES.build("elbo" if k == 1 else "iwae"), ESTIMATORS.build("reparam")
        bound = compiled_bound() if mode == "compile" else compute_bound
        kl = "analytic" if k == 1 else "mc"
        it = iter(range(10**9))

        def step(model=model, opt=opt, groups=groups, obj=obj, est=est, bound=bound, kl=kl, it=it):
            xb = batches[next(it) % len(batches)]
            train_step(model, Batch(xb, None), opt, obj, est, k, kl, groups=groups, bound=bound)

        if mode == "cuda graphs":
            from vaelab.train.bound import BoundOptions
            from vaelab.train.graphs import GraphedStep

            graphed = GraphedStep(model, opt, obj, est, groups)

            def step(graphed=graphed, kl=kl, it=it):  # noqa: F811 (this mode's step)
                graphed.step(Batch(batches[next(it) % len(batches)], None), BoundOptions(k, kl), 1e-3)

        t = time.perf_counter()
        step()
        bench_limit._sync(device)
        first[mode] = time.perf_counter() - t
        arms[mode] = step
    return arms, first


def bound_after_training(k: int, mode: str, args, seed: int = 0) -> torch.Tensor:
    """(N,) IS log p(x) per test point after --epochs epochs in ``mode``."""
    from vaelab.data import load_data
    from vaelab.evaluation import importance_sampled_log_likelihood
    from vaelab.train import fit

    cfg = impls._model_cfg(k).override({
        "train.epochs": args.epochs, "train.device": args.device,
        "train.compile": mode == "compile", "train.precision": "bf16" if mode == "bf16" else "fp32",
        "train.cuda_graphs": mode == "cuda graphs",
        "train.valid_every": 0, "train.seed": seed,
    })  # fmt: skip
    data = load_data(cfg.data, "bernoulli")  # dynamic binarization of the training images, as fit would
    splits = dataclasses.replace(data, train=data.train[: args.train_size], valid=data.valid[:100])
    with tempfile.TemporaryDirectory() as d:
        res = fit(cfg, Path(d) / "r", data=splits, quiet=True, tensorboard=False)
    x = data.test[: args.points].to(args.device)  # binarized once with a fixed seed by the loader
    return importance_sampled_log_likelihood(res.model, x, k=args.k_is, seed=0).per_point.cpu()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 5, 50])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-size", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--k-is", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    return ap.parse_args()


def main() -> None:
    from vaelab import progress
    from vaelab.data import load_mnist

    args = parse_args()
    device = torch.device(args.device)
    torch.set_flush_denormal(True)
    x = load_mnist(None).train[:5000].clone()
    rows = []
    with progress.quiet():
        for k in args.k:
            arms, first = step_arms(k, device, x)
            res = bench_limit.interleave(arms, device, args.rounds, max(2, args.block // (5 if k >= 50 else 1)))
            t0 = time.perf_counter()
            lp = {m: bound_after_training(k, m, args) for m in modes(device)}
            # the control: fp32 eager from another seed, i.e. how far two training runs land apart anyway
            lp["fp32 eager, seed 1"] = bound_after_training(k, "fp32 eager", args, seed=1)
            row = {"workload": "VAE" if k == 1 else f"IWAE-{k}", "ms": {m: 1e3 * res[m]["s"] for m in modes(device)},
                   "first_call_s": first, "disturbed": {m: res[m]["disturbed"] for m in modes(device)},
                   "log_px": {m: float(v.mean()) for m, v in lp.items()},
                   "diff": {m: _paired(v, lp["fp32 eager"]) for m, v in lp.items() if m != "fp32 eager"},
                   "train_eval_s": time.perf_counter() - t0}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    write(rows, args)


def _paired(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a - b).double()
    return float(d.mean()), float(d.std() / len(d) ** 0.5)


def write(rows: list[dict], args) -> None:
    dev = "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__, "args": vars(args)}
    (HERE / "results" / f"precision{dev}.json").write_text(json.dumps({**stamp, "rows": rows}, indent=2))
    lines = [f"`benchmarks/bench_precision.py`, {stamp['date']}, torch {stamp['torch']}, device {args.device}; "
             f"ms per step (median of {args.rounds} interleaved rounds) and the test log p(x) after {args.epochs} "
             f"epoch(s) on {args.train_size} images (IS, K = {args.k_is}, {args.points} points; difference to fp32 "
             "eager ± its paired standard error).", "",
             "| workload | mode | ms / step | vs fp32 eager | first call (s) | test log p(x) | difference (nats) |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        for m in modes(args.device):
            ratio = r["ms"][m] / r["ms"]["fp32 eager"]
            diff = "" if m == "fp32 eager" else f"{r['diff'][m][0]:+.2f} ± {r['diff'][m][1]:.2f}"
            lines.append(f"| {r['workload']} | {m} | {r['ms'][m]:.2f} | {ratio:.3f} | {r['first_call_s'][m]:.1f} | "
                         f"{r['log_px'][m]:.2f} | {diff} |")  # fmt: skip
        if "fp32 eager, seed 1" in r["diff"]:
            d, se = r["diff"]["fp32 eager, seed 1"]
            control = r["log_px"]["fp32 eager, seed 1"]
            lines.append(f"| {r['workload']} | fp32 eager, seed 1 (control) | | | | {control:.2f} | {d:+.2f} ± {se:.2f} |")
    (HERE / "results" / f"precision{dev}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
