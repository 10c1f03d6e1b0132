"""A combinatorial configuration fuzzer (issue 43): random run configurations drawn from the registries'
signatures and the config schema, each run through ``vaelab train`` (in this process) and checked
against the contract:

- exit 0: the run trained, and ``vaelab evaluate`` on it exits 0;
- exit 2: exactly one ``error: ...`` line and nothing on disk (no run directory);
- anything else (a traceback, another exit status, a half-written folder) is a finding.

Every axis is drawn: the data set (two-gaussians, digits, a tiny text corpus), each component slot
(encoder, decoder, classifier, latent family, prior, likelihood, objective, estimator) with its kind
and a random subset of its options, and the scalar keys of [model], [train] and [data]. Each value is
valid (the default, a nearby value, a choice), at a boundary (0, -1, empty, extreme) or invalid (the
wrong type, NaN, an unknown name), so combinations across axes are exercised as well as single keys.

``python tests/config_fuzz.py N [SEED [WORKERS]]`` runs N configurations (over 2 worker processes by
default) and prints a summary (``VAELAB_FUZZ_N`` sets N for ``tests/test_config_fuzz.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, TrainConfig, fields
from vaelab.distributions import LATENTS, LIKELIHOODS, PRIORS
from vaelab.estimators import ESTIMATORS
from vaelab.labels import LABEL_MODES
from vaelab.models.kinds import MODEL_KINDS
from vaelab.nets import NETWORKS
from vaelab.objectives import OBJECTIVES

SLOTS = {
    "model.encoder": NETWORKS,
    "model.decoder": NETWORKS,
    "model.classifier": NETWORKS,
    "model.latent": LATENTS,
    "model.prior": PRIORS,
    "model.likelihood": LIKELIHOODS,
    "train.objective": OBJECTIVES,
    "train.estimator": ESTIMATORS,
}
#: slots left at their default most of the time (a decoder / classifier is optional)
OPTIONAL = {"model.decoder": 0.2, "model.classifier": 0.2}
#: keys the fuzzer fixes or leaves alone, and why
FIXED = {
    "train.epochs": "one epoch (0 / -1 drawn separately)",
    "train.compile": "torch.compile costs ~20 s a configuration; tested on its own (tests/test_precision.py)",
    "train.trackers": "mlflow / wandb reach outside the sandbox; tensorboard stays on",
    "train.tracking_uri": "see train.trackers",
    "train.experiment": "see train.trackers",
    "train.device": "no GPU in CI; the CUDA path has its own tests",
    "train.num_threads": "one thread, so that runs do not compete",
    "train.malloc": "process-wide allocator tuning",
    "train.dist_timeout": "one process",
    "data.data_dir": "no files are downloaded",
    "data.options": "drawn per data set below",
    "data.kind": "drawn from DATA below",
}
DATA = {
    "two-gaussians": {"n_train": [200, 50, 0, -5, "x"], "n_test": [100, 1], "valid_fraction": [0.1, 0.0, 1.0, -0.1]},
    "digits": {"valid_fraction": [0.1, 0.0, 0.99], "test_fraction": [0.2, 0.5, 1.5]},
    "text": {"max_vocab": [0, 20, -1], "max_length": [0, 8, 1], "valid_fraction": [0.2], "test_fraction": [0.2]},
}
#: what a run that diverged in training says (not knowable before it trains: a legitimate outcome)
DIVERGED = re.compile(r"^error: (the training bound|validation ELBO) is (nan|inf|-inf).*; stopped", re.M)
LIMIT_BYTES = 8 * 2**30  # the fuzzing process's address space (resource.RLIMIT_AS)
RATE = 0.05  # the share of keys set in a draw (the rest keep their defaults)
TEXT = "the cat sat on the mat\na dog ran in the park\nthe sun is hot today\nwe read a good book\n" * 12


def _scalar_values(default, choices, rng: random.Random, bad: bool = False) -> object:
    """A valid value for a key with this default, or (``bad``) one at a boundary or of the wrong type."""
    if choices:
        if not bad:
            return list(choices) if isinstance(default, list) and rng.random() < 0.3 else rng.choice(choices)
        return rng.choice(["bogus", "", 3])
    if isinstance(default, bool):
        return rng.choice([True, False]) if not bad else rng.choice([2, "yes"])
    if isinstance(default, int):
        if not bad:
            return rng.choice([default, 1, 2, 3])
        return rng.choice([0, -1, 10**9, 1.5, "x", [1]])
    if isinstance(default, float):
        if not bad:
            return rng.choice([default, default / 2]) if math.isfinite(default) else rng.choice([-5.0, 5.0])
        return rng.choice([0.0, -1.0, 1e-12, 1e12, math.nan, math.inf, "x"])
    if isinstance(default, (list, tuple)):
        if not bad:
            return rng.choice([[8], [8, 8], [4], list(default)[:2]])
        return rng.choice([[], [0], [1], [-1], ["x"], 3])
    if isinstance(default, str):
        return default if not bad else rng.choice(["", "bogus"])
    return rng.choice([None, 4, "x", [8]])  # a None default: any type


def _kind(slot: str, data_kind: str, rng: random.Random) -> str | None:
    """A component kind for the slot; most draws keep text components with text data (and the rest
    off it), so that most configurations get past the data checks to the combinations."""
    reg = SLOTS[slot]
    if slot in OPTIONAL and rng.random() > OPTIONAL[slot]:
        return None
    if rng.random() < 0.02:
        return "bogus"
    names = reg.names()
    if rng.random() < 0.85 and reg in (NETWORKS, LIKELIHOODS):
        text = {"lstm", "categorical"}
        names = [n for n in names if (n in text) == (data_kind == "text")] or names
        if slot == "model.likelihood" and data_kind == "digits":
            names = ["bernoulli"]
    return rng.choice(names)


def _component(slot: str, kind: str, rng: random.Random, keys: list) -> dict:
    """The slot's table: its kind, and its options added to ``keys`` (drawn later)."""
    reg = SLOTS[slot]
    table: dict = {"kind": kind}
    if kind == "bogus":
        return table
    for name, opt in reg.options(kind).items():
        keys.append((table, name, opt.default, None))
    if slot == "model.latent" and rng.random() < 0.8:
        table["dim"] = rng.choice([1, 2, 3])  # small latents: the run stays fast
    if reg is NETWORKS and kind == "lstm":
        table.update(embed_dim=8, hidden=8)
    if reg is NETWORKS and kind in ("mlp", "gated_mlp"):
        table["hidden"] = [8]
    if rng.random() < 0.005:
        table["no_such_option"] = 1
    return table


@dataclass
class Draw:
    """One fuzzed configuration: its TOML tables and how many values were drawn bad."""

    tables: dict
    index: int
    n_bad: int = 0


def draw(rng: random.Random, index: int) -> Draw:
    """One configuration: a data set, a few component slots changed from the defaults (60 %) or every
    slot drawn (40 %), a random subset of the keys set to valid
    values, and 0 (half the draws), 1 or 2 of them then set to a boundary or wrong value."""
    kind = rng.choice(list(DATA))
    data: dict = {"kind": kind, "seed": 0}
    model: dict = {}
    train: dict = {"epochs": 1, "batch_size": 64, "log_every": 1, "num_threads": 1, "valid_iwae_points": 20}
    tables = {"data": data, "model": model, "train": train}
    keys: list = [(data, k, v[0], v) for k, v in DATA[kind].items()]  # (table, key, default, choices)
    if kind == "two-gaussians":
        data.update(n_train=200, n_test=100)
    few = rng.random() < 0.6  # change a few slots from the defaults; else draw every slot (combinations)
    if few and kind == "text":
        model.update(encoder={"kind": "lstm", "embed_dim": 8, "hidden": 8}, likelihood={"kind": "categorical"})
    for slot in SLOTS:
        k = _kind(slot, kind, rng) if not few or rng.random() < 0.25 else None
        if k is not None:
            section, key = slot.split(".")
            tables[section][key] = _component(slot, k, rng, keys)
    for section, cls in (("model", ModelConfig), ("train", TrainConfig), ("data", DataConfig)):
        for f in fields(cls):
            key = f"{section}.{f.name}"
            if "registry" in f.metadata or key in FIXED:
                continue
            default = f.default if not callable(getattr(f, "default_factory", None)) else f.default_factory()
            choices = {"model.labels": tuple(LABEL_MODES.names()), "model.kind": tuple(MODEL_KINDS.names())}.get(
                key, f.metadata.get("choices"))  # fmt: skip
            keys.append((tables[section], f.name, default, choices))
    chosen = [k for k in keys if rng.random() < RATE]
    for table, name, default, choices in chosen:
        table[name] = rng.choice(choices) if choices and table is data else _scalar_values(default, choices, rng)
    n_bad = 0 if rng.random() < 0.5 else rng.choice([1, 1, 2])
    for table, name, default, choices in rng.sample(chosen, min(n_bad, len(chosen))):
        table[name] = _scalar_values(default, None if table is data else choices, rng, bad=True)
    if rng.random() < 0.02:
        train["epochs"] = rng.choice([0, -1])
    if rng.random() < 0.01:
        tables["nosuchsection"] = {"x": 1}
    return Draw(tables, index, n_bad)


def toml(tables: dict, prefix: str = "") -> str:
    """The nested tables as TOML (None values left out: TOML has no null)."""
    lines, subs = [], []
    for k, v in tables.items():
        if isinstance(v, dict):
            subs.append((k, v))
        elif v is not None:
            lines.append(f"{k} = {_value(v)}")
    out = ([f"[{prefix}]"] if prefix and lines else []) + lines
    for k, v in subs:
        out.append(toml(v, f"{prefix}.{k}" if prefix else k))
    return "\n".join(x for x in out if x) + "\n"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


@dataclass
class Outcome:
    index: int
    status: str  # "trained", "refused", "diverged" or "finding"
    detail: str
    config: str


def _cli(argv: list[str]) -> tuple[object, str, str]:
    """``main(argv)`` in this process: (exit status or the exception that escaped, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning is a fine answer; vaelab's are printed as one line by the CLI
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code
        except BaseException as e:  # noqa: BLE001 - the finding itself
            rc = e
            err.write("".join(traceback.format_exception(e)))
    return rc, out.getvalue(), err.getvalue()


def check(d: Draw, root: Path) -> Outcome:
    """Run one configuration through ``vaelab train`` (and ``evaluate``) and judge it by the contract."""
    work = root / f"c{d.index}"
    work.mkdir()
    tables = json.loads(json.dumps(d.tables))
    if tables["data"].get("kind") == "text":
        (work / "corpus.txt").write_text(TEXT)
        tables["data"]["path"] = str(work / "corpus.txt")
    text = toml(tables)
    (work / "run.toml").write_text(text)
    out = work / "run"
    rc, _, err = _cli(["train", "--config", str(work / "run.toml"), "--out", str(out), "--quiet"])
    try:
        if rc == 2 and DIVERGED.search(err):  # a run that diverges keeps its directory: training happened
            return Outcome(d.index, "diverged", err.strip().splitlines()[-1], text)
        if rc == 2:
            errors = [line for line in err.splitlines() if line.startswith("error: ")]
            if len(errors) != 1 or "Traceback" in err:
                return Outcome(d.index, "finding", f"exit 2 without one error line: {err[-400:]}", text)
            if out.exists():
                left = sorted(p.name for p in out.iterdir())
                return Outcome(d.index, "finding", f"refused but left {left}: {errors[0]}", text)
            return Outcome(d.index, "refused", errors[0], text)
        if rc != 0:
            return Outcome(d.index, "finding", f"train: {rc!r}: {err[-1500:]}", text)
        if not (out / "last.pt").is_file():  # train.epochs = 0: the run set up, nothing trained
            return Outcome(d.index, "trained", "0 epochs", text)
        rc, _, err = _cli(["evaluate", str(out), "--k", "3", "--checkpoint", "last"])
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        if rc == 2 and len(errors) == 1 and "Traceback" not in err:  # e.g. an empty test split: said in one line
            return Outcome(d.index, "trained", f"evaluation refused: {errors[0]}", text)
        if rc != 0:
            return Outcome(d.index, "finding", f"evaluate after a trained run: {rc!r}: {err[-1500:]}", text)
        return Outcome(d.index, "trained", "", text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(n: int, seed: int = 0, log=None, workers: int = 1, chunk: int = 250) -> list[Outcome]:
    """n configurations drawn from ``seed`` (configuration i from its own generator, so any slice can
    run anywhere); every outcome, findings included. One chunk runs in this process; more run in
    ``workers`` fresh processes, ``chunk`` configurations each (a long run's address space, which
    thousands of refused huge allocations fragment, starts clean every chunk)."""
    chunks = [range(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    if len(chunks) <= 1:
        return _run_chunk((range(n), seed))
    import multiprocessing as mp

    outcomes: list[Outcome] = []
    with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
        for part in pool.imap(_run_chunk, [(c, seed) for c in chunks]):
            outcomes += part
            for o in part:
                if log and o.status == "finding":
                    log(o, len(outcomes))
            if log:
                log(None, len(outcomes))
    return outcomes


def _run_chunk(args: tuple[range, int]) -> list[Outcome]:
    import resource

    import torch

    indices, seed = args
    torch.set_num_threads(1)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:  # a size from the config then fails as an allocation, not by the OOM killer
        limit = LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(LIMIT_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return [check(draw(random.Random(f"{seed}-{i}"), i), Path(tmp)) for i in indices]
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def summary(outcomes: list[Outcome]) -> dict:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("trained", "refused", "diverged", "finding")}
    reasons: dict[str, int] = {}
    for o in outcomes:
        if o.status == "refused":
            key = o.detail[:70]
            reasons[key] = reasons.get(key, 0) + 1
    return {"n": len(outcomes), **counts, "top_refusals": sorted(reasons.items(), key=lambda kv: -kv[1])[:15]}


if __name__ == "__main__":
    n, seed = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0
    t0 = time.perf_counter()

    def log(o: Outcome | None, done: int) -> None:
        if o is not None:
            print(f"--- finding at #{o.index}: {o.detail}\n{o.config}", flush=True)
        else:
            print(f"{done}/{n} done, {time.perf_counter() - t0:.0f} s", flush=True)

    res = run(n, seed, log, workers=int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    print(json.dumps({**summary(res), "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
