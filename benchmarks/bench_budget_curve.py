"""Budget curve: how much of the gap between iwae-mnist's small budget and Burda et al.'s numbers is
training length? The one-layer MNIST model of iwae-mnist (784-200-200-50 tanh, Bernoulli, dynamic
binarization, batch 100, Adam 1e-3), trained by ``vaelab.fit`` as the VAE (K = 1) and as IWAE-5 for
the largest budget, its weights snapshotted after each budget's last epoch, and every snapshot
evaluated by IS (K = ``--k-is``) on the same random test images.

    python benchmarks/bench_budget_curve.py --data-dir ../shared/data --epochs 10 30 100

writes ``benchmarks/results/budget_curve.json`` and ``budget_curve.md``. The long budgets are run as
iwae-mnist's own jobs (one run directory per budget, a longer one continued from a shorter one's
last.pt with ``--resume``: the learning rate is constant, so that is the same run); then

    python benchmarks/bench_budget_curve.py --from-points points.json

fits and extrapolates those points (``{"1": [[epochs, nll, se], ...], "5": [...]}``): the NLL against
epochs as a + b e^(-c) (a power law falling to the asymptote a), fitted by least squares weighted by
the standard errors, extrapolated to the paper's 3,280 epochs with a standard error from the fit's
covariance (delta method). With four budgets and three parameters the fit has one degree of freedom:
the extrapolation is a rough guide, and the table says so.
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
PAPER = {1: 86.76, 5: 85.54}  # Burda et al. 2016, Table 1, MNIST, one layer (paper: shared/REFERENCES.md)
PAPER_EPOCHS = 3280  # sum_i 3^i for i = 0..7


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
        "(3,280 epochs, batch 20; status: paper, shared/REFERENCES.md).",
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


def power_law(e, a, b, c):
    """NLL after e epochs: a + b e^(-c) (nats)."""
    import numpy as np

    return a + b * np.power(e, -c)


def fit_curve(points: list[list[float]]) -> dict:
    """Least squares of :func:`power_law` to [[epochs, nll, se], ...] (weighted by se); its value at
    :data:`PAPER_EPOCHS` and at infinity (a), each with a standard error (delta method)."""
    import numpy as np
    from scipy.optimize import curve_fit

    e, y, se = (np.array(c, dtype=float) for c in zip(*points))
    params, cov = curve_fit(power_law, e, y, p0=(y[-1] - 2.0, (y[0] - y[-1]) * e[0] ** 0.5, 0.5), sigma=se,
                            absolute_sigma=True, maxfev=20000)  # fmt: skip
    a, b, c = params
    grad = np.array([1.0, PAPER_EPOCHS ** (-c), -b * PAPER_EPOCHS ** (-c) * np.log(PAPER_EPOCHS)])
    at = float(power_law(PAPER_EPOCHS, a, b, c))
    resid = (y - power_law(e, a, b, c)) / se
    return {"a": float(a), "b": float(b), "c": float(c), "at_paper": at, "at_paper_se": float(np.sqrt(grad @ cov @ grad)),
            "asymptote_se": float(np.sqrt(cov[0, 0])), "chi2": float((resid**2).sum()), "dof": len(e) - 3}  # fmt: skip


def from_points(path: str) -> str:
    """The fitted-curve table and figure (budget_curve_fit.md / .png) from measured points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pts = {int(k): v for k, v in json.loads(Path(path).read_text()).items()}
    fits = {k: fit_curve(v) for k, v in pts.items()}
    epochs = sorted({p[0] for v in pts.values() for p in v})
    lines = [
        "| trained as | " + " | ".join(f"{e:g} epochs" for e in epochs) + " | fit at 3,280 epochs | fit as epochs → ∞ | "
        "paper, 3,280 epochs (paper) |",
        "|---|" + "---|" * (len(epochs) + 3),
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.geomspace(min(epochs), PAPER_EPOCHS, 200)
    for k in sorted(pts):
        f, by_e = fits[k], {p[0]: p for p in pts[k]}
        cells = [f"{by_e[e][1]:.2f} ± {by_e[e][2]:.2f}" if e in by_e else "" for e in epochs]
        name = "VAE (K = 1)" if k == 1 else f"IWAE-{k}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {f['at_paper']:.2f} ± {f['at_paper_se']:.2f} | "
                     f"{f['a']:.2f} ± {f['asymptote_se']:.2f} | {PAPER[k]} |")  # fmt: skip
        e, y, se = (np.array(c) for c in zip(*pts[k]))
        ax.errorbar(e, y, yerr=se, fmt="o", color=f"C{k > 1:d}", label=f"{name}, measured")
        ax.plot(grid, power_law(grid, f["a"], f["b"], f["c"]), color=f"C{k > 1:d}", lw=1, label=f"{name}, fit")
        ax.axhline(PAPER[k], color=f"C{k > 1:d}", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("epochs (log scale)")
    ax.set_ylabel("test NLL, nats (IS, K = 5,000)")
    ax.set_title("one-layer MNIST VAE / IWAE-5 against training length (dotted: paper)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "budget_curve_fit.png", dpi=110)
    plt.close(fig)
    fit_lines = [f"- {('VAE (K = 1)' if k == 1 else f'IWAE-{k}')}: NLL(e) = {f['a']:.2f} + {f['b']:.1f} e^(-{f['c']:.3f}); "
                 f"chi² = {f['chi2']:.2f} on {f['dof']} degree(s) of freedom" for k, f in sorted(fits.items())]  # fmt: skip
    text = "\n".join(lines + [""] + fit_lines) + "\n"
    (OUT / "budget_curve_fit.json").write_text(json.dumps({"points": pts, "fits": fits}, indent=1) + "\n")
    (OUT / "budget_curve_fit.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 30, 100])
    p.add_argument("--k-is", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--from-points", help="fit and extrapolate measured points (JSON) instead of training")
    a = p.parse_args()
    if a.from_points:
        print(from_points(a.from_points))
        return
    with mp.get_context("spawn").Pool(2) as pool:
        rows = pool.map(curve, [(5, a), (1, a)], chunksize=1)
    rows.sort(key=lambda r: r["k"])
    OUT.mkdir(exist_ok=True)
    (OUT / "budget_curve.json").write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1) + "\n")
    (OUT / "budget_curve.md").write_text(markdown(rows, a))
    print(markdown(rows, a))


if __name__ == "__main__":
    main()
