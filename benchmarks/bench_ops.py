"""Dispatched operations per training step: vaelab's ``train_step`` against the hand-written loop
with torch's fused Adam (bench_limit's two arms), counted, not timed — a count does not depend on
what else the machine runs, so it guides overhead work on a busy machine.

Counts the top-level ``aten::`` operators torch.profiler records in one step (forward, backward and
the optimizer; an operator called from inside another, e.g. ``aten::addmm`` inside ``aten::linear``,
is not counted again), averaged over --steps steps after two warm-up steps, and lists the operators
where the two differ.

    python benchmarks/bench_ops.py [--k 1 5] [--steps 5]

Writes benchmarks/results/ops.json and ops.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_limit  # noqa: E402

OUT = HERE / "results"


def top_level_ops(fn, steps: int) -> collections.Counter:
    """{operator: calls per step} for the top-level aten operators of ``steps`` calls of ``fn``."""
    for _ in range(2):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    inside = set()  # aten events that run within another aten event on the same thread
    by_thread: dict[int, list] = collections.defaultdict(list)
    for e in events:
        by_thread[e.thread].append(e)
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e.time_range.start, -e.time_range.end))
        stack: list = []
        for e in evs:
            while stack and stack[-1].time_range.end <= e.time_range.start:
                stack.pop()
            if stack:
                inside.add(id(e))
            stack.append(e)
    count = collections.Counter(e.name for e in events if id(e) not in inside)
    return collections.Counter({name: n / steps for name, n in count.items()})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    from vaelab.numerics import denormals_flushed

    torch.set_num_threads(1)
    x = torch.rand(1000, 1, 28, 28)
    with denormals_flushed():  # as fit runs train_step (and bench_limit its arms): the step's own block is free
        rows = [_row(k, x, a.steps) for k in a.k]
    write(rows)


def _row(k: int, x: torch.Tensor, steps: int) -> dict:
    arms = bench_limit.train_arms(k, torch.device("cpu"), x)
    hand = top_level_ops(arms["hand-written, fused Adam"], steps)
    ours = top_level_ops(arms["vaelab train_step"], steps)
    diff = {n: ours[n] - hand[n] for n in sorted(set(hand) | set(ours)) if ours[n] != hand[n]}
    return {"k": k, "hand": sum(hand.values()), "vaelab": sum(ours.values()), "difference": diff}


def write(rows: list[dict]) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    OUT.mkdir(exist_ok=True)
    (OUT / "ops.json").write_text(json.dumps({"commit": commit.strip(), "rows": rows}, indent=1) + "\n")
    lines = [f"# Top-level aten operators per training step (commit {commit.strip()})", "",
             "| K | hand-written, fused Adam | vaelab train_step | where they differ (vaelab − hand) |",
             "|---|---|---|---|"]  # fmt: skip
    for r in rows:
        where = ", ".join(f"{n[6:]} {d:+g}" for n, d in sorted(r["difference"].items(), key=lambda t: -abs(t[1])))
        lines.append(f"| {r['k']} | {r['hand']:g} | {r['vaelab']:g} | {where} |")
    (OUT / "ops.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
