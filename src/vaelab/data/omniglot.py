"""Omniglot (Lake et al. 2015) at 28 x 28 from the raw 105 x 105 images, for likelihood benchmarks.

Burda et al. (2016) used a 28 x 28 ``chardata.mat`` (24,345 train / 8,070 test) that is not
available here and cannot be rebuilt exactly. What we do instead, and how it differs:

- Source: the two official sets, ``images_background.npz`` (964 characters) and
  ``images_evaluation.npz`` (659), 20 drawers each: 32,460 images, stored with ink = 0; we flip to
  ink = 1.
- Downsampling: area averaging 105 -> 28 (each output pixel is the ink fraction of the 3.75 x 3.75
  source area it covers), so intensities lie in [0, 1] and are binarized dynamically in training.
  ``chardata.mat`` was resized by other code (its interpolation is not documented); stroke widths
  and grey levels differ somewhat.
- Split: for every character, drawers 0-14 train and 15-19 test: 24,345 train (exactly Burda's
  count, 1,623 x 15) and 8,115 test (Burda: 8,070; their 45 missing test images cannot be
  identified). 1,345 training images are held out for validation at random (``data.seed``), as in
  the VampPrior and ARM code, leaving 23,000.

Log-likelihoods on this set are therefore close to, but not comparable digit-for-digit with,
published Omniglot numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, DataError
from .bundle import DataSplits
from .download import ENV, checked_file
from .registry import DATASETS, pixel_intensities

SHA256 = {
    "images_background.npz": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "images_evaluation.npz": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
}
SOURCE = "GitHub bitsandscraps/omniglot, commit b0481240b7eb42393285a93ce7d2f266ff10c62b (from brendenlake/omniglot)"
TRAIN_DRAWERS = 15  # of 20 per character


def downsample(ink: Tensor, size: int = 28) -> Tensor:
    """(N, H, W) ink masks (1 = stroke) -> (N, size, size) ink fractions in [0, 1] by area averaging."""
    return F.interpolate(ink.float().unsqueeze(1), size=(size, size), mode="area").squeeze(1)


def _read(path: Path, chunk: int = 2000) -> tuple[Tensor, Tensor]:
    """(C, 20, 28, 28) intensities and (C,) character ids of one file, downsampled in chunks
    (the raw set is 213 MB as booleans, 850 MB as float)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]  # (C, 20, 105, 105) bool, True = paper
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a readable Omniglot .npz ({e}); re-download it") from None
    if images.ndim != 4 or images.shape[1:] != (20, 105, 105):
        raise DataError(f"{path}: expected images of shape (C, 20, 105, 105), got {images.shape}")
    flat = images.reshape(-1, 105, 105)
    out = torch.cat([downsample(torch.from_numpy(~flat[i : i + chunk])) for i in range(0, len(flat), chunk)])
    return out.view(images.shape[0], 20, 28, 28), torch.arange(images.shape[0])


@DATASETS.register("omniglot")
@pixel_intensities
def load_omniglot(data_dir: str | Path | None = None, seed: int = 0, n_valid: int = 1345) -> DataSplits:
    """Omniglot as (N, 1, 28, 28) ink intensities in [0, 1] with character labels (0..1622).

    Args:
        n_valid: training images held out (at random, ``data.seed``) for validation.
    Raises:
        DataNotFoundError: a file is missing (the message says where to get it).
        DataError: a checksum or the array layout is wrong.
    """
    advice = f"put it in a folder and pass --data-dir DIR or set {ENV}=DIR ({SOURCE})"
    paths = [checked_file(name, data_dir, sha, advice) for name, sha in SHA256.items()]
    parts = [_read(path) for path in paths]
    x = torch.cat([p[0] for p in parts])  # (1623, 20, 28, 28)
    y = torch.cat([parts[0][1], parts[1][1] + parts[0][1].numel()])  # (1623,) global character ids
    labels = y[:, None].expand(-1, 20)  # (1623, 20)
    x_tr, y_tr = x[:, :TRAIN_DRAWERS].reshape(-1, 1, 28, 28), labels[:, :TRAIN_DRAWERS].reshape(-1)
    x_te, y_te = x[:, TRAIN_DRAWERS:].reshape(-1, 1, 28, 28), labels[:, TRAIN_DRAWERS:].reshape(-1)
    if not 0 <= n_valid < x_tr.shape[0]:
        raise ConfigError(f"data.n_valid must be in [0, {x_tr.shape[0]}), got {n_valid}")
    perm = torch.randperm(x_tr.shape[0], generator=torch.Generator().manual_seed(seed))
    va, tr = perm[:n_valid].sort().values, perm[n_valid:].sort().values
    info = {
        "source": str(paths[0].parent),
        "split": "drawers 0-14 train / 15-19 test",
        "downsampling": "area 105 -> 28",
        "provenance": SOURCE,
    }
    return DataSplits(x_tr[tr], x_tr[va], x_te, y_tr[tr], y_tr[va], y_te, info=info)
