"""Data sets as in-memory tensors: synthetic two-Gaussians, MNIST, sklearn digits, user arrays."""

from .arrays import load_array, split_array
from .batches import iterate_batches
from .bundle import DataSplits, load_data
from .mnist import find_mnist, load_mnist
from .synthetic import TwoGaussians

__all__ = ["DataSplits", "TwoGaussians", "find_mnist", "iterate_batches", "load_array", "load_data",
           "load_mnist", "split_array"]
