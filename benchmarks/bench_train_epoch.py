"""One MNIST training epoch of the IWAE-paper MLP: vaelab's `fit` vs a minimal hand-written loop.

Both run the same model (784-200-200-50 tanh, Bernoulli decoder, analytic-KL ELBO, Adam 1e-3,
batch 100, dynamic binarization) on the same data in the same process, alternating, so machine
noise hits both; the ratio is what matters. Also measures the IS evaluator (K = 5000) and its
peak memory. Writes benchmarks/results/train_epoch.json.

    VAELAB_DATA=../shared/data python benchmarks/bench_train_epoch.py [--repeats 3] [--train-size 50000]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.config import RunConfig
from vaelab.data import load_mnist
from vaelab.data.bundle import DataSplits
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.train import fit


def minimal_epoch(x_train: torch.Tensor, seed: int) -> float:
    """The smallest honest VAE epoch in plain PyTorch (same model, same work per step)."""
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 100))
    dec = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    perm = torch.randperm(x_train.shape[0], generator=g)
    x_train = x_train.reshape(x_train.shape[0], -1)  # (N, 784)
    for i in range(0, x_train.shape[0], 100):
        x = torch.bernoulli(x_train[perm[i : i + 100]], generator=g)
        mu, logvar = enc(x).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        loss = -(rec - kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def vaelab_epoch(data: DataSplits, seed: int, tmp: Path) -> tuple[float, float]:
    cfg = RunConfig().override(
        {
            "data.kind": "mnist",
            "model.latent.dim": 50,
            "model.encoder": {"kind": "mlp", "hidden": [200, 200], "activation": "tanh"},
            "model.likelihood": "bernoulli",
            "train.batch_size": 100,
            "train.lr": 1e-3,
            "train.epochs": 1,
            "train.seed": seed,
            "train.diagnostics": False,
        }
    )
    res = fit(cfg, tmp / f"run{seed}", data=data, quiet=True, tensorboard=False)
    row = res.history[0]
    return row["train_time_s"], row["epoch_time_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with mnist.pkl.gz (default $VAELAB_DATA)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--train-size", type=int, default=50000)
    ap.add_argument("--is-points", type=int, default=200, help="test points for the IS timing (K = 5000)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_epoch.json"))
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    data = load_mnist(args.data_dir)
    data.train = data.train[: args.train_size]
    data.valid = torch.bernoulli(data.valid[:1000], generator=torch.Generator().manual_seed(1))
    data.dynamic_binarization = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            if r % 2 == 0:  # alternate who goes first, so drift in machine speed hits both
                m = minimal_epoch(data.train, seed=r)
                v_train, v_epoch = vaelab_epoch(data, seed=r, tmp=Path(tmp))
            else:
                v_train, v_epoch = vaelab_epoch(data, seed=r, tmp=Path(tmp))
                m = minimal_epoch(data.train, seed=r)
            rows.append(
                {
                    "repeat": r,
                    "minimal_s": m,
                    "vaelab_train_s": v_train,
                    "vaelab_epoch_with_eval_s": v_epoch,
                    "ratio": v_train / m,
                }
            )
            print(
                f"repeat {r}: minimal {m:.2f} s, vaelab {v_train:.2f} s (ratio {v_train / m:.3f}); "
                f"vaelab epoch incl. validation + checkpoint {v_epoch:.2f} s"
            )
    from vaelab.models import build_model

    model = build_model(
        RunConfig()
        .override({"model.latent.dim": 50, "model.encoder.hidden": [200, 200], "model.likelihood": "bernoulli"})
        .model,
        (1, 28, 28),
    )
    x = torch.bernoulli(data.test[: args.is_points], generator=torch.Generator().manual_seed(2))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    importance_sampled_log_likelihood(model, x, k=5000, batch_size=100)
    is_s = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ratios = sorted(r["ratio"] for r in rows)
    best_ratio = min(r["vaelab_train_s"] for r in rows) / min(r["minimal_s"] for r in rows)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "train_size": args.train_size,
        "rows": rows,
        "median_ratio_vaelab_over_minimal": ratios[len(ratios) // 2],
        "ratio_of_fastest_epochs": best_ratio,  # least affected by machine noise
        "is_eval": {
            "k": 5000,
            "points": args.is_points,
            "seconds": is_s,
            "seconds_per_10k_points_extrapolated": is_s * 10000 / args.is_points,
            "peak_rss_growth_mb": (rss1 - rss0) / 1024,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
