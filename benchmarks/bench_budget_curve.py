"""Budget curve: how much of the gap between iwae-mnist's small budget and Burda et al.'s numbers is
training length? The one-layer MNIST model of iwae-mnist (784-200-200-50 tanh, Bernoulli, dynamic
binarization, batch 100, Adam 1e-3), trained by ``vaelab.fit`` as the VAE (K = 1) and as IWAE-5 for
the largest budget, its weights snapshotted after each budget's last epoch, and every snapshot
evaluated by IS (K = ``--k-is``) on the same random test images.

    python benchmarks/bench_budget_curve.py --data-dir ../shared/data --epochs 10 30 100

writes ``benchmarks/results/budget_curve.json`` and ``budget_curve.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results"
PAPER = {1: 86.76, 5: 85.54}  # Burda et al. 2016, Table 1, MNIST, one layer (unverified: docs/how-close.md)


def curve(args: tuple) -> dict:
    k, a = args
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from vaelab.data import load_data
    from vaelab.evaluation import evaluate_model
    from vaelab.experiments._study import QUICK, mnist_config, test_subset
    from vaelab.train import fit

    cfg = mnist_config(a.data_dir, QUICK).override(
        {"train.objective": "elbo" if k == 1 else "iwae", "train.n_samples": k, "train.epochs": max(a.epochs),
         "train.valid_iwae_k": 0, "train.valid_every": 0, "train.checkpoint_every": 0}
    )  # fmt: skip
    data = load_data(cfg.data, "bernoulli")
    snaps: dict[int, tuple[dict, float]] = {}
    t0 = time.perf_counter()

    def snapshot(epoch, model, row):
        if epoch in a.epochs:
            snaps[epoch] = (copy.deepcopy(model.state_dict()), time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as d:
        res = fit(cfg, Path(d) / "run", data=data, quiet=True, tensorboard=False, epoch_callback=snapshot)
    x = test_subset(data.test, a.n_test)
    points = []
    for epoch, (state, seconds) in sorted(snaps.items()):
        res.model.load_state_dict(state)
        ev = evaluate_model(res.model, x, k=a.k_is, iwae_k=0)
        points.append({"epoch": epoch, "train_s": seconds, "nll": -ev["log_px"], "se": ev["log_px_se"]})
    return {"k": k, "points": points}


def markdown(rows: list[dict], a) -> str:
    lines = [
        "# Budget curve: the one-layer MNIST model of iwae-mnist against training length",
        "",
        f"`python benchmarks/bench_budget_curve.py --epochs {' '.join(map(str, a.epochs))} --k-is {a.k_is} "
        f"--n-test {a.n_test}`. Test NLL = −log p̂(x) by IS (K = {a.k_is}) on {a.n_test} random test images, "
        "nats; one training run per model, snapshotted at each budget. Paper: Burda et al. 2016, Table 1 "
        "(3,280 epochs, batch 20; unverified, docs/how-close.md).",
        "",
        "| trained as | " + " | ".join(f"{e} epochs" for e in a.epochs) + " | paper (3,280 epochs) |",
        "|---|" + "---|" * (len(a.epochs) + 1),
    ]
    for r in rows:
        cells = [f"{p['nll']:.2f} ± {p['se']:.2f} ({p['train_s'] / 60:.0f} min)" for p in r["points"]]
        lines.append(
            f"| {'VAE (K = 1)' if r['k'] == 1 else 'IWAE-' + str(r['k'])} | " + " | ".join(cells) + f" | {PAPER[r['k']]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 30, 100])
    p.add_argument("--k-is", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    a = p.parse_args()
    with mp.get_context("spawn").Pool(2) as pool:
        rows = pool.map(curve, [(5, a), (1, a)], chunksize=1)
    rows.sort(key=lambda r: r["k"])
    OUT.mkdir(exist_ok=True)
    (OUT / "budget_curve.json").write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1) + "\n")
    (OUT / "budget_curve.md").write_text(markdown(rows, a))
    print(markdown(rows, a))


if __name__ == "__main__":
    main()
