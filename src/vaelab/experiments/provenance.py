"""Where a study's numbers come from: the code (vaelab version, git commit, uncommitted changes), the
machine, the command, the wall time and the full configuration of every run, written beside each
report by ``vaelab reproduce`` (``provenance.json`` and a "Provenance" section at the end of
``report.md``), so that a stale report shows itself at a glance."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import tomllib

from .._version import __version__

SECTION = "\n## Provenance\n"


def git_commit(where: Path | None = None) -> tuple[str, bool]:
    """(short commit, dirty) of the git checkout holding ``where`` (vaelab's own source by default);
    ``("unknown", False)`` for an installed wheel or without git. Dirty: tracked files under ``src/``
    differ from the commit, so the commit alone does not name the code that ran."""
    where = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode:
            return "unknown", False
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=where, capture_output=True, text=True, timeout=10)
        src = Path(top.stdout.strip()) / "src"
        diff = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", str(src)],
                              cwd=where, capture_output=True, text=True, timeout=10)  # fmt: skip
        return head.stdout.strip(), bool(diff.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def machine() -> dict:
    """CPU model, logical cores, OS, Python and torch versions, and the GPU if torch sees one."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "gpu": gpu}  # fmt: skip


def run_configs(out: Path) -> dict:
    """{run name: its config.toml as a dict} for every run directory the study left under ``out``."""
    configs = {}
    for path in sorted(Path(out).rglob("config.toml")):
        try:
            configs[str(path.parent.relative_to(out))] = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return configs


def collect(out: Path, command: str, started: datetime.datetime, wall_s: float, options: dict) -> dict:
    """The provenance record of one ``vaelab reproduce`` run that wrote to ``out``."""
    commit, dirty = git_commit()
    return {
        "vaelab": __version__,
        "commit": commit,
        "uncommitted_changes": dirty,
        "command": command,
        "options": options,
        "started_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
        "wall_seconds": round(wall_s, 1),
        "machine": machine(),
        "configs": run_configs(out),
    }


def stamp(out: Path, record: dict) -> None:
    """Write ``provenance.json`` and put the record's summary at the end of ``report.md`` (replacing an
    earlier one: a report is regenerated whole, the stamp follows it)."""
    out = Path(out)
    (out / "provenance.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    report = out / "report.md"
    if not report.is_file():
        return
    text = report.read_text().split(SECTION)[0].rstrip("\n") + "\n"
    report.write_text(text + SECTION + "\n" + summary(record) + "\n")


def summary(record: dict) -> str:
    """The report's "Provenance" section (markdown)."""
    m = record["machine"]
    code = f"vaelab {record['vaelab']}, commit `{record['commit']}`"
    if record["uncommitted_changes"]:
        code += " **with uncommitted changes to src/**"
    hw = f"{m['cpu']}, {m['logical_cores']} logical cores" + (f", GPU {m['gpu']}" if m["gpu"] else "")
    n = len(record["configs"])
    return "\n".join([
        f"- Code: {code}; torch {m['torch']}, Python {m['python']}.",
        f"- Command: `{record['command']}`, started {record['started_utc']}, "
        f"wall time {record['wall_seconds'] / 60:.1f} min.",
        f"- Machine: {hw}; {m['os']}.",
        f"- Configuration: the full config of each of the {n} run(s) is in `provenance.json` (key `configs`)."
        if n else "- Configuration: the study's parameters are in `results.json`; it trains no run directories.",
    ])  # fmt: skip


def stamped_run(run, out: Path, command: str, options: dict):
    """``run()`` (a study writing to ``out``), then its provenance stamped on the report."""
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    result = run()
    stamp(out, collect(Path(out), command, started, time.perf_counter() - t0, options))
    return result
