"""What every classical mixture fitter shares: input checks, initialization, restarts, and the two
optimizers of the global parameters (coordinate ascent and stochastic natural-gradient steps).

A subclass is a model with local (per-point) responsibilities and global parameters. It defines

- ``_log_rho(X)`` -> (N, K): unnormalized log-responsibilities under the current globals (the E-step;
  for VI, E_q[log p(c_i = k, x_i | globals)]);
- ``_penalty()`` -> 0-d: the ELBO's global terms, -sum KL(q(global) || p(global)) (0 for EM);
- ``_prior_natural()``, ``_stats(X, resp)``, ``_set_natural(eta)``: the conjugate update
  eta = eta_prior + sufficient statistics, so that coordinate ascent sets eta to it and SVI moves
  eta a step rho_t towards its minibatch estimate (Hoffman et al. 2013, eq. 33–35);
- ``_log_predictive(X)`` -> (N,): log density of new points, for ``score``.

With the locals at their optimum r*(globals), the ELBO is sum_i logsumexp_k log_rho_ik + penalty
(the entropy of q(c_i) and the expected complete-data log-density combine into the log-normalizer),
so the trace is computed in closed form from one E-step per sweep and is monotone under
coordinate ascent: L(r*(g_t), g_t) <= L(r*(g_t), g_{t+1}) <= L(r*(g_{t+1}), g_{t+1}).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor

from ..errors import ConfigError, DataError
from ..progress import bar

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def step_sizes(t: Tensor | int, tau: float, kappa: float):
    """Robbins–Monro step sizes rho_t = (t + tau)^(-kappa) (Hoffman et al. 2013, eq. 26)."""
    return (t + tau) ** (-kappa)


def kmeans_pp_resp(X: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """(N, K) one-hot responsibilities: each point assigned to the nearest of K k-means++ seeds
    (Arthur & Vassilvitskii 2007), drawn with ``gen``."""
    n = X.shape[0]
    centers = X[torch.randint(n, (1,), generator=gen, device=X.device)]
    d2 = torch.cdist(X, centers).squeeze(1) ** 2  # (N,)
    for _ in range(1, k):
        pick = torch.multinomial(d2 / d2.sum() if d2.sum() > 0 else torch.ones_like(d2), 1, generator=gen)
        centers = torch.cat([centers, X[pick]])
        d2 = torch.minimum(d2, ((X - X[pick]) ** 2).sum(1))
    nearest = torch.cdist(X, centers).argmin(1)  # (N,)
    return torch.nn.functional.one_hot(nearest, k).to(X.dtype)


class MixtureFitter(DensityMixin, BaseEstimator):
    """Base class: a scikit-learn estimator (``BaseEstimator``, ``DensityMixin``): ``fit`` /
    ``predict`` / ``predict_proba`` / ``fit_predict`` / ``score_samples`` / ``score``, ``get_params``
    / ``set_params``, so ``clone``, pipelines and ``GridSearchCV`` work. Arrays (or tensors) in, numpy
    out; the arithmetic runs in torch.

    Args:
        n_components: K.
        algorithm: "cavi" (coordinate ascent, all points per sweep) or "svi" (stochastic VI:
            minibatch natural-gradient steps on the globals, Hoffman et al. 2013).
        max_iter: sweeps (CAVI) or epochs (SVI).
        tol: stop when the ELBO changes by less than ``tol`` nats per data point between sweeps.
        n_init: random restarts; the one with the highest final ELBO is kept.
        init: "kmeans++" (hard assignment to k-means++ seeds) or "random" (random responsibilities).
        batch_size: SVI's minibatch size.
        tau: SVI's step-size delay: rho_t = (t + tau)^(-kappa), t = 0, 1, ...; tau > 0 (rho_0 = tau^(-kappa)).
        kappa: SVI's forgetting rate, in (0.5, 1] (the Robbins–Monro conditions).
        seed: seeds restart r with ``seed + r``.
        dtype: the arithmetic's dtype, "float64" (as scikit-learn) or "float32" (or the torch dtype).
        device: where the arithmetic runs.
        verbose: as scikit-learn's: 0 silent; 1 a progress bar over sweeps with the ELBO (on a
            terminal) and one line per restart when it ends; 2 also one line per sweep.

    As scikit-learn requires, the constructor only stores its arguments; they are checked by ``fit``.

    Fitted attributes: ``elbo_`` (list of floats, nats, one per sweep or epoch; for EM the
    log-likelihood), ``n_iter_``, ``converged_``, ``fit_seconds_``, ``n_features_in_``, and the
    model's parameters as numpy arrays.

    Raises:
        ConfigError: (from ``fit``) an unknown algorithm, init or dtype, or out-of-range options.
    """

    algorithms: tuple[str, ...] = ("cavi", "svi")
    #: public fitted attribute -> the private tensor behind it (numpy copies are published after fit)
    _fitted: dict[str, str] = {}

    def __init__(
        self,
        n_components: int = 2,
        *,
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
        self.n_components, self.algorithm, self.max_iter, self.tol = n_components, algorithm, max_iter, tol
        self.n_init, self.init, self.batch_size, self.tau, self.kappa = n_init, init, batch_size, tau, kappa
        self.seed, self.dtype, self.device, self.verbose = seed, dtype, device, verbose

    def _check_params(self) -> None:
        """The constructor's arguments, checked when fitting (scikit-learn's convention)."""
        if self.algorithm not in self.algorithms:
            raise ConfigError(
                f"algorithm {self.algorithm!r} is not available for {type(self).__name__}; "
                f"choose one of {', '.join(self.algorithms)}"
            )
        if self.init not in ("kmeans++", "random"):
            raise ConfigError(f"init {self.init!r}: choose 'kmeans++' or 'random'")
        if min(self.n_components, self.max_iter, self.n_init, self.batch_size) < 1:
            raise ConfigError("n_components, max_iter, n_init and batch_size must be >= 1")
        if not 0.5 < self.kappa <= 1.0 or not self.tau > 0:
            raise ConfigError(
                f"SVI step sizes need 0.5 < kappa <= 1 and tau > 0 (got kappa={self.kappa}, tau={self.tau}); "
                "the first step size is tau^(-kappa)"
            )
        if not self.tol >= 0:
            raise ConfigError(f"tol must be >= 0, got {self.tol}")
        dtype = DTYPES.get(self.dtype, self.dtype) if isinstance(self.dtype, str) else self.dtype
        if not isinstance(dtype, torch.dtype) or dtype not in DTYPES.values():
            raise ConfigError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        self._dtype: torch.dtype = dtype
        self._device = torch.device(self.device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # NaN/inf are refused with a one-line error
        tags.target_tags.required = False  # unsupervised: y is accepted and ignored
        return tags

    # --- input ------------------------------------------------------------------------------------
    def _check_X(self, X, fitting: bool = False) -> Tensor:
        """X as a (N, D) tensor in the fit's dtype, through scikit-learn's input validation (2-D,
        finite, numeric, not sparse; the feature count fitted)."""
        if not fitting:
            check_is_fitted(self, "elbo_")
        if isinstance(X, Tensor):
            X = X.detach().cpu().numpy()
        k = self.n_components if fitting else 1
        try:
            X = validate_data(self, X, reset=fitting, dtype=[np.float64, np.float32], ensure_min_samples=k)
        except ValueError as e:  # one line (without scikit-learn's dump of the array), and a DataError
            said = " ".join(line.strip() for line in str(e).strip().splitlines() if not line.startswith("array="))
            more = f" ({k} components need at least {k} points)" if "minimum of" in said else ""
            raise DataError(said + more) from None
        return torch.tensor(X, dtype=self._dtype, device=self._device)  # (a copy: X may be read-only)

    def _init_resp(self, X: Tensor, gen: torch.Generator) -> Tensor:
        if self.init == "random":
            r = torch.rand(X.shape[0], self.n_components, generator=gen, device=X.device, dtype=X.dtype)  # (N, K)
            return r / r.sum(1, keepdim=True)
        return kmeans_pp_resp(X, self.n_components, gen)

    # --- fitting ----------------------------------------------------------------------------------
    def fit(self, X, y=None, init_resp=None) -> MixtureFitter:
        """Fit to X (N, D), array or tensor; returns self.

        Args:
            y: ignored (scikit-learn's unsupervised convention).
            init_resp: optional (N, K) initial responsibilities (overrides ``init``; to reproduce
                another implementation's run from the same start). With it, ``n_init`` must be 1.
        Raises:
            DataError: X not 2-D, non-finite, fewer points than components, or init_resp of the wrong shape.
        """
        self._check_params()
        X = self._check_X(X, fitting=True)
        self._prepare(X)
        if init_resp is not None:
            init_resp = torch.as_tensor(np.asarray(init_resp), dtype=self._dtype, device=self._device)
            if tuple(init_resp.shape) != (X.shape[0], self.n_components) or self.n_init != 1:
                raise DataError(f"init_resp must be ({X.shape[0]}, {self.n_components}) with n_init = 1")
        start, best = time.perf_counter(), None
        for r in range(self.n_init):
            gen = torch.Generator(self._device).manual_seed(self.seed + r)
            resp = init_resp if init_resp is not None else self._init_resp(X, gen)
            self._set_natural(self._natural_from(X, resp, scale=1.0))
            self._bar = bar(total=self.max_iter, desc=f"{self.algorithm} restart {r + 1}/{self.n_init}", unit="sweep",
                            show=self.verbose > 0)  # fmt: skip
            trace, converged = self._cavi(X) if self.algorithm in ("cavi", "em") else self._svi(X, gen)
            self._bar.close()
            del self._bar  # a fitted estimator stays picklable
            if self.verbose:
                word = "converged" if converged else "stopped without converging"
                print(f"{type(self).__name__} restart {r + 1}: {word} after {len(trace)} sweeps, ELBO {trace[-1]:.4f} nats")
            if best is None or trace[-1] > best[0][-1]:
                best = (trace, converged, self._get_state())
        assert best is not None  # n_init >= 1
        self.elbo_, self.converged_ = best[0], best[1]
        self._set_state(best[2])
        self.n_iter_ = len(self.elbo_)
        self.fit_seconds_ = time.perf_counter() - start
        for public, private in self._fitted.items():  # numpy out, as scikit-learn's estimators
            setattr(self, public, getattr(self, private).detach().cpu().numpy())
        return self

    def _natural_from(self, X: Tensor, resp: Tensor, scale: float) -> dict[str, Tensor]:
        prior, stats = self._prior_natural(), self._stats(X, resp)
        return {k: prior[k] + scale * stats[k] for k in prior}

    def _elbo(self, log_rho: Tensor) -> float:
        return float(torch.logsumexp(log_rho, 1).sum() + self._penalty())

    def _converged(self, trace: list[float], n: int) -> bool:
        self._bar.update(1)
        self._bar.set_postfix(elbo=f"{trace[-1]:.4g}", refresh=False)
        if self.verbose >= 2:
            print(f"  sweep {len(trace)}: ELBO {trace[-1]:.6f} nats")
        return len(trace) > 1 and abs(trace[-1] - trace[-2]) < self.tol * n

    def _cavi(self, X: Tensor) -> tuple[list[float], bool]:
        trace, log_rho = [], self._log_rho(X)  # (N, K)
        for _ in range(self.max_iter):
            self._set_natural(self._natural_from(X, torch.softmax(log_rho, 1), scale=1.0))
            log_rho = self._log_rho(X)  # the next sweep's E-step, and this sweep's ELBO
            trace.append(self._elbo(log_rho))
            if self._converged(trace, X.shape[0]):
                return trace, True
        return trace, False

    def _svi(self, X: Tensor, gen: torch.Generator) -> tuple[list[float], bool]:
        n, t, trace = X.shape[0], 0, []
        eta = self._natural  # from the initial responsibilities
        for _ in range(self.max_iter):
            for idx in torch.randperm(n, generator=gen, device=X.device).split(self.batch_size):
                xb = X[idx]  # (S, D)
                target = self._natural_from(xb, torch.softmax(self._log_rho(xb), 1), scale=n / len(idx))
                rho = step_sizes(t, self.tau, self.kappa)
                eta = {k: (1 - rho) * eta[k] + rho * target[k] for k in eta}  # natural-gradient step
                self._set_natural(eta)
                t += 1
            trace.append(self._elbo(self._log_rho(X)))
            if self._converged(trace, n):
                return trace, True
        return trace, False

    def _prepare(self, X: Tensor) -> None:
        """Hook: fix data-dependent prior defaults before the restarts."""

    # --- the model's hooks (see the module docstring); each subclass implements them -----------
    _natural: dict[str, Tensor]  # the globals' natural parameters, set by _set_natural

    def _log_rho(self, X: Tensor) -> Tensor:
        raise NotImplementedError

    def _penalty(self) -> Tensor:
        raise NotImplementedError

    def _prior_natural(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def _stats(self, X: Tensor, resp: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def _set_natural(self, eta: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def _log_predictive(self, X: Tensor) -> Tensor:
        raise NotImplementedError

    def _get_state(self) -> dict[str, Tensor]:
        return {k: v.clone() for k, v in self._natural.items()}

    def _set_state(self, state: dict[str, Tensor]) -> None:
        self._set_natural(state)

    # --- prediction -------------------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """(N, K) responsibilities q(c_i = k) of new points under the fitted globals."""
        return torch.softmax(self._log_rho(self._check_X(X)), 1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """(N,) most probable component of each point."""
        return self.predict_proba(X).argmax(1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X)`` then the (N,) components of X's points."""
        return self.fit(X).predict(X)

    def score_samples(self, X) -> np.ndarray:
        """(N,) log density of each point under the fitted model (posterior predictive for VI), nats."""
        return self._log_predictive(self._check_X(X)).cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean log density per point, nats (as scikit-learn's ``score``)."""
        return float(self.score_samples(X).mean())
