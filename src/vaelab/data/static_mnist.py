"""Statically binarized MNIST (Larochelle & Murray 2011): one fixed Bernoulli sample of each image,
50,000 / 10,000 / 10,000, no labels. The standard benchmark of the discrete-latent literature;
its numbers are not comparable with dynamically binarized MNIST's."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .arrays import read_mat
from .bundle import DataSplits
from .download import ENV, check_sha256, download_verified, find_data_file
from .registry import DATASETS, DOWNLOADS, pixel_intensities

SPLITS = {"train": 50000, "valid": 10000, "test": 10000}
#: SHA-256 of the MATLAB-format copies in the workplace's shared/data (from the ARM authors' repository);
#: the original text files (URL below) are accepted too, checked by shape and values instead.
SHA256 = {
    "train": "79a0312c7389d855cfc97e3812de3998417c5829d8a51543b56a90a91252ae7e",
    "valid": "7436afc856959075c7787025bb8a4ba2b520b9230ee39667c66aa7dd2819dd68",
    "test": "5bc30222e1e7896cbccd1e1db6b28540cc1230f4d2d5473841a5f6cc54be8d38",
}
URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{split}.amat"


def _find(split: str, data_dir: str | Path | None) -> Path:
    return find_data_file(
        f"binarized_mnist_{split}.amat",
        data_dir,
        f"put it in a folder and pass --data-dir DIR or set {ENV}=DIR, or run "
        f"`vaelab download static-mnist --data-dir DIR` ({URL.format(split=split)})",
    )


def _check_amat(path: Path, split: str) -> None:
    read_amat(path, split)


def read_amat(path: Path, split: str) -> np.ndarray:
    """(N, 784) uint8 from either format: MATLAB v5 (key ``X``; checksummed) or Larochelle's text.

    Raises:
        DataError: a wrong checksum, shape or non-binary values.
    """
    with open(path, "rb") as f:
        is_mat = f.read(6) == b"MATLAB"
    if is_mat:
        check_sha256(path, SHA256[split])
        x = np.asarray(read_mat(path, f"binarized_mnist_{split}.amat")["X"])
    else:
        try:
            x = np.loadtxt(path, dtype=np.uint8, ndmin=2)
        except ValueError as e:
            raise DataError(f"{path}: neither a MATLAB file nor whitespace-separated 0/1 text ({e})") from None
    if x.shape != (SPLITS[split], 784) or not np.isin(x, (0, 1)).all():
        raise DataError(f"{path}: expected {SPLITS[split]} rows of 784 binary pixels, got shape {x.shape}; re-download it")
    return x


@DATASETS.register("static-mnist")
@pixel_intensities
def load_static_mnist(data_dir: str | Path | None = None) -> DataSplits:
    """Statically binarized MNIST as (N, 1, 28, 28) float32 {0, 1} images (row-major), no labels."""
    x = {s: torch.from_numpy(read_amat(_find(s, data_dir), s).astype(np.float32)).view(-1, 1, 28, 28) for s in SPLITS}
    return DataSplits(
        x["train"],
        x["valid"],
        x["test"],
        info={"source": str(_find("test", data_dir).parent), "binarization": "static (Larochelle & Murray)"},
    )


@DOWNLOADS.register("static-mnist")
def download_static_mnist(data_dir: str | Path) -> list[Path]:
    """Fetch Larochelle's three text files into ``data_dir``, each checked (shape, 0/1 values) before
    it is moved in atomically; their SHA-256 is not published, so the check is structural.

    Raises:
        DataNotFoundError: a download failed (e.g. offline).
        DataError: a file did not have the expected content (the partial file is deleted).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for split in SPLITS:
        out.append(
            download_verified(
                URL.format(split=split),
                data_dir / f"binarized_mnist_{split}.amat",
                functools.partial(_check_amat, split=split),
            )
        )
    return out
