"""Data sets as in-memory tensors, registered in ``DATASETS``: synthetic two-Gaussians, MNIST,
sklearn digits, user arrays. Loaders return :class:`DataSplits`; training iterates
:class:`Batch` es (x, index, mask)."""

from ..registry import import_submodules
from .arrays import load_array, split_array
from .batch import Batch
from .batches import iterate_batches
from .bundle import DataSplits, load_data
from .mnist import find_mnist, load_mnist
from .registry import DATASETS
from .synthetic import TwoGaussians

__all__ = [
    "DATASETS",
    "Batch",
    "DataSplits",
    "TwoGaussians",
    "find_mnist",
    "iterate_batches",
    "load_array",
    "load_data",
    "load_mnist",
    "split_array",
]

import_submodules(__name__)  # a new piece is one new file in this folder (registry.py)
