"""Conv vs MLP encoder/decoder on MNIST: test NLL (IS, K = 1000, all 10,000 test images) and
seconds per epoch, with the same epoch budget for both.

Dynamic binarization, one stochastic layer, z = 50, Bernoulli decoder, Adam 1e-3, batch 100,
1-sample ELBO with analytic KL. MLP: the IWAE paper's 784-200-200-50 tanh; conv: stride-2 4x4
convolutions with 32 and 64 channels (28 -> 14 -> 7) and the mirrored transposed convolutions.
Writes benchmarks/results/conv_vs_mlp.json.

    VAELAB_DATA=../shared/data python benchmarks/bench_conv_vs_mlp.py [--epochs 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from vaelab.config import RunConfig
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.train import fit

NETWORKS = {
    "mlp": {"kind": "mlp", "hidden": [200, 200], "activation": "tanh"},
    "conv": {"kind": "conv", "channels": [32, 64], "activation": "relu"},
}


def run_one(name: str, args, tmp: Path) -> dict:
    cfg = RunConfig().override(
        {
            "data.kind": "mnist",
            "data.data_dir": args.data_dir or "",
            "data.binarize": "dynamic",
            "model.encoder": NETWORKS[name],
            "model.latent.dim": 50,
            "model.likelihood": "bernoulli",
            "train.epochs": args.epochs,
            "train.batch_size": 100,
            "train.lr": 1e-3,
            "train.num_threads": args.threads,
            "train.diagnostics": False,
            "train.checkpoint_every": 0,
            "train.seed": 0,
        }
    )
    res = fit(cfg, tmp / name, quiet=True, tensorboard=False)
    t = time.perf_counter()
    ll = importance_sampled_log_likelihood(res.model, res.data.test, k=args.k, seed=0)
    is_s = time.perf_counter() - t
    per_epoch = [r["train_time_s"] for r in res.history]
    params = sum(p.numel() for p in res.model.parameters())
    print(
        f"{name}: test NLL {ll.nll:.2f} ± {ll.stderr:.2f} nats (IS K={ll.k}, {ll.n} images); "
        f"{sorted(per_epoch)[len(per_epoch) // 2]:.1f} s/epoch (median); IS {is_s:.0f} s; {params} parameters"
    )
    return {
        "network": NETWORKS[name],
        "test_nll": ll.nll,
        "test_nll_se": ll.stderr,
        "test_elbo": ll.elbo_mean,
        "k": ll.k,
        "n_test": ll.n,
        "seconds_per_epoch": per_epoch,
        "median_seconds_per_epoch": sorted(per_epoch)[len(per_epoch) // 2],
        "is_seconds": is_s,
        "parameters": params,
        "final_valid_elbo": res.history[-1]["valid_elbo"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with mnist.pkl.gz (default $VAELAB_DATA)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "conv_vs_mlp.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {name: run_one(name, args, Path(tmp)) for name in NETWORKS}
    result = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "epochs": args.epochs,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
