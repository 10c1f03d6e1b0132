"""A trained model's latent features as a data set: the input of Kingma et al. 2014's stacked M1+M2
(M2 trained on the posterior of a frozen M1 VAE)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.bundle import DataSplits
from ..data.registry import DATASETS
from ..errors import ConfigError, DataError
from ..train import load_run

ACTIVE = 1e-2  # Burda et al.'s active-unit threshold; the authors' code keeps std > 0.1, the same cut


@DATASETS.register("encoded")
def load_encoded(
    data_dir: str | Path | None = None, seed: int = 0, run: str = "", checkpoint: str = "best", keep: str = "active"
) -> DataSplits:
    """E_q[z|x] of a trained run's encoder for every split of that run's data, with its labels.

    The run's own data set is reloaded as stored, before any binarization (intensities for MNIST),
    and every split is encoded alike. Kingma et al.'s code draws a fresh z ~ q(z|x) per minibatch;
    here the features are the posterior means (deterministic, so resume and torchrun need no
    feature noise stream); docs/semi_supervised.md states the difference.

    Args:
        run: the M1 run directory (trained with ``vaelab train``).
        checkpoint: "best" or "last".
        keep: "active" keeps the dimensions whose mean varies over the training set (variance > 1e-2,
            as the authors' code keeps std > 0.1); "all" keeps every dimension.
    Raises:
        ConfigError: no run given, or an unknown ``keep``.
        DataError: the run's model has no active unit.
        CheckpointError: the run cannot be loaded.
    """
    if not run:
        raise ConfigError('data kind "encoded" needs run = "<the M1 run directory>"')
    if keep not in ("active", "all"):
        raise ConfigError(f"data.keep must be 'active' or 'all', got {keep!r}")
    cfg, model, _ = load_run(run, checkpoint, load_data_too=False)
    c = cfg.data
    raw = DATASETS.build(c.kind, c.options, where="data", data_dir=data_dir or c.data_dir or None, seed=c.seed)
    feats = [_means(model, x) for x in (raw.train, raw.valid, raw.test)]  # (N, D) each
    dims = torch.arange(feats[0].shape[1]) if keep == "all" else torch.nonzero(feats[0].var(0) > ACTIVE).flatten()
    if dims.numel() == 0:
        raise DataError(f"{run}: no latent dimension is active (variance of E_q[z|x] > {ACTIVE}); train M1 longer")
    train, valid, test = (f[:, dims] for f in feats)
    info = {"source": f"E_q[z|x] of {run} ({checkpoint}.pt) on {c.kind}", "dims_kept": int(dims.numel())}
    return DataSplits(train, valid, test, raw.train_labels, raw.valid_labels, raw.test_labels, info=info)


@torch.no_grad()
def _means(model, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    out = [model.posterior_means(x[i : i + batch])[0] for i in range(0, x.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, model.z_dims[0])
