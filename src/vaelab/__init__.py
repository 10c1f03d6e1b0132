"""vaelab: variational inference with deep latent-variable models.

Quick start::

    from vaelab import RunConfig, fit, importance_sampled_log_likelihood
    cfg = RunConfig().override({"model.prior": "mog", "train.epochs": 20})
    result = fit(cfg, "runs/mog")
    ll = importance_sampled_log_likelihood(result.model, result.data.test, k=2000)

Models built in Python train the same way: ``fit(cfg, run_dir, model=VAE(encoder, decoder,
latent, likelihood))``. Every axis of the design has a registry (``PRIORS``, ``LATENTS``,
``LIKELIHOODS``, ``NETWORKS``, ``OBJECTIVES``, ``ESTIMATORS``, ``DATASETS``).
"""

from . import derived  # noqa: E402, F401 (registers the data sets derived from a trained run: kind "encoded")
from ._version import __version__
from .config import RunConfig
from .data import DATASETS, Batch, DataSplits, load_data
from .distributions import LATENTS, LIKELIHOODS, PRIORS, stopped
from .estimators import ESTIMATORS
from .evaluation import evaluate_model, importance_sampled_log_likelihood, latent_diagnostics
from .models import VAE, build_model
from .nets import NETWORKS
from .objectives import OBJECTIVES
from .train import fit, load_run, train_step

__all__ = [
    "DATASETS",
    "ESTIMATORS",
    "LATENTS",
    "LIKELIHOODS",
    "NETWORKS",
    "OBJECTIVES",
    "PRIORS",
    "VAE",
    "Batch",
    "DataSplits",
    "RunConfig",
    "__version__",
    "build_model",
    "evaluate_model",
    "fit",
    "importance_sampled_log_likelihood",
    "latent_diagnostics",
    "load_data",
    "load_run",
    "stopped",
    "train_step",
]
