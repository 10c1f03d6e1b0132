"""scikit-learn's bundled 8x8 digits (1,797 images, no download needed)."""

from __future__ import annotations

from .arrays import split_array


def load_digits(valid_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0):
    """Digits scaled to [0, 1] (pixel / 16), split with a fixed seed; labels kept."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    splits = split_array(d.data / 16.0, d.target, valid_fraction, test_fraction, seed)
    splits.info["source"] = "sklearn.datasets.load_digits"
    return splits
