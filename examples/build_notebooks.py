"""Write and execute the example notebooks (examples/*.ipynb, outputs included, rendered in the docs).

    VAELAB_DATA=../shared/data python examples/build_notebooks.py [NAME ...]

Each runs in a scratch directory in at most ~3 minutes on a 2-core CPU; tests/test_notebooks.py
executes them again in CI. Edit the cells here, not in the .ipynb files.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent
M, C = "markdown", "code"

YOUR_DATA = [
    (
        M,
        """# Your own data and networks, end to end

Train a VAE on an array of your own, with encoder and decoder written as plain `nn.Module`s, then
evaluate it (importance-sampled log-likelihood), sample from it and look at its latent space.
The scikit-learn digits stand in for "your data": 1,797 images of 8x8 pixels in [0, 1].""",
    ),
    (
        C,
        """import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import vaelab
from vaelab.distributions import BernoulliLikelihood, GaussianLatent

digits = load_digits()
np.savez("my_data.npz", x=(digits.images / 16.0).astype(np.float32)[:, None], y=digits.target)  # (N, 1, 8, 8), labels
cfg = vaelab.RunConfig().override({"data.kind": "array", "data.path": "my_data.npz", "model.likelihood": "bernoulli"})
data = vaelab.load_data(cfg.data, "bernoulli")  # split 70/10/20 with data.seed; dynamic binarization of [0, 1] pixels
print(data.x_shape, data.train.shape[0], data.valid.shape[0], data.test.shape[0], data.info["binarization"])""",
    ),
    (
        M,
        """Any network works if the encoder maps x to the latent family's parameters (here 2 x 2 numbers:
mean and log-variance of a 2-d Gaussian q(z|x)) and the decoder maps z to the likelihood's
parameters (Bernoulli logits of the 8x8 image). A wrong width is named on the first batch.""",
    ),
    (
        C,
        """torch.manual_seed(0)
encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.Softplus(), nn.Linear(256, 2 * 2))
decoder = nn.Sequential(nn.Linear(2, 256), nn.Softplus(), nn.Linear(256, 64), nn.Unflatten(1, (1, 8, 8)))
model = vaelab.VAE(encoder, decoder, latent=GaussianLatent(2), likelihood=BernoulliLikelihood((1, 8, 8)))
cfg = cfg.override({"train.epochs": 60, "train.objective": "iwae", "train.n_samples": 5, "train.batch_size": 50})
result = vaelab.fit(cfg, "runs/digits", model=model, data=data, quiet=True)
print(f"{result.seconds:.0f} s, best validation ELBO {result.best_valid_elbo:.2f} nats")""",
    ),
    (
        C,
        """import matplotlib.pyplot as plt

epochs = [r["epoch"] for r in result.history]
plt.figure(figsize=(5, 3))
plt.plot(epochs, [r["train_bound"] for r in result.history], label="train IWAE-5 bound")
plt.plot(epochs, [r["valid_elbo"] for r in result.history], label="validation ELBO")
plt.xlabel("epoch"); plt.ylabel("nats per image"); plt.legend(); plt.show()""",
    ),
    (
        C,
        """ll = vaelab.importance_sampled_log_likelihood(result.model, data.test, k=2000)
print(f"test log p(x) = {ll.mean:.2f} ± {ll.stderr:.2f} nats (IS, K={ll.k}); "
      f"ELBO {ll.elbo_mean:.2f}, IWAE-{ll.iwae_k} {ll.iwae_mean:.2f}")""",
    ),
    (
        C,
        """torch.manual_seed(1)
x = result.model.sample(40)  # E[x | z], z ~ p(z): (40, 1, 8, 8) pixel probabilities
fig, axes = plt.subplots(4, 10, figsize=(8, 3.4))
for ax, img in zip(axes.flat, x):
    ax.imshow(img[0], cmap="gray_r"); ax.axis("off")
plt.show()""",
    ),
    (
        C,
        """mean = result.model.posterior_means(data.test)[0].detach()  # (N, 2): E_q[z | x]
plt.figure(figsize=(4.5, 4))
plt.scatter(mean[:, 0], mean[:, 1], c=data.test_labels, cmap="tab10", s=8)
plt.colorbar(label="digit"); plt.xlabel("z1"); plt.ylabel("z2"); plt.title("test-set posterior means"); plt.show()""",
    ),
    (
        C,
        """_, same, _ = vaelab.load_run("runs/digits", "last", model=model, data=data)  # a hand-built model: pass it back
print("reloaded, same estimate:", vaelab.importance_sampled_log_likelihood(same, data.test, k=2000).mean == ll.mean)""",
    ),
]

DISCRETE = [
    (
        M,
        """# Discrete latents: gradient estimators side by side

A sigmoid belief net with 32 binary latents on the binarized 8x8 digits, trained with several
score-function estimators and the DisARM estimator for the same budget. For each: the test bounds
after training and the variance of the encoder's gradient at the trained parameters (100 repeated
estimates on one fixed batch; in the bound's units). Lower variance at equal cost is what the newer
estimators buy.""",
    ),
    (
        C,
        """import time

import torch

import vaelab
from vaelab.evaluation.grad_variance import gradient_variance

base = vaelab.RunConfig().override({
    "data.kind": "digits", "model.latent": {"kind": "bernoulli", "dim": 32}, "model.prior": "bernoulli",
    "model.likelihood": "bernoulli", "model.encoder": {"kind": "mlp", "hidden": [128]},
    "train.epochs": 25, "train.batch_size": 50, "train.lr": 3e-3, "train.n_samples": 2,
})
runs = {"reinforce": {}, "reinforce_ema": {}, "rloo": {}, "vimco": {"train.objective": "iwae"}, "disarm": {}}
rows = []
for name, extra in runs.items():
    cfg = base.override({"train.estimator": name, **extra})
    t0 = time.perf_counter()
    res = vaelab.fit(cfg, f"runs/{name}", quiet=True, tensorboard=False)
    x = res.data.valid[:100]
    var = gradient_variance(res.model, x, name, cfg.train.objective.kind, n_samples=2, draws=100)["total"]
    ll = vaelab.importance_sampled_log_likelihood(res.model, res.data.test, k=1000)
    rows.append((name, cfg.train.objective.kind, ll.elbo_mean, ll.mean, ll.stderr, var, time.perf_counter() - t0))""",
    ),
    (
        C,
        """head = ("estimator", "trained on", "test ELBO", "log p(x)", "± s.e.", "grad var", "time s")
print("{:>14} {:>10} {:>10} {:>9} {:>6} {:>10} {:>7}".format(*head))
for name, obj, elbo, lp, se, var, sec in rows:
    print(f"{name:>14} {obj:>10} {elbo:10.2f} {lp:9.2f} {se:6.2f} {var:10.3g} {sec:7.1f}")""",
    ),
    (
        C,
        """import matplotlib.pyplot as plt

fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
names = [r[0] for r in rows]
a.bar(names, [r[3] for r in rows], yerr=[r[4] for r in rows]); a.set_ylim(min(r[3] for r in rows) - 3, None)
a.set_title("test log p(x) (IS, K=1000), nats"); a.tick_params(axis="x", rotation=30)
b.bar(names, [r[5] for r in rows]); b.set_yscale("log"); b.set_title("encoder gradient variance")
b.tick_params(axis="x", rotation=30); plt.tight_layout(); plt.show()""",
    ),
    (
        M,
        """`vaelab reproduce discrete-mnist` runs the same comparison on statically binarized MNIST
with the published setups; docs/estimators.md says which estimator serves which model.""",
    ),
]

CLASSICAL = [
    (
        M,
        """# Classical VI next to scikit-learn

`vaelab.vi` fits mixtures by coordinate-ascent VI (CAVI), stochastic VI (SVI, natural-gradient steps
on mini-batches) and EM, with scikit-learn's interface and conventions, in PyTorch. Here the
Bayesian Gaussian mixture and EM are set beside scikit-learn's own on the same data and start.""",
    ),
    (
        C,
        """import time

import numpy as np
from sklearn import mixture
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from vaelab.vi import BayesianGaussianMixture, GaussianMixture

X, labels = make_blobs(n_samples=3000, centers=4, cluster_std=[0.6, 1.0, 0.8, 1.4], random_state=0)""",
    ),
    (
        C,
        """def timed(est):
    t0 = time.perf_counter()
    est.fit(X)
    return est, time.perf_counter() - t0

ours, t_ours = timed(BayesianGaussianMixture(4, max_iter=500, tol=1e-8, verbose=1))
sk, t_sk = timed(mixture.BayesianGaussianMixture(n_components=4, max_iter=500, tol=1e-8, random_state=0))
print(f"vaelab CAVI: ELBO {ours.elbo_[-1] / len(X):.4f} nats/point after {ours.n_iter_} sweeps, {t_ours:.2f} s")
print(f"sklearn    : converged after {sk.n_iter_} sweeps, {t_sk:.2f} s (its lower_bound_ omits constants)")
ari = adjusted_rand_score(sk.predict(X), ours.predict(X))
print(f"agreement of the two clusterings (adjusted Rand index): {ari:.4f}")
print("mixture weights, vaelab :", np.round(np.sort(ours.weights_), 3))
print("mixture weights, sklearn:", np.round(np.sort(sk.weights_), 3))""",
    ),
    (
        C,
        """svi, t_svi = timed(BayesianGaussianMixture(4, algorithm="svi", batch_size=200, max_iter=50, tau=1.0, kappa=0.7))
print(f"SVI: ELBO {svi.elbo_[-1] / len(X):.4f} nats/point after {svi.n_iter_} epochs, {t_svi:.2f} s")
em, t_em = timed(GaussianMixture(4, max_iter=500, tol=1e-8))
skem, t_skem = timed(mixture.GaussianMixture(4, max_iter=500, tol=1e-8, random_state=0))
print(f"EM: mean log-likelihood {em.score(X):.4f} (vaelab) vs {skem.score(X):.4f} (sklearn)")
print(f"    {t_em:.2f} s vs {t_skem:.2f} s")""",
    ),
    (
        C,
        """import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
for ax, (name, est) in zip(axes, [("vaelab CAVI", ours), ("vaelab SVI", svi), ("vaelab EM", em)]):
    ax.scatter(X[:, 0], X[:, 1], c=est.predict(X), s=3, cmap="tab10"); ax.set_title(name)
plt.tight_layout(); plt.show()
plt.figure(figsize=(5, 3))
plt.plot(np.array(ours.elbo_) / len(X), label="CAVI (per sweep)")
plt.plot(np.array(svi.elbo_) / len(X), label="SVI (per epoch)")
plt.xlabel("iteration"); plt.ylabel("ELBO, nats per point"); plt.legend(); plt.show()""",
    ),
    (
        M,
        """`vaelab reproduce cavi-gmm` measures the agreement with scikit-learn from identical starts
and the timing as the data grows.""",
    ),
]

SENTENCES = [
    (
        M,
        """# A sentence VAE: samples and homotopies

Bowman et al. (2016)'s LSTM VAE on a corpus of your own (here the 13,317 sentences of at most 15 words
of the Penn Treebank's training split, written to a text file, one sentence per line), with KL
annealing, word dropout and free bits (at least 0.25 nats per latent dimension count in the gradient,
so the decoder cannot ignore the code: without them a run this short collapses to KL = 0). Two minutes
of training: sentences are rough, but the code already organizes them.""",
    ),
    (
        C,
        """import os
from pathlib import Path

import torch

import vaelab
from vaelab.data.text import Vocabulary
from vaelab.text import homotopy, sample_prior

lines = (Path(os.environ["VAELAB_DATA"]) / "ptb" / "ptb.train.txt").read_text().splitlines()
short = [s.strip() for s in lines if 0 < len(s.split()) <= 15]  # 13,317 sentences
Path("corpus.txt").write_text("\\n".join(short) + "\\n")
cfg = vaelab.RunConfig().override({
    "data.kind": "text", "data.path": "corpus.txt", "data.max_vocab": 5000,
    "model.encoder": {"kind": "lstm", "embed_dim": 128, "hidden": 128},
    "model.decoder": {"kind": "lstm", "embed_dim": 128, "hidden": 128, "word_dropout": 0.3},
    "model.latent.dim": 16, "model.likelihood": "categorical",
    "train.epochs": 8, "train.batch_size": 32, "train.kl_warmup_steps": 2000, "train.free_bits": 0.25,
    "train.diagnostics": False,
})
torch.manual_seed(0)
result = vaelab.fit(cfg, "runs/sentences", quiet=True, tensorboard=False)
last = result.history[-1]
print(f"{result.seconds:.0f} s; validation ELBO {last['valid_elbo']:.1f} nats per sentence, KL {last['train_kl']:.2f}")""",
    ),
    (
        C,
        """vocab = Vocabulary(tuple(result.model.spec["vocab"]))
torch.manual_seed(3)
for ids in sample_prior(result.model, 8, "sample", temperature=0.7, max_length=20):
    print("-", vocab.decode(ids))""",
    ),
    (
        C,
        """test = result.data.test
a, b = test[3], test[11]
print("from:", vocab.decode([i for i in a.tolist() if i > 2]))
print("to:  ", vocab.decode([i for i in b.tolist() if i > 2]))
for ids in homotopy(result.model, a, b, steps=5, max_length=20):
    print("  ->", vocab.decode(ids))""",
    ),
    (
        M,
        """`vaelab reproduce ptb-vae` trains on the whole Penn Treebank with the paper's sizes and sets the
perplexity beside an LSTM language model's; docs/text.md describes every option used above.""",
    ),
]

NOTEBOOKS = {
    "01_your_data_and_networks": YOUR_DATA,
    "02_discrete_latents": DISCRETE,
    "03_classical_vi_vs_sklearn": CLASSICAL,
    "04_sentence_vae": SENTENCES,
}


def notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == M else nbformat.v4.new_code_cell(s) for kind, s in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, cwd: str, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell in ``cwd`` (raises nbclient's CellExecutionError on the first failing cell)."""
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
    return nb


if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            nb = execute(notebook(NOTEBOOKS[name]), d)
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"{name}: {time.perf_counter() - t0:.0f} s")
