"""`vaelab reproduce iwae-mnist`: Burda et al. 2016, Table 1 (MNIST part), at a stated budget.

VAE and IWAE trained with k in {1, 5, 50} samples, one stochastic layer (784-200-200-50) and two
(784-200-200-100-100-100-50), tanh, Bernoulli decoder, dynamic binarization; test NLL by
importance sampling with K = 5000 and active units per layer, next to the paper's numbers.

Budgets: ``small`` (one layer, VAE / IWAE-5 / IWAE-50, 10 epochs, 2,000 test images; < 30 min
on a 2-core CPU), ``medium`` (the full table, 30 epochs, all 10,000 test images; ~3 h), ``paper``
(the paper's protocol: 60k training images, batch 20, 3^i-epoch stages, 3,280 epochs; days on CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..plotting import save_metric_curves
from ._study import (
    IWAE_PROTOCOL,
    QUICK_IWAE,
    TWO_LAYERS,
    Budget,
    Job,
    ais_table,
    budgets,
    comparison,
    mnist_config,
    paired_difference,
    run_jobs,
)
from .study import Study, StudyResult, StudyRun, register_study


def column_budgets(small_epochs: int, images: str, n_test: int, paper: Budget) -> dict[str, Budget]:
    """small (one layer, ``small_epochs``, IS on 2,000 random test images), medium (30 epochs, every test
    image) and the paper's protocol, for a column trained on ``images`` ("the 50k training images")."""
    small = Budget("small", epochs=small_epochs, n_test=2000, ais_points=100, note=f"one stochastic layer only; "
                   f"{small_epochs} epochs of {images}, batch 100, Adam 1e-3; IS on 2,000 test images drawn at random "
                   "(fixed seed), AIS on 100 of them")  # fmt: skip
    medium = replace(small, name="medium", epochs=30, n_test=n_test,
                     note=f"30 epochs of {images}, batch 100, Adam 1e-3; IS on all {n_test:,} test images, AIS on 100 "
                     "of them")  # fmt: skip
    return budgets(small, medium, paper)


BUDGETS = column_budgets(10, "the 50k training images", 10000, replace(
    IWAE_PROTOCOL, mnist_split="60k-10k", note=IWAE_PROTOCOL.note.replace("protocol:", "protocol: 60k training images,")
))  # fmt: skip

#: Burda et al. 2016, Table 1, MNIST: (layers, k, trained as) -> (test NLL, active units)
PAPER = {
    (1, 1, "VAE"): (86.76, "19"),
    (1, 5, "VAE"): (86.47, "20"),
    (1, 50, "VAE"): (86.35, "20"),
    (1, 1, "IWAE"): (86.76, "19"),
    (1, 5, "IWAE"): (85.54, "22"),
    (1, 50, "IWAE"): (84.78, "25"),
    (2, 1, "VAE"): (85.33, "16+5"),
    (2, 5, "VAE"): (85.01, "17+5"),
    (2, 50, "VAE"): (84.78, "17+5"),
    (2, 1, "IWAE"): (85.33, "16+5"),
    (2, 5, "IWAE"): (83.89, "21+5"),
    (2, 50, "IWAE"): (82.90, "26+7"),
}


#: where Table 1's numbers were read (shared/REFERENCES.md): Burda et al.'s own text, arXiv 1509.00519v4; the
#: VAE rows at k = 5 and 50 are also copied by Li & Turner 2016's LaTeX Table 2 (authors' VRbound repository)
PAPER_STATUS = "paper"


@dataclass(frozen=True)
class Column:
    """One data set's column of Burda et al.'s Table 1: what a study of it needs besides the grid."""

    name: str  # "MNIST"
    study: str  # the `vaelab reproduce` name
    base: Callable  # (data_dir, budget) -> RunConfig
    budgets: dict
    paper: dict  # (layers, k, trained as) -> (test NLL, active units)
    caveat: str = ""  # how our data differ from the paper's, for the report


MNIST = Column("MNIST", "iwae-mnist", mnist_config, BUDGETS, PAPER)


def jobs_for(budget: str) -> list[Job]:
    layers = (1,) if budget == "small" else (1, 2)
    grid = (
        [("VAE", 1), ("IWAE", 5), ("IWAE", 50)]
        if budget == "small"
        else [("VAE", 1), ("VAE", 5), ("VAE", 50), ("IWAE", 5), ("IWAE", 50)]
    )
    jobs = []
    for n_layers in layers:
        for kind, k in grid:
            o = {
                "train.objective": "elbo" if kind == "VAE" else "iwae",
                "train.n_samples": k,
                **(TWO_LAYERS if n_layers == 2 else {}),
            }
            jobs.append(Job(f"{n_layers}layer_{kind.lower()}_k{k}", f"{n_layers}-layer {kind} k={k}", o))
    return jobs


def _key(job: Job) -> tuple:
    o = job.overrides
    return 2 if "model.upper_z_dims" in o else 1, o["train.n_samples"], "VAE" if o["train.objective"] == "elbo" else "IWAE"


def column_study(column: Column) -> Study:
    """The study of one data set's column of Table 1 (iwae-mnist, iwae-omniglot)."""

    def body(ctx: StudyRun) -> StudyResult:
        """Train, evaluate, and write ``report.md``, ``results.json``/``.csv`` and ``nll_curves.png``."""
        b, out = ctx.budget, ctx.out
        jobs = jobs_for("small" if ctx.quick else b.name)
        if ctx.quick:
            jobs = [Job(j.name, j.label, {**j.overrides, "train.n_samples": min(j.overrides["train.n_samples"], 5)})
                    for j in jobs]  # fmt: skip
        results, wall = run_jobs(jobs, b, ctx.data_dir, out, ctx.log, base=column.base)
        for j in jobs:
            results[j.name]["paper"] = column.paper.get(_key(j))
            results[j.name]["paper_status"] = PAPER_STATUS
        pairs = []
        for n_layers in (1, 2):
            names = [j.name for j in jobs if _key(j)[0] == n_layers and (_key(j)[2] == "IWAE" or _key(j)[1] == 1)]
            for a, c in zip(names[1:], names[:-1]):  # each IWAE row against the one with fewer samples
                pairs.append((results[a]["label"], results[c]["label"], *paired_difference(out, a, c)))
        curves = {r["label"]: [(e, -v) for e, v in r["curve"] if v is not None] for r in results.values()}
        save_metric_curves(curves, out / "nll_curves.png", f"-IWAE-{b.valid_iwae_k} (≈ NLL), nats",
                           f"validation NLL per epoch ({b.name} budget)")  # fmt: skip
        return comparison(b, results, pairs, wall, _report(b, jobs, results, pairs, wall, column))

    return Study(column.study, body, column.budgets, quick=QUICK_IWAE)


STUDY = register_study(column_study(MNIST))
run = STUDY.run


def _report(b: Budget, jobs: list[Job], results: dict, pairs: list, wall: float, column: Column = MNIST) -> str:
    lines = [
        f"# IWAE vs VAE on {column.name} (Burda et al. 2016, Table 1) — `vaelab reproduce {column.study}`",
        "",
        f"Budget **{b.name}**: {b.note}. The paper trains {3280} epochs (batch 20); the NLLs below are "
        "therefore higher than the paper's, and only the *ordering* and the gaps are comparable.",
        "",
        *([column.caveat, ""] if column.caveat else []),
        f"Wall time {wall / 60:.1f} min on this machine ({b.workers} worker processes, 1 thread each). Test NLL = "
        f"−log p̂(x) by importance sampling, K = {b.k_is}, on {results[jobs[0].name]['n']} test images "
        "(fixed-seed binarization); nats. Active units: Cov_x(E_q[u]) > 10⁻², per layer.",
        "",
        "| model | test NLL | ± s.e. | ELBO | active units | paper NLL | paper active units | epochs | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        r = results[j.name]
        p = r["paper"] or ("", "")
        if r["paper"]:
            p = (f"{p[0]} ({r['paper_status']})", p[1])
        lines.append(
            f"| {r['label']} | {r['nll']:.2f} | {r['log_px_se']:.2f} | {r['elbo']:.2f} | "
            f"{r['active_units_per_layer']} | {p[0]} | {p[1]} | {r['epochs']} | {r['train_seconds']:.0f} s |"
        )
    lines += [
        "",
        "Paper column: Burda et al. 2016, Table 1, status **paper**: read in the paper's text (arXiv 1509.00519v4; "
        "shared/REFERENCES.md). Li & Turner 2016's LaTeX Table 2 copies the VAE rows at k = 5 and 50 with the "
        "same numbers (docs/how-close.md).",
        "",
        "Paired differences of log p̂(x) over the same test images (positive = the first model is better):",
        "",
        "| comparison | Δ log p̂(x) | ± s.e. |",
        "|---|---|---|",
    ]
    for a, c, d, se in pairs:
        lines.append(f"| {a} − {c} | {d:+.3f} | {se:.3f} |")
    lines += ais_table(b, jobs, results)
    ordered = all(d > 3 * se for _, _, d, se in pairs)
    lines += [
        "",
        f"Ordering by test log-likelihood VAE < IWAE-5 < IWAE-50 (each paired difference > 3 s.e.): "
        f"**{'holds' if ordered else 'does not hold'}** in this run.",
        "",
        "Active units count latent dimensions whose posterior mean varies over the data (> 10⁻²). Early in "
        "training fewer units have been switched off than after the paper's 3,280 epochs, so counts from a "
        "short budget are not comparable to the paper's column; compare them between rows.",
        "",
        "![validation NLL per epoch](nll_curves.png)",
        "",
        "Each model's run directory (`runs/NAME`, not committed) holds config.toml, metrics.csv and "
        "evaluation_test.json/.csv; `vaelab compare runs/*` tabulates them again.",
    ]
    return "\n".join(lines) + "\n"
