"""vaelab against a hand-written loop, pythae and Pyro, side by side in one interleaved run.

Workloads (the IWAE paper's 784-200-200-50 tanh MLP, Bernoulli decoder, MNIST with dynamic
binarization, batch 100, Adam 1e-3): one training epoch of the VAE, IWAE-5 and IWAE-50, and the
importance-sampled log p(x) with K = 5,000 of a freshly initialized model on --points test images.
Implementations: a minimal hand-written loop (the speed of light, `impls.py`), vaelab's
`train_step` in a bare loop, vaelab's trainer `fit` / `importance_sampled_log_likelihood`, and
pythae 0.1.2 and Pyro 1.9.2 as their documentation shows (`peers.py`), installed into their own
virtual environment by ``--setup-peers`` (never vaelab dependencies).

Every (setting, workload, implementation, repeat) runs in a fresh subprocess, in an interleaved
order (implementations reversed on odd repeats), so that allocator state and peak RSS are each
run's own and machine drift hits everyone. The data (a --train-size slice of MNIST's training set
and binarized test images) is prepared once and read by every child from one .pt file. Per run:
seconds (training: extrapolated to a 50k-image epoch), peak RSS, minor page faults, and the CPU
that other processes used meanwhile (/proc/stat). A run is flagged "disturbed" when others used
over 10 % of the machine or it took over 1.3x its cell's median; medians and ratios (to the
hand-written loop in the same setting) are reported with the disturbed count beside them.
Flush-denormal is a setting: "on" as vaelab runs, "off" as the peers ship (vaelab turns it on
itself, so its "off" rows measure that too).

    python benchmarks/bench_workloads.py --setup-peers                 # once: benchmarks/out/peers-venv
    VAELAB_DATA=../shared/data python benchmarks/bench_workloads.py [--repeats 3] [--flush on off]

Writes benchmarks/results.md, benchmarks/results/workloads.json and benchmarks/results/workloads.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENV = HERE / "out" / "peers-venv"
PEER_PACKAGES = ["pythae==0.1.2", "pyro-ppl==1.9.2"]
WORKLOADS = {"VAE": 1, "IWAE-5": 5, "IWAE-50": 50, "IS K=5000": 5000}
OURS = ("hand-written", "hand-written, fused Adam", "vaelab train_step", "vaelab")
PEERS = ("pythae 0.1.2", "Pyro 1.9.2")
API = {
    "hand-written, fused Adam": "the hand-written loop with `torch.optim.Adam(fused=True)`, the optimizer `fit` uses",
    "vaelab train_step": "`vaelab.train.train_step` in a bare loop",
    "vaelab": "`vaelab.train.fit` (checkpoint + metrics files); IS: `importance_sampled_log_likelihood`",
    "pythae 0.1.2": "`BaseTrainer.train()` on `VAE` / `IWAE`; IS: `model.get_nll(x, n_samples=K)`",
    "Pyro 1.9.2": "`SVI` with `TraceMeanField_ELBO` / `RenyiELBO(alpha=0)`; IS: `vectorized_importance_weights`",
}


def is_eval(workload: str) -> bool:
    return workload.startswith("IS")


def impls_for(workload: str, peers: bool) -> list[str]:
    ours = [i for i in OURS if not (is_eval(workload) and i in ("vaelab train_step", "hand-written, fused Adam"))]
    return ours + (list(PEERS) if peers else [])


def child(impl: str, workload: str, data_file: str, seed: int, flush: bool) -> None:
    """One measured run in this (fresh) process; prints one JSON line."""
    import torch

    sys.path.insert(0, str(HERE))
    torch.set_flush_denormal(flush)
    data = torch.load(data_file)
    mod = __import__("peers" if impl in PEERS else "impls")
    before = resource.getrusage(resource.RUSAGE_SELF)
    k = WORKLOADS[workload]
    if is_eval(workload):
        seconds, value = mod.EVALUATE[impl](data["test"], k, seed)
    else:
        seconds, value = mod.TRAIN[impl](data["train"], k, seed), None
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before.ru_minflt
    print(json.dumps({"seconds": seconds, "value": value, "peak_rss_mb": _peak_rss_mb(), "minor_faults": faults}))


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that high-water mark
    over fork and exec, so every child would report at least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat; 0 where unavailable)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def measure(impl: str, workload: str, flush: bool, seed: int, args) -> dict:
    python = str(PEERS_VENV / "bin" / "python") if impl in PEERS else sys.executable
    cmd = [python, __file__, "--child", impl, workload, args.data_file, str(seed), str(int(flush))]
    busy0, own0, t0 = _busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if proc.returncode:
        sys.exit(f"{impl} / {workload} failed:\n{proc.stderr[-3000:]}")
    busy1, own1, wall = _busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # CPU that other processes used while this run ran, as a share of the machine: other load
    other = max(0.0, busy1 - busy0 - own) / (wall * (os.cpu_count() or 1))
    r.update(impl=impl, workload=workload, flush="on" if flush else "off", repeat=seed, other_load=other)
    r["s"] = r["seconds"] if is_eval(workload) else r["seconds"] * 50000 / args.train_size
    return r


def summarize(rows: list[dict]) -> dict:
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["flush"], r["workload"], r["impl"]), []).append(r)
    table = {}
    for (flush, w, impl), rs in cells.items():
        med = statistics.median(r["s"] for r in rs)
        for r in rs:
            r["disturbed"] = r["other_load"] > 0.1 or r["s"] > 1.3 * med
        values = [r["value"] for r in rs if r["value"] is not None]
        table[(flush, w, impl)] = {
            "median_s": med,
            "runs": [round(r["s"], 2) for r in rs],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "minor_faults": statistics.median(r["minor_faults"] for r in rs),
            "disturbed_runs": sum(r["disturbed"] for r in rs),
            "log_px": statistics.mean(values) if values else None,
        }
    for (flush, w, _impl), v in table.items():
        base = table[(flush, w, "hand-written")]
        v["ratio"] = v["median_s"] / base["median_s"]
        v["rss_ratio"] = v["peak_rss_mb"] / base["peak_rss_mb"]
    return table


def markdown(table: dict, args) -> str:
    cores = os.cpu_count()
    lines = [
        "# vaelab against a hand-written loop, pythae and Pyro (`benchmarks/bench_workloads.py`)",
        "",
        f"MNIST, 784-200-200-50 tanh MLP, Bernoulli decoder, batch 100, Adam 1e-3, dynamic binarization. Training: one "
        f"epoch on {args.train_size} images, in seconds per 50k-image epoch; IS: log p(x) with K = 5,000 of a fresh "
        f"model on {args.points} binarized test images, in seconds. {args.repeats} repeats per cell, each in a fresh "
        f"process, interleaved; {cores} cores, torch's default threads; median, ratio to the hand-written loop of the "
        "same setting. A run is disturbed when other processes used > 10 % of the machine during it or it took > 1.3x "
        f"its cell's median. Run on {time.strftime('%Y-%m-%d')}.",
        "",
        "| flush-denormal | workload | implementation | s (median) | ratio | peak RSS MB | RSS ratio | minor faults "
        "| runs | disturbed | mean log p̂(x) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for (flush, w, impl), v in table.items():
        lp = f"{v['log_px']:.1f}" if v["log_px"] is not None else ""
        lines.append(
            f"| {flush} | {w} | {impl} | {v['median_s']:.2f} | {v['ratio']:.3f} | {v['peak_rss_mb']:.0f} | "
            f"{v['rss_ratio']:.3f} | {v['minor_faults']:.0f} | {v['runs']} | {v['disturbed_runs']} | {lp} |"
        )
    lines += ["", "What each implementation runs:", ""] + [f"- **{k}**: {v}" for k, v in API.items()]
    lines += ["- **hand-written**: `benchmarks/impls.py`, plain PyTorch, no abstraction"]
    return "\n".join(lines) + "\n"


def bar_chart(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flushes = sorted({f for f, _, _ in table}, reverse=True)
    fig, axes = plt.subplots(1, len(flushes), figsize=(6 * len(flushes), 4), squeeze=False, sharey=True)
    impls = list(dict.fromkeys(i for _, _, i in table))
    for ax, flush in zip(axes[0], flushes):
        workloads = list(dict.fromkeys(w for f, w, _ in table if f == flush))
        width = 0.8 / len(impls)
        for j, impl in enumerate(impls):
            xs = [i + j * width for i, w in enumerate(workloads) if (flush, w, impl) in table]
            ys = [table[(flush, w, impl)]["ratio"] for w in workloads if (flush, w, impl) in table]
            ax.bar(xs, ys, width, label=impl)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(workloads))], workloads)
        ax.set_title(f"flush-denormal {flush}")
        ax.set_ylabel("time / hand-written loop (lower is better)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def setup_peers() -> None:
    """benchmarks/out/peers-venv with torch (the project's pin), pythae 0.1.2 and Pyro."""
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    subprocess.run([*pip, "torch", "matplotlib", *PEER_PACKAGES], check=True)


def prepare_data(args) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from vaelab.data import load_mnist

    mnist = load_mnist(args.data_dir)
    g = torch.Generator().manual_seed(0)
    test = torch.bernoulli(mnist.test[: args.points], generator=g)  # (P, 1, 28, 28)
    Path(args.data_file).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"train": mnist.train[: args.train_size].clone(), "test": test}, args.data_file)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup-peers", action="store_true", help="create benchmarks/out/peers-venv and exit")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--points", type=int, default=500, help="test images for the IS workload")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--flush", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--no-peers", dest="peers", action="store_false", help="skip pythae and Pyro")
    ap.add_argument("--data-dir", default=None, help="folder with mnist.pkl.gz (default: $VAELAB_DATA)")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args()
    args.data_file = str(HERE / "out" / "workload-data.pt")
    return args


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        impl, workload, data_file, seed, flush = sys.argv[2:7]
        child(impl, workload, data_file, int(seed), bool(int(flush)))
        return
    args = parse_args()
    if args.setup_peers:
        setup_peers()
        return
    if args.peers and not (PEERS_VENV / "bin" / "python").exists():
        sys.exit(f"no {PEERS_VENV}: run `python {__file__} --setup-peers` first (or pass --no-peers)")
    prepare_data(args)
    rows = []
    for rep in range(args.repeats):
        for flush in args.flush:
            for w in args.workloads:
                order = impls_for(w, args.peers)
                for impl in order if rep % 2 == 0 else reversed(order):
                    rows.append(r := measure(impl, w, flush == "on", rep, args))
                    print(f"flush {flush:3} {w:9} {impl:18} #{rep}: {r['s']:.2f} s, {r['peak_rss_mb']:.0f} MB", flush=True)
    table = summarize(rows)
    out = Path(args.out)
    (HERE / "results").mkdir(exist_ok=True)
    cells = {" | ".join(k): v for k, v in table.items()}
    payload = {"args": vars(args), "cores": os.cpu_count(), "table": cells, "rows": rows}
    (HERE / "results" / "workloads.json").write_text(json.dumps(payload, indent=2))
    out.write_text(markdown(table, args))
    bar_chart(table, HERE / "results" / "workloads.png")
    print(markdown(table, args))


if __name__ == "__main__":
    main()
