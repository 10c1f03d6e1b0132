"""MNIST from the classic ``mnist.pkl.gz`` (50k/10k/10k, intensities = byte / 256)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from .bundle import DataSplits
from .download import ENV, download_verified, find_data_file, sha256_of
from .registry import DATASETS, DOWNLOADS, pixel_intensities

FILENAME = "mnist.pkl.gz"
#: SHA-256 of the copy in the workplace's shared/data (checked against the MNIST test bytes there).
#: A mirror serving different bytes (e.g. re-pickled) is rejected rather than silently used.
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
#: Canonical mirror used by the Theano deep-learning tutorials that popularised this file.
URL = "http://www.iro.umontreal.ca/~lisa/deep/data/mnist/mnist.pkl.gz"


def find_mnist(data_dir: str | Path | None = None) -> Path:
    """Locate mnist.pkl.gz in ``data_dir``, else in ``$VAELAB_DATA``.

    Raises:
        DataNotFoundError: naming where the file was looked for and how to get it.
    """
    return find_data_file(
        FILENAME,
        data_dir,
        f"put it in a folder and pass --data-dir DIR or set {ENV}=DIR, "
        f"or run `vaelab download mnist --data-dir DIR` to fetch it from {URL}",
    )


@DOWNLOADS.register("mnist")
def download_mnist(data_dir: str | Path, url: str = URL) -> Path:
    """Download mnist.pkl.gz to ``data_dir``, verify its SHA-256, and move it in atomically.

    Raises:
        DataNotFoundError: the download failed (e.g. offline).
        DataError: the checksum did not match (the partial file is deleted).
    """

    def verify(path: Path) -> None:
        digest = sha256_of(path)
        if digest != SHA256:
            raise DataError(f"downloaded {FILENAME} has sha256 {digest}, expected {SHA256}; not using it")

    return download_verified(url, Path(data_dir) / FILENAME, verify)


@DATASETS.register("mnist")
@pixel_intensities
def load_mnist(data_dir: str | Path | None = None, split: str = "50k-10k-10k") -> DataSplits:
    """MNIST intensities in [0, 1) as (N, 1, 28, 28) float32 images, with labels.

    Args:
        split: "50k-10k-10k" (as stored) or "60k-10k" (train = train + valid, as in the IWAE
            paper; the validation split is then the last 10k training images, kept only for
            monitoring and *not* held out from training).
    Raises:
        DataNotFoundError: no mnist.pkl.gz in ``data_dir`` / ``$VAELAB_DATA``.
        DataError: the file is not the canonical one (SHA-256; a pickle can run code, so no other
            file is unpickled) or is unreadable. ConfigError: an unknown ``split``.
    """
    path = find_mnist(data_dir)
    digest = sha256_of(path)
    if digest != SHA256:  # unpickling runs code: only the canonical file is opened
        raise DataError(
            f"{path}: sha256 {digest[:12]}... is not the canonical mnist.pkl.gz's; it is not unpickled. "
            "Re-download it: vaelab download mnist --data-dir DIR"
        )
    try:
        with gzip.open(path, "rb") as f:
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.load(f, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"{path}: not a readable mnist.pkl.gz ({e}); re-download it") from None
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    x_tr, x_va, x_te, y_tr, y_va, y_te = map(t, (x_tr, x_va, x_te, y_tr, y_va, y_te))
    if split not in ("50k-10k-10k", "60k-10k"):
        raise ConfigError(f"data.split must be '50k-10k-10k' or '60k-10k', got {split!r}")
    if split == "60k-10k":
        x_tr, y_tr = torch.cat([x_tr, x_va]), torch.cat([y_tr, y_va])
    img = lambda a: a.float().reshape(-1, 1, 28, 28)  # noqa: E731
    return DataSplits(
        img(x_tr), img(x_va), img(x_te), y_tr.long(), y_va.long(), y_te.long(), info={"source": str(path), "split": split}
    )
