"""How close vaelab's step is to the hardware: FLOPs per epoch, the machine's GEMM rate for the same
shapes, and the step against a hand-written loop that uses the same fused Adam.

Workloads: the IWAE paper's MNIST model (784-200-200-50 tanh MLP, Bernoulli decoder, batch 100):
VAE (K = 1), IWAE-5, IWAE-50 training, and IS evaluation with K = 5,000 (forward passes only).

- **FLOPs** are counted from the layer shapes: a Linear(n_in, n_out) on R rows is 2 R n_in n_out
  forward; backward is a gradient for the weight (2 R n_in n_out) and for the input (the same; none for
  the first encoder layer, whose input is x). Elementwise work (tanh, the likelihood, Adam) is not
  counted: it is memory-bound and small beside the matrix products at K >= 5.
- **GEMM bound**: the same sequence of bare ``torch.addmm`` / ``torch.mm`` calls a step makes (forward,
  then both backward products), with the step's shapes and nothing else, timed in a loop. Its time is
  what the step would take if everything but the matrix products were free; FLOPs / that time is the
  sustained GEMM rate of this machine for these shapes.
- **Steps**, interleaved in one process on the same batches, in blocks of --block steps, alternating
  order, --rounds rounds (medians): vaelab's ``train_step`` with the optimizer ``fit`` builds (fused
  Adam), inside one ``denormals_flushed`` block as ``fit`` runs it, the same step with its bound through
  ``torch.compile`` (``train.compile``; compiled in the untimed first round), on a GPU also the step
  captured as a CUDA graph (``train.cuda_graphs``), all from the same starting weights, the hand-written
  step with ``torch.optim.Adam(fused=True)``, and
  the hand-written step with torch's default Adam, as people write it. IS: vaelab's
  ``importance_sampled_log_likelihood`` and the hand-written IS loop of ``impls.py`` on --points test images.
- **Contention**: CPU time other processes used during each arm (/proc/stat), as a share of the
  machine; a round is counted as disturbed above 10 %.

    VAELAB_DATA=../shared/data python benchmarks/bench_limit.py [--rounds 8] [--block 20] [--device cuda]

Writes benchmarks/results/limit[_DEVICE].json and limit[_DEVICE].md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import impls  # noqa: E402

ENC = [(784, 200), (200, 200), (200, 100)]  # (n_in, n_out) per Linear
DEC = [(50, 200), (200, 200), (200, 784)]
B, N_TRAIN = 100, 50_000


def flops_per_step(k: int, train: bool = True) -> float:
    """Matrix-product FLOPs of one step on a batch of B (decoder rows K*B)."""
    total = 0.0
    for rows, layers in ((B, ENC), (k * B, DEC)):
        for i, (n_in, n_out) in enumerate(layers):
            f = 2.0 * rows * n_in * n_out
            total += f
            if train:
                total += f + (f if (layers is DEC or i > 0) else 0.0)  # weight grad + input grad
    return total


def gemm_sequence(k: int, device: torch.device, train: bool = True, chunk: int = 0):
    """A function that runs the step's matrix products with its shapes, nothing else; ``chunk`` > 0
    runs the decoder on that many rows at a time, as the IS evaluator does (K*B rows in all)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    ops = []
    calls = max(1, k * B // chunk) if chunk else 1
    for rows, layers in ((B, ENC), ((chunk if chunk else k * B), DEC)):
        for i, (n_in, n_out) in enumerate(layers):
            x = torch.randn(rows, n_in, generator=g).to(device)
            w = torch.randn(n_out, n_in, generator=g).to(device)
            b = torch.randn(n_out, generator=g).to(device)
            gy = torch.randn(rows, n_out, generator=g).to(device)
            ops.append((x, w, b, gy, layers is DEC or i > 0))

    def run():
        for i, (x, w, b, _, _) in enumerate(ops):
            for _ in range(calls if i >= len(ENC) else 1):
                torch.addmm(b, x, w.t())
        if train:
            for x, w, _, gy, needs_input_grad in reversed(ops):
                torch.mm(gy.t(), x)  # weight gradient (n_out, n_in)
                if needs_input_grad:
                    torch.mm(gy, w)  # input gradient (rows, n_in)

    return run


def _busy_seconds() -> float:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, reps: int) -> tuple[float, float]:
    """(seconds per call, other processes' share of the machine meanwhile)."""
    _sync(device)
    busy0, own0, t0 = _busy_seconds(), _own_seconds(), time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(device)
    wall = time.perf_counter() - t0
    other = max(0.0, _busy_seconds() - busy0 - (_own_seconds() - own0)) / (wall * (os.cpu_count() or 1))
    return wall / reps, other


def training_batches(x: torch.Tensor, device: torch.device, n: int = 8):
    """A function returning the next of ``n`` fixed binarized batches of B images from x, in turn."""
    g = torch.Generator().manual_seed(1)
    batches = [torch.bernoulli(x[torch.randint(0, len(x), (B,), generator=g)], generator=g).to(device) for _ in range(n)]
    it = {"i": 0}

    def batch():
        it["i"] += 1
        return batches[it["i"] % len(batches)]

    return batch


def vaelab_model(k: int, device: torch.device, package: str = "vaelab"):
    """(model, optimizer, groups) as ``fit`` builds them, from seed 0: every vaelab arm gets its own, with the
    same starting weights (``package``: another version imported under another name, bench_versions.py)."""
    from importlib import import_module

    torch.manual_seed(0)
    m = import_module(f"{package}.models").build_model(impls._model_cfg(k).model, (1, 28, 28)).to(device)
    return (m, *import_module(f"{package}.train.optim").build_optimizer("adam", m, 1e-3))


def train_arms(k: int, device: torch.device, x: torch.Tensor) -> dict:
    """{arm: f()} for one step each on a fresh batch drawn from x."""
    from vaelab.data import Batch
    from vaelab.estimators import ESTIMATORS
    from vaelab.objectives import OBJECTIVES
    from vaelab.train import train_step
    from vaelab.train.step import compiled_bound

    batch = training_batches(x, device)
    arms = {}
    model, opt2, groups = vaelab_model(k, device)
    for name, fused in (("hand-written, fused Adam", True), ("hand-written, default Adam", False)):
        enc, dec = (m.to(device) for m in impls._mlp_pair())
        # the same starting weights as vaelab's model: a step's time depends on them (saturated units,
        # the likelihood's logits), so different initializations made the arms differ by ~2 % at equal code
        enc.load_state_dict(model.encoder.state_dict())
        dec.load_state_dict(model.decoder.state_dict())
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, fused=fused or None)
        arms[name] = lambda enc=enc, dec=dec, opt=opt: impls.hand_written_step(
            enc, dec, opt, batch().reshape(B, -1), k, device=device
        )
    objective, estimator = OBJECTIVES.build("elbo" if k == 1 else "iwae"), ESTIMATORS.build("reparam")
    kl = "analytic" if k == 1 else "mc"
    arms["vaelab train_step"] = lambda: train_step(model, Batch(batch(), None), opt2, objective, estimator, k, kl,
                                                   groups=groups)  # fmt: skip
    model_c, opt_c, groups_c = vaelab_model(k, device)  # train.compile: the same step with the bound through torch.compile
    compiled = compiled_bound()
    arms["vaelab, compiled"] = lambda: train_step(model_c, Batch(batch(), None), opt_c, objective, estimator, k, kl,
                                                  groups=groups_c, bound=compiled)  # fmt: skip
    if device.type == "cuda":  # train.cuda_graphs: the same step captured once and replayed
        from vaelab.train.bound import BoundOptions
        from vaelab.train.graphs import GraphedStep

        model3, opt3, groups3 = vaelab_model(k, device)
        graphed, opts = GraphedStep(model3, opt3, objective, estimator, groups3), BoundOptions(k, kl)
        arms["vaelab, CUDA graph"] = lambda: graphed.step(Batch(batch(), None), opts, 1e-3)
    arms["GEMM bound"] = gemm_sequence(k, device)
    return arms


def interleave(arms: dict, device, rounds: int, block: int) -> dict:
    times: dict[str, list[float]] = {a: [] for a in arms}
    other: dict[str, list[float]] = {a: [] for a in arms}
    names = list(arms)
    for r in range(rounds + 1):  # round 0 warms up
        order = names if r % 2 else names[::-1]
        for a in order:
            s, o = timed(arms[a], device, block)
            if r:
                times[a].append(s)
                other[a].append(o)
    return {a: {"s": statistics.median(times[a]), "runs": times[a], "disturbed": sum(o > 0.1 for o in other[a])}
            for a in names}  # fmt: skip


def is_arms(device, x_test: torch.Tensor, points: int) -> dict:
    from vaelab.evaluation import importance_sampled_log_likelihood
    from vaelab.evaluation.loglik import CHUNK_BYTES, CHUNK_BYTES_CUDA
    from vaelab.models import build_model
    from vaelab.numerics import eval_rows

    torch.manual_seed(0)
    model = build_model(impls._model_cfg(1).model, (1, 28, 28)).to(device)
    budget = CHUNK_BYTES_CUDA if device.type == "cuda" else CHUNK_BYTES
    chunk = eval_rows(model, max(64, budget // (4 * (4 * 784 + 64))))  # the evaluator's decoder rows per call
    xb = torch.bernoulli(x_test[:points], generator=torch.Generator().manual_seed(2)).to(device)
    return {
        "vaelab IS": lambda: importance_sampled_log_likelihood(model, xb, k=5000, seed=0),
        "hand-written IS": lambda: impls.hand_written_is(xb, 5000, 0, device=device),
        "GEMM bound": gemm_sequence(5000 * points // B, device, train=False, chunk=chunk),
    }


def ais_flops(points: int, steps: int, chains: int, leapfrog: int = 10) -> float:
    """Matrix-product FLOPs of AIS: per step L + 1 gradients of log p(x, z) in z, each a decoder pass
    on C * points rows and its input gradients (no weight gradients)."""
    rows = chains * points
    per_eval = sum(2.0 * 2.0 * rows * n_in * n_out for n_in, n_out in DEC)
    return steps * (leapfrog + 1) * per_eval


def ais_arms(device, x_test: torch.Tensor, points: int, steps: int, chains: int) -> dict:
    """vaelab's AIS (HMC, L = 10) from the prior on ``points`` images, and its GEMM bound."""
    from vaelab.evaluation import ais_log_likelihood
    from vaelab.models import build_model

    torch.manual_seed(0)
    model = build_model(impls._model_cfg(1).model, (1, 28, 28)).to(device)
    xb = torch.bernoulli(x_test[:points], generator=torch.Generator().manual_seed(2)).to(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    rows = chains * points
    mats = [(torch.randn(rows, n_in, generator=g).to(device), torch.randn(n_out, n_in, generator=g).to(device),
             torch.randn(n_out, generator=g).to(device), torch.randn(rows, n_out, generator=g).to(device))
            for n_in, n_out in DEC]  # fmt: skip

    def bound():
        for _ in range(steps * 11):  # (L + 1) gradient evaluations per step
            for x, w, b, _ in mats:
                torch.addmm(b, x, w.t())
            for _, w, _, gy in reversed(mats):
                torch.mm(gy, w)  # the input gradient only

    return {
        "vaelab AIS": lambda: ais_log_likelihood(model, xb, steps=steps, chains=chains, batch_size=points, seed=0),
        "GEMM bound": bound,
    }


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="*", default=[1, 5, 50], help="training workloads (none: IS only)")
    ap.add_argument("--merge", action="store_true", help="keep the other workloads' rows of an earlier run")
    ap.add_argument("--skip-is", action="store_true", help="training workloads only")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--block", type=int, default=20, help="steps per timed block (IWAE-50: a fifth)")
    ap.add_argument("--points", type=int, default=100, help="test images for IS with K = 5,000 (and AIS)")
    ap.add_argument("--ais-steps", type=int, default=20, help="AIS: T (0: no AIS row), C = --ais-chains, L = 10")
    ap.add_argument("--ais-chains", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    return ap.parse_args()


def main() -> None:
    from vaelab import progress
    from vaelab.data import load_mnist

    args = parse_args()
    device = torch.device(args.device)
    torch.set_flush_denormal(True)
    from vaelab.numerics import denormals_flushed

    data = load_mnist(None)
    x = data.train[:5000].clone()
    rows = []
    # fit runs every step inside one denormals_flushed block (train_step's own is then free): so do these arms
    with progress.quiet(), denormals_flushed():
        for k in args.k:
            res = interleave(train_arms(k, device, x), device, args.rounds, max(2, args.block // (5 if k >= 50 else 1)))
            rows.append(_row("VAE" if k == 1 else f"IWAE-{k}", flops_per_step(k) * N_TRAIN / B, res, N_TRAIN / B))
            print(_line(rows[-1]), flush=True)
        if not args.skip_is:
            res = interleave(is_arms(device, data.test, args.points), device, max(3, args.rounds // 2), 1)
            per_point = 10_000 / args.points  # scaled to the 10,000-image test set
            flops = flops_per_step(5000 * args.points // B, train=False) * per_point
            rows.append(_row("IS K=5000", flops, res, per_point))
            print(_line(rows[-1]), flush=True)
            if args.ais_steps:
                a = (args.points, args.ais_steps, args.ais_chains)
                res = interleave(ais_arms(device, data.test, *a), device, 3, 1)
                rows.append(_row(f"AIS T={a[1]} C={a[2]}", ais_flops(*a) * 10_000 / args.points, res, 10_000 / args.points))
                print(_line(rows[-1]), flush=True)
    if args.merge:
        path = HERE / "results" / f"limit{_suffix(args)}.json"
        new = {r["workload"] for r in rows}
        rows = [r for r in json.loads(path.read_text())["rows"] if r["workload"] not in new] + rows
        order = ["VAE", "IWAE-5", "IWAE-50", "IS K=5000"]
        rows.sort(key=lambda r: order.index(r["workload"]) if r["workload"] in order else len(order))
    write(rows, args)


def _suffix(args) -> str:
    return "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"


#: arms beside vaelab's eager step -> (row key, column name): each is reported against the fused-Adam loop
EXTRA_ARMS = {"vaelab, compiled": ("compiled_vs_fused_loop", "train.compile"),
              "vaelab, CUDA graph": ("graphed_vs_fused_loop", "CUDA graph")}  # fmt: skip


def _row(workload: str, flops: float, res: dict, scale: float) -> dict:
    """Seconds per epoch (training: 50k images; IS: the 10k test images) and the ratios."""
    s = {a: v["s"] * scale for a, v in res.items()}
    ours = s.get("vaelab train_step", s.get("vaelab IS", s.get("vaelab AIS")))
    ref = s.get("hand-written, fused Adam", s.get("hand-written IS"))  # (none for AIS)
    graphed = {key: s[arm] / ref for arm, (key, _) in EXTRA_ARMS.items() if arm in s}
    return {"workload": workload, "tflop": flops / 1e12, "s": s, "gemm_gflops": flops / s["GEMM bound"] / 1e9,
            "vs_fused_loop": ours / ref if ref else None, "vs_gemm_bound": ours / s["GEMM bound"], **graphed,
            "disturbed": {a: v["disturbed"] for a, v in res.items()},
            "runs": {a: v["runs"] for a, v in res.items()}}  # fmt: skip


def _line(r: dict) -> str:
    return (f"{r['workload']}: {r['tflop']:.3f} TFLOP/epoch, GEMM bound {r['s']['GEMM bound']:.2f} s "
            f"({r['gemm_gflops']:.0f} GFLOP/s), "
            + (f"vaelab {r['vs_fused_loop']:.3f}x the fused-Adam loop, " if r["vs_fused_loop"] else "")
            + f"vaelab "
            f"{r['vs_gemm_bound']:.2f}x the GEMM bound; "
            + "".join(f"{name} {r[key]:.3f}x the fused-Adam loop; " for key, name in EXTRA_ARMS.values() if key in r)
            + ", ".join(f"{a} {v:.2f} s" for a, v in r["s"].items()))  # fmt: skip


def write(rows: list[dict], args) -> None:
    dev = _suffix(args)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    commit = git.stdout.strip() or "unknown"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
    if args.device.startswith("cuda"):
        machine += f", {torch.cuda.get_device_name()}"
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "torch": torch.__version__, "machine": machine,
            "args": vars(args)}  # fmt: skip
    (HERE / "results" / f"limit{dev}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    lines = [f"Limit benchmark (`benchmarks/bench_limit.py`), {meta['date']}, commit {commit}, torch {meta['torch']}, "
             f"{meta['machine']}; {args.rounds} interleaved rounds, medians; seconds per epoch (training 50k images, "
             "IS and AIS the 10k test images).", "",
             "| workload | TFLOP / epoch | GEMM bound (s) | GEMM GFLOP/s | vaelab (s) | hand-written, fused Adam (s) | "
             "hand-written, default Adam (s) | vaelab / fused loop | vaelab / GEMM bound | "
             + "".join(f"{name} / fused loop | " for _, name in EXTRA_ARMS.values()) + "disturbed rounds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(EXTRA_ARMS) + "---:|"]  # fmt: skip
    for r in rows:
        s = r["s"]
        ours = s.get("vaelab train_step", s.get("vaelab IS", s.get("vaelab AIS")))
        cells = [s.get("hand-written, fused Adam", s.get("hand-written IS")), s.get("hand-written, default Adam"),
                 r["vs_fused_loop"]]  # fmt: skip
        ref, default, ratio = (f"{v:.2f}" if i < 2 and v is not None else f"{v:.3f}" if v is not None else ""
                               for i, v in enumerate(cells))  # fmt: skip
        extra = "".join(f"{r[key]:.3f} | " if key in r else " | " for key, _ in EXTRA_ARMS.values())
        lines.append(f"| {r['workload']} | {r['tflop']:.3f} | {s['GEMM bound']:.2f} | {r['gemm_gflops']:.0f} | {ours:.2f} | "
                     f"{ref} | {default} | {ratio} | {r['vs_gemm_bound']:.2f} | {extra}"
                     f"{sum(r['disturbed'].values())} |")  # fmt: skip
    (HERE / "results" / f"limit{dev}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
