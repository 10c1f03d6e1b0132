"""Maximum-likelihood Gaussian mixtures by expectation–maximization (Dempster et al. 1977)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from ..errors import ConfigError
from ._base import MixtureFitter


class GaussianMixture(MixtureFitter):
    """A K-component Gaussian mixture with full covariances, fitted by EM.

    EM is coordinate ascent on the ELBO with q(c_i) free and point estimates for the globals
    (seed 001: "this is exactly the EM algorithm"); with q(c_i) at the exact posterior the bound
    is tight, so ``elbo_`` is the log-likelihood sum_i log p(x_i) after each M-step, in nats,
    and it never decreases.

    Args:
        n_components: K.
        reg_covar: added to every covariance's diagonal (scikit-learn's default 1e-6), so a
            component that collapses onto one point stays invertible.
        algorithm: "em" (the only one).

    The fitting options (max_iter, tol, n_init, init, seed, dtype, device, verbose) are
    :class:`MixtureFitter`'s.

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_`` (K, D, D),
    ``elbo_`` (log-likelihood per iteration, nats).

    Raises:
        ConfigError: (from ``fit``) reg_covar < 0.
    """

    algorithms = ("em",)
    _fitted = {"weights_": "_weights", "means_": "_means", "covariances_": "_covs"}

    def __init__(
        self,
        n_components: int = 2,
        *,
        reg_covar: float = 1e-6,
        algorithm: str = "em",
        max_iter: int = 200,
        tol: float = 1e-6,
        n_init: int = 1,
        init: str = "kmeans++",
        seed: int = 0,
        dtype: str = "float64",
        device: str = "cpu",
        verbose: int = 0,
    ):
        super().__init__(
            n_components, algorithm=algorithm, max_iter=max_iter, tol=tol, n_init=n_init, init=init, seed=seed,
            dtype=dtype, device=device, verbose=verbose,
        )  # fmt: skip
        self.reg_covar = reg_covar

    def _check_params(self) -> None:
        super()._check_params()
        if not self.reg_covar >= 0:
            raise ConfigError(f"reg_covar must be >= 0, got {self.reg_covar}")

    def _natural_from(self, X: Tensor, resp: Tensor, scale: float) -> dict[str, Tensor]:
        """The M-step: maximum-likelihood weights, means and covariances given responsibilities."""
        nk = resp.sum(0) + 10 * torch.finfo(X.dtype).eps  # (K,), as scikit-learn: no empty component divides by 0
        means = resp.T @ X / nk[:, None]  # (K, D)
        diff = X[None] - means[:, None]  # (K, N, D)
        cov = torch.einsum("nk,knd,kne->kde", resp, diff, diff) / nk[:, None, None]
        cov = cov + self.reg_covar * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
        return {"weights": nk / X.shape[0], "means": means, "covariances": cov}

    def _set_natural(self, eta: dict[str, Tensor]) -> None:
        self._natural = eta
        self._weights, self._means, self._covs = eta["weights"], eta["means"], eta["covariances"]
        self._components = MultivariateNormal(self._means, self._covs)

    def _log_rho(self, X: Tensor) -> Tensor:
        return torch.log(self._weights) + self._components.log_prob(X[:, None, :])  # (N, K)

    def _penalty(self) -> Tensor:
        return torch.zeros((), dtype=self._dtype, device=self._device)

    def _log_predictive(self, X: Tensor) -> Tensor:
        return torch.logsumexp(self._log_rho(X), 1)
