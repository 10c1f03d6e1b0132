"""Cost of a training step of the labelled models, relative to the plain VAE.

Kingma et al. 2014's M2 architecture on MNIST (784-500-50 softplus MLPs, Bernoulli decoder, ELBO with
the closed-form KL), batch of 100 points, C = 10 classes: the plain VAE; the conditional VAE (one-hot
label appended to the encoder's and decoder's inputs); M2 on 100 unlabelled points (the conditional
pass runs on C x 100 = 1,000 rows, plus the classifier); M2 on the study's mixed batch of 100
unlabelled + 100 labelled points (1,100 rows). The row count sets the floor of the ratio: an M2 step
cannot cost less than ~C times a VAE step of the same batch. Variants are interleaved round-robin so
machine noise hits all of them; medians and ratios go to benchmarks/results/labels.json.

    python benchmarks/bench_labels.py [--rounds 5] [--steps 10] [--threads 2]
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
from vaelab.data import Batch
from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES
from vaelab.train import build_optimizer, train_step

C, B = 10, 100
#: name -> (model.labels, unlabelled points, labelled points)
VARIANTS = {
    "vae": ("none", 0, B),
    "cvae": ("conditional", 0, B),
    "m2 100 unlabelled": ("semi-supervised", B, 0),
    "m2 100 unlabelled + 100 labelled": ("semi-supervised", B, B),
}


def _setup(labels: str, n_u: int, n_l: int):
    cfg = RunConfig().override(
        {
            "model.labels": labels,
            "model.latent.dim": 50,
            "model.encoder": {"kind": "mlp", "hidden": [500], "activation": "softplus"},
            "model.likelihood": "bernoulli",
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), n_classes=C)
    opt, groups = build_optimizer("adam", model, 1e-3)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n_u + n_l, 1, 28, 28, generator=g) < 0.3).float()
    y = torch.cat([torch.full((n_u,), -1), torch.randint(C, (n_l,), generator=g)])
    batch = Batch(x, torch.arange(n_u + n_l), y=y if labels != "none" else None)
    return model, opt, groups, batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "labels.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    objective, estimator = OBJECTIVES.build("elbo", {}), ESTIMATORS.build("reparam")
    setups = {name: _setup(*v) for name, v in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for model, opt, groups, batch in setups.values():  # warm-up: allocator and caches, untimed
        train_step(model, batch, opt, objective, estimator, 1, "analytic", groups=groups)
    for _ in range(args.rounds):
        for name, (model, opt, groups, batch) in setups.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, batch, opt, objective, estimator, 1, "analytic", groups=groups)
            times[name].append((time.perf_counter() - start) / args.steps)
    ref = statistics.median(times["vae"])
    rows = {}
    for name, v in times.items():
        _, n_u, n_l = VARIANTS[name]
        rows[name] = {
            "median_ms": 1e3 * statistics.median(v),
            "ratio_to_vae": statistics.median(v) / ref,
            "rows_of_the_conditional_pass": C * n_u + n_l,
            "all_ms": [1e3 * s for s in v],
        }
        print(f"{name:<34} {rows[name]['median_ms']:7.1f} ms/step   x{rows[name]['ratio_to_vae']:.2f} of the VAE")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    out.write_text(json.dumps({**meta, "classes": C, "rounds": args.rounds, "steps": args.steps, "results": rows}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
