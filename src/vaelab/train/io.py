"""RunWriter: the one place a training run writes files.

config.toml, run.json (provenance: vaelab version, data source, model spec), metrics.jsonl /
metrics.csv / TensorBoard, diagnostics.jsonl and checkpoints all go through here, so a
multi-process run can restrict writing to rank 0 by constructing it with ``enabled=False``
elsewhere.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import warnings
from pathlib import Path

from ..checkpoint import save_checkpoint
from ..errors import CheckpointError

CSV_FIELDS = ["epoch", "step", "train_elbo", "train_rec", "train_kl", "train_bound", "valid_elbo",
              "valid_iwae", "beta", "lr", "active_units", "train_time_s", "epoch_time_s", "total_time_s"]


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
        raise CheckpointError(f"cannot write to the run directory {run_dir} ({e.strerror or e}); free space there "
                              "or choose another --out") from None


class RunWriter:
    """Writes a run directory. All methods are no-ops when ``enabled`` is False.

    Args:
        run_dir: the folder (created).
        tensorboard: also write TensorBoard event files under ``tb/``.
        enabled: False on every process but the one that writes (rank 0).
        fresh: a new run: metrics files left by an earlier start that never checkpointed are replaced.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, enabled: bool = True, fresh: bool = False):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self._jsonl = self._csv_file = self._csv = self.tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        mode = "w" if fresh else "a"
        self._jsonl = open(self.run_dir / "metrics.jsonl", mode)
        csv_path = self.run_dir / "metrics.csv"
        needs_header = fresh or not csv_path.exists() or csv_path.stat().st_size == 0
        self._csv_file = open(csv_path, mode, newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
        if needs_header:
            self._csv.writeheader()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:  # tensorboard is a dependency, but keep training if it is broken
                warnings.warn("tensorboard unavailable; logging to CSV/JSONL only", stacklevel=2)

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
        self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
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
            for k in ("valid_elbo", "train_elbo", "active_units", "valid_iwae"):
                if row.get(k) is not None:
                    self.tb.add_scalar(f"epoch/{k}", row[k], row["epoch"])
            self.tb.flush()

    def checkpoint(self, name: str, payload: dict) -> None:
        if self.enabled:
            save_checkpoint(payload, self.run_dir / name)

    def close(self) -> None:
        for f in (self._jsonl, self._csv_file, self.tb):
            if f is not None:
                f.close()
