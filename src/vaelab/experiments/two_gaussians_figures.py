"""Figures of the two-Gaussian study (seed 000, Figures 1-4, plus the VampPrior)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..plotting import plt
from ..train import load_run

COLORS = np.array(["C0", "C1"])


def draw_all(out: Path, runs: Path, data, variants: dict, labels: dict) -> None:
    x, y = data.train, data.train_labels
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(x[:, 0], x[:, 1], s=2, c=COLORS[y.numpy()])
    ax.set_title("Data X: two Gaussians (colour = true component)")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "data.png", dpi=110)
    plt.close(fig)
    for name in variants:
        _, model, _ = load_run(runs / name, "last", data=data)
        draw_variant(model, data, labels[name], out / f"{name}.png")


@torch.no_grad()
def draw_variant(model, data, title: str, path: Path, n_gen: int = 1000, seed: int = 0) -> None:
    torch.manual_seed(seed)
    x, y = data.test, data.test_labels.numpy()
    c = COLORS[y]
    q = model.posterior(x)  # diagonal Gaussian, batch (N,)
    mean, logvar = q.base_dist.loc, 2 * q.base_dist.scale.log()
    recon = model.reconstruct(x)
    gen_mean = model.sample(n_gen, mean=True)
    gen_x = model.sample(n_gen, mean=False)
    fig, axes = plt.subplots(2, 3, figsize=(16, 10))
    (a, b, g), (d, e, f) = axes

    def data_bg(ax):
        ax.scatter(x[:, 0], x[:, 1], s=2, c="lightgray", label="test data")

    data_bg(a)
    a.scatter(recon[:, 0], recon[:, 1], s=2, c=c)
    a.set_title("reconstructions E[x | z = mu(x)] (colour = true component)")
    data_bg(b)
    b.scatter(gen_mean[:, 0], gen_mean[:, 1], s=3, c="C3", label="decoder mean")
    b.set_title(f"{n_gen} generations: z ~ p(z), decoder mean")
    b.legend(loc="upper left", markerscale=4)
    data_bg(g)
    g.scatter(gen_x[:, 0], gen_x[:, 1], s=3, c="C3", label="x ~ p(x|z)")
    g.set_title(f"{n_gen} generations with decoder noise, x ~ p(x)")
    g.legend(loc="upper left", markerscale=4)
    for ax in (a, b, g):
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
    d.scatter(mean[:, 0], mean[:, 1], s=2, c=c)
    d.set_title("latent means mu(x) of q(z|x)")
    d.set_xlabel("z[0]")
    d.set_ylabel("z[1]")
    e.scatter(logvar[:, 0], logvar[:, 1], s=2, c=c)
    e.set_title("latent log-variances log sigma^2(x)")
    e.set_xlabel("log sigma^2[0]")
    e.set_ylabel("log sigma^2[1]")
    # prior density on a grid, with samples of the aggregate posterior q(z) = mean_x q(z|x)
    zq = model.posterior(x).sample()  # (N, 2)
    lo = torch.minimum(zq.min(0).values, torch.tensor([-3.0, -3.0])) - 0.5
    hi = torch.maximum(zq.max(0).values, torch.tensor([3.0, 3.0])) + 0.5
    g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], 200), torch.linspace(lo[1], hi[1], 200), indexing="xy")
    grid = torch.stack([g0, g1], dim=-1)  # (200, 200, 2)
    log_dens = model.prior.log_prob(grid.reshape(-1, 2)).reshape(200, 200)
    f.scatter(zq[:, 0], zq[:, 1], s=1, c=c, alpha=0.25)
    # log-density contour lines, 1 nat apart below the peak: every mode of the prior is visible,
    # whatever its height, on top of the aggregate posterior's samples
    top = float(log_dens.max())
    cs = f.contour(
        g0, g1, log_dens, levels=[top - d for d in (8, 6, 4, 3, 2, 1, 0.25)], colors="k", linewidths=1.2, linestyles="solid"
    )
    f.clabel(cs, fmt=lambda v: f"{v - top:+.0f}", fontsize=7)
    f.set_title("log p(z) contours (nats below peak)\nover aggregate-posterior samples", fontsize=11)
    f.set_xlabel("z[0]")
    f.set_ylabel("z[1]")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
