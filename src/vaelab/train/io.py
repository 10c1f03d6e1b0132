"""RunWriter: the one place a training run writes files.

config.toml, run.json (provenance: vaelab version, data source, model spec), metrics.jsonl /
metrics.csv / TensorBoard, diagnostics.jsonl and checkpoints all go through here, so a
multi-process run can restrict writing to rank 0 by constructing it with ``enabled=False``
elsewhere.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .. import faults
from ..checkpoint import save_checkpoint
from ..errors import CheckpointError

LOGS = ("diagnostics.jsonl", "grad_variance.jsonl", "events.jsonl")  # appended by callbacks; keyed by epoch/step
CSV_FIELDS = [
    "epoch",
    "step",
    "train_elbo",
    "train_rec",
    "train_kl",
    "train_bound",
    "valid_elbo",
    "valid_iwae",
    "beta",
    "lr",
    "active_units",
    "train_time_s",
    "epoch_time_s",
    "total_time_s",
    "valid_error",
]


def check_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and prove it takes a small file before any training starts.

    Raises:
        CheckpointError: one line naming the folder and the OS's reason (not a directory,
            permission denied, no space left on the device, ...).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir) as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CheckpointError(
            f"cannot write to the run directory {run_dir} ({e.strerror or e}); free space there or choose another --out"
        ) from None


class RunWriter:
    """Writes a run directory. All methods are no-ops when ``enabled`` is False.

    Args:
        run_dir: the folder (created).
        tensorboard: also write TensorBoard event files under ``tb/``.
        enabled: False on every process but the one that writes (rank 0).
        fresh: a new run: metrics files left by an earlier start that never checkpointed are replaced.
    """

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = True,
        enabled: bool = True,
        fresh: bool = False,
        resume_at: dict | None = None,
    ):
        self.run_dir, self.enabled = Path(run_dir), enabled
        # open files (None while disabled: every method checks ``enabled`` first)
        self._jsonl: Any = None
        self._csv_file: Any = None
        self._csv: Any = None
        self.tb: Any = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.run_dir.glob("*.pt*.tmp"):  # a checkpoint write killed before its rename
            tmp.unlink()
        if fresh:  # what an earlier start that never checkpointed left (its TensorBoard events too)
            for name in ("metrics.jsonl", "metrics.csv", *LOGS):
                (self.run_dir / name).unlink(missing_ok=True)
            for events in (self.run_dir / "tb").glob("events.out.tfevents.*"):
                events.unlink()
        elif resume_at is not None:
            reconcile(self.run_dir, resume_at)
        csv_path = self.run_dir / "metrics.csv"
        needs_header = not csv_path.exists() or csv_path.stat().st_size == 0
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a")
        self._csv_file = open(csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
        if needs_header:
            self._csv.writeheader()
        if tensorboard:
            self.tb = _tensorboard(self.run_dir / "tb", None if resume_at is None else resume_at["step"] + 1)

    def text(self, name: str, content: str) -> None:
        if self.enabled:
            (self.run_dir / name).write_text(content)

    def json(self, name: str, obj) -> None:
        self.text(name, json.dumps(obj, indent=2))

    def append_jsonl(self, name: str, obj) -> None:
        if self.enabled:
            with open(self.run_dir / name, "a") as f:
                f.write(json.dumps(obj) + "\n")

    def step(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        line = json.dumps({"step": step, **values}) + "\n"
        if faults.armed("metrics.torn_line"):  # what a kill in the middle of a write leaves
            self._jsonl.write(line[: len(line) // 2])
            self._jsonl.flush()
            faults.kill()
        self._jsonl.write(line)
        if self.tb:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, step)

    def epoch(self, row: dict) -> None:
        if not self.enabled:
            return
        self._csv.writerow({k: row.get(k) for k in CSV_FIELDS})
        self._csv_file.flush()
        self._jsonl.flush()
        if self.tb:
            for k in ("valid_elbo", "train_elbo", "active_units", "valid_iwae", "valid_error"):
                if row.get(k) is not None:
                    self.tb.add_scalar(f"epoch/{k}", row[k], row["epoch"])
            self.tb.flush()

    def checkpoint(self, name: str, payload: dict) -> None:
        """Write a checkpoint, after the logs up to it are on disk: a resume never lacks their lines."""
        if self.enabled:
            for f in (self._jsonl, self._csv_file):
                f.flush()
                os.fsync(f.fileno())
            save_checkpoint(payload, self.run_dir / name)

    def close(self, abort: bool = False) -> None:
        """Close the logs; ``abort`` (a second signal): TensorBoard's writer is left to its daemon thread.

        Joining that thread is not safe then: a KeyboardInterrupt raised inside the queue's
        ``Condition.notify`` (a signal landing while an event is queued) loses the thread's wakeup, and
        the join waited out TensorBoard's flush interval, 120 s (seen under load in
        tests/test_faults.py). The metrics files are ours and are closed either way."""
        for f in (self._jsonl, self._csv_file, None if abort else self.tb):
            if f is not None:
                f.close()


def _tensorboard(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        warnings.warn("tensorboard unavailable; logging to CSV/JSONL only", stacklevel=3)
        return None
    # purge_step: a resumed run hides the events a killed process logged after its last checkpoint
    return SummaryWriter(str(folder), purge_step=purge_step)


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines log; a torn line (a process killed mid-write) is skipped with a warning."""
    records, torn = [], 0
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
    if torn:
        warnings.warn(f"{path}: skipped {torn} unreadable line(s) (a process killed while writing)", stacklevel=2)
    return records


def reconcile(run_dir: Path, at: dict) -> None:
    """Bring a run directory's logs back to its checkpoint before a resume continues it.

    A process killed after its last checkpoint has logged steps and epochs that the resumed run
    will log again: metrics.csv is rewritten from the checkpoint's history, and the JSON-lines logs
    keep only records up to the checkpoint's step (epoch for diagnostics). Torn lines are dropped.
    Each file is replaced atomically.

    Args:
        at: {"epoch": completed epochs, "step": optimizer steps, "history": the epoch rows}.
    """
    keep = {
        "metrics.jsonl": lambda r: r.get("step", 0) <= at["step"],
        "grad_variance.jsonl": lambda r: r.get("step", 0) <= at["step"],
        "diagnostics.jsonl": lambda r: r.get("epoch", 0) <= at["epoch"],
        "events.jsonl": lambda r: True,
    }
    for name, ok in keep.items():
        path = run_dir / name
        if path.is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torn lines are expected here and dropped
                records = [r for r in read_jsonl(path) if ok(r)]
            _replace(path, "".join(json.dumps(r) + "\n" for r in records))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for row in at["history"]:
        w.writerow({k: row.get(k) for k in CSV_FIELDS})
    _replace(run_dir / "metrics.csv", buf.getvalue())
    faults.point("resume.reconciled")


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
