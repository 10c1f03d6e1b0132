"""Seconds per MNIST epoch for VAE, IWAE-5 and IWAE-50: vaelab's `fit`, vaelab's `train_step` in a bare
loop, and a minimal hand-written loop (the speed of light for this model), side by side.

Model: the IWAE paper's 784-200-200-50 tanh MLP, Bernoulli decoder, dynamic binarization, batch 100,
Adam 1e-3. Every (implementation, workload, repeat) runs in a fresh subprocess, in an interleaved
order, so that allocator state and peak RSS are each run's own and machine drift hits every
implementation. Reported per run: seconds per 50k-image epoch (extrapolated from --train-size),
peak RSS of the process (loading MNIST's pickle sets a floor of ~520 MB for all), minor page faults
during the epoch, and the CPU other processes used meanwhile (from /proc/stat); a run is flagged
"disturbed" when others used over 10 % of the machine or when it took over 1.3x the median of its
cell. Ratios are medians over repeats, to the hand-written loop.

    VAELAB_DATA=../shared/data python benchmarks/bench_workloads.py [--repeats 3] [--train-size 20000]
    python benchmarks/bench_workloads.py --no-flush-denormal ...   # as peers ship (flush-denormal off)

Writes benchmarks/results/workloads.json and workloads.md.
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

WORKLOADS = {"VAE": 1, "IWAE-5": 5, "IWAE-50": 50}
IMPLS = ("hand-written loop", "vaelab train_step loop", "vaelab fit")


def _model_cfg(k: int):
    from vaelab.config import RunConfig

    return RunConfig().override(
        {
            "data.kind": "mnist",
            "model.latent.dim": 50,
            "model.encoder": {"kind": "mlp", "hidden": [200, 200], "activation": "tanh"},
            "model.likelihood": "bernoulli",
            "model.decoder_bias": "default",  # the hand-written loop keeps PyTorch's init too
            "train.objective": "elbo" if k == 1 else "iwae",
            "train.n_samples": k,
            "train.batch_size": 100,
            "train.lr": 1e-3,
            "train.epochs": 1,
            "train.diagnostics": False,
            "train.valid_every": 0,
            "train.num_threads": 0,
        }
    )


def hand_written(x_train, k: int, seed: int) -> float:
    """The smallest honest epoch in plain PyTorch: same model, same work per step."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 100))
    dec = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    x_train = x_train.reshape(x_train.shape[0], -1)  # (N, 784)
    t = time.perf_counter()
    perm = torch.randperm(x_train.shape[0], generator=g)
    for i in range(0, x_train.shape[0], 100):
        x = torch.bernoulli(x_train[perm[i : i + 100]], generator=g)  # (B, 784)
        mu, logvar = enc(x).chunk(2, dim=-1)  # (B, 50) each
        std = torch.exp(0.5 * logvar)
        if k == 1:  # the analytic-KL ELBO, as vaelab uses for a one-sample Gaussian ELBO
            z = mu + std * torch.randn_like(mu)
            rec = -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
            loss = -(rec - kl).mean()
        else:
            eps = torch.randn(k, *mu.shape)  # (K, B, 50)
            z = mu + std * eps
            logits = dec(z.reshape(-1, 50)).view(k, -1, 784)  # (K, B, 784)
            rec = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
            log_pz = -0.5 * (z.pow(2).sum(-1) + 50 * 1.8378770664093453)
            log_qz = -0.5 * (eps.pow(2).sum(-1) + 50 * 1.8378770664093453) - 0.5 * logvar.sum(-1)
            log_w = rec + log_pz - log_qz  # (K, B)
            loss = -(torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(k)))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def step_loop(x_train, k: int, seed: int) -> float:
    """vaelab's public `train_step` in a bare loop: the library's step without the trainer around it."""
    import torch

    from vaelab.data import iterate_batches
    from vaelab.estimators import ESTIMATORS
    from vaelab.models import build_model
    from vaelab.objectives import OBJECTIVES
    from vaelab.train import train_step

    torch.manual_seed(seed)
    cfg = _model_cfg(k)
    model = build_model(cfg.model, (1, 28, 28))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kl = "analytic" if k == 1 else "mc"
    # objects, built once: passing registry names makes train_step build them every step
    objective, estimator = OBJECTIVES.build("elbo" if k == 1 else "iwae"), ESTIMATORS.build("reparam")
    groups = {**model.parameter_groups()}
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    for batch in iterate_batches(x_train, 100, g, True, True):
        train_step(model, batch, opt, objective, estimator, k, kl, groups=groups)
    return time.perf_counter() - t


def vaelab_fit(x_train, k: int, seed: int) -> float:
    """vaelab's trainer, as a user calls it: checkpoints and metrics files included."""
    import tempfile

    import torch

    from vaelab.data.bundle import DataSplits
    from vaelab.train import fit

    data = DataSplits(train=x_train, valid=torch.zeros(0, 1, 28, 28), test=torch.zeros(0, 1, 28, 28))
    data.dynamic_binarization = True
    with tempfile.TemporaryDirectory() as tmp:
        res = fit(_model_cfg(k).override({"train.seed": seed}), Path(tmp) / "run", data=data, quiet=True, tensorboard=False)
    return res.history[0]["train_time_s"]


def child(impl: str, workload: str, train_size: int, seed: int, flush: bool) -> None:
    """One measured epoch in this (fresh) process; prints one JSON line."""
    import torch

    from vaelab.data import load_mnist

    torch.set_flush_denormal(flush)
    x = load_mnist(None).train[:train_size].clone()  # the rest of MNIST is freed
    fn = {"hand-written loop": hand_written, "vaelab train_step loop": step_loop, "vaelab fit": vaelab_fit}[impl]
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = fn(x, WORKLOADS[workload], seed)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps({"seconds": seconds, "peak_rss_mb": ru.ru_maxrss / 1024, "minor_faults": ru.ru_minflt - before.ru_minflt})
    )


def _busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat; 0 where unavailable)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def measure(impl: str, workload: str, args, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, workload, str(args.train_size), str(seed), str(int(args.flush))]
    busy0, own0, t0 = _busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ).stdout.strip().splitlines()[-1]
    busy1, own1, wall = _busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    r = json.loads(out)
    # CPU that other processes used while this run ran, as a share of the machine: other load
    r.update(impl=impl, workload=workload, repeat=seed, other_load=max(0.0, busy1 - busy0 - own) / (wall * os.cpu_count()))
    r["s_per_50k"] = r["seconds"] * 50000 / args.train_size
    return r


def summarize(rows: list[dict], cores: int) -> dict:
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["workload"], r["impl"]), []).append(r)
    table = {}
    for (w, impl), rs in cells.items():
        med = statistics.median(r["s_per_50k"] for r in rs)
        for r in rs:
            r["disturbed"] = r["other_load"] > 0.1 or r["s_per_50k"] > 1.3 * med
        table[f"{w} | {impl}"] = {
            "median_s_per_epoch": med,
            "runs": [round(r["s_per_50k"], 3) for r in rs],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "minor_faults": statistics.median(r["minor_faults"] for r in rs),
            "disturbed_runs": sum(r["disturbed"] for r in rs),
        }
    for key, v in table.items():
        w = key.split(" | ")[0]
        base = table[f"{w} | hand-written loop"]
        v["ratio_to_hand_written"] = v["median_s_per_epoch"] / base["median_s_per_epoch"]
        v["rss_ratio_to_hand_written"] = v["peak_rss_mb"] / base["peak_rss_mb"]
    return table


def markdown(table: dict, args, cores: int) -> str:
    lines = [
        "# Training-epoch benchmark (`benchmarks/bench_workloads.py`)",
        "",
        f"MNIST 784-200-200-50 tanh MLP, batch 100, Adam, dynamic binarization; {args.repeats} repeats per cell, each in "
        f"a fresh process, interleaved; {args.train_size} images per run, extrapolated to 50k; flush-denormal "
        f"{'on' if args.flush else 'off'}; {cores} cores; torch threads default.",
        "",
        "| workload | implementation | s / epoch (median) | ratio | peak RSS MB | RSS ratio | minor faults | runs "
        "| disturbed |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for key, v in table.items():
        w, impl = key.split(" | ")
        lines.append(
            f"| {w} | {impl} | {v['median_s_per_epoch']:.2f} | {v['ratio_to_hand_written']:.3f} | {v['peak_rss_mb']:.0f} | "
            f"{v['rss_ratio_to_hand_written']:.3f} | {v['minor_faults']:.0f} | {v['runs']} | {v['disturbed_runs']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        impl, workload, n, seed, flush = sys.argv[2:7]
        child(impl, workload, int(n), int(seed), bool(int(flush)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--no-flush-denormal", dest="flush", action="store_false")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "workloads"))
    args = ap.parse_args()
    if "VAELAB_DATA" not in os.environ:
        sys.exit("set VAELAB_DATA to the folder with mnist.pkl.gz")
    cores = os.cpu_count() or 1
    rows = []
    for rep in range(args.repeats):
        order = list(IMPLS) if rep % 2 == 0 else list(reversed(IMPLS))
        for w in args.workloads:
            for impl in order:
                r = measure(impl, w, args, rep)
                rows.append(r)
                print(f"{w:8} {impl:24} repeat {rep}: {r['s_per_50k']:.2f} s/epoch, {r['peak_rss_mb']:.0f} MB", flush=True)
    table = summarize(rows, cores)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"args": vars(args), "cores": cores, "table": table, "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    out.with_suffix(".md").write_text(markdown(table, args, cores))
    print(markdown(table, args, cores))


if __name__ == "__main__":
    main()
