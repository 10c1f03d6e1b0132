"""Models: one VAE class, its stochastic layers, and the builder from config."""

from .build import build_model, decoder_component
from .init import init_decoder_bias
from .layers import StochasticLayer
from .terms import LogWeightTerms
from .vae import VAE, check_groups

__all__ = [
    "VAE",
    "LogWeightTerms",
    "StochasticLayer",
    "build_model",
    "check_groups",
    "decoder_component",
    "init_decoder_bias",
]
