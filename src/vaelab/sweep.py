"""`vaelab sweep`: hyperparameter search with Optuna over any config key.

The search space is a TOML file with one quoted table per config key::

    ["train.lr"]
    distribution = "log-uniform"   # uniform | log-uniform | int | categorical
    low = 1e-4
    high = 1e-2
    ["model.latent.dim"]
    distribution = "int"
    low = 2
    high = 32
    ["train.objective"]
    distribution = "categorical"
    choices = ["elbo", "iwae"]

Every trial is a normal run directory (``OUT/trial-0007``: config.toml, metrics, checkpoints), trained
from the base config with the trial's values; its value is the best validation metric (``valid_elbo``
by default, maximized). TPE samples (Bergstra et al. 2011, Optuna's default); the median pruner stops a
trial whose validation metric, reported every epoch through the callback seam, falls below the median of
earlier trials at the same epoch. Workers share the study through Optuna's storage: several processes on
one machine through SQLite (``--workers``), several machines through one PostgreSQL / MySQL URL, each
machine running the same command (docs/tracking.md, "Hyperparameter sweeps").
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as config_mod
from .errors import ConfigError, VaelabError
from .workers import worker_pool

DISTRIBUTIONS = ("uniform", "log-uniform", "int", "categorical")


@dataclass(frozen=True)
class Sweep:
    """What one worker needs (picklable, for spawned processes)."""

    base: dict  # the base config, as a nested dict
    space: dict  # config key -> its table from the space file
    out: str
    storage: str
    study: str
    metric: str = "valid_elbo"
    pruner: str = "median"
    seed: int | None = None


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("vaelab sweep needs optuna: pip install 'vaelab[sweep]'") from None
    return optuna


def read_space(path: str | Path, base: config_mod.RunConfig) -> dict:
    """Read and check a search space against the base config: every key must be a config key that
    accepts the space's values (its bounds and every choice are tried).

    Raises:
        ConfigError: a missing file, bad TOML, an unknown distribution or key, bad bounds, or a value
            the config rejects, naming the key.
    """
    if not Path(path).is_file():
        raise ConfigError(f"search space file not found: {path}")
    space = config_mod.read_toml(path)
    if not space:
        raise ConfigError(f'{path}: the search space is empty; add a table per config key, e.g. ["train.lr"]')
    for key, spec in space.items():
        if not isinstance(spec, dict) or spec.get("distribution") not in DISTRIBUTIONS:
            raise ConfigError(f'search space ["{key}"]: set distribution to one of {", ".join(DISTRIBUTIONS)}')
        values = _corners(key, spec)
        for v in values:
            try:
                base.override({key: v})
            except ConfigError as e:
                if "unknown" in str(e) and repr(key) in str(e):  # the key itself, not the value (did-you-mean kept)
                    raise ConfigError(f'search space ["{key}"]: {e}') from None
                raise ConfigError(f'search space ["{key}"]: the value {v!r} is not valid here ({e})') from None
    return space


#: the keys each distribution reads (any other key in a space table is an error, not ignored)
SPEC_KEYS = {"uniform": {"low", "high"}, "log-uniform": {"low", "high"}, "int": {"low", "high", "step"},
             "categorical": {"choices"}}  # fmt: skip


def _corners(key: str, spec: dict) -> list:
    extra = set(spec) - {"distribution"} - SPEC_KEYS[spec["distribution"]]
    if extra:
        raise ConfigError(
            f'search space ["{key}"]: {", ".join(sorted(extra))} has no effect with distribution = '
            f'"{spec["distribution"]}" (it reads {", ".join(sorted(SPEC_KEYS[spec["distribution"]]))})'
        )
    if spec["distribution"] == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f'search space ["{key}"]: a categorical needs a non-empty list "choices"')
        return choices
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f'search space ["{key}"]: needs numbers low <= high, got {low!r}, {high!r}')
    low, high = float(low), float(high)  # type: ignore[arg-type]
    if not low <= high:
        raise ConfigError(f'search space ["{key}"]: needs numbers low <= high, got {low!r}, {high!r}')
    if spec["distribution"] == "log-uniform" and low <= 0:
        raise ConfigError(f'search space ["{key}"]: a log-uniform range needs low > 0, got {low}')
    if spec["distribution"] == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f'search space ["{key}"]: an int range needs whole numbers, got {low}, {high}')
    return [int(low), int(high)] if spec["distribution"] == "int" else [low, high]


def first_values(space: dict) -> dict[str, Any]:
    """Each key's first value (its low bound or first choice): a trial that can be checked before any runs."""
    return {k: _corners(k, spec)[0] for k, spec in space.items()}


def suggest(trial, space: dict) -> dict[str, Any]:
    """The trial's value for every key of the space."""
    out: dict[str, Any] = {}
    for key, spec in space.items():
        d = spec["distribution"]
        if d == "categorical":
            out[key] = trial.suggest_categorical(key, spec["choices"])
        elif d == "int":
            out[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)))
        else:
            out[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=d == "log-uniform")
    return out


class PruneOnValidation:
    """End-of-epoch callback: report the validation metric to the trial; stop when the pruner says so."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric

    def __call__(self, loop, row: dict) -> None:
        v = row.get(self.metric)
        if v is None or not math.isfinite(v):
            return
        self.trial.report(v, row["epoch"])
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"{self.metric} {v:.3f} at epoch {row['epoch']} below the median")


def _objective(sweep: Sweep):
    from .train import fit

    base = config_mod.from_dict(sweep.base)

    def objective(trial) -> float:
        values = suggest(trial, sweep.space)
        cfg = base.override(values)
        run_dir = Path(sweep.out) / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            res = fit(cfg, run_dir, quiet=True, tensorboard=False, callbacks=[PruneOnValidation(trial, sweep.metric)])
            seen = [r[sweep.metric] for r in res.history if r.get(sweep.metric) is not None]
            if not seen:
                raise ConfigError(f"the trial logged no {sweep.metric}: is there a validation split (train.valid_every)?")
        except VaelabError as e:  # the trial fails with its reason, said in one line (Optuna's own log is off)
            trial.set_user_attr("error", str(e))
            print(f"trial {trial.number} failed: {e}", file=sys.stderr, flush=True)
            return math.nan  # Optuna marks a NaN value FAIL
        return max(seen)

    return objective


def study_of(sweep: Sweep, worker: int = 0):
    """The shared study; a seeded sampler gets seed + worker, so workers do not propose the same values."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its INFO per trial and its failed-trial warnings: ours instead
    sampler = optuna.samplers.TPESampler(seed=None if sweep.seed is None else sweep.seed + worker)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if sweep.pruner == "median" else None
    return optuna.create_study(
        study_name=sweep.study, storage=storage(sweep.storage), sampler=sampler,
        pruner=pruner or optuna.pruners.NopPruner(), direction="maximize", load_if_exists=True,
    )  # fmt: skip


#: seconds a database server has to accept the connection (a wrong host is one line, not a long hang)
CONNECT_TIMEOUT_S = 5
#: opening a new database: workers that start together race to create Optuna's tables (the loser's
#: CREATE fails on a duplicate key); it opens again, finding them made
TABLE_RACE_ATTEMPTS = 5


def storage_url(url: str) -> str:
    """``postgresql://...`` with the psycopg (3) driver when psycopg2 is not installed (SQLAlchemy's
    default for that scheme); any other URL as given."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        if importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def storage(url: str):
    """Optuna's storage for ``url``: a database server with a connect timeout of
    :data:`CONNECT_TIMEOUT_S`; SQLite as Optuna opens it.

    Raises:
        ConfigError: the server cannot be reached or the driver is missing, in one line.
    """
    optuna = _optuna()
    url = storage_url(url)
    kwargs = {}
    if url.startswith(("postgresql", "mysql")):
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    for attempt in range(1, TABLE_RACE_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy / the driver raise many types; one line says which
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if attempt < TABLE_RACE_ATTEMPTS and any(w in first for w in ("duplicate key", "already exists")):
                # two machines starting together both create Optuna's tables; the loser finds them made
                time.sleep(0.5 * attempt)
                continue
            hint = " (pip install 'vaelab[postgresql]')" if isinstance(e, ModuleNotFoundError) else ""
            raise ConfigError(f"--storage {url}: cannot open the study's storage ({first}){hint}") from None
    raise AssertionError("unreachable")


def work(args: tuple[Sweep, int, int]) -> int:
    """Worker ``i``: ``n`` trials of the shared study. Returns how many it ran."""
    sweep, n, i = args
    study = study_of(sweep, i)
    before = len(study.get_trials(deepcopy=False))
    study.optimize(_objective(sweep), n_trials=n, gc_after_trial=False)
    return len(study.get_trials(deepcopy=False)) - before


def run_sweep(sweep: Sweep, trials: int, workers: int = 1) -> Any:
    """``trials`` trials split over ``workers`` local processes (each its exact share, so no trial
    is lost or run twice); returns the Optuna study."""
    Path(sweep.out).mkdir(parents=True, exist_ok=True)
    study_of(sweep)  # create it (and SQLite's tables) once, before the workers race to
    shares = [trials // workers + (i < trials % workers) for i in range(workers)]
    jobs = [(sweep, n, i) for i, n in enumerate(shares) if n]
    if len(jobs) == 1:
        work(jobs[0])
    elif jobs:
        with worker_pool(len(jobs)) as pool:
            pool.map(work, jobs)
    return study_of(sweep)
