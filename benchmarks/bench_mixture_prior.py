"""Cost of importance-sampled log p(x) under a mixture prior, relative to N(0, I).

The VampPrior paper's one-layer model (784-300-300-40, tanh, Bernoulli decoder) on random binary
images; priors: N(0, I), a C-component trainable mixture of Gaussians and a VampPrior with C
pseudo-inputs (C = 500 by default, the paper's). Each prior's IS evaluation (K samples per point, the
evaluator's own chunking) runs once per round, round-robin, so machine noise hits every prior; the
median seconds and the ratio to N(0, I) are written to benchmarks/results/mixture_prior.json.

    python benchmarks/bench_mixture_prior.py [--k 5000] [--points 200] [--components 500] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from vaelab.config import RunConfig
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.models import build_model


def _model(prior, x_init: torch.Tensor):
    cfg = RunConfig().override(
        {
            "model.latent": {"kind": "gaussian", "dim": 40},
            "model.encoder": {"kind": "mlp", "hidden": [300, 300], "activation": "tanh"},
            "model.likelihood": "bernoulli",
            "model.prior": prior,
        }
    )
    torch.manual_seed(0)
    return build_model(cfg.model, (1, 28, 28), pseudo_init=x_init)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--components", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mixture_prior.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(args.points, 1, 28, 28, generator=gen) < 0.3).float()
    x_init = (torch.rand(args.components, 1, 28, 28, generator=gen) < 0.3).float()
    c = args.components
    priors = {
        "N(0, I)": "standard_normal",
        f"MoG, C = {c}": {"kind": "mog", "components": c},
        f"VampPrior, C = {c}": {"kind": "vamp", "components": c},
    }
    models = {name: _model(p, x_init) for name, p in priors.items()}
    times: dict[str, list[float]] = {name: [] for name in priors}
    for r in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            importance_sampled_log_likelihood(model, x, k=args.k, seed=r)
            times[name].append(time.perf_counter() - start)
            print(f"round {r}: {name}: {times[name][-1]:.2f} s", flush=True)
    base = statistics.median(times["N(0, I)"])
    rows = {
        name: {"median_s": statistics.median(t), "times_s": t, "ratio": statistics.median(t) / base}
        for name, t in times.items()
    }
    out = {
        "k": args.k,
        "points": args.points,
        "components": c,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:22s} {row['median_s']:8.2f} s  {row['ratio']:6.2f}x")


if __name__ == "__main__":
    main()
