"""Two versions of vaelab's training step side by side in one process: this checkout against an older
commit, and both against the hand-written loop with torch's fused Adam (bench_limit's reference arm).

Separate processes differ by more than a change of a few per cent is worth: the same code measured
1.036x and 1.092x the fused loop in two processes minutes apart (a step's time depends on where its
tensors land as much as on its operations). So the older commit's ``src/vaelab`` is extracted with
``git archive`` as a package named ``vaelab_base`` (vaelab's imports are relative) and imported beside
``vaelab``; the three arms start from the same weights, see the same batches of MNIST, and run in
blocks of --block steps, alternating order, --rounds rounds. Reported: medians per step and the
median of the per-round ratios. ``--control`` runs the older commit against itself as well (in the
checkout's arm): the spread of that ratio around 1 is this benchmark's resolution.

    VAELAB_DATA=../shared/data python benchmarks/bench_versions.py --base 50f05eb [--k 1 5] [--control]

Writes benchmarks/results/versions.json and versions.md.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_limit  # noqa: E402
import impls  # noqa: E402

B, CPU = bench_limit.B, torch.device("cpu")


def extract(commit: str, into: Path) -> str:
    """``src/vaelab`` at ``commit`` as the package ``vaelab_base`` under ``into``; returns the full hash."""
    full = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], capture_output=True, text=True, cwd=HERE)
    if full.returncode:
        sys.exit(f"bench_versions: {commit!r} is not a commit of this repository")
    tar = subprocess.run(
        ["git", "archive", full.stdout.strip(), "src/vaelab"], capture_output=True, cwd=HERE.parent, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(into, filter="data")
    (into / "src" / "vaelab").rename(into / "vaelab_base")
    return full.stdout.strip()


def step_arm(package: str, k: int, batch):
    """One training step of ``package``'s ``train_step`` as ``fit`` runs it (fused Adam, seeded weights)."""

    def mod(name):
        return importlib.import_module(f"{package}.{name}")

    model, opt, groups = bench_limit.vaelab_model(k, CPU, package)
    objective = mod("objectives").OBJECTIVES.build("elbo" if k == 1 else "iwae")
    estimator = mod("estimators").ESTIMATORS.build("reparam")
    batch_cls, train_step, kl = mod("data").Batch, mod("train").train_step, "analytic" if k == 1 else "mc"
    return lambda: train_step(model, batch_cls(batch(), None), opt, objective, estimator, k, kl, groups=groups)


def arms(k: int, x: torch.Tensor, control: bool) -> dict:
    batch = bench_limit.training_batches(x, CPU)
    enc, dec = impls._mlp_pair()
    model = bench_limit.vaelab_model(k, CPU)[0]  # the starting weights every arm shares
    enc.load_state_dict(model.encoder.state_dict())
    dec.load_state_dict(model.decoder.state_dict())
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, fused=True)
    return {"hand-written, fused Adam": lambda: impls.hand_written_step(enc, dec, opt, batch().reshape(B, -1), k),
            "checkout": step_arm("vaelab_base" if control else "vaelab", k, batch),
            "base": step_arm("vaelab_base", k, batch)}  # fmt: skip


def summary(res: dict) -> dict:
    """Medians and per-round paired ratios of bench_limit.interleave's results."""
    times = {a: v["runs"] for a, v in res.items()}
    ref = times["hand-written, fused Adam"]

    def paired(a, b):
        return statistics.median(x / y for x, y in zip(a, b))

    return {"median_us": {a: statistics.median(t) * 1e6 for a, t in times.items()},
            "checkout_vs_loop": paired(times["checkout"], ref), "base_vs_loop": paired(times["base"], ref),
            "checkout_vs_base": paired(times["checkout"], times["base"]),
            "disturbed": {a: v["disturbed"] for a, v in res.items()}, "runs": times}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the older commit")
    p.add_argument("--k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--block", type=int, default=60, help="steps per block at K = 1 (K = 5: a third)")
    p.add_argument("--control", action="store_true", help="the checkout's arm runs the base commit too")
    args = p.parse_args()
    torch.set_flush_denormal(True)
    from vaelab.data import load_mnist
    from vaelab.numerics import denormals_flushed

    x = load_mnist(None).train[:5000].clone()
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        rows = {}
        with denormals_flushed():
            for k in args.k:
                block = max(2, args.block // (3 if k > 1 else 1))
                rows[k] = summary(bench_limit.interleave(arms(k, x, args.control), CPU, args.rounds, block))
                r = rows[k]
                print(f"K = {k}: checkout / loop {r['checkout_vs_loop']:.3f}, base / loop {r['base_vs_loop']:.3f}, "
                      f"checkout / base {r['checkout_vs_base']:.3f}", flush=True)  # fmt: skip
    write(rows, args, base)


def write(rows: dict, args, base: str) -> None:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=HERE).stdout
    head = git.stdout.strip() + (" (uncommitted changes in src/)" if dirty else "")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "checkout": head, "base": base[:7], "control": args.control,
            "torch": torch.__version__, "args": vars(args)}  # fmt: skip
    (HERE / "results" / "versions.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    arm = "base again (control)" if args.control else f"checkout {head}"
    lines = [f"Two versions in one process (`benchmarks/bench_versions.py`), {meta['date']}: {arm} against base "
             f"{meta['base']}; {args.rounds} interleaved rounds, medians of per-round ratios.", "",
             "| K | checkout / fused loop | base / fused loop | checkout / base | fused loop (µs a step) |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for k, r in rows.items():
        lines.append(f"| {k} | {r['checkout_vs_loop']:.3f} | {r['base_vs_loop']:.3f} | {r['checkout_vs_base']:.3f} | "
                     f"{r['median_us']['hand-written, fused Adam']:.0f} |")  # fmt: skip
    (HERE / "results" / "versions.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
