"""vaelab: variational inference with deep latent-variable models.

Quick start::

    from vaelab import RunConfig, fit, importance_sampled_log_likelihood
    cfg = RunConfig().replace(prior="mog", epochs=20)
    result = fit(cfg, "runs/mog")
    ll = importance_sampled_log_likelihood(result.model, result.data.test, k=2000)
"""

from .config import RunConfig
from .evaluation import importance_sampled_log_likelihood, latent_diagnostics
from .models import VAE, build_vae
from .train import fit, load_run

__version__ = "0.1.0"
__all__ = ["VAE", "RunConfig", "build_vae", "fit", "importance_sampled_log_likelihood", "latent_diagnostics",
           "load_run"]
