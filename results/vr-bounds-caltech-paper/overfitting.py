"""vr-bounds caltech-paper's VAE and IWAE (K = 5): test log p(x) at best.pt (the best validation ELBO: early
stopping) and at last.pt on the training images (how far the model overfits).

    python results/vr-bounds-caltech-paper/overfitting.py [OUT.json] [RUNS]

RUNS: the study's run directories (``--out``/runs of `vaelab reproduce vr-bounds --budget caltech-paper`;
results/*/runs is not committed).
"""

import json
import sys
import time

import torch

from vaelab.data import load_data
from vaelab.evaluation import evaluate_model
from vaelab.train import load_run

torch.set_num_threads(1)
OUT = sys.argv[1] if len(sys.argv) > 1 else "overfitting.json"
RUNS = sys.argv[2] if len(sys.argv) > 2 else "/work/runs/vr-caltech/runs"
out = {}
for n in ("vae_k5", "iwae_k5"):
    run = f"{RUNS}/caltech-silhouettes_{n}"
    cfg, _, _ = load_run(run, "last", load_data_too=False)
    data = load_data(cfg.data, "bernoulli")
    for which, split in (("best", "test"), ("last", "train")):
        t0 = time.perf_counter()
        _, model, _ = load_run(run, which, data=data)
        ev = evaluate_model(model, data.test if split == "test" else data.train, k=5000, iwae_k=64)
        row = {k: ev[k] for k in ("log_px", "log_px_se", "elbo", "n")}
        out[f"{n}/{which}/{split}"] = row | {"seconds": time.perf_counter() - t0}
        print(n, which, split, out[f"{n}/{which}/{split}"], flush=True)
with open(OUT, "w") as f:
    json.dump(out, f, indent=2)
