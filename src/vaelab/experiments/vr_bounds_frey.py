"""`vaelab reproduce vr-bounds --budget frey-paper`: Li & Turner 2016's Frey-faces rows (Table 2) at
the authors' protocol as far as their paper and released code state it, with cross-validation folds
and the ablations that measure what separates it from vaelab's ``small`` preset.

The authors' protocol (checked in their sources):

- 10-fold cross-validation ("Frey Face (with 10-fold cross validation)", tex/experiments.tex, Sec. 5.2);
  the ± of Table 2 is the standard error over folds. Test log p(x) by IS with K = 5000 (same section).
- Model (vae_numpy/vae.py, train_freyface.py of github.com/YingzhenLi/VRbound): 560-200-20 with
  softplus hidden units, Gaussian decoder whose mean is sigmoid(output) and whose log-variance is
  an output with **no floor**; Adam, lr 5e-4, batch 100 (tex/appendix/exp_details.tex).
- Not stated: the number of epochs. Here every fold trains to convergence: early stopping on a
  validation split of 10 % of the fold's training frames (patience ``PATIENCE`` epochs, at most
  ``MAX_EPOCHS``), and the test bound is that of the best validated epoch.
- Not copied in the main rows: their weight decay (an N(0, I) prior on the weight matrices, MAP: the
  summed gradient of the batch's K samples minus W * batch / N, i.e. ``train.weight_decay`` =
  1 / (N K) on the mean loss) and Adam's beta2 = 0.99; the main rows train by maximum likelihood
  with torch's Adam defaults. Their N(0, 0.01^2) initialization of every parameter is not copied either.

Ablations on fold 0 (VAE, K = 5) change one thing each: a linear decoder mean, the log-variance
floor at -9 (vaelab's default), a fixed 200-epoch budget without early stopping, and the two settings
of the authors' code above (the weight prior; Adam beta2 = 0.99).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._study import Budget, Job, best_epoch_of, comparison, paired_difference, run_jobs
from .study import StudyResult, write_results

#: fold 0's training frames after its 10 % validation split (1,965 frames: 196 test, 177 validation)
FOLD0_TRAIN = 1592
FOLDS = 3  # of the paper's 10: the time this CPU allows (each fold is ~10-20 min per model)
MAX_EPOCHS, PATIENCE = 2000, 100
BUDGET = Budget(
    "frey-paper",
    epochs=MAX_EPOCHS,
    n_test=100000,
    valid_iwae_k=0,
    note=f"Frey faces only: the authors' model, {FOLDS} of the paper's 10 cross-validation folds, early stopping "
    f"on a 10 % validation split (patience {PATIENCE} epochs, at most {MAX_EPOCHS})",
)
AUTHORS = {
    "data.kind": "frey",
    "data.binarize": "auto",
    "data.valid_fraction": 0.1,
    "model.latent.dim": 20,
    "model.encoder": {"kind": "mlp", "hidden": [200], "activation": "softplus"},
    "model.likelihood": {"kind": "gaussian", "variance": "per_datapoint", "mean": "sigmoid", "min_logvar": -math.inf},
    "train.lr": 5e-4,
    "train.lr_schedule": "constant",
    "train.batch_size": 100,
    "train.adam_eps": 1e-8,
    "train.n_samples": 5,
    "train.epochs": MAX_EPOCHS,
    "train.early_stopping": PATIENCE,
}
TRAINED = {"VAE": "elbo", "IWAE": "iwae", "VR-max": "vr_max"}
#: ablation name -> (what changes, overrides on top of the authors' protocol)
ABLATIONS = {
    "linear-mean": (
        "decoder mean linear, not sigmoid",
        {"model.likelihood": {**AUTHORS["model.likelihood"], "mean": "identity"}},
    ),
    "floor": ("log-variance floored at -9", {"model.likelihood": {**AUTHORS["model.likelihood"], "min_logvar": -9.0}}),
    "200-epochs": ("200 epochs, no early stopping", {"train.epochs": 200, "train.early_stopping": 0}),
    # the two settings of the authors' numpy code (vae_numpy/vae.py) not in the protocol above
    "weight-prior": (
        "N(0, I) prior on the weight matrices (MAP), as the authors' code",
        {"train.weight_decay": 1 / (FOLD0_TRAIN * 5)},
    ),
    "adam-beta2": ("Adam beta2 = 0.99, as the authors' code", {"train.adam_beta2": 0.99}),
}


def jobs() -> list[Job]:
    """Per fold VAE and IWAE (K = 5); VR-max on fold 0; the ablations (VAE, fold 0; IWAE too for the budget)."""
    out = []
    for fold in range(FOLDS):
        for trained in ("VAE", "IWAE", "VR-max") if fold == 0 else ("VAE", "IWAE"):
            o = {**AUTHORS, "data.fold": fold, "train.objective": TRAINED[trained]}
            out.append(Job(f"fold{fold}_{trained.lower()}", f"{trained} K=5, fold {fold}", o))
    for name, (_, o) in ABLATIONS.items():
        for trained in ("VAE", "IWAE") if name == "200-epochs" else ("VAE",):
            over = {**AUTHORS, "data.fold": 0, "train.objective": TRAINED[trained], **o}
            out.append(Job(f"ablation_{name}_{trained.lower()}", f"{trained} K=5, fold 0, {ABLATIONS[name][0]}", over))
    return out


#: ``--budget frey-ablations``: fold 0 only, the ablations of the authors' code settings beside their baselines
ABLATION_BUDGET = replace(
    BUDGET,
    name="frey-ablations",
    note="Frey faces, fold 0: the authors' model with and without the two settings of their code not copied "
    f"(weight prior, Adam beta2 = 0.99); early stopping on a 10 % validation split (patience {PATIENCE} epochs, "
    f"at most {MAX_EPOCHS})",
)
CODE_SETTINGS = ("weight-prior", "adam-beta2")


def ablation_jobs() -> list[Job]:
    """Fold 0: VAE and IWAE (K = 5) as in :func:`jobs`, each with the weight prior; the VAE with beta2 = 0.99."""
    base = {j.name: j for j in jobs()}
    out = [base["fold0_vae"], base["fold0_iwae"]]
    for name in CODE_SETTINGS:
        for trained in ("VAE", "IWAE") if name == "weight-prior" else ("VAE",):
            over = {**AUTHORS, "data.fold": 0, "train.objective": TRAINED[trained], **ABLATIONS[name][1]}
            out.append(Job(f"ablation_{name}_{trained.lower()}", f"{trained} K=5, fold 0, {ABLATIONS[name][0]}", over))
    return out


def run_ablations(out: Path, data_dir: str | None, base, paper: dict, log=print) -> StudyResult:
    """Train and evaluate :func:`ablation_jobs`; the report pairs each ablation with its fold-0 baseline."""
    js = ablation_jobs()
    results, wall = run_jobs(js, ABLATION_BUDGET, data_dir, out, log, base=base)
    baselines = {j.name: f"fold0_{j.name.rsplit('_', 1)[1]}" for j in js[2:]}  # ablation -> its fold-0 run
    pairs = [(results[a]["label"], results[c]["label"], *paired_difference(out, a, c)) for a, c in baselines.items()]
    pairs.append((results["fold0_iwae"]["label"], results["fold0_vae"]["label"],
                  *paired_difference(out, "fold0_iwae", "fold0_vae")))  # fmt: skip
    text = ablation_report(results, pairs, wall, paper, ABLATION_BUDGET.k_is)
    return comparison(ABLATION_BUDGET, results, pairs, wall, text)


def ablation_report(results: dict, pairs: list, wall: float, paper: dict, k_is: int) -> str:
    """The fold-0 table, the paired differences against the baselines, and the paper's rows beside them."""
    lines = [
        "# Frey faces, fold 0: the settings of Li & Turner's code not copied — `vaelab reproduce vr-bounds --budget "
        "frey-ablations`",
        "",
        f"{ABLATION_BUDGET.note}. Wall time {wall / 60:.1f} min. Test log p̂(x): IS with K = {k_is} on fold 0's "
        f"test frames; nats per image on [0, 1]-scaled pixels. The paper ({paper['source']}), 10-fold means: VAE "
        f"{paper['VAE'][0]:.2f} ± {paper['VAE'][1]:.2f}, IWAE {paper['IWAE'][0]:.2f} ± {paper['IWAE'][1]:.2f}.",
        "",
        *run_table(results),
    ]
    lines += ["", "Paired differences over the same test frames (positive = the first is better):", "",
              "| comparison | Δ log p̂(x) | ± s.e. |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {a} − {c} | {d:+.2f} | {se:.2f} |" for a, c, d, se in pairs]
    return "\n".join(lines) + "\n"


def run(out: Path, data_dir: str | None, base, paper: dict, log=print, budget: Budget = BUDGET) -> StudyResult:
    """Train and evaluate every job into ``out/runs``; the results and report for the study driver to write."""
    results, wall = run_jobs(jobs(), budget, data_dir, out, log, base=base)
    return _finish(out, results, wall, paper, budget)


def rebuild(out: Path, paper: dict, wall: float, budget: Budget = BUDGET, log=print) -> dict:
    """The report, results.json and results.csv again from the run directories under ``out/runs``
    (their evaluation_test.json, metrics.csv and per-image log p(x)), without training: for a run whose
    training finished but whose report was not written."""
    import csv
    import json

    results = {}
    for j in jobs():
        run = Path(out) / "runs" / j.name
        rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
        history = [
            {"epoch": int(r["epoch"]), "valid_elbo": float(r["valid_elbo"]) if r["valid_elbo"] else None} for r in rows
        ]
        ev = json.loads((run / "evaluation_test.json").read_text())
        results[j.name] = {"name": j.name, "label": j.label, "epochs": j.overrides["train.epochs"],
                           "epochs_trained": len(rows), "best_epoch": best_epoch_of(history),
                           "train_seconds": float(rows[-1]["total_time_s"]), **ev}  # fmt: skip
    done = _finish(out, results, wall, paper, budget)
    write_results(out, done.payload)
    (out / "report.md").write_text(done.report or "")
    log(f"rebuilt {out / 'report.md'}")
    return done.payload


def _finish(out: Path, results: dict, wall: float, paper: dict, budget: Budget) -> StudyResult:
    pairs = [(results[f"fold{f}_iwae"]["label"], results[f"fold{f}_vae"]["label"],
              *paired_difference(out, f"fold{f}_iwae", f"fold{f}_vae")) for f in range(FOLDS)]  # fmt: skip
    pairs += [(results[f"ablation_{a}_vae"]["label"], results["fold0_vae"]["label"],
               *paired_difference(out, f"ablation_{a}_vae", "fold0_vae")) for a in ABLATIONS]  # fmt: skip
    pairs.append((results["ablation_200-epochs_iwae"]["label"], results["ablation_200-epochs_vae"]["label"],
                  *paired_difference(out, "ablation_200-epochs_iwae", "ablation_200-epochs_vae")))  # fmt: skip
    text = report(results, pairs, wall, paper, budget.k_is)
    return comparison(budget, results, pairs, wall, text)


def run_table(results: dict) -> list[str]:
    """One markdown row per run: its test log p(x) with the s.e. over frames, ELBO, epochs and time."""
    rows = ["| run | test log p̂(x) | ± s.e. (frames) | ELBO | epochs trained | best epoch | train time |", "|" + "---|" * 7]
    return rows + [
        f"| {r['label']} | {r['log_px']:.2f} | {r['log_px_se']:.2f} | {r['elbo']:.2f} | {r['epochs_trained']} | "
        f"{r['best_epoch']} | {r['train_seconds']:.0f} s |"
        for r in results.values()
    ]


def across_folds(results: dict, trained: str) -> tuple[float, float, int]:
    """Mean test log p(x) over the folds and its standard error (the paper's ±), and the fold count."""
    v = [results[f"fold{f}_{trained.lower()}"]["log_px"] for f in range(FOLDS)]
    return (*_mean_se(v), len(v))


def _mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def report(results: dict, pairs: list, wall: float, paper: dict, k_is: int) -> str:
    """The markdown report: folds, the mean over folds against Table 2, the paired IWAE - VAE, the ablations."""
    lines = [
        "# Frey faces at Li & Turner's protocol (2016, Table 2) — `vaelab reproduce vr-bounds --budget frey-paper`",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
        f"Wall time {wall / 60:.1f} min. Test log p̂(x): IS with K = {k_is} on every test frame of the fold; nats per "
        "image on [0, 1]-scaled pixels (higher is better).",
        "",
        *run_table(results),
    ]
    lines += ["", f"Mean over folds (± s.e. over folds, as the paper's), against {paper['source']}:", "",
              "| trained as | ours | folds | paper (10 folds) | gap | gap / combined s.e. |", "|" + "---|" * 6]  # fmt: skip
    for trained in ("VAE", "IWAE"):
        m, se, n = across_folds(results, trained)
        p, pse = paper[trained]
        comb = math.sqrt(se**2 + pse**2)
        lines.append(
            f"| {trained} K=5 | {m:.2f} ± {se:.2f} | {n} | {p:.2f} ± {pse:.2f} | {m - p:+.2f} | {(m - p) / comb:+.1f} |"
        )
    lines += ["", "Paired differences over the same test frames (positive = the first is better):", "",
              "| comparison | Δ log p̂(x) | ± s.e. |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {a} − {c} | {d:+.2f} | {se:.2f} |" for a, c, d, se in pairs]
    mean_gap, gap_se = _mean_se([p[2] for p in pairs[:FOLDS]])  # IWAE − VAE of each fold: the first pairs
    lines += ["", f"IWAE − VAE averaged over the folds: {mean_gap:+.2f} ± {gap_se:.2f} (s.e. over folds); the paper's: "
              f"{paper['IWAE'][0] - paper['VAE'][0]:+.2f} (difference of its fold means). The paper's VR-max: "
              f"{paper['VR-max'][0]:.2f} ± {paper['VR-max'][1]:.2f}."]  # fmt: skip
    return "\n".join(lines) + "\n"
