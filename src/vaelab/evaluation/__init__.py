"""Evaluation: IS and AIS log-likelihood (with BDMC bounds), IWAE-k, posterior gaps, active units, gradient SNR,
the amortization gap and ELBO surgery."""

from .active_units import LatentDiagnostics, latent_diagnostics
from .ais import AISResult, BDMCResult, ais_log_likelihood, bdmc
from .amortization_gap import AmortizationGapResult, amortization_gap, elbo_per_point, optimize_posteriors
from .classify import ClassificationResult, LabelUse, classification_error, decoder_label_use
from .elbo import evaluate_elbo
from .grad_variance import gradient_variance
from .loglik import LogLikelihoodResult, importance_sampled_log_likelihood
from .snr import gradient_snr, snr_floor
from .suite import evaluate_model, summary_lines, with_ais, with_bdmc, write_evaluation
from .surgery import SurgeryResult, elbo_surgery

__all__ = [
    "AISResult",
    "BDMCResult",
    "ais_log_likelihood",
    "bdmc",
    "with_ais",
    "with_bdmc",
    "ClassificationResult",
    "LabelUse",
    "classification_error",
    "decoder_label_use",
    "AmortizationGapResult",
    "SurgeryResult",
    "amortization_gap",
    "elbo_per_point",
    "elbo_surgery",
    "optimize_posteriors",
    "LatentDiagnostics",
    "LogLikelihoodResult",
    "evaluate_elbo",
    "evaluate_model",
    "gradient_variance",
    "gradient_snr",
    "snr_floor",
    "importance_sampled_log_likelihood",
    "latent_diagnostics",
    "summary_lines",
    "write_evaluation",
]
