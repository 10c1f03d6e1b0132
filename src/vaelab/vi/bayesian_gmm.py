"""The full Bayesian Gaussian mixture: Dirichlet weights, Gaussian–Wishart components (Bishop, PRML §10.2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Dirichlet, Wishart, kl_divergence

from ..errors import ConfigError, DataError
from ._base import MixtureFitter


class BayesianGaussianMixture(MixtureFitter):
    """pi ~ Dir(alpha_0), Lambda_k ~ W(W_0, nu_0), mu_k | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^-1),
    c_i ~ Cat(pi), x_i ~ N(mu_{c_i}, Lambda_{c_i}^-1), fitted with
    q(c) q(pi) prod_k q(mu_k, Lambda_k) by coordinate ascent (Bishop, PRML eqs. 10.46–10.63) or SVI.

    The global update is linear in the sufficient statistics (N_k, sum r x, sum r x x^T) in the
    natural parameters (alpha, beta, beta m, beta m m^T + W^-1, nu), which is what SVI's
    natural-gradient step interpolates. Data are centred on their mean internally (the model
    is translation-equivariant when m_0 moves with it), so beta m m^T + W^-1 does not cancel
    catastrophically for data far from the origin.

    Args:
        n_components: K.
        weight_concentration_prior: alpha_0 (default 1/K).
        mean_precision_prior: beta_0 (default 1).
        mean_prior: m_0, (D,) (default: the data mean).
        degrees_of_freedom_prior: nu_0 > D - 1 (default D).
        covariance_prior: W_0^-1, (D, D) (default: the data covariance). These defaults are
            scikit-learn's ``BayesianGaussianMixture`` ones, and it is tested to give the same fit.

    The fitting options (max_iter, tol, n_init, init, seed, dtype, device, verbose; algorithm, batch_size, tau, kappa) are
    :class:`MixtureFitter`'s.

    Fitted attributes: ``weights_`` (K,) E[pi], ``means_`` (K, D), ``covariances_`` (K, D, D)
    = W^-1 / nu = E[Lambda]^-1, ``weight_concentration_``, ``mean_precision_``,
    ``degrees_of_freedom_``, ``elbo_`` (nats, PRML eqs. 10.70–10.77 with the optimal r).

    Raises:
        ConfigError: (from ``fit``) a prior out of range (alpha_0, beta_0 <= 0; nu_0 <= D - 1; W_0^-1 not
            positive definite).
    """

    _fitted = {"weights_": "_weights", "means_": "_means", "covariances_": "_covs",
               "weight_concentration_": "_alpha", "mean_precision_": "_beta", "degrees_of_freedom_": "_nu"}  # fmt: skip

    def __init__(
        self,
        n_components: int = 2,
        *,
        weight_concentration_prior: float | None = None,
        mean_precision_prior: float = 1.0,
        mean_prior=None,
        degrees_of_freedom_prior: float | None = None,
        covariance_prior=None,
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
        self.weight_concentration_prior, self.mean_precision_prior = weight_concentration_prior, mean_precision_prior
        self.mean_prior, self.degrees_of_freedom_prior = mean_prior, degrees_of_freedom_prior
        self.covariance_prior = covariance_prior

    def _check_params(self) -> None:
        super()._check_params()
        alpha0, b0 = self.weight_concentration_prior, self.mean_precision_prior
        if (alpha0 is not None and not alpha0 > 0) or not b0 > 0:
            raise ConfigError("weight_concentration_prior and mean_precision_prior must be > 0")

    def _prepare(self, X: Tensor) -> None:
        d, as_t = X.shape[1], (lambda a: torch.as_tensor(a, dtype=self._dtype, device=self._device))
        self._shift = X.mean(0)  # (D,)
        self._alpha0 = self.weight_concentration_prior or 1.0 / self.n_components
        self._nu0 = float(self.degrees_of_freedom_prior if self.degrees_of_freedom_prior is not None else d)
        m0 = as_t(self.mean_prior).reshape(d) if self.mean_prior is not None else self._shift
        self._m0 = m0 - self._shift  # centred, (D,)
        if self.covariance_prior is None and X.shape[0] < 2:
            raise DataError(
                f"the default covariance_prior is the data's covariance, which needs 2 points (got n_samples = "
                f"{X.shape[0]}); pass covariance_prior"
            )
        w0_inv = (
            as_t(self.covariance_prior).reshape(d, d)
            if self.covariance_prior is not None
            else torch.atleast_2d(torch.cov(X.T))
        )
        if self._nu0 <= d - 1:
            raise ConfigError(f"degrees_of_freedom_prior must be > D - 1 = {d - 1}, got {self._nu0}")
        if torch.linalg.cholesky_ex(w0_inv).info.item() != 0:
            raise ConfigError("covariance_prior must be symmetric positive definite")
        self._w0_inv = w0_inv

    def _prior_natural(self) -> dict[str, Tensor]:
        k, b0, m0 = self.n_components, self.mean_precision_prior, self._m0
        full = lambda v: torch.full((k,), float(v), dtype=self._dtype, device=self._device)  # noqa: E731
        return {
            "alpha": full(self._alpha0),
            "beta": full(b0),
            "beta_m": (b0 * m0).expand(k, -1),
            "scatter": (self._w0_inv + b0 * torch.outer(m0, m0)).expand(k, -1, -1),
            "nu": full(self._nu0),
        }

    def _stats(self, X: Tensor, resp: Tensor) -> dict[str, Tensor]:
        xc = X - self._shift  # (N, D)
        nk = resp.sum(0)  # (K,)
        scatter = torch.einsum("nk,nd,ne->kde", resp, xc, xc)  # (K, D, D)
        return {"alpha": nk, "beta": nk, "beta_m": resp.T @ xc, "scatter": scatter, "nu": nk}

    def _set_natural(self, eta: dict[str, Tensor]) -> None:
        self._natural = eta
        self._alpha, self._beta, self._nu = eta["alpha"], eta["beta"], eta["nu"]
        self._m = eta["beta_m"] / eta["beta"][:, None]  # (K, D), centred
        w_inv = eta["scatter"] - eta["beta"][:, None, None] * torch.einsum("kd,ke->kde", self._m, self._m)
        self._w_inv = 0.5 * (w_inv + w_inv.transpose(1, 2))  # (K, D, D) W_k^-1
        self._chol = torch.linalg.cholesky(self._w_inv)  # W^-1 = L L^T
        self._weights = self._alpha / self._alpha.sum()
        self._means = self._m + self._shift
        self._covs = self._w_inv / self._nu[:, None, None]

    def _log_det_w(self) -> Tensor:
        return -2 * torch.log(torch.diagonal(self._chol, dim1=1, dim2=2)).sum(1)  # ln|W_k|, (K,)

    def _expected_log_det(self) -> Tensor:
        """E[ln |Lambda_k|] (PRML eq. 10.65), (K,)."""
        d, nu = self.n_features_in_, self._nu
        i = torch.arange(1, d + 1, dtype=self._dtype, device=self._device)
        return torch.digamma((nu[:, None] + 1 - i) / 2).sum(1) + d * math.log(2) + self._log_det_w()

    def _mahalanobis(self, X: Tensor) -> Tensor:
        """(x_n - m_k)^T W_k (x_n - m_k), (N, K)."""
        diff = (X - self._shift)[None] - self._m[:, None]  # (K, N, D)
        y = torch.linalg.solve_triangular(self._chol, diff.transpose(1, 2), upper=False)  # (K, D, N)
        return (y**2).sum(1).T

    def _log_rho(self, X: Tensor) -> Tensor:
        d = self.n_features_in_
        e_log_pi = torch.digamma(self._alpha) - torch.digamma(self._alpha.sum())
        gauss = 0.5 * self._expected_log_det() - 0.5 * d * math.log(2 * math.pi) - 0.5 * d / self._beta
        return e_log_pi + gauss - 0.5 * self._nu * self._mahalanobis(X)  # (N, K), PRML eq. 10.46

    def _log_b(self, log_det_w: Tensor, nu: Tensor) -> Tensor:
        """ln B(W, nu), the Wishart normalizer (PRML eq. B.79)."""
        d = self.n_features_in_
        return -0.5 * nu * log_det_w - 0.5 * nu * d * math.log(2) - torch.special.multigammaln(nu / 2, d)

    def _penalty(self) -> Tensor:
        """-KL(q(pi) || p(pi)) - sum_k KL(q(mu_k, Lambda_k) || p(mu_k, Lambda_k)) (PRML 10.71–10.77)."""
        d, b0, beta, nu = self.n_features_in_, self.mean_precision_prior, self._beta, self._nu
        alpha = self._alpha
        kl_pi = kl_divergence(Dirichlet(alpha), Dirichlet(torch.full_like(alpha, self._alpha0)))
        dm = (self._m - self._m0)[:, :, None]  # (K, D, 1)
        maha_m = (torch.linalg.solve_triangular(self._chol, dm, upper=False) ** 2).sum((1, 2))  # (K,)
        kl_mu = 0.5 * d * (torch.log(beta / b0) - 1 + b0 / beta) + 0.5 * b0 * nu * maha_m
        w = torch.cholesky_inverse(self._chol)  # (K, D, D)
        trace = torch.einsum("de,ked->k", self._w0_inv, w)  # Tr(W_0^-1 W_k)
        log_det_w0 = -torch.logdet(self._w0_inv)
        e_log_p = (
            self._log_b(log_det_w0, torch.full_like(nu, self._nu0))
            + 0.5 * (self._nu0 - d - 1) * self._expected_log_det()
            - 0.5 * nu * trace
        )
        entropy = Wishart(df=nu, precision_matrix=self._w_inv).entropy()  # H[q(Lambda_k)], (K,)
        return -kl_pi - (kl_mu - entropy - e_log_p).sum()

    def _log_predictive(self, X: Tensor) -> Tensor:
        """Posterior predictive: a mixture of Student's t (PRML eq. 10.81), (N,)."""
        d, beta = self.n_features_in_, self._beta
        dof = self._nu + 1 - d  # (K,)
        scale = dof * beta / (1 + beta)  # L_k = scale_k W_k
        maha = scale * self._mahalanobis(X)  # (N, K)
        log_t = (
            torch.lgamma((dof + d) / 2)
            - torch.lgamma(dof / 2)
            + 0.5 * (d * torch.log(scale) + self._log_det_w())
            - 0.5 * d * torch.log(dof * math.pi)
            - 0.5 * (dof + d) * torch.log1p(maha / dof)
        )
        return torch.logsumexp(torch.log(self._weights) + log_t, 1)
