"""Cost of a training step with a flow posterior, relative to the diagonal Gaussian.

The one-layer MNIST model of the IWAE paper (784-200-200-50, tanh, Bernoulli decoder), batch 100, on
random binary data. Posteriors: diagonal Gaussian (closed-form KL, the default for the ELBO, and Monte
Carlo KL), planar with 10 and 40 steps (Rezende & Mohamed 2015), IAF with 2 steps (Kingma et al. 2016;
MADE hidden [100], context 100); each at the ELBO (1 sample) and IWAE-5, plus STL / DReG where a
flow's stopped density costs extra. Variants are interleaved round-robin over the rounds so machine
noise hits all of them; medians and ratios are written to benchmarks/results/flows.json.

    python benchmarks/bench_flows.py [--rounds 5] [--steps 10] [--threads 2]
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

LATENTS = {
    "gaussian": {"kind": "gaussian", "dim": 50},
    "planar-10": {"kind": "planar", "dim": 50, "n_flows": 10},
    "planar-40": {"kind": "planar", "dim": 50, "n_flows": 40},
    "iaf-2": {"kind": "iaf", "dim": 50, "n_flows": 2},
}
#: name -> (latent, objective, K, estimator, kl)
VARIANTS = {
    "gaussian elbo (analytic KL)": ("gaussian", "elbo", 1, "reparam", "analytic"),
    "gaussian elbo (MC KL)": ("gaussian", "elbo", 1, "reparam", "mc"),
    "planar-10 elbo": ("planar-10", "elbo", 1, "reparam", "mc"),
    "planar-40 elbo": ("planar-40", "elbo", 1, "reparam", "mc"),
    "iaf-2 elbo": ("iaf-2", "elbo", 1, "reparam", "mc"),
    "gaussian iwae-5": ("gaussian", "iwae", 5, "reparam", "mc"),
    "planar-10 iwae-5": ("planar-10", "iwae", 5, "reparam", "mc"),
    "iaf-2 iwae-5": ("iaf-2", "iwae", 5, "reparam", "mc"),
    "gaussian iwae-5 dreg": ("gaussian", "iwae", 5, "dreg", "mc"),
    "planar-10 iwae-5 dreg": ("planar-10", "iwae", 5, "dreg", "mc"),
    "iaf-2 iwae-5 dreg": ("iaf-2", "iwae", 5, "dreg", "mc"),
}
REFERENCE = {"elbo": "gaussian elbo (analytic KL)", "iwae": "gaussian iwae-5", "dreg": "gaussian iwae-5 dreg"}


def _setup(latent: str, objective: str, k: int, estimator: str, kl: str):
    cfg = RunConfig().override(
        {"model.latent": LATENTS[latent], "model.encoder.hidden": [200, 200], "model.likelihood": "bernoulli"}
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt, groups = build_optimizer("adam", model, 1e-3)
    return model, opt, groups, OBJECTIVES.build(objective, {}), ESTIMATORS.build(estimator), k, kl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "flows.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    x = (torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    setups = {name: _setup(*v) for name, v in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (model, opt, groups, objective, estimator, k, kl) in setups.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, x, opt, objective, estimator, k, kl, groups=groups)
            times[name].append((time.perf_counter() - start) / args.steps)
    rows = {}
    for name, v in times.items():
        _, obj, _, est, _ = VARIANTS[name]
        ref = REFERENCE["dreg" if est == "dreg" else obj]
        rows[name] = {
            "median_ms": 1e3 * statistics.median(v),
            "reference": ref,
            "ratio": statistics.median(v) / statistics.median(times[ref]),
            "all_ms": [1e3 * s for s in v],
        }
        print(f"{name:<30} {rows[name]['median_ms']:7.1f} ms/step   x{rows[name]['ratio']:.2f} of {ref}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    out.write_text(json.dumps({**meta, "batch": 100, "rounds": args.rounds, "steps": args.steps, "results": rows}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
