"""The `vaelab` command line: train, evaluate, sample, plot, reproduce, download."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import config as config_mod
from .cli_types import POSITIVE, SEED, integer, positive_float
from .errors import EXIT_ABORTED, EXIT_ERROR, EXIT_STOPPED, ConfigError, TrainingInterrupted, VaelabError
from .progress import quiet

EPILOG = "All reported quantities are in nats per data point; NLL is reported positive."


#: component slots with a ``--FLAG KIND`` shortcut, and the config key each sets
SLOTS = {
    "dataset": ("data.kind", "DATASETS"),
    "encoder": ("model.encoder", "NETWORKS"),
    "decoder": ("model.decoder", "NETWORKS"),
    "latent": ("model.latent", "LATENTS"),
    "prior": ("model.prior", "PRIORS"),
    "likelihood": ("model.likelihood", "LIKELIHOODS"),
    "objective": ("train.objective", "OBJECTIVES"),
    "estimator": ("train.estimator", "ESTIMATORS"),
}
#: common options with flags of their own: flag -> (config key, type, help)
SHORTCUTS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "z-dim": ("model.latent.dim", POSITIVE, "latent dimension (model.latent.dim)"),
    "hidden": ("model.encoder.hidden", POSITIVE, "encoder MLP widths, e.g. --hidden 200 200 (model.encoder.hidden)"),
    "prior-components": ("model.prior.components", POSITIVE, "MoG components / VampPrior pseudo-inputs"),
    "n-groups": ("train.objective.groups", POSITIVE, "M groups of K samples for miwae / piwae"),
    "path": (
        "data.path",
        str,
        (
            "data file: an array (.npz/.npy/.csv; selects --dataset array when none is "
            "given) or, with --dataset text, a text file of one sentence per line"
        ),
    ),
    "data-dir": ("data.data_dir", str, "folder with the data files (default $VAELAB_DATA)"),
    "binarize": ("data.binarize", str, "auto | dynamic | none"),
}


def _flag_type(f):
    return {
        "int": int,
        "float": float,
        "str": str,
        "list": float,
        "bool": _boolean,
    }[f.type]


def _boolean(text: str) -> bool:
    try:
        return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def registry_help() -> str:
    """Every registered kind with its options, read from the registries, and every plain [data] / [model]
    key with its default (the --help epilog; the [train] keys have flags of their own)."""
    lines = ["components (--FLAG KIND; options with --set TABLE.OPTION=VALUE, e.g. --set model.prior.components=50):"]
    for flag, (key, reg) in SLOTS.items():
        lines.append(f"  --{flag} ({key}): {config_mod.registry(reg).describe()}")
    for table, cls in (("data", config_mod.DataConfig), ("model", config_mod.ModelConfig)):
        lines += ["", f"[{table}] keys (--set {table}.KEY=VALUE, or the [{table}] table of --config):"]
        default = cls()
        flagged = {key for key, _ in SLOTS.values()}
        for f in config_mod.fields(cls):
            if f"{table}.{f.name}" in flagged or f.name in ("kind", "options") and table == "data":
                continue
            if "registry" in f.metadata:  # a component without a flag of its own: a table, set with --set
                lines.append(f"  [{table}.{f.name}] (a {f.metadata['registry'].lower()} table): {f.metadata['help']}")
                continue
            lines.append(f"  {table}.{f.name} = {getattr(default, f.name)!r}: {f.metadata['help']}")
    return "\n".join(lines)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """Component flags (--prior mog), shortcut flags (--z-dim) and one flag per plain [train] field."""
    g = p.add_argument_group("components (override the config file)")
    for flag, (key, reg) in SLOTS.items():
        names = config_mod.registry(reg).names()
        g.add_argument(
            "--" + flag, dest=f"slot_{flag}", choices=names, metavar="KIND", help=f"{key}: one of {', '.join(names)}"
        )
    g = p.add_argument_group("common options")
    for flag, (_, typ, help_) in SHORTCUTS.items():
        g.add_argument(
            "--" + flag,
            dest="short_" + flag.replace("-", "_"),
            type=typ,
            nargs="+" if flag == "hidden" else None,
            metavar=flag.upper().replace("-", "_"),
            help=help_,
        )
    g = p.add_argument_group("[train] options")
    default = config_mod.TrainConfig()
    for f in config_mod.fields(config_mod.TrainConfig):
        if "registry" in f.metadata:
            continue
        choices = f.metadata.get("choices")
        kw = {
            "dest": f"cfg_{f.name}",
            "default": None,
            "type": _flag_type(f),
            "metavar": f.name.upper(),
            "help": f"{f.metadata['help']} (default: {getattr(default, f.name)!r})",
        }
        if choices:
            kw.update(choices=choices, help=kw["help"][:-1] + f"; one of: {', '.join(choices)})")
        if f.type == "list" and choices:  # --trackers mlflow tensorboard
            kw.update(type=str, nargs="+")
        g.add_argument("--" + f.name.replace("_", "-"), **kw)


def config_from_args(args) -> config_mod.RunConfig:
    cfg = config_mod.load(args.config) if args.config else config_mod.RunConfig()
    overrides = {f"train.{k[4:]}": v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    for flag, (key, _) in SLOTS.items():
        if getattr(args, f"slot_{flag}", None):
            overrides[key] = getattr(args, f"slot_{flag}")
    for flag, (key, _, _) in SHORTCUTS.items():
        v = getattr(args, "short_" + flag.replace("-", "_"), None)
        if v is not None:
            overrides[key] = v
    if "data.path" in overrides and "data.kind" not in overrides and cfg.data.kind != "array":
        overrides["data.kind"] = "array"  # a path means a user's array file, never a silently ignored option
    overrides.update(config_mod.parse_set(args.set or []))
    cfg = config_mod.with_overrides(cfg, overrides) if overrides else cfg
    return _default_likelihood(cfg, args, overrides)


def _default_likelihood(cfg: config_mod.RunConfig, args, overrides: dict) -> config_mod.RunConfig:
    """A data set of pixel intensities gets a Bernoulli decoder when neither the config file nor a flag
    names a likelihood (a unit-variance Gaussian on [0, 1] pixels is a poor default), said in one line."""
    from .data.registry import default_likelihood

    given = any(k == "model.likelihood" or k.startswith("model.likelihood.") for k in overrides)
    if args.config and not given:
        given = "likelihood" in config_mod.read_toml(args.config).get("model", {})
    kind = default_likelihood(cfg.data.kind)
    if given or kind == cfg.model.likelihood.kind:
        return cfg
    if not int(os.environ.get("RANK", "0")):
        print(f"likelihood: {kind} (the default for {cfg.data.kind}'s pixel intensities; --likelihood gaussian to change)")
    return cfg.override({"model.likelihood": kind})


def cmd_train(args) -> int | None:
    from .train import fit

    if args.nproc > 1 or args.nnodes > 1 or args.max_restarts:
        return _torchrun(args)
    if not args.resume and _restarted_into(Path(args.out)):
        args.resume = args.out  # torch's elastic agent restarted the group: continue from last.pt
        if not int(os.environ.get("RANK", "0")):
            print(f"restart {os.environ['TORCHELASTIC_RESTART_COUNT']} of {os.environ.get('TORCHELASTIC_MAX_RESTARTS')}: "
                  f"resuming {args.out} from its last checkpoint", file=sys.stderr)  # fmt: skip
    cfg, run_dir = _run_config(args)
    res = fit(cfg, run_dir, resume=bool(args.resume), quiet=args.quiet)
    if int(os.environ.get("RANK", "0")):  # under torchrun rank 0 speaks for all
        return None
    last = res.history[-1] if res.history else {}
    done = len(res.history)
    if res.stopped_early is not None:
        best = max(res.history, key=lambda r: r["valid_elbo"] if r.get("valid_elbo") is not None else -math.inf)
        print(f"stopped early at epoch {res.stopped_early} of {cfg.train.epochs} (no better validation ELBO for "
              f"{cfg.train.early_stopping} validations; best.pt holds "
              f"epoch {best['epoch']}) in {res.seconds:.1f} s -> {run_dir}")  # fmt: skip
    else:
        print(f"trained {done} epoch{'s' if done != 1 else ''} in {res.seconds:.1f} s -> {run_dir}")
    if last and last.get("valid_elbo") is None:  # no validation split (e.g. Frey faces' default)
        print(f"final train ELBO {last['train_elbo']:.3f} nats per data point (no validation split)")
    elif last:
        error = (
            f"; classifier validation error {100 * last['valid_error']:.2f} %" if last.get("valid_error") is not None else ""
        )
        print(
            f"final train ELBO {last['train_elbo']:.3f}, validation ELBO {last['valid_elbo']:.3f} "
            f"nats per data point (best validation ELBO {res.best_valid_elbo:.3f}){error}"
        )
    for name, entry in res.tracked.items():  # where to find the run in the tracker
        where = entry.get("uri") or entry.get("project") or ""
        print(f"{name} run {entry['run_id']}" + (f" ({where}, experiment {entry['experiment']!r})"
                                                  if "experiment" in entry else f" ({where})" if where else ""))  # fmt: skip
    return None


def _restarted_into(run_dir: Path) -> bool:
    """A worker the elastic agent restarted (``--max-restarts``) whose run directory already holds a run."""
    from .launch import restart_count

    return restart_count() > 0 and (run_dir / "config.toml").is_file()


def _torchrun(args) -> int:
    """``vaelab train --nproc N [--max-restarts R] [--nnodes M --rdzv-endpoint H:P]``: torch's elastic agent
    (torchrun's) in this process, running this command without those options (vaelab.launch)."""
    from .launch import Launch, launch
    from .train import check_run

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise config_mod.ConfigError("--nproc is a shorthand for torchrun; under torchrun already, leave it out")
    if args.nnodes > 1 and not args.rdzv_endpoint:
        raise config_mod.ConfigError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (a machine every node reaches)")
    cfg, run_dir = _run_config(args, say=False)  # rank 0 says what config_from_args says
    with warnings.catch_warnings():  # errors stop here; warnings are rank 0's to say (as the config lines are)
        warnings.simplefilter("ignore", UserWarning)
        check_run(cfg, resume_dir=run_dir if args.resume else None, world=args.nproc * args.nnodes)
    if args.nproc == 1 and args.nnodes == 1:
        print(f"one process under torch's elastic agent, restarted at most {args.max_restarts} time(s) if it dies")
    spec = Launch(args.nproc, args.max_restarts, args.nnodes, args.rdzv_endpoint or "", args.rdzv_id or "", str(run_dir))
    return launch(spec, args.argv)


def _run_config(args, say: bool = True) -> tuple[config_mod.RunConfig, Path]:
    """``vaelab train``'s configuration and run directory (``--resume``: the run's config.toml, then
    the flags). The launcher checks it before any rank starts (``say=False``: its lines are rank 0's)."""
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.toml").is_file():
            raise config_mod.ConfigError(f"--resume {run_dir}: no config.toml there; is it a run directory?")
        args = argparse.Namespace(**{**vars(args), "config": args.config or str(run_dir / "config.toml")})
    else:
        run_dir = Path(args.out)
    with contextlib.nullcontext() if say else contextlib.redirect_stdout(io.StringIO()):
        return config_from_args(args), run_dir


def _load(args):
    from .data import load_data
    from .train import load_run
    from .train.run import check_data_source

    cfg, _, _ = load_run(args.run_dir, args.checkpoint, load_data_too=False)
    check_data_source(Path(args.run_dir))
    if getattr(args, "data_dir", None):
        cfg = cfg.override({"data.data_dir": args.data_dir})
    data = load_data(cfg.data, cfg.model.likelihood.kind)
    return load_run(args.run_dir, args.checkpoint, data=data)


def cmd_evaluate(args) -> None:
    import torch

    from .distributed import Dist
    from .evaluation import evaluate_model, gradient_snr, summary_lines, write_evaluation
    from .labels import label_mode_of

    torch.set_flush_denormal(True)
    cfg, model, data = _load(args)
    x, y = getattr(data, args.split), getattr(data, f"{args.split}_labels")
    if args.limit:
        x, y = x[: args.limit], (y[: args.limit] if y is not None else None)
    y = y if label_mode_of(model).reads_labels else None
    if args.ais or args.bdmc:  # refuse a model AIS cannot anneal before the IS pass, not after
        from .evaluation.ais import check_model

        check_model(model, args.ais_start if args.ais else "prior", y)
    dist = Dist.from_env(next(model.parameters()).device)  # under torchrun: the IS estimate is shared out
    try:
        result = evaluate_model(model, x, k=args.k, iwae_k=args.k_iwae, batch_size=args.batch_size, seed=args.seed,
                                dist=dist, y=y, per_point=args.ais)  # fmt: skip
    finally:
        dist.close()
    if not dist.is_main:
        return
    _annealed(args, model, x, y, result)
    result.update(split=args.split, checkpoint=args.checkpoint, processes=dist.world)
    js, cs = write_evaluation(args.run_dir, args.split, result)
    print(f"{args.split} set, {result['n']} points, checkpoint {args.checkpoint} (nats per data point):")
    print("\n".join(summary_lines(result)))
    print(f"  written to {js} and {cs}")
    if args.snr:
        from .plotting import save_snr_figure

        xb = x[: args.snr_batch]
        rows = [
            r
            for est in ("reparam", "dreg")
            for r in gradient_snr(model, xb, args.snr_ks, "iwae", est, draws=args.snr_draws, seed=args.seed)
        ]
        out = Path(args.run_dir)
        (out / "snr.json").write_text(json.dumps(rows, indent=2))
        save_snr_figure(rows, out / "snr.png", f"gradient SNR vs K on {xb.shape[0]} {args.split} points")
        for r in rows:
            print(
                f"  SNR K={r['k']:>4} {r['estimator']:>7}: inference {r['snr_inference']:.4f}, "
                f"generative {r['snr_generative']:.4f} (floor at zero signal {r['snr_floor']:.4f})"
            )
        print(f"  written to {out / 'snr.json'} and {out / 'snr.png'}")


def cmd_compare(args) -> None:
    from .compare import compare_runs

    table, _ = compare_runs(args.run_dirs, args.split)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        print(f"written to {args.out}")


def cmd_sample(args) -> None:
    import numpy as np
    import torch

    from .plotting import save_samples_figure

    args.data_dir = None
    from .train import load_run

    cfg, model, _ = load_run(args.run_dir, args.checkpoint, load_data_too=False)
    torch.manual_seed(args.seed)
    if model.autoregressive:
        print_sentences(model, args)
        return
    y = sample_labels(model, args.label, args.n)
    x = model.sample(args.n, mean=not args.noise, **({"y": y} if y is not None else {}))
    # samples_label3.png for --label 3: `vaelab plot RUN` rewrites samples.png, never a labelled draw
    out = Path(args.out or Path(args.run_dir) / ("samples.png" if args.label is None else f"samples_label{args.label}.png"))
    np.save(out.with_suffix(".npy"), x.numpy())
    given = f", class {args.label}" if args.label is not None else ""
    save_samples_figure(x, out, f"{args.n} samples ({'x ~ p(x|z)' if args.noise else 'E[x|z]'}, z ~ p(z){given})")
    print(f"wrote {out} and {out.with_suffix('.npy')}")


def _annealed(args, model, x, y, result: dict) -> None:
    """--ais: AIS beside IS in the same result (IS - AIS paired); --bdmc: BDMC's bounds on simulated data."""
    from .evaluation import ais_log_likelihood, bdmc, with_ais, with_bdmc

    common = {"steps": args.ais_steps, "chains": args.ais_chains, "seed": args.seed}
    if args.ais:
        ais = ais_log_likelihood(model, x, start=args.ais_start, batch_size=args.batch_size, y=y, **common)
        with_ais(result, ais, result.pop("per_point_log_px"))
        result.pop("per_point_elbo", None)
    if args.bdmc:
        with_bdmc(result, bdmc(model, n=args.bdmc_points, **common))


def sample_labels(model, label: int | None, n: int):
    """(n,) copies of ``label`` for a labelled model; None for an unlabelled one (then --label is an error)."""
    import torch

    from .labels import labelled_modes

    c = getattr(model, "n_classes", 0)
    if label is None:
        return None
    if not c:
        raise ConfigError(f"--label applies to a labelled model (model.labels = {' or '.join(map(repr, labelled_modes()))})")
    if not 0 <= label < c:
        raise ConfigError(f"--label must be a class in 0..{c - 1}, got {label}")
    return torch.full((n,), label, dtype=torch.long)


def print_sentences(model, args) -> None:
    """A text model: n sentences decoded from z ~ p(z), one per line."""
    import torch

    from .data.text import Vocabulary
    from .text import sample_prior

    if "vocab" not in (model.spec or {}):
        raise ConfigError(f"{args.run_dir}: the checkpoint holds no vocabulary; retrain with this vaelab")
    if args.noise:
        raise ConfigError("--noise is for images; for text choose --method sample")
    vocab = Vocabulary(tuple(model.spec["vocab"]))
    gen = torch.Generator().manual_seed(args.seed)
    for ids in sample_prior(model, args.n, args.method, generator=gen, max_length=args.max_length):
        print(vocab.decode(ids) or "(empty sentence: <eos> first)")


def cmd_plot(args) -> None:
    import torch

    from .labels import label_mode_of
    from .plotting import save_class_grid, save_latent_scatter, save_samples_figure, save_training_curves

    run = Path(args.run_dir)
    made = []
    if (run / "metrics.csv").is_file():
        save_training_curves(run / "metrics.csv", run / "curves.png", f"training curves: {run.name}")
        made.append("curves.png")
    cfg, model, data = _load(args)
    torch.manual_seed(0)
    if getattr(model, "n_classes", 0) and not model.autoregressive:
        save_class_grid(model, run / "classes.png", f"E[x|z, y]: one row per class y, z ~ p(z) ({run.name})")
        made.append("classes.png")
    if not model.autoregressive:  # sentences are printed by `vaelab sample`, not drawn
        save_samples_figure(
            model.sample(64),
            run / "samples.png",
            "64 generations E[x|z], z ~ p(z)",
            reference=data.test if data.x_shape == (2,) else None,
        )
        made.append("samples.png")
    if model.z_dim >= 2:
        labels = data.test_labels[:5000] if data.test_labels is not None else None
        y = label_mode_of(model).condition(labels)
        cond = {} if y is None else {"y": y}
        mean = model.posterior_means(data.test[:5000], **cond)[0]
        save_latent_scatter(mean.detach(), labels, run / "latent.png", "test-set latent means (first 2 dims)")
        made.append("latent.png")
    print(f"wrote {', '.join(made)} in {run}")


def cmd_reproduce(args) -> None:
    from .experiments import get_study

    study = get_study(args.experiment)
    out = args.out or f"results/{args.experiment}"
    options = {k: getattr(args, k) for k in study.options if getattr(args, k, None) is not None}
    for flag, default in STUDY_FLAGS.items():
        if flag not in study.options and getattr(args, flag) != default:
            raise ConfigError(f"--{flag.replace('_', '-')} does not apply to {args.experiment}; leave it out")
    if args.quick and args.budget is not None:
        raise ConfigError(
            f"--quick runs {args.experiment}'s smoke-test budget, not --budget {args.budget}: drop one of them"
        )
    budget = args.budget if study.budgets or args.budget not in (None, "small") else None
    resolved = budget or (study.default_budget if study.budgets and not args.quick else None)
    shown = [*([f"--budget {resolved}"] if resolved else []), *(f"--{k.replace('_', '-')} {v}" for k, v in options.items())]
    command = " ".join(["vaelab reproduce", args.experiment, *shown, *(["--quick"] if args.quick else []), f"--out {out}"])
    study.run(out, quick=args.quick, data_dir=args.data_dir, budget=budget, command=command, **options)


#: `vaelab reproduce` flags that are a study's own option (Study.options), with their defaults here
STUDY_FLAGS = {"budget_minutes": 30.0}


def cmd_sweep(args) -> None:
    from .sweep import Sweep, first_values, read_space, run_sweep, storage
    from .sweep_report import write_report

    base = config_from_args(args)
    out = Path(args.out)
    space = read_space(args.space, base)
    if args.trials:  # the base config with the space's first values, built and stepped before anything is written
        from .train import check_run

        check_run(base.override(first_values(space)))
    if args.storage:  # a database server reached (or refused in one line) before --out exists
        storage(args.storage).engine.dispose()  # (its pooled connection closed now: the study opens its own)
    sweep = Sweep(
        base=base.to_dict(), space=space, out=str(out),
        storage=args.storage or f"sqlite:///{(out / 'optuna.db').resolve()}", study=args.study or out.name,
        metric=args.metric, pruner=args.pruner, seed=args.sampler_seed,
    )  # fmt: skip
    study = run_sweep(sweep, args.trials, args.workers)
    report = write_report(study, out, args.metric, args.compare_best, args.k)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None  # Optuna's best is over completed trials; all pruned: none
    if best is not None:
        where = best.user_attrs["run_dir"]
        print(f"best trial {best.number}: {args.metric} {best.value:.3f} nats with {best.params} -> {where}")
    print(f"{len(trials)} trials in {sweep.storage} (study {sweep.study!r}); table and plots in {report}")
    failed = [t for t in trials if t.state.name == "FAIL"]
    if trials and len(failed) == len(trials):
        why = failed[0].user_attrs.get("error", "see sweep.md")
        raise config_mod.ConfigError(f"every one of the {len(trials)} trials failed; trial {failed[0].number}: {why}")


def cmd_download(args) -> None:
    from .data.registry import DOWNLOADS

    got = DOWNLOADS[args.dataset](args.data_dir)
    print(f"downloaded and verified {got}")


def _run_args(sp) -> None:
    sp.add_argument("run_dir", help="a run directory written by `vaelab train`")
    sp.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint (default best)")


def _train_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a VAE",
        epilog=registry_help() + "\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a VAE from a TOML config and/or flags; writes config.toml, metrics.csv, "
        "metrics.jsonl, tb/ (TensorBoard), last.pt and best.pt to the run directory.",
    )
    t.add_argument("--config", help="TOML config file with [data], [model], [train] tables (docs/design.md, Config)")
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.latent.dim=4 (repeatable; value parsed as TOML)",
    )
    t.add_argument("--out", default="runs/latest", help="run directory to create (default: runs/latest)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from last.pt (raise --epochs to train longer)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--nproc",
        type=POSITIVE,
        default=1,
        help="train with N processes (data-parallel, torch.distributed): shorthand for "
        "torchrun --standalone --nproc-per-node N -m vaelab train ...",
    )
    t.add_argument(
        "--max-restarts",
        type=integer(0, "0 = no restarts"),
        default=0,
        help="with --nproc: when a process dies, restart the group up to R times; it resumes from last.pt "
        "(set train.checkpoint_every_steps to lose fewer steps)",
    )
    t.add_argument("--nnodes", type=POSITIVE, default=1, help="machines in a multi-machine run (torchrun --nnodes)")
    t.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="with --nnodes: the c10d rendezvous every machine reaches")
    t.add_argument("--rdzv-id", metavar="ID", help="with --nnodes: a job id shared by every machine's command")
    add_config_flags(t)
    t.set_defaults(func=cmd_train)


def _evaluate_parser(sub) -> None:
    e = sub.add_parser(
        "evaluate",
        help="IS log-likelihood, IWAE-64, ELBO, gaps and active units of a trained run",
        epilog=EPILOG,
        description="Writes evaluation_SPLIT.json and .csv into the run directory.",
    )
    _run_args(e)
    e.add_argument("--k", type=POSITIVE, default=5000, help="importance samples per data point (default 5000)")
    e.add_argument("--k-iwae", type=POSITIVE, default=64, help="also report the IWAE-k bound for this k (default 64)")
    e.add_argument("--snr", action="store_true", help="also measure the gradient SNR vs K (snr.json, snr.png)")
    e.add_argument("--snr-ks", type=POSITIVE, nargs="+", default=[1, 4, 16, 64, 256], help="K values for --snr")
    e.add_argument("--snr-batch", type=POSITIVE, default=32, help="data points in the --snr mini-batch")
    e.add_argument(
        "--snr-draws",
        type=integer(2, "a variance needs two draws"),
        default=256,
        help="gradient draws R per K for --snr; SNRs near sqrt(2/(pi R)) are indistinguishable from 0",
    )
    e.add_argument("--ais", action="store_true", help="also estimate log p(x) by annealed importance sampling (AIS)")
    e.add_argument("--ais-steps", type=POSITIVE, default=500, help="AIS / BDMC annealing steps T (default 500)")
    e.add_argument("--ais-chains", type=POSITIVE, default=16, help="AIS / BDMC chains per point C (default 16)")
    e.add_argument("--ais-start", default="prior", choices=("prior", "encoder"), help="AIS's start density")
    e.add_argument("--bdmc", action="store_true", help="also bound AIS's error by BDMC on simulated data")
    e.add_argument("--bdmc-points", type=POSITIVE, default=100, help="points simulated for --bdmc (default 100)")
    e.add_argument("--split", default="test", choices=("test", "valid", "train"), help="data split (default test)")
    e.add_argument("--batch-size", type=POSITIVE, default=100, help="data points per pass (memory ~ K x batch)")
    e.add_argument("--limit", type=integer(0, "0 = all"), default=0, help="evaluate only the first N points (0 = all)")
    e.add_argument("--seed", type=SEED, default=0, help="seed of the importance sampler")
    e.add_argument("--data-dir", help="override the data folder recorded in the run")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_evaluate)


def _sweep_parser(sub) -> None:
    w = sub.add_parser(
        "sweep",
        help="hyperparameter search with Optuna (TPE, median pruning) over any config key",
        epilog=EPILOG,
        description="Trains one run directory per trial under --out and writes sweep.md with Optuna's plots; "
        "workers on several machines share a study through one --storage URL "
        "(docs/tracking.md, section 'Hyperparameter sweeps').",
    )
    w.add_argument("--config", help="the base TOML config every trial starts from")
    w.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config key (repeatable)")
    w.add_argument("--space", required=True, help='search space TOML: one table per config key, e.g. ["train.lr"]')
    w.add_argument(
        "--trials", type=integer(0, "0 = only write the report"), default=20,
        help="trials this command adds to the study, over its --workers (default 20; 0 = only the report)",
    )  # fmt: skip
    w.add_argument("--workers", type=POSITIVE, default=1, help="local worker processes sharing the study (default 1)")
    w.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/optuna.db; PostgreSQL / MySQL for clusters)")
    w.add_argument("--study", help="study name (default: the name of --out); an existing study is continued")
    w.add_argument("--out", default="sweeps/latest", help="folder of the trials' run directories (default sweeps/latest)")
    w.add_argument(
        "--metric", default="valid_elbo", choices=("valid_elbo", "valid_iwae"), help="maximized (default valid_elbo)"
    )
    w.add_argument("--pruner", default="median", choices=("median", "none"), help="stop weak trials early (default median)")
    w.add_argument("--sampler-seed", type=SEED, help="seed of the TPE sampler (default: unseeded)")
    w.add_argument("--compare-best", type=integer(0, "0 = none"), default=3, help="evaluate the N best trials (default 3)")
    w.add_argument("--k", type=POSITIVE, default=1000, help="importance samples for --compare-best (default 1000)")
    w.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(w)
    w.set_defaults(func=cmd_sweep)


def _sample_parser(sub) -> None:
    s = sub.add_parser("sample", help="generate from a trained model", epilog=EPILOG)
    _run_args(s)
    s.add_argument("-n", type=POSITIVE, default=64, help="number of samples (default 64)")
    s.add_argument("--noise", action="store_true", help="sample x ~ p(x|z) instead of the decoder mean")
    s.add_argument("--seed", type=SEED, default=0, help="sampling seed")
    s.add_argument(
        "--label",
        type=integer(0, "classes count from 0"),
        help="labelled models: generate this class (default: classes drawn uniformly)",
    )
    s.add_argument(
        "--out", help="PNG path (default RUN_DIR/samples.png, samples_labelL.png with --label L; the .npy goes beside it)"
    )
    s.add_argument(
        "--method",
        choices=("greedy", "sample", "beam"),
        default="greedy",
        help="text models: decoding of each z ~ p(z) (default greedy); sentences go to stdout",
    )
    s.add_argument("--max-length", type=POSITIVE, default=50, help="text models: words per sentence at most")
    s.set_defaults(func=cmd_sample)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vaelab", description="Variational autoencoders and variational inference.", epilog=EPILOG
    )
    from ._version import __version__

    p.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _evaluate_parser(sub)
    c = sub.add_parser("compare", help="side-by-side markdown table of evaluated runs", epilog=EPILOG)
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories evaluated by `vaelab evaluate`")
    c.add_argument("--split", default="test", choices=("test", "valid", "train"), help="which evaluation (default test)")
    c.add_argument("--out", help="also write the table to this markdown file")
    c.set_defaults(func=cmd_compare)

    _sample_parser(sub)

    pl = sub.add_parser("plot", help="training curves, samples and latent map of a run", epilog=EPILOG)
    _run_args(pl)
    pl.add_argument("--data-dir", help="override the data folder recorded in the run")
    pl.set_defaults(func=cmd_plot)

    from .experiments import EXPERIMENTS

    r = sub.add_parser("reproduce", help="run a study from the source material end to end", epilog=EPILOG)
    r.add_argument("experiment", choices=EXPERIMENTS, help="which study")  # (found when parsed: see StudyNames)
    r.add_argument("--out", help="output folder (default results/EXPERIMENT)")
    r.add_argument("--quick", action="store_true", help="tiny settings for smoke tests (numbers not meaningful)")
    r.add_argument("--data-dir", help="MNIST studies: folder with mnist.pkl.gz (default $VAELAB_DATA)")
    r.add_argument(
        "--budget",
        default=None,
        help="how much of the paper's protocol to run: a budget the study defines (small: < 30 min on 2 CPU cores; "
        "medium; paper: the paper's protocol; more where a study has them: its report and docs/how-close.md name "
        "them, and an unknown one is an error listing the study's); default small",
    )
    r.add_argument(
        "--budget-minutes",
        type=positive_float,
        default=STUDY_FLAGS["budget_minutes"],
        help="a study that plans its epochs to a time budget: minutes on a 2-core CPU (default 30)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars (the study's log lines stay)")
    r.set_defaults(func=cmd_reproduce)

    _sweep_parser(sub)
    d = sub.add_parser("download", help="fetch a data set with checksum verification")
    from .data.registry import DOWNLOADS

    d.add_argument("dataset", choices=DOWNLOADS.names())
    d.add_argument("--data-dir", required=True, help="folder to put the file in")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_download)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with quiet(getattr(args, "quiet", False)), one_line_warnings():
            rc = args.func(args)
    except TrainingInterrupted as e:
        if not int(os.environ.get("RANK", "0")):  # under torchrun rank 0 speaks for all
            print(f"stopped: {e}", file=sys.stderr)
        return EXIT_STOPPED
    except VaelabError as e:  # (a lost rank that the elastic agent restarts is news, not an error)
        print(f"{'restarting' if getattr(e, 'restarting', False) else 'error'}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _aborted()
    except Exception as e:
        if _caused_by_interrupt(e):  # C++ code (torch.save's zip writer) masks the interrupt with its own error
            return _aborted()
        raise
    return int(rc) if rc else 0


@contextlib.contextmanager
def one_line_warnings():
    """vaelab's warnings (UserWarning and its subclasses) formatted as one ``warning: ...`` line, without the
    source path and code line Python adds (on torchrun's rank 0 only); every other category as Python formats
    it. (The format, not the display: a caller recording warnings, ``pytest.warns`` for one, still records them.)"""
    before = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        if issubclass(category, UserWarning):  # under torchrun only rank 0 says it: every rank warns alike
            return f"warning: {message}\n" if os.environ.get("RANK", "0") == "0" else ""
        return before(message, category, filename, lineno, line)

    warnings.formatwarning = fmt
    try:
        yield
    finally:
        warnings.formatwarning = before


def _aborted() -> int:
    print("aborted; last.pt holds the last checkpoint written (resume with --resume)", file=sys.stderr)
    return EXIT_ABORTED


def _caused_by_interrupt(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, KeyboardInterrupt):
            return True
        e = e.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
