"""`vaelab compare`: a side-by-side markdown table of evaluated runs."""

from __future__ import annotations

import json
from pathlib import Path

from . import config as config_mod
from .errors import CheckpointError

COLUMNS = [
    ("run", "run"),
    ("trained as", "label"),
    ("layers", "layers"),
    ("prior", "prior"),
    ("epochs", "epochs"),
    ("log p̂(x)", "log_px"),
    ("± s.e.", "log_px_se"),
    ("IWAE-64", "iwae"),
    ("ELBO", "elbo"),
    ("log p̂ − ELBO", "gap"),
    ("−KL(Q‖P)", "neg_kl_QP"),
    ("active units", "active_units_per_layer"),
    ("N {split}", "n"),
    ("K (IS)", "k"),
]


def describe(cfg: config_mod.RunConfig) -> str:
    """Short name of a run's training objective, e.g. 'IWAE k=50', 'MIWAE(8,8)', 'PIWAE(8,8) +DReG'."""
    t = cfg.train
    o, k = t.objective.options, t.n_samples
    short = {"elbo": "VAE", "iwae": "IWAE", "miwae": "MIWAE", "piwae": "PIWAE", "ciwae": "CIWAE"}
    label = short.get(t.objective.kind, t.objective.kind.upper())
    if "groups" in o:
        name = f"{label}({o['groups']},{k})"
    elif "beta" in o or t.objective.kind == "ciwae":
        name = f"{label}(β={o.get('beta', 0.5):g}) k={k}"
    else:
        name = f"{label} k={k}"
    if t.estimator.kind != "reparam":
        name += " +" + {"stl": "STL", "dreg": "DReG", "reinforce": "REINFORCE"}.get(t.estimator.kind, t.estimator.kind)
    return name


def load_row(run_dir: str | Path, split: str = "test") -> dict:
    """One table row: the run's config summary and its ``evaluation_{split}.json``.

    Raises:
        CheckpointError: the run directory, its config.toml or its evaluation file is missing.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise CheckpointError(f"{run_dir}: no config.toml; is it a run directory written by `vaelab train`?")
    ev = run_dir / f"evaluation_{split}.json"
    if not ev.is_file():
        raise CheckpointError(f"{run_dir}: no {ev.name}; run `vaelab evaluate {run_dir} --split {split}` first")
    cfg = config_mod.load(run_dir / "config.toml")
    result = json.loads(ev.read_text())
    if "log_px" not in result:
        raise CheckpointError(f"{ev} is from an older vaelab; run `vaelab evaluate {run_dir}` again")
    epochs = None
    if (run_dir / "metrics.csv").is_file():
        lines = (run_dir / "metrics.csv").read_text().strip().splitlines()
        epochs = len(lines) - 1
    return {
        "run": run_dir.name,
        "label": describe(cfg),
        "layers": 1 + len(cfg.model.upper_z_dims),
        "prior": cfg.model.prior.kind,
        "epochs": epochs,
        **result,
    }


def markdown_table(rows: list[dict], split: str = "test") -> str:
    """Markdown table of :func:`load_row` rows (nats per data point) evaluated on ``split``."""

    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else ("" if v is None else str(v))

    head = "| " + " | ".join(c.format(split=split) for c, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(fmt(r.get(key)) for _, key in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def compare_runs(run_dirs: list[str | Path], split: str = "test") -> tuple[str, list[dict]]:
    rows = [load_row(d, split) for d in run_dirs]
    return markdown_table(rows, split), rows
