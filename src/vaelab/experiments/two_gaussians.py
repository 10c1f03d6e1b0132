"""`vaelab reproduce two-gaussians`: the prior-choice study of seed 000, done properly.

Data: p*N(mu1, I) + (1-p)*N(mu2, I) in R^2. Model: 3-layer MLP encoder and decoder, z in R^2,
Gaussian decoder with trainable mean and fixed covariance I. Four priors: standard normal,
MoG(2) with fixed p_prior = 0.5, MoG(2) with trainable p_prior, VampPrior. Each is trained
with the 1-sample ELBO (analytic KL for the standard normal prior, Monte Carlo otherwise) and
evaluated by importance sampling (N_IS = 2000) on the test set, next to the exact
E[log p_data(x)] of the true mixture, which no model can beat in expectation.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig
from ..data import TwoGaussians, load_data
from ..evaluation import elbo_surgery, evaluate_elbo, importance_sampled_log_likelihood
from ..train import fit
from ._study import run_pool, surgery_table
from .study import Study, StudyResult, StudyRun, register_study

VAMP_COMPONENTS = 50  # 10 quantized the VampPrior's weight per mode to k/10 (issue 8 f)
VARIANTS = {
    "standard_normal": {"model.prior": {"kind": "standard_normal"}},
    "mog_fixed": {"model.prior": {"kind": "mog", "components": 2, "weights": "fixed"}},
    "mog_trainable": {"model.prior": {"kind": "mog", "components": 2, "weights": "trainable"}},
    "vamp": {"model.prior": {"kind": "vamp", "components": VAMP_COMPONENTS}},
}
LABELS = {
    "standard_normal": "Standard normal",
    "mog_fixed": "MoG(2), fixed p_prior = 0.5",
    "mog_trainable": "MoG(2), trainable p_prior",
    "vamp": f"VampPrior ({VAMP_COMPONENTS} pseudo-inputs)",
}
#: Seed 000, Table 1 (its data parameters are not stated; VampPrior was "future work").
SEED_TABLE = {"standard_normal": (-0.76, 0.14), "mog_fixed": (-0.82, 0.18), "mog_trainable": (-1.00, 0.29)}


@dataclass(frozen=True)
class Settings:
    epochs: int = 250
    n_train: int = 10000
    n_test: int = 5000
    k_is: int = 2000
    workers: int = 2
    seed: int = 0

    @classmethod
    def quick(cls) -> Settings:
        return cls(epochs=3, n_train=1000, n_test=300, k_is=50, workers=1)


def base_config(s: Settings) -> RunConfig:
    return RunConfig().override(
        {
            "data.kind": "two-gaussians",
            "data.n_train": s.n_train,
            "data.n_test": s.n_test,
            "data.seed": s.seed,
            "model.latent.dim": 2,
            "model.encoder": {"kind": "mlp", "hidden": [64, 64], "activation": "tanh"},
            "model.likelihood": {"kind": "gaussian", "variance": "fixed", "fixed_variance": 1.0},
            "train.epochs": s.epochs,
            "train.batch_size": 100,
            "train.lr": 1e-3,
            "train.optimizer": "adam",
            "train.n_samples": 1,
            "train.seed": s.seed,
            "train.num_threads": 1,
            "train.log_every": 200,
        }
    )


@torch.no_grad()
def mode_weights(model, data_cfg, n: int = 100_000, seed: int = 0) -> list[float]:
    """The prior's implied weight of each data mode: the fraction of z ~ p(z) whose decoded mean
    E[x|z] lies nearer mu1 than mu2 (and the rest). Shows how a prior splits its mass (p_data = 0.3)."""
    torch.manual_seed(seed)
    x = model.sample(n, mean=True)  # (n, 2)
    tg = TwoGaussians.from_config(data_cfg)
    d1 = (x - torch.tensor(tg.mu1)).pow(2).sum(-1)
    d2 = (x - torch.tensor(tg.mu2)).pow(2).sum(-1)
    w1 = float((d1 < d2).float().mean())
    return [w1, 1.0 - w1]


def _train_and_evaluate(args: tuple) -> dict:
    """Worker: train one prior variant, evaluate it, return a JSON-able summary."""
    name, s, out = args
    torch.set_num_threads(1)
    cfg = base_config(s).override(VARIANTS[name])
    t0 = time.perf_counter()
    res = fit(cfg, Path(out) / name, quiet=True, tensorboard=False)
    train_s = time.perf_counter() - t0
    model, test = res.model, res.data.test
    ll = importance_sampled_log_likelihood(model, test, k=s.k_is, batch_size=250, seed=s.seed)
    kl = "analytic" if name == "standard_normal" else "mc"  # as in training (kl = "auto")
    test_elbo = evaluate_elbo(model, test, kl, seed=s.seed)
    exact = TwoGaussians.from_config(cfg.data).log_prob(test).double()  # (N_test,)
    gap = exact - ll.per_point.double()  # paired per point
    summary = {
        "variant": name,
        "train_seconds": train_s,
        "eval_seconds": time.perf_counter() - t0 - train_s,
        "log_px": ll.summary(),
        "test_elbo": test_elbo,
        "exact_mean": float(exact.mean()),
        "gap_mean": float(gap.mean()),
        "gap_stderr": float(gap.std() / math.sqrt(len(gap))),
        "epochs": s.epochs,
        "final_valid_elbo": res.history[-1]["valid_elbo"] if res.history else None,
        "mode_weights": mode_weights(model, cfg.data, seed=s.seed),
        "surgery": elbo_surgery(model, test, n_samples=2, seed=s.seed).summary(),
    }
    if name == "mog_trainable":
        summary["learned_weights"] = model.prior.weights.tolist()
    if hasattr(model.prior, "means"):
        summary["prior_means"] = model.prior.means.tolist()
    (Path(out) / name / "evaluation.json").write_text(json.dumps(summary, indent=2))
    np.save(Path(out) / name / "test_log_px.npy", ll.per_point.numpy())  # for paired comparisons
    return summary


def _body(ctx: StudyRun) -> StudyResult:
    """Train and evaluate all four priors, draw the figures, write ``report.md`` and ``results.json``."""
    s, out, runs, log = ctx.options["settings"] or ctx.budget, ctx.out, ctx.runs, ctx.log
    runs.mkdir(parents=True)
    t0 = time.perf_counter()
    # longest first (VampPrior runs the encoder on its pseudo-inputs every step), so 2 workers finish together
    order = ["vamp", "mog_trainable", "mog_fixed", "standard_normal"]
    jobs = [(name, s, str(runs)) for name in order]
    log(
        f"two-gaussians: training {len(jobs)} priors for {s.epochs} epochs on {s.n_train} points "
        f"({s.workers} worker process{'es' if s.workers > 1 else ''})"
    )
    results = run_pool(_train_and_evaluate, jobs, [4.0, 1.0, 1.0, 1.0], s.workers, [LABELS[n] for n in order])
    wall = time.perf_counter() - t0
    by_name = {name: next(r for r in results if r["variant"] == name) for name in VARIANTS}
    per_point = {name: np.load(runs / name / "test_log_px.npy").astype(np.float64) for name in VARIANTS}
    for name in VARIANTS:  # paired (same test points, same seed) difference to the standard normal prior
        d = per_point[name] - per_point["standard_normal"]
        by_name[name]["diff_vs_standard_normal"] = [float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))]
    data = load_data(base_config(s).data, "gaussian")
    log_2pi = math.log(2 * math.pi)
    from .two_gaussians_figures import draw_all

    draw_all(out, runs, data, VARIANTS, LABELS)
    report = write_report(out, s, by_name, wall, log_2pi)
    return StudyResult({"settings": s.__dict__, "wall_seconds": wall, "results": by_name}, report, show=True)


STUDY = register_study(
    Study("two-gaussians", _body, protocol=Settings(), quick=Settings.quick(), options={"settings": None}, fresh_runs=True)
)
run = STUDY.run


def write_report(out: Path, s: Settings, r: dict, wall: float, log_2pi: float) -> str:
    """Markdown report with our table next to the seed's, and a discussion driven by the numbers."""
    exact = r["standard_normal"]["exact_mean"]
    lines = [
        "# Two-Gaussian prior study (seed 000), reproduced",
        "",
        f"Data: x in R^2 from 0.3·N((-3,-3), I) + 0.7·N((3,3), I); {s.n_train} training points, "
        f"{s.n_test} test points (data seed {s.seed}). Model: encoder and decoder MLPs 2-64-64-out (tanh), "
        "z in R^2, Gaussian decoder with trainable mean and fixed covariance I. Adam, lr 1e-3, batch 100, "
        f"{s.epochs} epochs, 1-sample ELBO (analytic KL for the standard normal prior, 1-sample MC KL otherwise). "
        f"log p(x) by importance sampling with q(z|x) as proposal, N_IS = {s.k_is}, on all test points.",
        "",
        f"Measured wall time for all four priors (train + evaluate, {s.workers} processes on this machine's CPU): "
        f"**{wall:.0f} s**.",
        "",
    ]
    lines += _results_lines(r, exact, log_2pi)
    lines += _mode_lines(r)
    lines += surgery_lines(r)
    lines += ["", "## Discussion", ""]
    lines += discussion(r, exact, log_2pi)
    lines += ["", "## Figures", "", "- `data.png`: the training data coloured by true component (seed Figure 1)."]
    for name in r:
        lines.append(
            f"- `{name}.png`: {LABELS[name]}: reconstructions, generations, latent means and "
            "log-variances of q(z|x), and the prior density with the aggregate posterior."
        )
    lines += ["", "Reproduce with `vaelab reproduce two-gaussians` (all settings above are its defaults)."]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def _results_lines(r: dict, exact: float, log_2pi: float) -> list[str]:
    """The results table (with the exact data log-likelihood) and the seed's Table 1 beside it."""
    lines = [
        "## Results (nats per data point, test set)",
        "",
        "| prior | log p(x) (IS) mean | std | s.e. | without 2π constant | test ELBO | gap to exact log p_data | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in r.items():
        lp = res["log_px"]
        lines.append(
            f"| {LABELS[name]} | {lp['mean']:.3f} | {lp['std']:.3f} | {lp['stderr']:.3f} | {lp['mean'] + log_2pi:.3f} "
            f"| {res['test_elbo']:.3f} | {res['gap_mean']:.3f} ± {res['gap_stderr']:.3f} | {res['train_seconds']:.0f} |"
        )
    lines += [
        f"| *exact data log-likelihood E[log p_data(x)] on the same test points* | {exact:.3f} | | | "
        f"{exact + log_2pi:.3f} | | 0 | |",
        "",
        "Seed 000, Table 1 (log p(x), its data parameters and normalization unstated):",
        "",
        "| prior | mean | std |",
        "|---|---:|---:|",
    ]
    for name, (m, sd) in SEED_TABLE.items():
        lines.append(f"| {LABELS[name]} | {m:.2f} | {sd:.2f} |")
    return lines


def _mode_lines(r: dict) -> list[str]:
    """How each prior splits its mass between the two data modes."""
    lines = ["", "## How each prior splits its mass between the two modes", ""]
    if "learned_weights" in r.get("mog_trainable", {}):
        w = r["mog_trainable"]["learned_weights"]
        lines.append(
            f"MoG(2) with trainable p_prior: learned weights {w[0]:.3f} / {w[1]:.3f} "
            f"(p_data = 0.3, so either ordering 0.3 / 0.7 is the target)."
        )
    lines += [
        "",
        "Implied weight of each data mode: the fraction of 100,000 draws z ~ p(z) whose decoded mean "
        "E[x|z] lies nearer (-3,-3) than (3,3). The target is 0.3 / 0.7.",
        "",
        "| prior | weight of the (-3,-3) mode | weight of the (3,3) mode |",
        "|---|---:|---:|",
    ]
    for name, res in r.items():
        if "mode_weights" in res:
            w = res["mode_weights"]
            lines.append(f"| {LABELS[name]} | {w[0]:.3f} | {w[1]:.3f} |")
    return lines


def surgery_lines(r: dict) -> list[str]:
    """ELBO surgery per prior: the seed's argument for MoG and VampPrior priors is that a prior closer
    to the aggregate posterior q(z) lowers KL(q(z) || p(z)) without costing mutual information."""
    any_r = next(iter(r.values()))
    lines = [
        "",
        "## ELBO surgery (Hoffman & Johnson 2016)",
        "",
        "Test ELBO = E[log p(x|z)] − I_q(x; z) − KL(q(z) ‖ p(z)), with q(z) the aggregate posterior of the "
        f"test points (evaluated exactly over all of them, 2 samples per point; I_q is capped at log N = "
        f"{any_r['surgery']['mutual_info_cap']:.2f} nats). Nats per point.",
        "",
        *surgery_table({LABELS[name]: res["surgery"] for name, res in r.items() if "surgery" in res}, "prior", 3),
    ]
    return lines


def discussion(r: dict, exact: float, log_2pi: float) -> list[str]:
    out = [
        "**Normalization.** A unit-covariance Gaussian decoder in 2-D has p(x|z) <= 1/(2π), so any normalized "
        f"log p(x) is at most -log 2π = {-log_2pi:.3f} nats; the seed's values (-0.76 to -1.00) exceed that bound, so they "
        "cannot be normalized log-densities. The most likely reading is that the Gaussian constant -(D/2) log 2π "
        "was dropped (scoring with -||x - mu||^2 / 2); our 'without 2π constant' column adds log 2π back and is "
        "the comparable one in form. Even so, the seed's values lie above the ceiling of our data "
        f"({exact + log_2pi:.3f} without the constant), so its data parameters (unstated) or its estimator must have "
        "differed, and only the ordering between priors is comparable across the two tables.",
        "",
    ]
    comps = []
    for name in ("mog_fixed", "mog_trainable", "vamp"):
        diff, se = r[name]["diff_vs_standard_normal"]
        verdict = "higher than" if diff > 2 * se else "lower than" if diff < -2 * se else "not distinguishable from"
        comps.append((name, diff, se, verdict))
    out.append(
        "**Does the seed's conclusion (MoG priors give lower log-likelihood) survive?** Differences in "
        "mean test log p(x) against the standard normal prior, paired over the same test points (± standard "
        "error of the paired difference; 'higher'/'lower' means more than 2 s.e.):"
    )
    out.append("")
    for name, diff, se, verdict in comps:
        out.append(f"- {LABELS[name]}: {diff:+.3f} ± {se:.3f} nats, i.e. {verdict} the standard normal prior.")
    mog_lower = all(v == "lower than" for n, _, _, v in comps if n.startswith("mog"))
    out.append("")
    if mog_lower:
        out.append(
            "In this run the MoG priors are still below the standard normal prior, so the seed's ordering holds here."
        )
    else:
        out.append(
            "With a normalized estimator and the training budget above, the MoG priors are *not* significantly "
            "worse than the standard normal prior in this run, so the seed's conclusion does not hold here."
        )
    best = max(r, key=lambda n: r[n]["log_px"]["mean"])
    out += [
        "",
        f"All four models stay below the exact data log-likelihood ({exact:.3f} nats); the best is "
        f"{LABELS[best]} with a gap of {r[best]['gap_mean']:.3f} ± {r[best]['gap_stderr']:.3f} nats.",
    ]
    below = [n for n in r if r[n]["test_elbo"] <= r[n]["log_px"]["mean"]]
    out.append(
        f"The test ELBO is below the IS estimate for {len(below)} of {len(r)} priors "
        "(it must be, up to Monte Carlo error, since ELBO <= log p(x))."
    )
    return out
