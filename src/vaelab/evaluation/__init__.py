"""Evaluation: importance-sampled log-likelihood, active units, per-dimension KL."""

from .active_units import LatentDiagnostics, latent_diagnostics
from .loglik import LogLikelihoodResult, importance_sampled_log_likelihood

__all__ = ["LatentDiagnostics", "LogLikelihoodResult", "importance_sampled_log_likelihood", "latent_diagnostics"]
