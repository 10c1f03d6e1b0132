"""Shared machinery of the bound-comparison studies (iwae-mnist, tighter-bounds): train a list of
MNIST models in parallel worker processes, evaluate each with the evaluation suite, and keep the
per-point log-likelihoods for paired comparisons."""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig
from ..data import load_data
from ..evaluation import ais_log_likelihood, evaluate_model, with_ais, write_evaluation
from ..progress import bar
from ..train import fit
from ..workers import worker_pool
from .study import StudyResult, write_results  # noqa: F401 (write_results: its old home)


@dataclass(frozen=True)
class Budget:
    """How much of the paper's protocol a preset runs (the report prints it)."""

    name: str
    epochs: int
    n_test: int  # test images evaluated by IS
    k_is: int = 5000
    batch_size: int = 100
    lr_schedule: str = "constant"
    adam_eps: float = 1e-8
    n_train: int = 60000  # capped by the split's training set
    mnist_split: str = "50k-10k-10k"
    valid_iwae_k: int = 1000
    workers: int = 2
    note: str = ""
    overrides: dict = field(default_factory=dict)  # config keys set for every job of this budget
    ais_points: int = 0  # test images also scored by AIS from the prior (0 = none), paired with IS
    ais_steps: int = 200
    ais_chains: int = 8


#: the smoke-test budget of ``--quick`` (numbers not meaningful)
QUICK = Budget(
    "quick", epochs=1, n_test=50, k_is=50, n_train=500, valid_iwae_k=0, workers=1, note="smoke test: numbers not meaningful"
)


#: Burda et al. 2016's training protocol (Sec. 5): batch 20, Adam eps 1e-4, stages i = 0..7 of 3^i epochs at
#: 1e-3 * 10^(-i/7), 3,280 epochs in all; IS on every test image (a study sets n_test, the split and the note)
IWAE_PROTOCOL = Budget(
    "paper", epochs=3280, n_test=10000, batch_size=20, lr_schedule="iwae", adam_eps=1e-4, valid_iwae_k=0,
    note="Burda et al.'s protocol: batch 20, Adam eps 1e-4, stages i = 0..7 of 3^i epochs at 1e-3 * 10^(-i/7)",
)  # fmt: skip


def budgets(*items) -> dict:
    """A study's budgets by name, in the order given."""
    return {b.name: b for b in items}


#: ``--quick`` of the IWAE-table studies (iwae-mnist, iwae-omniglot, tighter-bounds): IWAE-50 validation on more images
QUICK_IWAE = replace(QUICK, n_test=100, k_is=100, n_train=1000, valid_iwae_k=50, ais_points=10, ais_steps=5, ais_chains=2)


@dataclass(frozen=True)
class Job:
    name: str  # run directory name
    label: str  # row label in the report
    overrides: dict = field(default_factory=dict)

    def cost(self) -> float:
        """Relative cost per epoch: samples per point, times ~1.3 for a second stochastic layer."""
        o = self.overrides
        s = o.get("train.n_samples", 1) * o.get("train.objective.groups", 1)
        two_pass = o.get("train.objective") == "piwae" or o.get("train.estimator") == "dreg"
        prior = o.get("model.prior")
        # a VampPrior runs the encoder on its C pseudo-inputs every step: 4x an N(0, I) step at C = 500, batch 100
        vamp = 1.0 + 0.006 * prior.get("components", 50) if isinstance(prior, dict) and prior.get("kind") == "vamp" else 1.0
        return (2 + s) * (1.3 if o.get("model.upper_z_dims") else 1.0) * (1.3 if two_pass else 1.0) * vamp


def mnist_config(data_dir: str | None, budget: Budget) -> RunConfig:
    """The IWAE paper's MNIST setup (Burda et al. 2016, Sec. 5): dynamic binarization, tanh MLPs,
    784-200-200-50 (one layer), Bernoulli decoder, Adam."""
    return RunConfig().override(
        {
            "data.kind": "mnist",
            "data.data_dir": data_dir or "",
            "data.split": budget.mnist_split,
            "data.binarize": "dynamic",
            "model.latent.dim": 50,
            "model.encoder": {"kind": "mlp", "hidden": [200, 200], "activation": "tanh"},
            "model.likelihood": "bernoulli",
            "model.prior": "standard_normal",
            "train.optimizer": "adam",
            "train.lr": 1e-3,
            "train.adam_eps": budget.adam_eps,
            "train.lr_schedule": budget.lr_schedule,
            "train.batch_size": budget.batch_size,
            "train.epochs": budget.epochs,
            "train.seed": 0,
            "train.log_every": 500,
            "train.num_threads": 1,
            "train.valid_iwae_k": budget.valid_iwae_k,
            "train.valid_iwae_points": 500,
            "train.diagnostics": False,
        }
    )


TWO_LAYERS = {"model.latent.dim": 100, "model.upper_z_dims": [50], "model.upper_hidden": [100, 100]}


def _worker(args: tuple) -> dict:
    job, budget, data_dir, runs, base = args
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    cfg = base(data_dir, budget).override({**budget.overrides, **job.overrides})
    data = load_data(cfg.data, cfg.model.likelihood.kind)
    if budget.n_train < data.train.shape[0]:
        data = replace(data, train=data.train[: budget.n_train], train_labels=None)
    run_dir = Path(runs) / job.name
    t0 = time.perf_counter()
    res = fit(cfg, run_dir, data=data, quiet=True, tensorboard=False)
    train_s = time.perf_counter() - t0
    x_test = test_subset(data.test, budget.n_test)
    ev = evaluate_model(res.model, x_test, k=budget.k_is, iwae_k=64, per_point=True)
    if budget.ais_points:  # AIS on the first test images, beside IS on the same images
        ais = ais_log_likelihood(res.model, x_test[: budget.ais_points], budget.ais_steps, budget.ais_chains)
        with_ais(ev, ais, ev["per_point_log_px"][: budget.ais_points])
    np.save(run_dir / "test_log_px.npy", np.asarray(ev.pop("per_point_log_px"), dtype=np.float64))
    np.save(run_dir / "test_elbo.npy", np.asarray(ev.pop("per_point_elbo"), dtype=np.float64))
    stopped_early = len(res.history) < cfg.train.epochs and (run_dir / "best.pt").is_file()  # fit returned best.pt's
    ev.update(split="test", checkpoint="best" if stopped_early else "last")
    write_evaluation(run_dir, "test", ev)
    return {
        "name": job.name,
        "label": job.label,
        "train_seconds": train_s,
        "eval_seconds": time.perf_counter() - t0 - train_s,
        "epochs": cfg.train.epochs,  # a job may override the budget's
        "epochs_trained": len(res.history),  # fewer with early stopping
        "best_epoch": best_epoch_of(res.history),
        "curve": [(r["epoch"], r["valid_iwae"]) for r in res.history],
        "elbo_vs_time": [(r["total_time_s"], r["valid_elbo"]) for r in res.history],
        **ev,
    }


def best_epoch_of(history: list[dict]) -> int | None:
    """The epoch of the best validation ELBO (best.pt's), None without validation."""
    rows = [r for r in history if r.get("valid_elbo") is not None]
    return max(rows, key=lambda r: r["valid_elbo"])["epoch"] if rows else None


def test_subset(x: torch.Tensor, n: int) -> torch.Tensor:
    """n test points drawn without replacement by a fixed seed (the same for every model, so paired
    differences stay paired). Not the first n: MNIST's test set is ordered, its first 5,000 images
    (from the cleaner NIST SD-3 writers) are easier — measured, a linear SBN's test ELBO was -119.5
    on the first 2,000 and -146.2 on images 5,000-7,000."""
    if n >= x.shape[0]:
        return x
    return x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:n]]


def run_jobs(
    jobs: list[Job], budget: Budget, data_dir: str | None, out: Path, log=print, base=mnist_config
) -> tuple[dict, float]:
    """Train and evaluate every job (longest first over ``budget.workers`` processes).

    ``base(data_dir, budget)`` gives the study's configuration; the budget's and then each job's
    overrides are applied to it. Returns ``({job name: result dict}, wall seconds)``; run
    directories go to ``out/runs``.
    """
    runs = out / "runs"
    if runs.exists():
        shutil.rmtree(runs)  # a reproduction always starts from scratch
    runs.mkdir(parents=True)
    load_data(base(data_dir, budget).data, "bernoulli")  # fail fast, in this process, if the data are missing
    order = sorted(jobs, key=lambda j: -j.cost())
    args = [(j, budget, data_dir, str(runs), base) for j in order]
    log(
        f"training {len(jobs)} models, {budget.epochs} epochs each, budget '{budget.name}', "
        f"{budget.workers} worker process(es)"
    )
    t0 = time.perf_counter()
    results = run_pool(_worker, args, [j.cost() for j in order], budget.workers, [j.label for j in order])
    for r in results:
        log(
            f"  {r['label']:<24} log p(x) {r['log_px']:9.3f} ± {r['log_px_se']:.3f}   "
            f"IWAE-{r.get('iwae_k', 64)} {r['iwae']:9.3f}"
            f"   train {r['train_seconds']:6.0f} s"
        )
    return {r["name"]: r for r in results}, time.perf_counter() - t0


def run_pool(fn, args: list, costs: list[float], workers: int, labels: list[str]) -> list:
    """``[fn(a) for a in args]`` over ``workers`` spawn processes (longest first), in input order.

    One line per finished job (its log) with the time left, estimated from the relative ``costs``
    of the jobs still running or queued; on a terminal also one overall bar in cost units with ETA
    (``vaelab.progress``).
    """
    t0, done, total = time.perf_counter(), 0.0, sum(costs)
    out = [None] * len(args)
    overall = bar(total=total, desc=f"{len(args)} runs", unit="cost", leave=True)

    def report(i: int) -> None:
        nonlocal done
        done += costs[i]
        overall.update(costs[i])
        elapsed = time.perf_counter() - t0
        left = elapsed * (total - done) / done if done else 0.0
        overall.write(
            f"  [{sum(o is not None for o in out)}/{len(args)}] {labels[i]} done after {elapsed:.0f} s; "
            f"about {left / 60:.1f} min left"
        )
        sys.stdout.flush()

    if workers > 1 and len(args) > 1:
        with worker_pool(min(workers, len(args))) as pool:
            for i, r in pool.imap_unordered(_indexed, [(fn, i, a) for i, a in enumerate(args)], chunksize=1):
                out[i] = r
                report(i)
    else:
        for i, a in enumerate(args):
            out[i] = fn(a)
            report(i)
    overall.close()
    return out


def _indexed(job: tuple):
    fn, i, a = job
    return i, fn(a)


def paired_rows(out: Path, results: dict, names: list[tuple[str, str]]) -> list:
    """[(label of a, label of b, mean of a - b, its s.e.)] over the same test points, for each run pair (a, b)."""
    return [(results[a]["label"], results[b]["label"], *paired_difference(out, a, b)) for a, b in names]


def paired_difference(out: Path, a: str, b: str, what: str = "log_px") -> tuple[float, float]:
    """Mean and s.e. of log p_hat(x) (``what = "log_px"``), the ELBO ("elbo") or the gap log p_hat(x) -
    ELBO ("gap") of run a minus run b over the same test points (nats)."""
    d = _per_point(out / "runs" / a, what) - _per_point(out / "runs" / b, what)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def _per_point(run: Path, what: str) -> np.ndarray:
    if what == "gap":
        return np.load(run / "test_log_px.npy") - np.load(run / "test_elbo.npy")
    return np.load(run / f"test_{what}.npy")


def surgery_table(rows: dict[str, dict], first: str, digits: int = 2) -> list[str]:
    """The ELBO-surgery table (Hoffman & Johnson 2016), one row per label from
    :func:`vaelab.evaluation.elbo_surgery`'s dict: ELBO, E[log p(x|z)], average KL, I_q(x; z) and
    KL(q(z) || p(z)) with their standard errors, nats."""
    lines = [
        f"| {first} | ELBO | E[log p(x|z)] | average KL | I_q(x; z) | KL(q(z) ‖ p(z)) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, s in rows.items():
        v = {k: f"{x:.{digits}f}" for k, x in s.items() if isinstance(x, (int, float))}
        lines.append(f"| {label} | {v['elbo']} | {v['reconstruction']} | {v['average_kl']} | {v['mutual_info']} ± "
                     f"{v['mutual_info_stderr']} | {v['marginal_kl']} ± {v['marginal_kl_stderr']} |")  # fmt: skip
    return lines


def ais_table(b: Budget, jobs: list[Job], results: dict) -> list[str]:
    """Report lines: AIS log p(x) beside IS on the budget's first ``ais_points`` test images, per model."""
    rows = [results[j.name] for j in jobs if "ais_log_px" in results[j.name]]
    if not rows:
        return []
    lines = ["", f"AIS from the prior (T = {b.ais_steps}, C = {b.ais_chains} chains, HMC; Neal 2001, Wu et al. 2017) on "
             f"the first {b.ais_points} of these test images, beside IS (K = {b.k_is}) on the same images; both are "
             "stochastic lower bounds, so IS − AIS < 0 is how far IS is below AIS (nats):", "",
             "| model | AIS log p̂(x) | ± s.e. | IS − AIS (paired) | chains' ESS | acceptance | AIS s |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        flag = " (not converged)" if not ais_converged(r) else ""
        lines.append(f"| {r['label']}{flag} | {r['ais_log_px']:.2f} | {r['ais_log_px_se']:.2f} | {r['is_minus_ais']:+.3f} ± "
                     f"{r['is_minus_ais_se']:.3f} | {r['ais_ess']:.1f} | {r['ais_accept']:.2f} | "
                     f"{r['ais_seconds']:.0f} |")  # fmt: skip
    if not all(ais_converged(r) for r in rows):
        lines += ["", "Rows marked *not converged* have IS above AIS, or HMC acceptance under 0.3 or the chains' ESS "
                  "near 1: the annealing was too short for that posterior (T steps, one step size per chain across "
                  "layers of very different scales), so their AIS is a loose lower bound, not a reference; more steps "
                  "(`vaelab evaluate RUN --ais --ais-steps 2000`) or BDMC (`--bdmc`) are the check."]  # fmt: skip
    return lines


def ais_converged(r: dict) -> bool:
    """Whether an AIS row can serve as the reference: IS not significantly above it, acceptance >= 0.3, and
    more than one effective chain."""
    above = r["is_minus_ais"] > 3 * r["is_minus_ais_se"]
    return not above and r["ais_accept"] >= 0.3 and r["ais_ess"] > 1.5


def comparison(b: Budget, results: dict, pairs: list, wall: float, report: str, **extra) -> StudyResult:
    """A comparison study's outcome: results.json holds the budget, wall time, models and paired differences."""
    return StudyResult({"budget": vars(b), "wall_seconds": wall, "models": results, "paired": pairs, **extra}, report)
