"""The Bayesian mixture of unit-variance Gaussians of Blei, Kucukelbir & McAuliffe 2017, Sec. 3."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from ..errors import ConfigError
from ._base import MixtureFitter


class UnitVarianceMixture(MixtureFitter):
    """mu_k ~ N(0, sigma^2 I), c_i ~ Cat(1/K), x_i | c_i, mu ~ N(mu_{c_i}, I), fitted with the
    mean-field family q(mu_k) = N(m_k, s_k^2 I), q(c_i) = Cat(phi_i).

    Coordinate ascent (Blei et al. 2017, eq. 26 and the updates after it):
    phi_ik ∝ exp(m_k^T x_i - (D s_k^2 + m_k^T m_k) / 2),
    m_k = sum_i phi_ik x_i / (1/sigma^2 + sum_i phi_ik), s_k^2 = 1 / (1/sigma^2 + sum_i phi_ik).
    The global natural parameters are (sum_i phi_ik x_i, 1/sigma^2 + sum_i phi_ik), which SVI
    moves by minibatch natural-gradient steps (see :class:`MixtureFitter`).

    Args:
        n_components: K.
        prior_std: sigma, the prior standard deviation of the component means.

    The fitting options (max_iter, tol, n_init, init, seed, dtype, device, verbose; algorithm, batch_size, tau, kappa) are
    :class:`MixtureFitter`'s.

    Fitted attributes: ``means_`` (K, D) = m, ``mean_variances_`` (K,) = s^2, ``elbo_`` (nats,
    closed form after every sweep, Blei et al. eq. 21 with the optimal phi).

    Raises:
        ConfigError: (from ``fit``) prior_std <= 0.
    """

    _fitted = {"means_": "_means", "mean_variances_": "_mean_var"}

    def __init__(
        self,
        n_components: int = 2,
        *,
        prior_std: float = 5.0,
        algorithm: str = "cavi",
        max_iter: int = 200,
        tol: float = 1e-6,
        n_init: int = 1,
        init: str = "kmeans++",
        batch_size: int = 256,
        tau: float = 1.0,
        kappa: float = 0.7,
        seed: int = 0,
        dtype: str = "float64",
        device: str = "cpu",
        verbose: int = 0,
    ):
        super().__init__(
            n_components, algorithm=algorithm, max_iter=max_iter, tol=tol, n_init=n_init, init=init,
            batch_size=batch_size, tau=tau, kappa=kappa, seed=seed, dtype=dtype, device=device, verbose=verbose,
        )  # fmt: skip
        self.prior_std = prior_std

    def _check_params(self) -> None:
        super()._check_params()
        if not self.prior_std > 0:
            raise ConfigError(f"prior_std must be > 0, got {self.prior_std}")

    def _prior_natural(self) -> dict[str, Tensor]:
        k, d = self.n_components, self.n_features_in_
        z = torch.zeros(k, d, dtype=self._dtype, device=self._device)
        return {"sum_x": z, "precision": torch.full((k,), self.prior_std**-2, dtype=self._dtype, device=self._device)}

    def _stats(self, X: Tensor, resp: Tensor) -> dict[str, Tensor]:
        return {"sum_x": resp.T @ X, "precision": resp.sum(0)}  # (K, D), (K,)

    def _set_natural(self, eta: dict[str, Tensor]) -> None:
        self._natural = eta
        self._mean_var = 1.0 / eta["precision"]  # (K,)
        self._means = eta["sum_x"] * self._mean_var[:, None]  # (K, D)

    def _expected_sq_norm(self) -> Tensor:
        return self.n_features_in_ * self._mean_var + (self._means**2).sum(1)  # E[mu_k^T mu_k], (K,)

    def _log_rho(self, X: Tensor) -> Tensor:
        d = X.shape[1]
        const = -math.log(self.n_components) - 0.5 * d * math.log(2 * math.pi)
        sq = (X**2).sum(1, keepdim=True)  # (N, 1)
        return const - 0.5 * sq + X @ self._means.T - 0.5 * self._expected_sq_norm()  # (N, K)

    def _penalty(self) -> Tensor:
        q = Normal(self._means, self._mean_var.sqrt()[:, None].expand_as(self._means))
        return -kl_divergence(q, Normal(torch.zeros_like(self._means), self.prior_std)).sum()

    def _log_predictive(self, X: Tensor) -> Tensor:
        """log (1/K) sum_k N(x | m_k, (1 + s_k^2) I): the posterior predictive, (N,)."""
        var = 1.0 + self._mean_var  # (K,)
        comp = Normal(self._means, var.sqrt()[:, None].expand_as(self._means))
        log_p = comp.log_prob(X[:, None, :]).sum(-1)  # (N, K)
        return torch.logsumexp(log_p, 1) - math.log(self.n_components)
