"""Frey faces: 1,965 greyscale 28 x 20 video frames of Brendan Frey's face (Roweis's data page),
the continuous-data benchmark of Kingma & Welling (2014) and Li & Turner (2016).

Pixels are scaled to [0, 1] (byte / 255). A model's log p(x) on this set is a density per image,
in nats, with respect to Lebesgue measure on [0, 1]^560 (not on the 0-255 byte scale: subtract
560 ln 255 = 3,103.3 nats to convert). Consecutive frames are near-duplicates, so the default
random 90 / 10 split (Li & Turner's code: shuffle with a seed, keep 90 %) puts near-copies of test
frames into training; ``split = "contiguous"`` holds out the last 10 % of the video instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .arrays import read_mat
from .bundle import DataSplits
from .download import ENV, check_sha256, checked_file, download_verified
from .registry import DATASETS, DOWNLOADS

FILENAME = "frey_rawface.mat"
SHA256 = "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64"
URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"


def read_frey(path: Path) -> np.ndarray:
    """(1965, 28, 20) uint8 frames in video order (the file holds one frame per column, row-major).

    Raises:
        DataError: not a MATLAB file with ``ff`` of shape (560, 1965).
    """
    mat = read_mat(path, FILENAME)
    if "ff" not in mat:
        raise DataError(f"{path}: no variable 'ff'; not {FILENAME}")
    ff = np.asarray(mat["ff"])
    if ff.shape != (560, 1965):
        raise DataError(f"{path}: expected ff of shape (560, 1965), got {ff.shape}")
    return ff.T.reshape(-1, 28, 20)


@DATASETS.register("frey")
def load_frey(
    data_dir: str | Path | None = None,
    seed: int = 0,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.0,
    split: str = "random",
    fold: int = -1,
) -> DataSplits:
    """Frey faces as (N, 1, 28, 20) float32 intensities in [0, 1], no labels.

    Args:
        test_fraction: share of the frames held out for test (Li & Turner: 0.1).
        valid_fraction: share of the remaining frames held out for validation (Li & Turner: none).
        split: "random" (shuffled with ``data.seed``) or "contiguous" (the last frames of the
            video are test, the ones before them validation: no near-duplicates across splits).
        fold: k-fold cross-validation (Li & Turner report 10 folds): with ``fold = i`` in
            0 .. 1/test_fraction - 1 the test set is the i-th block of the shuffled frames; the folds'
            test sets are disjoint and cover every frame once. -1: the last block (the default split).
    Raises:
        DataNotFoundError, DataError (checksum or layout), ConfigError (options).
    """
    if split not in ("random", "contiguous"):
        raise ConfigError(f"data.split must be 'random' or 'contiguous', got {split!r}")
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1):
        raise ConfigError("data.test_fraction must be in (0, 1) and data.valid_fraction in [0, 1)")
    path = checked_file(
        FILENAME,
        data_dir,
        SHA256,
        f"put it in a folder and pass --data-dir DIR or set {ENV}=DIR, or run `vaelab download frey --data-dir DIR` ({URL})",
    )
    x = torch.from_numpy(read_frey(path).astype(np.float32) / 255.0).unsqueeze(1)  # (1965, 1, 28, 20)
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if split == "random" else torch.arange(n)
    n_test = round(test_fraction * n)
    if fold != -1:
        order, n_test = _fold_last(order, fold, round(1 / test_fraction), split)
    n_valid = round(valid_fraction * (n - n_test))
    tr, va, te = order[: n - n_test - n_valid], order[n - n_test - n_valid : n - n_test], order[n - n_test :]
    return DataSplits(
        x[tr],
        x[va],
        x[te],
        info={"source": str(path), "split": split, "density": "per image, nats, pixels scaled to [0, 1] (byte / 255)"},
    )


def _fold_last(order: torch.Tensor, fold: int, folds: int, split: str) -> tuple[torch.Tensor, int]:
    """``order`` with the ``fold``-th of ``folds`` blocks moved to the end, and that block's size."""
    if split != "random" or not 0 <= fold < folds:
        raise ConfigError(f"data.fold must be -1 or in 0..{folds - 1} (1 / data.test_fraction folds) with data.split = "
                          f"'random', got fold {fold} with split {split!r}")  # fmt: skip
    n = order.shape[0]
    lo, hi = fold * n // folds, (fold + 1) * n // folds
    return torch.cat([order[:lo], order[hi:], order[lo:hi]]), hi - lo


@DOWNLOADS.register("frey")
def download_frey(data_dir: str | Path, url: str = URL) -> Path:
    """Fetch frey_rawface.mat from Roweis's page into ``data_dir``, SHA-256 checked before it is moved in.

    Raises:
        DataNotFoundError: the download failed. DataError: the checksum did not match.
    """
    return download_verified(url, Path(data_dir) / FILENAME, lambda p: check_sha256(p, SHA256))
