"""Classical VI for Gaussian mixtures: monotone CAVI/EM, recovery, scikit-learn agreement,
closed-form ELBOs against Monte Carlo, SVI converging to CAVI."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import NotFittedError
from torch.distributions import Dirichlet, MultivariateNormal, Normal, Wishart

from vaelab.errors import ConfigError, DataError
from vaelab.experiments.cavi_gmm import SkBayesianFromResp as SkBGMM
from vaelab.experiments.cavi_gmm import SkGMMFromResp as SkGMM
from vaelab.vi import BayesianGaussianMixture, GaussianMixture, UnitVarianceMixture

TRUE_MEANS = np.array([[-6.0, 0.0], [0.0, 5.0], [6.0, 0.0]])


def blobs(n_per=300, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, scale, (n_per, 2)) for m in TRUE_MEANS])


def random_resp(n, k, seed=1):
    return np.eye(k)[np.random.default_rng(seed).integers(0, k, n)]


@pytest.mark.parametrize(
    "fitter",
    [
        UnitVarianceMixture(3, init="random", max_iter=60, tol=0),
        BayesianGaussianMixture(3, init="random", max_iter=60, tol=0),
        GaussianMixture(3, init="random", max_iter=60, tol=0),
    ],
    ids=["blei", "bishop", "em"],
)
def test_coordinate_ascent_never_decreases_the_bound(fitter):
    fitter.fit(blobs(scale=2.0))  # overlapping clusters: many sweeps with real progress
    steps = np.diff(fitter.elbo_)
    assert len(steps) == 59
    assert steps.min() >= -1e-9 * abs(fitter.elbo_[-1])  # float64 round-off only
    assert fitter.elbo_[-1] - fitter.elbo_[0] > 1.0


def test_blei_cavi_recovers_the_means_up_to_permutation():
    m = UnitVarianceMixture(3, n_init=3, seed=0).fit(blobs())
    est = m.means_  # numpy, as scikit-learn's
    cost = ((est[:, None] - TRUE_MEANS[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    # each mean is estimated from 300 unit-variance points: per-coordinate s.e. 1/sqrt(300) = 0.058
    assert np.abs(est[rows] - TRUE_MEANS[cols]).max() < 4 / math.sqrt(300)
    assert m.converged_ and torch.allclose(
        torch.as_tensor(m.mean_variances_), 1 / (1 / 25 + torch.full((3,), 300.0, dtype=torch.float64)), rtol=0.05
    )


def test_em_matches_scikit_learn():
    X = blobs(scale=2.0)
    resp = random_resp(len(X), 3)
    sk = SkGMM(3, max_iter=40, tol=0, reg_covar=1e-6)
    sk.resp0 = resp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
    ours = GaussianMixture(3, max_iter=40, tol=0, reg_covar=1e-6).fit(X, init_resp=resp)
    assert ours.score(X) == pytest.approx(sk.score(X), rel=1e-6)
    assert np.allclose(ours.means_, sk.means_, rtol=1e-6, atol=1e-9)
    assert np.allclose(ours.covariances_, sk.covariances_, rtol=1e-6, atol=1e-9)


def test_full_bayesian_mixture_matches_scikit_learn():
    X = blobs(scale=2.0)
    resp = random_resp(len(X), 3)
    priors = dict(
        weight_concentration_prior=0.5,
        mean_precision_prior=0.8,
        mean_prior=[0.5, -0.5],
        degrees_of_freedom_prior=3.0,
        covariance_prior=[[2.0, 0.3], [0.3, 1.5]],
    )
    sk = SkBGMM(
        n_components=3, weight_concentration_prior_type="dirichlet_distribution", max_iter=40, tol=0, reg_covar=0.0, **priors
    )
    sk.resp0 = resp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
    ours = BayesianGaussianMixture(3, max_iter=40, tol=0, **priors).fit(X, init_resp=resp)
    for name in ("weights_", "means_", "covariances_", "degrees_of_freedom_", "mean_precision_"):
        assert np.allclose(getattr(ours, name), getattr(sk, name), rtol=1e-6, atol=1e-9), name
    assert np.allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)


def _mc_elbo_bishop(m, X, n_draws=4000, seed=0):
    """E_q[log p(X, c, pi, mu, Lambda) - log q] by sampling the globals, c summed exactly."""
    torch.manual_seed(seed)
    X = torch.as_tensor(X)
    r = torch.as_tensor(m.predict_proba(X))  # (N, K)
    alpha, beta, nu, mean = map(
        torch.as_tensor, (m.weight_concentration_, m.mean_precision_, m.degrees_of_freedom_, m.means_)
    )
    q_pi, q_lam = Dirichlet(alpha), Wishart(df=nu, precision_matrix=m._w_inv)
    pi, lam = q_pi.sample((n_draws,)), q_lam.sample((n_draws,))  # (S, K), (S, K, D, D)
    q_mu = MultivariateNormal(mean, precision_matrix=beta[:, None, None] * lam)
    mu = q_mu.sample()  # (S, K, D)
    p_pi = Dirichlet(torch.full_like(alpha, m._alpha0))
    m0 = m._m0 + m._shift
    p_lam = Wishart(df=torch.full_like(nu, m._nu0), precision_matrix=m._w0_inv.expand_as(m._w_inv))
    p_mu = MultivariateNormal(m0, precision_matrix=m.mean_precision_prior * lam)
    log_lik = MultivariateNormal(mu[:, None], precision_matrix=lam[:, None]).log_prob(X[None, :, None])  # (S, N, K)
    per_draw = (
        (r * (torch.log(pi)[:, None] + log_lik - torch.log(r.clamp_min(1e-300)))).sum((1, 2))
        + p_pi.log_prob(pi)
        - q_pi.log_prob(pi)
        + (p_lam.log_prob(lam) - q_lam.log_prob(lam)).sum(1)
        + (p_mu.log_prob(mu) - q_mu.log_prob(mu)).sum(1)
    )
    return per_draw.mean().item(), per_draw.std().item() / math.sqrt(n_draws)


@pytest.mark.filterwarnings("ignore:Singular sample")  # torch's Wishart sampler, on a few near-singular draws
def test_full_bayesian_closed_form_elbo_matches_monte_carlo():
    X = blobs(n_per=40, scale=2.0)
    m = BayesianGaussianMixture(3, max_iter=2, tol=0, init="kmeans++").fit(X)  # not at convergence
    mc, se = _mc_elbo_bishop(m, X)
    assert abs(m.elbo_[-1] - mc) < 4 * se + 1e-6, (m.elbo_[-1], mc, se)


def test_blei_closed_form_elbo_matches_monte_carlo():
    X = torch.as_tensor(blobs(n_per=40, scale=2.0))
    m = UnitVarianceMixture(3, max_iter=2, tol=0, init="random", prior_std=3.0).fit(X)
    torch.manual_seed(0)
    means, variances = torch.as_tensor(m.means_), torch.as_tensor(m.mean_variances_)
    q = Normal(means, variances.sqrt()[:, None].expand_as(means))
    mu = q.sample((4000,))  # (S, K, D)
    r = torch.as_tensor(m.predict_proba(X))  # (N, K)
    log_lik = Normal(mu[:, None], 1.0).log_prob(X[None, :, None]).sum(-1)  # (S, N, K)
    per = (r * (log_lik - math.log(3) - torch.log(r.clamp_min(1e-300)))).sum((1, 2)) + (
        Normal(0.0, 3.0).log_prob(mu) - q.log_prob(mu)
    ).sum((1, 2))
    assert abs(m.elbo_[-1] - per.mean().item()) < 4 * per.std().item() / math.sqrt(4000) + 1e-6


@pytest.mark.parametrize("cls", [UnitVarianceMixture, BayesianGaussianMixture])
def test_svi_converges_to_the_cavi_solution(cls):
    X = blobs()
    cavi = cls(3, n_init=3).fit(X)
    svi = cls(3, algorithm="svi", batch_size=64, max_iter=40, tol=0, kappa=0.7, tau=1.0, n_init=3).fit(X)
    order = linear_sum_assignment(((cavi.means_[:, None] - svi.means_[None]) ** 2).sum(-1))[1]
    assert np.abs(svi.means_[order] - cavi.means_).max() < 0.05
    assert abs(svi.elbo_[-1] - cavi.elbo_[-1]) < 1e-3 * len(X)  # within a thousandth of a nat per point


def test_svi_with_one_batch_and_unit_step_is_cavi():
    X = blobs()
    kw = dict(max_iter=10, tol=0, init="random")
    cavi = BayesianGaussianMixture(3, **kw).fit(X)
    # rho_0 = (0 + 1)^-1 = 1: the first full-batch SVI step is a CAVI sweep
    svi = BayesianGaussianMixture(3, algorithm="svi", batch_size=len(X), tau=1.0, kappa=1.0, **kw)
    svi.fit(X)
    assert svi.elbo_[0] == pytest.approx(cavi.elbo_[0], rel=1e-12)
    assert svi.elbo_[1] != pytest.approx(cavi.elbo_[1], rel=1e-12)  # rho_1 = 1/2 from then on


def test_bad_input_and_options_give_one_line_errors():
    with pytest.raises(DataError, match="NaN"):
        UnitVarianceMixture(2).fit(np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(DataError, match="Expected 2D array") as e:
        GaussianMixture(2).fit(np.zeros(5))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="5 components need at least 5 points"):
        GaussianMixture(5).fit(np.zeros((3, 2)))
    X = blobs(n_per=10)
    with pytest.raises(ConfigError, match="kappa"):  # options are checked by fit (scikit-learn's convention)
        UnitVarianceMixture(2, kappa=0.4).fit(X)
    with pytest.raises(ConfigError, match="tau > 0"):  # rho_0 = 0^(-kappa) would divide by zero
        UnitVarianceMixture(2, algorithm="svi", tau=0.0).fit(X)
    with pytest.raises(ConfigError, match="not available"):
        GaussianMixture(2, algorithm="svi").fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        UnitVarianceMixture(2).predict(np.zeros((3, 2)))
    m = UnitVarianceMixture(2).fit(blobs(n_per=10))
    with pytest.raises(DataError, match="features"):
        m.predict(np.zeros((3, 5)))
    with pytest.raises(ConfigError, match="degrees_of_freedom_prior"):
        BayesianGaussianMixture(2, degrees_of_freedom_prior=0.5).fit(blobs(n_per=10))


ESTIMATORS = [UnitVarianceMixture(), UnitVarianceMixture(algorithm="svi"), GaussianMixture(), BayesianGaussianMixture()]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: f"{type(e).__name__}-{e.algorithm}")
def test_scikit_learns_estimator_checks_pass(est):
    """scikit-learn's own suite (sklearn.utils.estimator_checks.check_estimator): every check passes;
    the one it skips (array-API input) is skipped by scikit-learn itself, with its reason, because the
    estimators' tags declare no array-API support."""
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None, on_skip=None)
    assert est.__sklearn_tags__().array_api_support is False
    not_passed = {r["check_name"]: (r["status"], str(r["exception"])[:200]) for r in results if r["status"] != "passed"}
    assert set(not_passed) <= {"check_array_api_input"}, not_passed
    assert all(status == "skipped" for status, _ in not_passed.values()), not_passed
    assert len(results) >= 40


def test_clone_pipelines_and_grid_search_work_with_numpy_out_and_tensors_in():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = blobs(n_per=60)
    est = BayesianGaussianMixture(3, max_iter=50, seed=1)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "elbo_")
    search = GridSearchCV(
        make_pipeline(StandardScaler(), UnitVarianceMixture()), {"unitvariancemixture__n_components": [1, 3]}, cv=3
    )
    search.fit(X)
    assert search.best_params_ == {"unitvariancemixture__n_components": 3}  # the held-out log-likelihood picks K = 3
    labels = est.fit(torch.as_tensor(X)).predict(torch.as_tensor(X))
    assert isinstance(labels, np.ndarray) and labels.shape == (len(X),) and len(set(labels.tolist())) == 3
    assert isinstance(est.means_, np.ndarray) and isinstance(est.score_samples(X), np.ndarray)
    assert isinstance(est.score(X), float) and np.array_equal(est.fit_predict(X), labels)
