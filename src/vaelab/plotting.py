"""Figures shared by the CLI and the experiments (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def image_shape(x: torch.Tensor) -> tuple[int, int] | None:
    """(H, W) of a batch of images: (N, C, H, W) with C = 1 or (N, H, W) as stored, or flat (N, D)
    with D a square (784 -> 28x28, 64 -> 8x8); None for other data."""
    if x.dim() >= 3 and math.prod(x.shape[1:-2]) == 1:
        return int(x.shape[-2]), int(x.shape[-1])
    side = int(round(math.sqrt(x.shape[1]))) if x.dim() == 2 else 0
    return (side, side) if x.dim() == 2 and side * side == x.shape[1] and side >= 4 else None


def image_grid(x: torch.Tensor, shape: tuple[int, int], ncol: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile N images of H*W numbers each ((N, H*W), (N, H, W) or (N, 1, H, W)) into one array of
    (rows*(H+gap) - gap, ncol*(W+gap) - gap), the tiles apart by ``gap`` pixels of 1.0 (white in gray)."""
    n = x.shape[0]
    ncol = ncol or int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    h, w = shape
    grid = np.ones((nrow * (h + gap) - gap, ncol * (w + gap) - gap), dtype=np.float32)
    imgs = x.detach().cpu().numpy().reshape(n, h, w)
    for i in range(n):
        r, c = divmod(i, ncol)
        top, left = r * (h + gap), c * (w + gap)
        grid[top : top + h, left : left + w] = imgs[i]
    return grid


def save_samples_figure(x: torch.Tensor, path: str | Path, title: str, reference: torch.Tensor | None = None) -> None:
    """Images as a grid, 2-D points as a scatter (over ``reference`` data if given)."""
    shape = image_shape(x)
    fig, ax = plt.subplots(figsize=(6, 6))
    if shape:
        ax.imshow(image_grid(x, shape), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    else:
        if reference is not None:
            ax.scatter(reference[:, 0], reference[:, 1], s=2, c="lightgray", label="data")
        ax.scatter(x[:, 0].cpu(), x[:, 1].cpu() if x.shape[1] > 1 else np.zeros(len(x)), s=3, c="C3", label="samples")
        ax.legend(loc="best")
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def save_class_grid(model, path: str | Path, title: str, per_class: int = 10) -> None:
    """A labelled model's generations E[x|z, y] as a grid: row y holds ``per_class`` draws z ~ p(z) for class y."""
    c = model.n_classes
    y = torch.arange(c).unsqueeze(1).expand(c, per_class).reshape(-1)  # (C*per_class,) row-major by class
    x = model.sample(c * per_class, y=y.to(next(model.parameters()).device)).cpu()
    shape = image_shape(x)
    if not shape:
        raise ValueError("a class grid needs image data")
    fig, ax = plt.subplots(figsize=(per_class * 0.6 + 0.6, c * 0.6 + 0.6))
    ax.imshow(image_grid(x, shape, ncol=per_class), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([(i + 0.5) * shape[-2] for i in range(c)], [str(i) for i in range(c)])
    ax.set_xticks([])
    ax.set_ylabel("class y")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_metrics_csv(path: str | Path) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                cols.setdefault(k, []).append(float(v) if v not in ("", "None") else float("nan"))
    return cols


def save_training_curves(metrics_csv: str | Path, path: str | Path, title: str = "") -> None:
    """Train and validation ELBO (nats per data point) against epoch; with a classifier's validation error in
    the metrics (a semi-supervised model), that error in % on a second axis."""
    m = read_metrics_csv(metrics_csv)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(m["epoch"], m["train_elbo"], label="train ELBO")
    ax.plot(m["epoch"], m["valid_elbo"], label="validation ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per data point)")
    ax.set_title(title or "training curves")
    handles, labels = ax.get_legend_handles_labels()
    errors = m.get("valid_error", [])
    if any(e == e for e in errors):  # any not NaN
        ax2 = ax.twinx()
        (line,) = ax2.plot(m["epoch"], [100 * e for e in errors], color="tab:red", ls="--", label="validation error")
        ax2.set_ylabel("classifier error (%)")
        handles, labels = handles + [line], labels + ["validation error (%)"]
    ax.legend(handles, labels)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_latent_scatter(z: torch.Tensor, labels: torch.Tensor | None, path: str | Path, title: str) -> None:
    """First two latent coordinates of q(z|x) means, coloured by label."""
    fig, ax = plt.subplots(figsize=(6, 5))
    c = labels.cpu().numpy() if labels is not None else None
    sc = ax.scatter(z[:, 0].cpu(), z[:, 1].cpu(), c=c, s=2, cmap="tab10" if c is not None else None)
    if c is not None:
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_snr_figure(rows: list[dict], path: str | Path, title: str) -> None:
    """Gradient SNR vs K (log-log): one line per (network, estimator); rows from ``gradient_snr``."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for est in dict.fromkeys(r["estimator"] for r in rows):
        sub = [r for r in rows if r["estimator"] == est]
        ks = [r["k"] for r in sub]
        ax.plot(ks, [r["snr_inference"] for r in sub], "o-", label=f"inference network ({est})")
        if est == "reparam":  # the generative gradient is the same under every estimator
            ax.plot(ks, [r["snr_generative"] for r in sub], "s--", label="generative network")
    ax.set(xscale="log", yscale="log", xlabel="importance samples K", ylabel="mean |E g| / std g", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_metric_curves(curves: dict[str, list[tuple[float, float]]], path: str | Path, ylabel: str, title: str) -> None:
    """One line per model: (epoch, value) pairs, e.g. validation NLL per epoch."""
    save_curve_panels({title: curves}, path, "epoch", ylabel)


def save_curve_panels(
    panels: dict[str, dict[str, list[tuple[float, float]]]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    yscale: str = "linear",
) -> None:
    """Side-by-side panels {panel title: {line label: [(x, y), ...]}}, sharing the axes' labels."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for label, pts in curves.items():
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=label)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale=yscale)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
