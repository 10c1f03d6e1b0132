"""vaelab's `train_step` against the hand-written step, interleaved in one process: the overhead per step.

The fresh-process epochs of `bench_workloads.py` include each process's warm-up and vary 10-30 % run to
run on a shared 2-core machine; here both steps run in one process on the same batches, in blocks of
--block steps, alternating which goes first, for --rounds rounds, and the median of the per-round
ratios is reported (resolution about 1 % on the VAE). This is the measurement behind the speed
changes recorded in docs/design.md ("Speed").

    VAELAB_DATA=../shared/data python benchmarks/bench_step_ab.py [--k 1 5 50] [--rounds 40] [--compile]
        [--optimizer-impl auto|for-loop]

vaelab's arm gets its optimizer from `vaelab.train.optim.build_optimizer`, as `fit` does: with the
default --optimizer-impl auto that is torch's fused Adam, while the hand-written step keeps
`torch.optim.Adam`'s default for-loop; --optimizer-impl for-loop gives both the same optimizer and
measures the step's own overhead.

With --compile, vaelab's step runs `compute_bound` (model terms, estimator, statistics) through
``torch.compile`` (an experiment: vaelab has no such option yet; the backward pass and the optimizer
stay eager in both arms).

Writes benchmarks/results/step_ab.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import impls  # noqa: E402


def steps(k: int, compiled: bool = False, impl: str = "auto"):
    """(hand-written step, vaelab step), each a function of a (B, 1, 28, 28) binary batch."""
    from vaelab.data import Batch
    from vaelab.estimators import ESTIMATORS
    from vaelab.models import build_model
    from vaelab.objectives import OBJECTIVES
    from vaelab.train import step as step_module
    from vaelab.train import train_step
    from vaelab.train.optim import build_optimizer

    eager_bound = getattr(step_module.compute_bound, "_torchdynamo_orig_callable", step_module.compute_bound)
    # train_step looks compute_bound up in its module at call time; a fresh compile per K
    step_module.compute_bound = torch.compile(eager_bound, dynamic=False) if compiled else eager_bound

    torch.manual_seed(0)
    enc, dec = impls._mlp_pair()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)

    def hand(xb):
        impls.hand_written_step(enc, dec, opt, xb.reshape(xb.shape[0], -1), k)  # (B, 784)

    model = build_model(impls._model_cfg(k).model, (1, 28, 28))
    opt2, groups = build_optimizer("adam", model, 1e-3, impl=impl)
    objective, estimator = OBJECTIVES.build("elbo" if k == 1 else "iwae"), ESTIMATORS.build("reparam")
    kl = "analytic" if k == 1 else "mc"

    def ours(xb):
        train_step(model, Batch(xb, None), opt2, objective, estimator, k, kl, groups=groups)

    return hand, ours


def ab(k: int, x, rounds: int, block: int, compiled: bool = False, impl: str = "auto") -> dict:
    hand, ours = steps(k, compiled, impl)
    g = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {"hand": [], "vaelab": []}
    for r in range(rounds + 2):  # the first two rounds warm up
        batches = [torch.bernoulli(x[torch.randint(0, x.shape[0], (100,), generator=g)], generator=g) for _ in range(block)]
        for name, fn in (("hand", hand), ("vaelab", ours)) if r % 2 == 0 else (("vaelab", ours), ("hand", hand)):
            t = time.perf_counter()
            for xb in batches:
                fn(xb)
            if r >= 2:
                times[name].append((time.perf_counter() - t) / block)
    ratios = [v / h for h, v in zip(times["hand"], times["vaelab"])]
    q = statistics.quantiles(ratios, n=4)
    return {
        "k": k,
        "hand_ms": 1e3 * statistics.median(times["hand"]),
        "vaelab_ms": 1e3 * statistics.median(times["vaelab"]),
        "median_ratio": statistics.median(ratios),
        "ratio_iqr": [q[0], q[2]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 5, 50])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="vaelab's compute_bound through torch.compile")
    ap.add_argument("--optimizer-impl", default="auto", choices=["auto", "fused", "foreach", "for-loop"])
    args = ap.parse_args()
    from vaelab.data import load_mnist

    torch.set_flush_denormal(True)
    x = load_mnist(None).train[:5000].clone()
    rows = []
    for k in args.k:
        rounds = args.rounds if k < 50 else max(6, args.rounds // 5)  # an IWAE-50 step is 15x a VAE step
        t0 = time.perf_counter()
        rows.append(r := ab(k, x, rounds, args.block, args.compile, args.optimizer_impl))
        r["wall_s"] = time.perf_counter() - t0
        print(
            f"K={k:3}: hand-written {r['hand_ms']:.2f} ms/step, vaelab train_step {r['vaelab_ms']:.2f} ms/step, "
            f"median ratio {r['median_ratio']:.3f} (IQR {r['ratio_iqr'][0]:.3f}-{r['ratio_iqr'][1]:.3f})",
            flush=True,
        )
    impl = "" if args.optimizer_impl == "auto" else f"_{args.optimizer_impl}"
    name = "step_ab" + ("_compiled" if args.compile else "") + impl
    out = HERE / "results" / f"{name}.json"
    out.write_text(json.dumps({"args": vars(args), "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
