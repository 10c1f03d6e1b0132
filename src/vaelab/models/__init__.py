"""Latent-variable models that produce log-weight terms for the objectives."""

from .vae import VAE, LogWeightTerms, build_vae

__all__ = ["VAE", "LogWeightTerms", "build_vae"]
