"""Caltech-101 silhouettes at 28 x 28 (Marlin et al. 2010), split 1: 4,100 train / 2,264 validation
/ 2,307 test binary images of 101 object classes, as used by Li & Turner (2016) and the VampPrior
paper. The file stores each image column-major with 1 = background; we transpose and flip to
upright images with 1 = object. Already binary: no binarization is applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .arrays import read_mat
from .bundle import DataSplits
from .download import ENV, check_sha256, checked_file, download_verified
from .registry import DATASETS, DOWNLOADS, pixel_intensities

FILENAME = "caltech101_silhouettes_28_split1.mat"
SHA256 = "eb6735e8d84b1850fabc5590124aab1755e90c9fd28123585324398405e1e42a"
URL = "https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat"
SPLITS = {"train": 4100, "val": 2264, "test": 2307}


def read_caltech(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split name -> ((N, 28, 28) uint8 upright images with object = 1, (N,) 0-based labels).

    Raises:
        DataError: not the split-1 file (keys, shapes or values).
    """
    m = read_mat(path, FILENAME)
    out = {}
    for s, n in SPLITS.items():
        if f"{s}_data" not in m or f"{s}_labels" not in m:
            raise DataError(f"{path}: no variables {s}_data / {s}_labels; not {FILENAME}")
        data, labels = np.asarray(m[f"{s}_data"]), np.asarray(m[f"{s}_labels"]).reshape(-1)
        if data.shape != (n, 784) or labels.shape != (n,) or not np.isin(data, (0, 1)).all():
            raise DataError(f"{path}: {s}_data should be {n} rows of 784 binary pixels, got {data.shape}")
        out[s] = (1 - data.reshape(-1, 28, 28).transpose(0, 2, 1), labels.astype(np.int64) - 1)
    return out


@DATASETS.register("caltech-silhouettes")
@pixel_intensities
def load_caltech_silhouettes(data_dir: str | Path | None = None) -> DataSplits:
    """Caltech-101 silhouettes as (N, 1, 28, 28) float32 {0, 1} images (1 = object) with labels 0..100.

    Raises:
        DataNotFoundError: the file is missing. DataError: wrong checksum or layout.
    """
    path = checked_file(
        FILENAME,
        data_dir,
        SHA256,
        f"put it in a folder and pass --data-dir DIR or set {ENV}=DIR, "
        f"or run `vaelab download caltech-silhouettes --data-dir DIR` ({URL})",
    )
    d = read_caltech(path)
    x = {s: torch.from_numpy(img.astype(np.float32)).unsqueeze(1) for s, (img, _) in d.items()}
    y = {s: torch.from_numpy(lab) for s, (_, lab) in d.items()}
    return DataSplits(
        x["train"],
        x["val"],
        x["test"],
        y["train"],
        y["val"],
        y["test"],
        info={"source": str(path), "split": "Marlin et al. split 1"},
    )


@DOWNLOADS.register("caltech-silhouettes")
def download_caltech_silhouettes(data_dir: str | Path, url: str = URL) -> Path:
    """Fetch the split-1 file from Marlin's page into ``data_dir``, SHA-256 checked before it is moved in.

    Raises:
        DataNotFoundError: the download failed. DataError: the checksum did not match.
    """
    return download_verified(url, Path(data_dir) / FILENAME, lambda p: check_sha256(p, SHA256))
