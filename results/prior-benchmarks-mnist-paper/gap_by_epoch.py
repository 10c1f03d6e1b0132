"""The VampPrior's validation ELBO minus N(0, I)'s, epoch by epoch, from the two runs' metrics.csv: whether the
VampPrior is closing the gap when the budget ends, and how fast (a least-squares line over the last 40 epochs).

    python results/prior-benchmarks-mnist-paper/gap_by_epoch.py [RUNS] > gap_by_epoch.md

RUNS: the study's run directories (``--out``/runs; results/*/runs is not committed).
"""

import csv
import sys

RUNS = sys.argv[1] if len(sys.argv) > 1 else "/work/runs/pb-mnist/runs"


def valid_elbo(name: str) -> dict[int, float]:
    with open(f"{RUNS}/static-mnist_{name}/metrics.csv") as f:
        return {int(r["epoch"]): float(r["valid_elbo"]) for r in csv.DictReader(f)}


normal, vamp = valid_elbo("standard_normal"), valid_elbo("vamp")
epochs = sorted(set(normal) & set(vamp))
gap = {e: vamp[e] - normal[e] for e in epochs}
print("| epoch | N(0, I) | VampPrior | VampPrior − N(0, I) |\n|---:|---:|---:|---:|")
for e in epochs:
    if e % 10 == 0 or e == epochs[-1]:
        print(f"| {e} | {normal[e]:.2f} | {vamp[e]:.2f} | {gap[e]:+.2f} |")
last = epochs[-40:]
mx, my = sum(last) / len(last), sum(gap[e] for e in last) / len(last)
slope = sum((e - mx) * (gap[e] - my) for e in last) / sum((e - mx) ** 2 for e in last)
low = min(epochs, key=lambda e: gap[e])
end = my + slope * (last[-1] - mx)  # the fitted gap at the last epoch
closes = last[-1] - end / slope if slope > 0 else float("nan")
print(
    f"\nLargest deficit {gap[low]:+.2f} nats at epoch {low}; over epochs {last[0]}-{last[-1]} the gap changes by "
    f"{slope:+.4f} nats per epoch (least squares), so at that rate it closes near epoch {closes:.0f}."
)
