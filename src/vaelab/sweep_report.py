"""What `vaelab sweep` writes when its trials are done: a table of every trial (sweep.md), the best
trials evaluated on the validation split side by side (`vaelab compare`), and Optuna's own plots."""

from __future__ import annotations

import warnings
from pathlib import Path

from .compare import compare_runs


def ranked(study) -> list:
    """The trials with a value (finished, or pruned after reporting), best first."""
    trials = study.get_trials(deepcopy=False)
    return sorted((t for t in trials if t.value is not None and t.state.name != "FAIL"), key=lambda t: -t.value)


def trial_table(study, metric: str) -> str:
    """Markdown: one row per trial, best first (finished trials by value, then pruned / failed)."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    done = ranked(study)
    rest = [t for t in trials if t.number not in {d.number for d in done}]
    lines = [
        f"| trial | state | best {metric} (nats) | epochs | " + " | ".join(keys) + " | run | note |",
        "|---:|---|---:|---:|" + "---|" * len(keys) + "---|---|",
    ]
    for t in [*done, *rest]:
        value = f"{t.value:.3f}" if t.value is not None and t.state.name != "FAIL" else "–"
        steps = max(t.intermediate_values, default=0)
        params = " | ".join(_fmt(t.params.get(k)) for k in keys)
        note = t.user_attrs.get("error", "").replace("|", "/")  # why a trial failed
        run = t.user_attrs.get("run_dir", "") if Path(t.user_attrs.get("run_dir", "")).is_dir() else ""
        lines.append(f"| {t.number} | {t.state.name.lower()} | {value} | {steps} | {params} | {run} | {note} |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else ("" if v is None else str(v))


def compare_best(study, n: int, k: int) -> str:
    """IS evaluation (K = ``k``) of the ``n`` best finished trials on the validation split, as `vaelab compare`."""
    from .evaluation import evaluate_model, write_evaluation
    from .train import load_run

    # trials run on this machine: another machine's run directories (a shared --storage) are not here
    dirs = [d for d in (t.user_attrs["run_dir"] for t in ranked(study)) if Path(d).is_dir()][:n]
    for d in dirs:
        _, model, data = load_run(d)
        assert data is not None
        result = evaluate_model(model, data.valid, k=k, iwae_k=min(64, k))
        result.update(split="valid", checkpoint="best", processes=1)
        write_evaluation(d, "valid", result)
    return compare_runs(dirs, "valid")[0] if dirs else "(no finished trial)"


def optuna_plots(study, out: Path) -> list[str]:
    """Optuna's optimization history and (with 2+ finished trials) parameter importances, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as ovm

    made = []
    finished = ranked(study)
    plots: dict = {"history.png": ovm.plot_optimization_history} if finished else {}  # (nothing to plot otherwise)
    if len(finished) >= 2 and len({tuple(sorted(t.params.items())) for t in finished}) >= 2:
        plots["importances.png"] = ovm.plot_param_importances
    for name, plot in plots.items():
        with warnings.catch_warnings():  # Optuna marks its matplotlib backend experimental on every call
            warnings.simplefilter("ignore", ExperimentalWarning)
            fig = plot(study).figure
        fig.savefig(out / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        made.append(name)
    return made


def write_report(study, out: Path, metric: str, best: int, k: int) -> Path:
    """sweep.md with the trial table, the best trials compared, and the plots; returns its path."""
    parts = [f"# Sweep `{study.study_name}`", "", trial_table(study, metric), ""]
    if best:
        parts += [f"## The {best} best trials on the validation split (IS, K = {k})", "", compare_best(study, best, k), ""]
    plots = optuna_plots(study, out)
    parts += [f"![{p}]({p})" for p in plots]
    path = out / "sweep.md"
    path.write_text("\n".join(parts) + "\n")
    return path
