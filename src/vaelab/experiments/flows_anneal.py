"""`vaelab reproduce flows-mnist --budget kl-anneal` (or ``kl-anneal-100``): does Rezende & Mohamed's KL
annealing change what planar flows do to the gap?

At the small budget's 30 epochs the planar posterior *widened* the gap log p(x) - ELBO against the
diagonal Gaussian (results/flows-mnist). Rezende & Mohamed 2015 (Sec. 6) train with an annealed free
energy, beta_t = min(1, 0.01 + t / 10,000). This ablation trains the diagonal Gaussian and the
10-step planar posterior with and without a linear KL warm-up over the first 10,000 updates (beta
from 0, ours, instead of their 0.01: one update in 10,000 apart), at the small budget's 15,000
updates, and pairs every difference over the same test images.
"""

from __future__ import annotations

from dataclasses import replace

from ._study import Budget, Job, paired_difference, run_jobs
from .study import StudyResult

#: Rezende & Mohamed's annealing length, in updates
WARMUP_STEPS = 10_000
#: flows_mnist.POSTERIORS entries ablated, the planar ones first (the longest: they start first)
ABLATED = ("planar10", "gaussian")


#: the budgets this module runs: the small budget's 30 epochs (the warm-up is two thirds of the updates)
#: and 100 epochs (a fifth)
NAMES = ("kl-anneal", "kl-anneal-100")


def budgets(small: Budget) -> list[Budget]:
    return [
        replace(
            small,
            name=name,
            epochs=epochs,
            note=f"{epochs} epochs, batch 100, Adam 1e-3; IS on 2,000 random test images; diagonal Gaussian and planar "
            f"(10 steps), each with and without a linear KL warm-up over the first {WARMUP_STEPS:,} updates (Rezende & "
            "Mohamed's annealing)",
        )
        for name, epochs in zip(NAMES, (small.epochs, 100))
    ]


def jobs_for(posteriors: dict, warmup: int) -> list[Job]:
    """Each ablated posterior (``posteriors``: flows_mnist.POSTERIORS) plain and annealed."""
    jobs = []
    for name in ABLATED:
        label, latent = posteriors[name]
        base = {"model.latent": latent, "train.objective": "elbo"}
        jobs.append(Job(name, label, base))
        jobs.append(Job(f"{name}_anneal", f"{label}, KL annealed", {**base, "train.kl_warmup_steps": warmup}))
    return jobs


def run(ctx, posteriors: dict) -> StudyResult:
    """Train and evaluate the four models; the report pairs annealed against plain, and planar against
    the Gaussian under each schedule."""
    b, out, warmup = ctx.budget, ctx.out, WARMUP_STEPS
    jobs = jobs_for(posteriors, warmup)
    results, wall = run_jobs(jobs, b, ctx.data_dir, out, ctx.log)
    pairs = {
        f"{a} − {c}": {w: paired_difference(out, a, c, w) for w in ("log_px", "elbo", "gap")}
        for a, c in (("planar10_anneal", "planar10"), ("gaussian_anneal", "gaussian"),
                     ("planar10", "gaussian"), ("planar10_anneal", "gaussian_anneal"))
    }  # fmt: skip
    labels = {j.name: j.label for j in jobs}
    payload = {"budget": vars(b), "wall_seconds": wall, "models": results, "paired": pairs, "warmup_steps": warmup}
    return StudyResult(payload, _report(b, jobs, results, pairs, labels, wall, warmup))


def _report(b: Budget, jobs, results: dict, pairs: dict, labels: dict, wall: float, warmup: int) -> str:
    lines = [
        f"# Planar flows with and without KL annealing — `vaelab reproduce flows-mnist --budget {b.name}`",
        "",
        f"Budget **{b.name}**: {b.note}. The flows-mnist model (784-200-200-50 tanh MLPs, Bernoulli decoder, dynamic "
        f"binarization), trained on the ELBO; annealed runs weight the KL term by min(1, t / {warmup:,}) at update t "
        f"(Rezende & Mohamed: min(1, 0.01 + t / 10,000)). Wall time {wall / 60:.1f} min ({b.workers} worker processes, "
        f"1 thread each). Test log p̂(x) by importance sampling, K = {b.k_is}, on {b.n_test:,} random test images; ELBO "
        "at weight 1; gap = log p̂(x) − ELBO; nats per image.",
        "",
        "| posterior | test log p̂(x) | ± s.e. | ELBO | gap | ± s.e. | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        r = results[j.name]
        lines.append(
            f"| {r['label']} | {r['log_px']:.2f} | {r['log_px_se']:.2f} | {r['elbo']:.2f} | {r['gap']:.2f} | "
            f"{r['gap_se']:.2f} | {r['train_seconds']:.0f} s |"
        )
    lines += [
        "",
        "Paired differences over the same test images (nats; positive Δ log p̂(x) / Δ ELBO = the first is better, "
        "negative Δ gap = the first has the tighter posterior):",
        "",
        "| first − second | Δ log p̂(x) | Δ ELBO | Δ gap |",
        "|---|---|---|---|",
    ]
    for key, p in pairs.items():
        a, c = key.split(" − ")
        (dl, sl), (de, se), (dg, sg) = p["log_px"], p["elbo"], p["gap"]
        lines.append(f"| {labels[a]} − {labels[c]} | {dl:+.3f} ± {sl:.3f} | {de:+.3f} ± {se:.3f} | {dg:+.3f} ± {sg:.3f} |")
    return "\n".join(lines) + "\n"
