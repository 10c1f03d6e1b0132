"""Cost of a training step per bound / gradient estimator, relative to plain IWAE-64.

The IWAE-paper MLP (784-200-200-50, tanh, Bernoulli decoder), batch 100, M*K = 64 samples per
point, on random binary data (no data set needed). Every variant runs the same number of steps,
interleaved round-robin over several rounds so machine noise hits all of them; the median step
time and its ratio to IWAE-64 (reparameterization) are written to
benchmarks/results/estimators.json. DReG and PIWAE need two backward passes (docs/design.md).

    python benchmarks/bench_estimators.py [--rounds 5] [--steps 10] [--threads 1]
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
from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES
from vaelab.train import build_optimizer, train_step

#: name -> (objective table, K per group, estimator)
VARIANTS = {
    "iwae-64 reparam": ({"kind": "iwae"}, 64, "reparam"),
    "iwae-64 stl": ({"kind": "iwae"}, 64, "stl"),
    "iwae-64 dreg": ({"kind": "iwae"}, 64, "dreg"),
    "miwae(8,8)": ({"kind": "miwae", "groups": 8}, 8, "reparam"),
    "ciwae(0.5) K=64": ({"kind": "ciwae", "beta": 0.5}, 64, "reparam"),
    "piwae(8,8)": ({"kind": "piwae", "groups": 8}, 8, "reparam"),
    "piwae(8,8) dreg": ({"kind": "piwae", "groups": 8}, 8, "dreg"),
    "elbo 64 samples (analytic KL)": ({"kind": "elbo"}, 64, "reparam"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "estimators.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    base = RunConfig().override(
        {"model.latent.dim": 50, "model.encoder.hidden": [200, 200], "model.likelihood": "bernoulli"}
    )
    x = (torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    setups = {}
    for name, (obj, k, est) in VARIANTS.items():
        torch.manual_seed(0)
        model = build_model(base.model, (1, 28, 28))
        opt, groups = build_optimizer("adam", model, 1e-3)
        objective = OBJECTIVES.build(obj["kind"], {k_: v for k_, v in obj.items() if k_ != "kind"})
        kl = "analytic" if obj["kind"] == "elbo" and est == "reparam" else "mc"
        setups[name] = (model, opt, groups, objective, ESTIMATORS.build(est), k, kl)
    times = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (model, opt, groups, objective, estimator, k, kl) in setups.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, x, opt, objective, estimator, k, kl, groups=groups)
            times[name].append((time.perf_counter() - start) / args.steps)
    ref = statistics.median(times["iwae-64 reparam"])
    rows = {
        name: {
            "median_ms": 1e3 * statistics.median(v),
            "ratio_to_iwae": statistics.median(v) / ref,
            "all_ms": [1e3 * s for s in v],
        }
        for name, v in times.items()
    }
    for name, r in rows.items():
        print(f"{name:<32} {r['median_ms']:7.1f} ms/step   x{r['ratio_to_iwae']:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "threads": args.threads,
                "torch": torch.__version__,
                "batch": 100,
                "samples_per_point": 64,
                "rounds": args.rounds,
                "steps": args.steps,
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
