"""`vaelab reproduce semi-supervised-mnist`: Kingma et al. 2014's M2 and stacked M1+M2 with few labels
on MNIST (their Table 1), and the classifier's test error against the number of labels.

M2: q(z|x, y), p(x|y, z), q(y|x) each an MLP with one hidden layer of 500 softplus units, z of 50
dimensions, a Bernoulli decoder on dynamically binarized MNIST (50,000 training / 10,000 validation
images), the labels a balanced subset drawn with ``data.seed``, the classification weight
alpha = 0.1 per point (the paper's alpha = 0.1 N), Adam. M1+M2: an M1 VAE (784-500-500-50 softplus)
is trained first; M2 (hidden 500, z = 50, Gaussian decoder with a learned per-dimension variance) is
then trained on M1's posterior means of its active units. Test error: argmax_y q(y|x) on the 10,000
test images, mean and standard deviation over seeds (each seed draws its own labelled subset).

Budgets: ``small`` (10 epochs of M2, 30 of M1+M2 on features, 3 seeds, the curve with 1 seed; ~1 h on a
2-core CPU), ``medium`` (100 / 300 epochs), ``paper`` (the authors' 3,000 passes, Adam 3e-4; weeks here).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..config import RunConfig
from ..data import load_data
from ..evaluation import classification_error, decoder_label_use
from ..labels import label_mode_of
from ..train import fit
from ._study import run_pool, write_results
from .study import Study, StudyResult, StudyRun, register_study


@dataclass(frozen=True)
class Budget:
    name: str
    m2_epochs: int
    stacked_epochs: int
    m1_epochs: int
    seeds: tuple = (0, 1, 2)
    curve_labels: tuple = (600, 1000, 3000)
    curve_seeds: tuple = (0,)
    lr: float = 1e-3
    labelled_batch: int = 100
    n_train: int = 50000
    workers: int = 2
    m1_keep: str = "active"  # M1 dimensions M2 reads: "active" (the authors' choice) or "all"
    note: str = ""
    m2_overrides: dict = field(default_factory=dict)


BUDGETS = {
    "small": Budget("small", 10, 30, 10, note="M2 10 epochs, M1 10 + M2-on-features 30 epochs, Adam 1e-3, 3 seeds"),
    "medium": Budget("medium", 100, 300, 100, note="M2 100 epochs, M1 100 + M2-on-features 300 epochs, Adam 1e-3"),
    "paper": Budget("paper", 3000, 3000, 3000, lr=3e-4, note="the authors' 3,000 passes and Adam 3e-4 (nips14-ssl code)"),
}
QUICK = Budget("quick", 1, 1, 1, seeds=(0,), curve_labels=(), n_train=2000, workers=1, m1_keep="all", note="smoke test")

#: Kingma et al. 2014, Table 1 (MNIST, 100 labels, test error %, mean ± std over runs), with the status
#: shared/REFERENCES.md gives them: the means are quoted by third-party copies, the ± by none (unverified).
#: Verified in the authors' code (github.com/dpkingma/nips14-ssl, learn_yz_x_ss.py / exp_ssl.py): alpha = 0.1
#: scaling log q(y|x) by alpha * N / N_l with the objective divided by N, 3,000 passes, Adam 3e-4, n_z = 50.
PAPER = {"M2": (11.97, 1.71), "M1+M2": (3.33, 0.14)}
PAPER_STATUS = "third-party; ± unverified"


def _base(data_dir: str | None, b: Budget, seed: int) -> dict:
    return {
        "data.kind": "mnist",
        "data.data_dir": data_dir or "",
        "data.seed": seed,
        "train.seed": seed,
        "train.lr": b.lr,
        "train.batch_size": 100,
        "train.num_threads": 1,
        "train.log_every": 500,
        "train.diagnostics": False,
        "model.latent.dim": 50,
    }


def m2_config(data_dir, b: Budget, seed: int, labels: int) -> RunConfig:
    return RunConfig().override(
        {
            **_base(data_dir, b, seed),
            "data.binarize": "dynamic",
            "data.split": "50k-10k-10k",
            "data.labelled": labels,
            "model.labels": "semi-supervised",
            "model.encoder": {"kind": "mlp", "hidden": [500], "activation": "softplus"},
            "model.likelihood": "bernoulli",
            "train.epochs": b.m2_epochs,
            "train.labelled_batch": min(b.labelled_batch, labels),
            **b.m2_overrides,
        }
    )


def m1_config(data_dir, b: Budget) -> RunConfig:
    return RunConfig().override(
        {
            **_base(data_dir, b, 0),
            "data.binarize": "dynamic",
            "data.split": "50k-10k-10k",
            "model.encoder": {"kind": "mlp", "hidden": [500, 500], "activation": "softplus"},
            "model.likelihood": "bernoulli",
            "train.epochs": b.m1_epochs,
        }
    )


def stacked_config(m1_run: Path, data_dir, b: Budget, seed: int, labels: int) -> RunConfig:
    return RunConfig().override(
        {
            **_base(data_dir, b, seed),
            "data.kind": "encoded",
            "data.run": str(m1_run),
            "data.keep": b.m1_keep,
            "data.labelled": labels,
            "data.binarize": "none",
            "model.labels": "semi-supervised",
            "model.encoder": {"kind": "mlp", "hidden": [500], "activation": "softplus"},
            "model.likelihood": {"kind": "gaussian", "variance": "per_dim"},
            "train.epochs": b.stacked_epochs,
            "train.labelled_batch": min(b.labelled_batch, labels),
        }
    )


def _train(args: tuple) -> dict:
    name, cfg, run_dir, n_train = args
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    data = load_data(cfg.data, cfg.model.likelihood.kind)
    subset = n_train < data.train.shape[0]  # only the smoke test: its runs record data passed from Python
    if subset:
        keep = torch.randperm(data.train.shape[0], generator=torch.Generator().manual_seed(0))[:n_train]
        data.train, data.train_labels = data.train[keep], data.train_labels[keep]
    t0 = time.perf_counter()
    res = fit(cfg, run_dir, data=data if subset else None, quiet=True, tensorboard=False)
    labelled = label_mode_of(res.model).infers_labels  # the classifier q(y|x) is what is scored
    err = classification_error(res.model, data.test, data.test_labels) if labelled else None
    use = decoder_label_use(res.model, *_label_use_points(data)) if labelled else None
    return {
        "name": name,
        "train_seconds": time.perf_counter() - t0,
        "epochs": cfg.train.epochs,
        "test_error": err.error if err else None,
        "test_error_se": err.se if err else None,
        "label_use_nats": use.nats if use else None,
        "label_use_se": use.se if use else None,
        "valid_error": [r.get("valid_error") for r in res.history],
        "valid_elbo": res.history[-1]["valid_elbo"],
    }


def _label_use_points(data) -> tuple[torch.Tensor, torch.Tensor]:
    """1,000 test points drawn with a fixed seed (the same for every run)."""
    pick = torch.randperm(data.test.shape[0], generator=torch.Generator().manual_seed(0))[:1000]
    return data.test[pick], data.test_labels[pick]


def _body(ctx: StudyRun) -> StudyResult:
    """Train M1, then every M2 / M1+M2 run over the worker pool; the results and report."""
    b, runs, data_dir, log = ctx.budget, ctx.runs, ctx.data_dir, ctx.log
    runs.mkdir(parents=True, exist_ok=True)
    t0, commit = time.perf_counter(), _commit()  # the code that trains: HEAD may move while it runs
    load_data(m1_config(data_dir, b).data, "bernoulli")  # fail fast if MNIST is missing
    log(f"semi-supervised-mnist, budget '{b.name}': M1 ({b.m1_epochs} epochs) first")
    m1 = _train(("m1", m1_config(data_dir, b), _fresh(runs / "m1"), b.n_train))
    jobs = [(f"m2-100-s{s}", m2_config(data_dir, b, s, 100), 6.0) for s in b.seeds]
    jobs += [(f"m1m2-100-s{s}", stacked_config(runs / "m1", data_dir, b, s, 100), 1.0) for s in b.seeds]
    jobs += [(f"m2-{n}-s{s}", m2_config(data_dir, b, s, n), 6.0) for n in b.curve_labels for s in b.curve_seeds]
    jobs.sort(key=lambda j: -j[2])
    log(f"training {len(jobs)} semi-supervised models on {b.workers} worker process(es)")
    args = [(name, cfg, _fresh(runs / name), b.n_train) for name, cfg, _ in jobs]
    results = {r["name"]: r for r in run_pool(_train, args, [c for *_, c in jobs], b.workers, [j[0] for j in jobs])}
    results["m1"] = m1
    wall = time.perf_counter() - t0
    payload = {"budget": vars(b), "wall_seconds": wall, "models": results, "commit": commit}
    return StudyResult(payload, _report_text(b, payload))


STUDY = register_study(Study("semi-supervised-mnist", _body, BUDGETS, quick=QUICK))
run = STUDY.run


def refresh_report(out_dir: str | Path, data_dir: str | None = None) -> None:
    """Rewrite report.md from results.json, measuring the decoder label use of any run that lacks it
    (runs saved by an earlier version of this study); results.json records what was added, and when."""
    out = Path(out_dir)
    payload = json.loads((out / "results.json").read_text())
    b = replace(BUDGETS.get(payload["budget"]["name"], QUICK), **payload["budget"])
    added = []
    for name, r in payload["models"].items():
        if name != "m1" and r.get("label_use_nats") is None:
            model, data = _run_and_data(out / "runs" / name, data_dir)
            use = decoder_label_use(model, *_label_use_points(data))
            r["label_use_nats"], r["label_use_se"] = use.nats, use.se
            added.append(name)
    if added:
        payload["post_hoc"] = {"label_use_added_by_commit": _commit(), "runs": added}
    _write(out, b, payload)


def _write(out: Path, b: Budget, payload: dict) -> None:
    """results.json / .csv and report.md: the study's table, then any ablations, their note, post-hoc lines."""
    write_results(out, payload)
    (out / "report.md").write_text(_report_text(b, payload))


def _report_text(b: Budget, payload: dict) -> str:
    report = _report(b, payload["models"], payload["wall_seconds"], payload["commit"])
    note = f"\n{payload['ablation_note']}\n" if payload.get("ablation_note") else ""
    return report + _ablation_lines(payload.get("ablation", {})) + note + _post_hoc(payload)


def _run_and_data(run_dir: str | Path, data_dir: str | None):
    """A saved run's model (last.pt) and its data, read from its [data] table (``data_dir`` overriding)."""
    from ..train import load_run

    cfg, model, _ = load_run(run_dir, "last", load_data_too=False)
    data_cfg = cfg.override({"data.data_dir": data_dir}).data if data_dir else cfg.data
    return model, load_data(data_cfg, cfg.model.likelihood.kind)


def add_ablation(out_dir: str | Path, run_dir: str | Path, label: str, command: str, data_dir: str | None = None) -> None:
    """Record a run trained apart from the study (e.g. ``vaelab train --config runs/m2-100-s0/config.toml
    --set train.classification_weight=1``): its test error and decoder label use join results.json under
    "ablation" and report.md's ablation table (rewritten by :func:`refresh_report`)."""
    out = Path(out_dir)
    model, data = _run_and_data(run_dir, data_dir)
    err, use = classification_error(model, data.test, data.test_labels), decoder_label_use(model, *_label_use_points(data))
    payload = json.loads((out / "results.json").read_text())
    payload.setdefault("ablation", {})[Path(run_dir).name] = {
        "label": label,
        "command": command,
        "commit": _commit(),
        "test_error": err.error,
        "test_error_se": err.se,
        "label_use_nats": use.nats,
        "valid_error": [r.get("valid_error") for r in load_run_history(run_dir)],
    }
    write_results(out, payload)
    refresh_report(out, data_dir)


def load_run_history(run_dir: str | Path) -> list[dict]:
    """The epoch rows of a run's last.pt."""
    from ..checkpoint import load_checkpoint

    return load_checkpoint(Path(run_dir) / "last.pt").get("history", [])


def _fresh(path: Path) -> Path:
    import shutil

    if path.exists():
        shutil.rmtree(path)
    return path


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        return "unknown"


def _ablation_lines(ablation: dict) -> str:
    if not ablation:
        return ""
    lines = [
        "",
        "## Ablations (trained apart from the study, same data and seed as the M2 run they change)",
        "",
        "| run | test error % | ± s.e. | decoder label use | validation error % by epoch | command |",
        "|---|---|---|---|---|---|",
    ]
    for a in ablation.values():
        curve = " ".join(f"{100 * e:.0f}" for e in a["valid_error"] if e is not None)
        lines.append(
            f"| {a['label']} | {100 * a['test_error']:.2f} | {100 * a['test_error_se']:.2f} | "
            f"{a['label_use_nats']:.1f} nats | {curve} | `{a['command']}` (commit {a['commit']}) |"
        )
    return "\n".join(lines) + "\n"


def _post_hoc(payload: dict) -> str:
    ph = payload.get("post_hoc")
    if not ph:
        return ""
    return (
        f"\nThe decoder label use of {', '.join(ph['runs'])} was measured after the study, on the saved runs, "
        f"by commit {ph['label_use_added_by_commit']} (`refresh_report`).\n"
    )


def _summary(results: dict, prefix: str) -> tuple[float, float, int]:
    errs = [100 * r["test_error"] for n, r in results.items() if n.startswith(prefix)]
    return statistics.mean(errs), (statistics.stdev(errs) if len(errs) > 1 else float("nan")), len(errs)


def _report(b: Budget, results: dict, wall: float, commit: str) -> str:
    lines = [
        "# Semi-supervised MNIST (Kingma et al. 2014, M2 and M1+M2) — `vaelab reproduce semi-supervised-mnist`",
        "",
        f"Budget **{b.name}**: {b.note}; {b.labelled_batch} labelled points join every batch of 100 unlabelled ones "
        f"(row weights keep the bound unbiased). Commit `{commit}`; wall time {wall / 60:.1f} min on {b.workers} "
        "worker processes (1 thread each). Test error of argmax q(y|x) on the 10,000 MNIST test images, %.",
        "",
        "| model, 100 labels | test error % | std over seeds | seeds | train time / run | decoder label use | "
        "paper (status) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, prefix in (("M2", "m2-100-"), ("M1+M2", "m1m2-100-")):
        m, s, n = _summary(results, prefix)
        runs = [r for k, r in results.items() if k.startswith(prefix)]
        t = statistics.mean(r["train_seconds"] for r in runs)
        uses = [r.get("label_use_nats") for r in runs]
        use_s = f"{statistics.mean(uses):.1f} nats" if None not in uses else "—"
        pm, ps = PAPER[label]
        lines.append(f"| {label} | {m:.2f} | {s:.2f} | {n} | {t / 60:.1f} min | {use_s} | {pm} ± {ps} ({PAPER_STATUS}) |")
    curve = sorted({int(k.split("-")[1]) for k in results if k.startswith("m2-")})
    lines += [
        "",
        "M2 test error against the number of labels (balanced):",
        "",
        "| labels | test error % | runs | decoder label use |",
        "|---|---|---|---|",
    ]
    for n_lab in curve:
        m, _, k = _summary(results, f"m2-{n_lab}-")
        uses = [r.get("label_use_nats") for n, r in results.items() if n.startswith(f"m2-{n_lab}-")]
        use_s = f"{statistics.mean(uses):.1f} nats" if None not in uses else "—"
        lines.append(f"| {n_lab} | {m:.2f} | {k} | {use_s} |")
    m1 = results["m1"]
    lines += [
        "",
        f"M1 (784-500-500-50 softplus VAE, {m1['epochs']} epochs, {m1['train_seconds'] / 60:.1f} min): validation ELBO "
        f"{m1['valid_elbo']:.2f} nats; M1+M2 reads the posterior means of its active units (docs/semi_supervised.md).",
        "",
        "Decoder label use: the mean over 1,000 test images of log p(x | z, y) − log p(x | z, y′), z = E_q[z|x, y], "
        "y′ another class (`vaelab.evaluation.decoder_label_use`). Near zero, the decoder ignores the label and "
        "the class lives in z; M2's unlabelled bound then barely rewards a correct q(y|x), and the classifier "
        "learns mostly from the labelled term. (For M1+M2 the nats are of the Gaussian density of M1's features, "
        "not of images: compare its rows with each other only.)",
        "",
        "Validation error by epoch, % (argmax q(y|x) on the 10,000 validation images):",
        "",
        *[
            f"- {n}: {' '.join(f'{100 * e:.0f}' for e in r['valid_error'] if e is not None)}"
            for n, r in results.items()
            if r.get("valid_error") and any(e is not None for e in r["valid_error"])
        ],
        "",
        "Paper column: Kingma et al. 2014, Table 1, MNIST with 100 labels; status from shared/REFERENCES.md: the "
        "means are quoted by third-party copies, the ± by none (the paper's table was not reachable from this "
        "machine). The authors trained 3,000 passes "
        f"(their code); this budget trains {b.m2_epochs} (M2) and {b.stacked_epochs} (M2 on M1's features). The "
        "hyperparameters checked in the authors' code are listed in the module docstring.",
    ]
    return "\n".join(lines) + "\n"
