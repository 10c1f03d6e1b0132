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
from vaelab.models import build_vae
from vaelab.train import backward, bound_terms

VARIANTS = {
    "iwae-64 reparam": dict(objective="iwae", n_samples=64),
    "iwae-64 stl": dict(objective="iwae", n_samples=64, estimator="stl"),
    "iwae-64 dreg": dict(objective="iwae", n_samples=64, estimator="dreg"),
    "miwae(8,8)": dict(objective="miwae", n_samples=8, n_groups=8),
    "ciwae(0.5) K=64": dict(objective="ciwae", n_samples=64),
    "piwae(8,8)": dict(objective="piwae", n_samples=8, n_groups=8),
    "piwae(8,8) dreg": dict(objective="piwae", n_samples=8, n_groups=8, estimator="dreg"),
    "elbo 64 samples (analytic KL)": dict(objective="elbo", n_samples=64),
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
    base = RunConfig().replace(z_dim=50, hidden=[200, 200], likelihood="bernoulli")
    x = (torch.rand(100, 784, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    setups = {}
    for name, over in VARIANTS.items():
        torch.manual_seed(0)
        model = build_vae(base.model, 784)
        t = base.replace(**over).train
        setups[name] = (model, torch.optim.Adam(model.parameters(), 1e-3), t)
    times = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (model, opt, t) in setups.items():
            kl = "analytic" if t.objective == "elbo" and t.estimator == "reparam" else "mc"
            start = time.perf_counter()
            for _ in range(args.steps):
                est, _ = bound_terms(model, x, t.n_samples, t.objective, kl, 1.0, t.estimator, t.n_groups, t.ciwae_beta)
                opt.zero_grad(set_to_none=True)
                backward(model, est)
                opt.step()
            times[name].append((time.perf_counter() - start) / args.steps)
    ref = statistics.median(times["iwae-64 reparam"])
    rows = {name: {"median_ms": 1e3 * statistics.median(v), "ratio_to_iwae": statistics.median(v) / ref,
                   "all_ms": [1e3 * s for s in v]} for name, v in times.items()}
    for name, r in rows.items():
        print(f"{name:<32} {r['median_ms']:7.1f} ms/step   x{r['ratio_to_iwae']:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "threads": args.threads,
                               "torch": torch.__version__, "batch": 100, "samples_per_point": 64,
                               "rounds": args.rounds, "steps": args.steps, "results": rows}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
