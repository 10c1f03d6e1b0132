"""Equal-budget agreement: does vaelab train the same model as plain PyTorch, when both get the same
budget and the same evaluation? Rows: the hand-written loop of ``impls.py`` (seed 0), ``vaelab.fit``
(seeds 0 and 1: their difference is the seed-to-seed spread the first comparison is judged against),
for the one-layer MNIST model of iwae-mnist (784-200-200-50 tanh, Bernoulli, dynamic binarization,
batch 100, Adam 1e-3, decoder output bias at the data's log-odds in both) trained as the VAE (K = 1)
and as IWAE-5. Every model is evaluated by the same IS code (vaelab's, K = ``--k-is``) on the same
random test subset, so differences are paired over test images.

    python benchmarks/bench_agreement.py --data-dir ../shared/data --epochs 10 [--seeds 3]

writes ``benchmarks/results/agreement.json`` and ``agreement.md``; rows of an earlier run with the same
epochs, IS K and test images are kept (a run with more seeds adds only the missing ones). One process per row, run one after
another (nothing else should run beside it: the times are reported too).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

OUT = Path(__file__).parent / "results"


def _data(data_dir: str):
    from vaelab.data import load_data
    from vaelab.experiments._study import QUICK, mnist_config

    return load_data(mnist_config(data_dir, QUICK).data, "bernoulli")


def _vaelab(data, k: int, epochs: int, seed: int, data_dir: str):
    from vaelab.experiments._study import QUICK, mnist_config
    from vaelab.train import fit

    cfg = mnist_config(data_dir, QUICK).override(
        {"train.objective": "elbo" if k == 1 else "iwae", "train.n_samples": k, "train.epochs": epochs,
         "train.seed": seed, "train.valid_iwae_k": 0, "train.valid_every": 0, "train.checkpoint_every": 0}
    )  # fmt: skip
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return fit(cfg, Path(d) / "run", data=data, quiet=True, tensorboard=False).model


def _hand(data, k: int, epochs: int, seed: int):
    """impls.py's hand-written step, its decoder bias set as vaelab's init sets it; returns a vaelab
    model holding the trained weights, so that both are evaluated by the same IS code."""
    from impls import _mlp_pair, hand_written_step

    from vaelab.experiments._study import QUICK, mnist_config
    from vaelab.models import build_model

    torch.manual_seed(seed)
    enc, dec = _mlp_pair()
    x_train = data.train.reshape(data.train.shape[0], -1)  # (N, 784)
    with torch.no_grad():
        dec[-1].bias.copy_(torch.logit(x_train.mean(0).clamp(1e-3, 1 - 1e-3)))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x_train.shape[0], generator=g)
        for i in range(0, x_train.shape[0], 100):
            hand_written_step(enc, dec, opt, torch.bernoulli(x_train[perm[i : i + 100]], generator=g), k)
    model = build_model(mnist_config("", QUICK).model, tuple(data.train.shape[1:]))
    _copy_mlp(enc, model.encoder)
    _copy_mlp(dec, model.decoder)
    return model


def _copy_mlp(src: torch.nn.Sequential, dst: torch.nn.Module) -> None:
    """Copy the Linear layers of ``src`` into those of ``dst`` in order (same shapes, checked)."""
    a = [m for m in src.modules() if isinstance(m, torch.nn.Linear)]
    b = [m for m in dst.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.weight.shape for m in a] == [m.weight.shape for m in b], "layer shapes differ"
    with torch.no_grad():
        for s, d in zip(a, b):
            d.weight.copy_(s.weight)
            d.bias.copy_(s.bias)


def row(args: tuple) -> dict:
    impl, k, seed, a = args
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from vaelab.evaluation import evaluate_model
    from vaelab.experiments._study import test_subset

    data = _data(a.data_dir)
    t0 = time.perf_counter()
    model = _hand(data, k, a.epochs, seed) if impl == "hand-written" else _vaelab(data, k, a.epochs, seed, a.data_dir)
    train_s = time.perf_counter() - t0
    ev = evaluate_model(model, test_subset(data.test, a.n_test), k=a.k_is, iwae_k=0, per_point=True)
    return {"impl": impl, "k": k, "seed": seed, "train_s": train_s, "log_px": ev["log_px"],
            "per_point": [float(v) for v in ev["per_point_log_px"]]}  # fmt: skip


def paired(a: dict, b: dict) -> tuple[float, float]:
    d = torch.tensor(a["per_point"], dtype=torch.float64) - torch.tensor(b["per_point"], dtype=torch.float64)
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


def markdown(rows: list[dict], a) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"# Equal-budget agreement: hand-written PyTorch loop vs vaelab ({a.epochs} epochs)",
        "",
        f"`python benchmarks/bench_agreement.py --epochs {a.epochs} --k-is {a.k_is} --n-test {a.n_test} --seeds "
        f"{len(seeds)}`{f' (commit {a.commit})' if getattr(a, 'commit', None) else ''}. Test log p̂(x) by vaelab's IS "
        f"(K = {a.k_is}) on {a.n_test} random test images, nats, per training seed; Δ paired over the same images.",
        "",
        "| trained as | seed | hand-written | vaelab | hand − vaelab (paired over images) |",
        "|---|---|---|---|---|",
    ]
    summary = []
    for k in sorted({r["k"] for r in rows}):
        name = "VAE (K = 1)" if k == 1 else f"IWAE-{k}"
        by = {(r["impl"], r["seed"]): r for r in rows if r["k"] == k}
        hand = [by[("hand-written", s)]["log_px"] for s in seeds if ("hand-written", s) in by]
        ours = [by[("vaelab", s)]["log_px"] for s in seeds if ("vaelab", s) in by]
        for s in seeds:
            h, v = by.get(("hand-written", s)), by.get(("vaelab", s))
            cells = [f"{r['log_px']:.2f}" if r else "—" for r in (h, v)]
            d = "{:+.2f} ± {:.2f}".format(*paired(h, v)) if h and v else ""
            lines.append(f"| {name} | {s} | {cells[0]} | {cells[1]} | {d} |")
        if len(hand) > 1 and len(ours) > 1:
            diff = statistics.mean(hand) - statistics.mean(ours)
            se = math.sqrt(statistics.variance(hand) / len(hand) + statistics.variance(ours) / len(ours))
            spread = statistics.stdev(hand + ours)
            summary.append(f"- {name}: hand − vaelab over {len(hand)} + {len(ours)} seeds {diff:+.2f} ± {se:.2f} nats "
                           f"(± the seed-to-seed standard error; one run's seed-to-seed s.d. {spread:.2f})")  # fmt: skip
    return "\n".join(lines + ([""] + summary if summary else [])) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--k-is", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1 per implementation")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=OUT.parent)
    a.commit = git.stdout.strip() or None
    same = ("epochs", "k_is", "n_test")
    old = json.loads((OUT / "agreement.json").read_text()) if (OUT / "agreement.json").is_file() else {}
    kept = [r for r in old.get("rows", []) if all(old["args"].get(k) == getattr(a, k) for k in same)]
    done = {(r["impl"], r["k"], r["seed"]) for r in kept}  # rows of an earlier run with the same settings: kept
    jobs = [(impl, k, seed, a) for k in (1, 5) for seed in range(a.seeds) for impl in ("hand-written", "vaelab")
            if (impl, k, seed) not in done]  # fmt: skip
    with mp.get_context("spawn").Pool(a.workers) as pool:
        rows = kept + pool.map(row, jobs, chunksize=1)
    OUT.mkdir(exist_ok=True)
    (OUT / "agreement.json").write_text(json.dumps({"args": {k: v for k, v in vars(a).items()}, "rows": rows}) + "\n")
    (OUT / "agreement.md").write_text(markdown(rows, a))
    print(markdown(rows, a))


if __name__ == "__main__":
    main()
