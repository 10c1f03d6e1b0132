"""Caltech at the caltech-paper protocol: N(0, I) trained with the one-sample Monte Carlo KL (as the VampPrior
authors' code trains both priors) instead of the closed form, paired with the closed-form N(0, I) and the
VampPrior of the caltech-ablations run on the same test images.

    python results/prior-benchmarks-caltech-ablations/kl_mc.py [OUT_DIR] [ABLATION_RUNS]
"""

import json
import sys
from pathlib import Path

import numpy as np

from vaelab.experiments import prior_benchmarks as pb
from vaelab.experiments._study import Job, run_jobs

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/runs/pb-klmc")
ablations = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/runs/pb-ablations/runs")
b = pb.BUDGETS["caltech-ablations"]
over = {"data.kind": "caltech-silhouettes", "data.binarize": "auto", "model.prior": "standard_normal", "train.kl": "mc"}
job = Job("mc-kl_standard_normal", "N(0, I), Monte Carlo KL", over)
res, wall = run_jobs([job], b, None, out, print, base=pb.base_config)
mc = np.load(out / "runs/mc-kl_standard_normal/test_log_px.npy")
rows = {}
for other in ("baseline_standard_normal", "baseline_vamp"):
    d = np.load(ablations / other / "test_log_px.npy") - mc
    rows[other + " - mc-kl_standard_normal"] = (float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))))
r = res["mc-kl_standard_normal"]
keys = ("log_px", "log_px_se", "elbo", "epochs_trained", "best_epoch", "train_seconds")
summary = {k: r[k] for k in keys} | {"paired": rows, "wall_seconds": wall}
print(json.dumps(summary, indent=2))
with open(out / "kl_mc.json", "w") as f:
    json.dump(summary, f, indent=2)
