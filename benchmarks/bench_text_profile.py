"""Where a PTB text-VAE step spends its time (issue 41: ptb-vae took ~0.55 s a step of 32 sentences).

The ptb-vae study's model (LSTM encoder and decoder, 353-d embeddings, 191 units, 32 latent units,
a 10k-word softmax; Adam 1e-3, gradient clipping at 5, word dropout 0.3, free bits 0.1, batch 32
length-bucketed), ``--steps`` training steps on one thread under ``torch.profiler``: the time by
operator, against the step's FLOPs counted from the shapes (LSTM gates, embedding, output layer),
and the step time with the output layer alone (the softmax over the vocabulary) timed apart.

    VAELAB_DATA=../shared/data python benchmarks/bench_text_profile.py --steps 30

writes ``benchmarks/results/text_profile.json`` and ``text_profile.md``.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results"


def flops(lengths: torch.Tensor, vocab: int, embed: int = 353, hidden: int = 191, latent: int = 32) -> float:
    """Matrix-product FLOPs of one training step (forward + backward ~ 3x forward) for sentences of
    these lengths (tokens incl. <eos>): encoder LSTM, decoder LSTM, the output layer over the vocabulary."""
    tokens = float(lengths.sum())
    lstm = 2 * 4 * hidden * (embed + hidden + latent)  # per token per layer: the four gates (decoder reads z too)
    out = 2 * hidden * vocab  # per token: logits
    return 3 * tokens * (2 * lstm + out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--data-dir", default=None)
    a = p.parse_args()
    from vaelab.data import load_data
    from vaelab.experiments.ptb_vae import _SMALL, vae_config
    from vaelab.train.loop import _build

    torch.set_num_threads(1)
    cfg = vae_config(_SMALL, a.data_dir, anneal=True, wd=0.3, fb=0.1, threads=1)
    data = load_data(cfg.data, "categorical")
    loop, _, _ = _build(cfg, Path("/nonexistent-run"), None, data, None, False, torch.device("cpu"), _dist())
    vocab = data.info["vocab_size"]
    batches = loop.label_mode.batches(loop, torch.Generator().manual_seed(0))
    from vaelab.train.bound import BoundOptions
    from vaelab.train.step import train_step

    t = cfg.train
    opts = BoundOptions(t.n_samples, loop.kl, t.beta, t.free_bits, None, None)
    step = lambda b: train_step(loop.model, b, loop.optimizer, loop.objective, loop.estimator,  # noqa: E731
                                grad_clip=t.grad_clip, groups=loop.groups, bound=loop.bound, options=opts)  # fmt: skip
    for _ in range(3):
        step(next(batches))
    todo = [next(batches) for _ in range(a.steps)]
    n_flops = sum(flops(b.mask.sum(1), vocab) for b in todo)
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in todo:
            step(b)
    seconds = time.perf_counter() - t0
    by_op: dict[str, float] = collections.Counter()
    for e in prof.key_averages():
        if e.key.startswith("aten::") and e.self_cpu_time_total > 0:
            by_op[e.key] += e.self_cpu_time_total / 1e6
    total_self = sum(by_op.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:15]
    t0 = time.perf_counter()
    for b in todo:  # the same steps without the profiler: the step time reported
        step(b)
    plain = (time.perf_counter() - t0) / a.steps
    gemm = _gemm_rate()
    row = {"steps": a.steps, "s_per_step": plain, "s_per_step_profiled": seconds / a.steps,
           "gflop_per_step": n_flops / a.steps / 1e9, "gemm_gflops": gemm,
           "flop_bound_s_per_step": n_flops / a.steps / (gemm * 1e9),
           "tokens_per_step": float(sum(b.mask.sum() for b in todo)) / a.steps, "vocab": vocab,
           "by_op_share": {k: v / total_self for k, v in top}}  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "text_profile.json").write_text(json.dumps(row, indent=1) + "\n")
    md = _markdown(row, a)
    (OUT / "text_profile.md").write_text(md)
    print(md)


def _dist():
    from vaelab.distributed import Dist

    return Dist()


def _gemm_rate() -> float:
    """GFLOP/s of this thread for the output layer's shape (tokens x 191) @ (191 x vocab)."""
    a, w = torch.randn(800, 191), torch.randn(191, 10000)
    for _ in range(3):
        a @ w
    t0 = time.perf_counter()
    for _ in range(20):
        a @ w
    return 20 * 2 * 800 * 191 * 10000 / (time.perf_counter() - t0) / 1e9


def _markdown(r: dict, a) -> str:
    lines = [
        "# Where a PTB text-VAE training step spends its time",
        "",
        f"`python benchmarks/bench_text_profile.py --steps {a.steps}`: the ptb-vae study's VAE + annealing + word "
        "dropout + free bits, one thread, batches of 32 length-bucketed sentences.",
        "",
        f"- step: **{r['s_per_step'] * 1e3:.0f} ms** ({r['tokens_per_step']:.0f} tokens, vocabulary {r['vocab']:,})",
        f"- matrix-product work: {r['gflop_per_step']:.2f} GFLOP per step; at this thread's GEMM rate for the output "
        f"layer's shape ({r['gemm_gflops']:.0f} GFLOP/s) that is {r['flop_bound_s_per_step'] * 1e3:.0f} ms: the step "
        f"runs at {r['flop_bound_s_per_step'] / r['s_per_step']:.0%} of the GEMM bound",
        "",
        "| operator (self time) | share of the step |",
        "|---|---:|",
    ]
    lines += [f"| `{k}` | {v:.1%} |" for k, v in r["by_op_share"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
