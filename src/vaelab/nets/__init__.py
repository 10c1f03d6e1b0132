"""Encoder and decoder networks, each registered in ``NETWORKS`` (one file per kind)."""

from ..registry import import_submodules
from .conv import ConvDecoder, ConvEncoder, conv
from .gated import GatedDense, GatedMLP
from .mlp import ACTIVATIONS, MLP, mlp
from .registry import NETWORKS

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "NETWORKS",
    "ConvDecoder",
    "ConvEncoder",
    "GatedDense",
    "GatedMLP",
    "conv",
    "mlp",
]

import_submodules(__name__)  # a new piece is one new file in this folder (registry.py)
