"""Encoder and decoder networks."""

from .mlp import MLP, GaussianEncoder

__all__ = ["MLP", "GaussianEncoder"]
