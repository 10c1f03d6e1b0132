"""scikit-learn's bundled 8x8 digits (1,797 images, no download needed)."""

from __future__ import annotations

from .arrays import split_array
from .registry import DATASETS, pixel_intensities


@DATASETS.register("digits")
@pixel_intensities
def load_digits(seed: int = 0, valid_fraction: float = 0.1, test_fraction: float = 0.2):
    """Digits as (N, 1, 8, 8) images scaled to [0, 1] (pixel / 16), split with ``data.seed``; labels kept.

    Args:
        valid_fraction: fraction of the images held out for validation.
        test_fraction: fraction held out for test.
    """
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    splits = split_array(d.data.reshape(-1, 1, 8, 8) / 16.0, d.target, valid_fraction, test_fraction, seed)
    splits.info["source"] = "sklearn.datasets.load_digits"
    return splits
