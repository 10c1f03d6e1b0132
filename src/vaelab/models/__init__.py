"""Models: the VAE (bottom-up inference) and the top-down VAE (model.kind), their stochastic layers, and the
builder from config."""

from .build import build_model, decoder_component
from .init import init_decoder_bias
from .kinds import MODEL_KINDS
from .layers import StochasticLayer
from .terms import LogWeightTerms
from .top_down import ResidualTopDownVAE, TopDownVAE
from .vae import VAE, check_groups

__all__ = [
    "MODEL_KINDS",
    "ResidualTopDownVAE",
    "TopDownVAE",
    "VAE",
    "LogWeightTerms",
    "StochasticLayer",
    "build_model",
    "check_groups",
    "decoder_component",
    "init_decoder_bias",
]
