"""The study registry and the one driver of `vaelab reproduce`.

A study is one module that declares a :class:`Study` (its budgets, its quick budget, the options it
takes) around a body that trains, evaluates and writes its figures, and returns a
:class:`StudyResult` (the results and the report's text). The driver owns everything around the body:
the budget lookup (an unknown one is an error naming the defined ones), the output folder (``runs/``
cleared first where the study says a reproduction starts from scratch), timing, results.json /
results.csv and report.md, the closing log line, and the provenance stamp. cli.py names no study.
"""

from __future__ import annotations

import csv
import importlib
import json
import pkgutil
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .provenance import stamped_run


@dataclass
class StudyRun:
    """What the driver hands a study's body."""

    name: str
    out: Path  # the study's folder (exists); run directories go to out / "runs"
    budget: Any  # the selected budget (the study's own type), or its quick budget
    quick: bool
    data_dir: str | None
    log: Callable[[str], None]
    options: dict = field(default_factory=dict)  # the study's own options (Study.options)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def runs(self) -> Path:
        return self.out / "runs"


@dataclass
class StudyResult:
    """A body's outcome: ``payload`` becomes results.json (and results.csv, one row per entry of
    ``payload["models"]``, where there is one); ``report`` becomes report.md (None: the body wrote it);
    ``show`` logs the report's text too (the short reports)."""

    payload: dict
    report: str | None = None
    show: bool = False


@dataclass(frozen=True)
class Study:
    """A `vaelab reproduce` study.

    Args:
        name: what it is run by (``vaelab reproduce NAME``).
        body: ``body(StudyRun) -> StudyResult``.
        budgets: name -> budget; empty for a study with one protocol (then ``--budget`` is refused).
        protocol: the budget of a study with one protocol.
        quick: the ``--quick`` budget, or a function of the selected budget giving it.
        default_budget: the budget run when none is named.
        options: the study's own keyword options (``vaelab reproduce`` flags), with their defaults.
        fresh_runs: clear ``out/runs`` before the body runs (a reproduction starts from scratch).
        json_default: ``json.dumps``'s ``default`` for a payload holding other objects (e.g. ``str``).
    """

    name: str
    body: Callable[[StudyRun], StudyResult]
    budgets: Mapping[str, Any] = field(default_factory=dict)
    protocol: Any = None
    quick: Any = None
    default_budget: str = "small"
    options: Mapping[str, Any] = field(default_factory=dict)
    fresh_runs: bool = False
    json_default: Callable | None = None

    def budget(self, name: str | None, quick: bool) -> Any:
        """The budget to run: ``name``'s (default :attr:`default_budget`), or the quick one.

        Raises:
            ConfigError: a budget this study does not define, or any budget for a one-protocol study.
        """
        if not self.budgets:
            if name not in (None, self.default_budget):
                raise ConfigError(f"--budget {name}: {self.name} has no budgets (it has one protocol); leave --budget out")
            chosen = self.protocol
        elif (name or self.default_budget) not in self.budgets:
            raise ConfigError(f"--budget {name} is not defined for {self.name}; choose from {', '.join(self.budgets)}")
        else:
            chosen = self.budgets[name or self.default_budget]
        if not quick:
            return chosen
        return self.quick(chosen) if callable(self.quick) else self.quick

    def run(self, out_dir: str | Path | None = None, quick: bool = False, data_dir: str | None = None,
            budget: str | None = None, log=print, command: str | None = None, **options) -> dict:  # fmt: skip
        """Run the study into ``out_dir`` (default results/NAME); returns the payload of results.json.

        ``command`` (the `vaelab reproduce` line that ran it) stamps the report with its provenance.

        Raises:
            ConfigError: an unknown budget or option.
        """
        unknown = set(options) - set(self.options)
        if unknown:
            raise ConfigError(f"{self.name} takes no option {', '.join(sorted(unknown))}; its options: "
                              f"{', '.join(self.options) or 'none'}")  # fmt: skip
        b = self.budget(budget, quick)
        out = Path(out_dir or f"results/{self.name}")
        go = lambda: _drive(self, StudyRun(self.name, out, b, quick, data_dir, log, {**self.options, **options}))  # noqa: E731
        if command is None:
            return go()
        stamped = {"quick": quick, **({"budget": budget or self.default_budget} if self.budgets else {}), **options}
        return stamped_run(go, out, command, stamped)


def _drive(study: Study, ctx: StudyRun) -> dict:
    if study.fresh_runs:
        shutil.rmtree(ctx.runs, ignore_errors=True)
    ctx.out.mkdir(parents=True, exist_ok=True)
    ctx.t0 = time.perf_counter()
    result = study.body(ctx)
    write_results(ctx.out, result.payload, study.json_default)
    if result.report is not None:
        (ctx.out / "report.md").write_text(result.report)
        if result.show:
            ctx.log(result.report)
    ctx.log(f"{study.name}: done in {time.perf_counter() - ctx.t0:.0f} s; report in {ctx.out / 'report.md'}")
    return result.payload


_STUDIES: dict[str, Study] = {}


def register_study(study: Study) -> Study:
    """Add ``study`` to the registry (at its module's import); returns it.

    Raises:
        ValueError: a second study of the same name.
    """
    if study.name in _STUDIES:
        raise ValueError(f"study {study.name!r} is registered twice")
    _STUDIES[study.name] = study
    return study


def studies() -> dict[str, Study]:
    """Every registered study by name (imports the study modules on first use)."""
    from .. import experiments

    for m in pkgutil.iter_modules(experiments.__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{experiments.__name__}.{m.name}")
    return dict(sorted(_STUDIES.items()))


def get_study(name: str) -> Study:
    """The study registered as ``name``.

    Raises:
        ConfigError: no such study (naming the registered ones).
    """
    found = studies()
    if name not in found:
        raise ConfigError(f"unknown study {name!r}; choose one of: {', '.join(found)}")
    return found[name]


class StudyNames:
    """The registered study names, found only when asked (membership, iteration): the CLI's choices,
    so that building the parser imports no study (their plotting and reference libraries take ~1 s)."""

    def __contains__(self, name: object) -> bool:
        return name in studies()

    def __iter__(self) -> Iterator[str]:
        return iter(studies())

    def __len__(self) -> int:
        return len(studies())


def write_results(out: Path, payload: dict, default=None) -> None:
    """results.json and, where the payload has ``models``, results.csv (one row per model) in ``out``."""
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=default))
    if not payload.get("models"):
        return
    rows = list(payload["models"].values())
    keys = [k for k in rows[0] if not isinstance(rows[0][k], (list, dict))]
    with open(out / "results.csv", "w", newline="") as f:  # the csv module quotes labels with commas ("MNIST, VAE")
        w = csv.DictWriter(f, keys, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
