"""The estimator x objective x latent-family matrix, shared by tests/test_gradient_matrix.py and
docs/estimators.md (not a test module).

Each cell is a registered estimator, a registered objective (at a sample layout where every
bound is non-trivial: K >= 2 per group) and a registered latent family (Bernoulli, categorical,
their relaxations, Gaussian), on a tiny model whose discrete latent states can all be
enumerated. A cell is either *refused* (the estimator's ``check`` / ``check_objective`` raise a
one-line ConfigError that names an alternative) or *tested* against a reference gradient; there
is no third state.

Reference gradients: for Bernoulli / categorical latents the exact gradient of the exact bound, by
enumerating every tuple of K latent states; for the continuous families (the relaxations and the
Gaussian) the mean of the reparameterization gradient over many draws, which every other estimator
of the same bound must match.
"""

from __future__ import annotations

import itertools
import math
import warnings

import torch
import torch.nn.functional as F

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.estimators import ESTIMATORS
from vaelab.models import build_model
from vaelab.objectives import OBJECTIVES, renyi

D_X, BATCH = 4, 2
FAMILIES = {  # latent options; (D, C) small enough to enumerate C^D states, K-tuples of them
    "bernoulli": {"kind": "bernoulli", "dim": 2},
    "categorical": {"kind": "categorical", "dim": 2, "classes": 3},
    "relaxed_bernoulli": {"kind": "relaxed_bernoulli", "dim": 2, "temperature": 0.5},
    "relaxed_categorical": {"kind": "relaxed_categorical", "dim": 2, "classes": 3, "temperature": 0.5},
    "gaussian": {"kind": "gaussian", "dim": 2},
    "planar": {"kind": "planar", "dim": 2, "n_flows": 2},
    "iaf": {"kind": "iaf", "dim": 2, "n_flows": 2, "hidden": [4], "context": 2},
}
PRIOR = {"bernoulli": "bernoulli", "categorical": "categorical", "gaussian": "standard_normal"}
PRIOR |= {"planar": "standard_normal", "iaf": "standard_normal"}
#: objective -> (options, K = train.n_samples): S = groups * K samples per point
LAYOUTS = {
    "elbo": ({}, 3),
    "iwae": ({}, 3),
    "miwae": ({"groups": 2}, 2),
    "piwae": ({"groups": 2}, 2),
    "ciwae": ({"beta": 0.5}, 3),
    "vr": ({"alpha": 0.5}, 3),
    "vr_max": ({}, 3),
}
#: options every cell uses; nvil's normalization is tested for direction on its own
ESTIMATOR_OPTIONS = {
    "nvil": {"hidden": [4], "normalize": False},
    "gumbel": {"temperature": 0.5},
    "savae": {"steps": 1, "lr": 1e-9},  # a vanishing refinement: its bound is then the amortized one
}
SHARPNESS = 3.0  # parameters scaled up: sharp q and p(x|z), a learning signal with sigma >> 1


def discrete(family: str) -> bool:
    """Whether the family's states can be enumerated (the reference is then exact)."""
    return family in ("bernoulli", "categorical")


def build(family: str, seed: int = 0):
    """The tiny model (linear encoder and decoder, Bernoulli likelihood) and its data x (B, D_X)."""
    base = family.replace("relaxed_", "")
    cfg = RunConfig().override(
        {
            "model.latent": FAMILIES[family],
            "model.prior": PRIOR[base],
            "model.likelihood": "bernoulli",
            "model.encoder.hidden": [],
            "model.decoder": {"kind": "mlp", "hidden": []},
        }
    )
    torch.manual_seed(seed)
    model = build_model(cfg.model, (D_X,))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(SHARPNESS)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    return model, x


def objective(name: str):
    options, k = LAYOUTS[name]
    return OBJECTIVES.build(name, options), k


def estimator(name: str, **override):
    return ESTIMATORS.build(name, {**ESTIMATOR_OPTIONS.get(name, {}), **override})


def classify(est_name: str, obj_name: str, family: str) -> str | None:
    """None when the cell is accepted, else the refusal's one-line message."""
    model, _ = build(family)
    est = estimator(est_name)
    obj, k = objective(obj_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # STL's bias warning is an acceptance, not a refusal
            est.check(model)
            est.check_objective(obj, k)
    except ConfigError as e:
        return str(e)
    return None


def cells():
    """Every (estimator, objective, family) triple of the registries, in a fixed order."""
    return list(itertools.product(ESTIMATORS.names(), OBJECTIVES.names(), list(FAMILIES)))


# --- exact bounds by enumeration ------------------------------------------------------------------


def states(family: str, model) -> torch.Tensor:
    """Every latent configuration: (N, D) binary or (N, D, C) one-hot."""
    latent = model.latent
    if latent.support == "binary":
        return torch.tensor(list(itertools.product([0.0, 1.0], repeat=latent.dim)))
    idx = torch.tensor(list(itertools.product(range(latent.classes), repeat=latent.dim)))  # (N, D)
    return F.one_hot(idx, latent.classes).float()


def exact_iwae(model, x, family: str, k: int, alpha: float = 0.0) -> torch.Tensor:
    """Exact IWAE-k (or VR-alpha with k samples) per point (k = 1: the ELBO), differentiable: sum over
    all N^k state tuples of q(z_1..z_k|x) (log mean_k w_k). Returns (B,) nats."""
    z = states(family, model)
    log_pxz = model.conditional(z.unsqueeze(1)).log_prob(x) + model.prior.log_prob(z).unsqueeze(1)  # (N, B)
    log_q = model.posterior(x).log_prob(z.unsqueeze(1))  # (N, B)
    log_w = log_pxz - log_q
    n = z.shape[0]
    tuples = torch.cartesian_prod(*[torch.arange(n)] * k).view(-1, k)  # (N^k, k)
    log_prob = log_q[tuples].sum(1)  # (N^k, B): log q of the tuple
    value = renyi(log_w[tuples], alpha, dim=1)  # (N^k, B)
    return (log_prob.exp() * value).sum(0)


def exact_terms(model, x, family: str, terms, s: int) -> torch.Tensor:
    """sum_j c_j E[MIWAE_alpha_j(m_j groups of S/m_j)] = sum_j c_j VR_alpha_j-(S/m_j) exactly: (B,)."""
    return sum(c * exact_iwae(model, x, family, s // m, alpha) for c, m, alpha in terms if c)


def exact_gradient(model, x, family: str, obj, k: int) -> torch.Tensor:
    """The exact gradient of the batch-mean bound, each parameter from its own group's bound
    (PIWAE: the encoder's MIWAE, the decoder's IWAE), flattened (P,)."""
    s = k * obj.groups
    params = list(model.parameters())
    inference = {id(p) for p in model.parameter_groups()["inference"]}
    g_inf = torch.autograd.grad(exact_terms(model, x, family, obj.inference_terms(s), s).mean(), params, allow_unused=True)
    g_gen = torch.autograd.grad(exact_terms(model, x, family, obj.terms(s), s).mean(), params, allow_unused=True)
    return _flatten(params, [gi if id(p) in inference else gg for p, gi, gg in zip(params, g_inf, g_gen)])


def _flatten(params, grads) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for p, g in zip(params, grads)])


# --- estimator draws -------------------------------------------------------------------------------


def draws(model, x, est, obj, k: int, chunks: int = 50, replicas: int = 200, seed: int = 0) -> torch.Tensor:
    """``chunks`` independent gradient estimates, each the mean over ``replicas`` copies of the
    batch (one forward / backward on (replicas * B) rows), each parameter from its own group's
    surrogate as in training. Returns (chunks, P) float64: chunk means, so their spread gives the
    standard error of the overall mean (batch means)."""
    torch.manual_seed(seed)
    params = list(model.parameters())
    inference = {id(p) for p in model.parameter_groups()["inference"]}
    rows = x.unsqueeze(0).expand(replicas, *x.shape).reshape(replicas * x.shape[0], *x.shape[1:])  # (R*B, D_X)
    out = []
    for _ in range(chunks):
        e = est(model.log_weight_terms(rows, k * obj.groups, reparameterize=est.pathwise), obj)
        g_inf = torch.autograd.grad(e.inference.mean(), params, retain_graph=True, allow_unused=True)
        g_gen = torch.autograd.grad(e.generative.mean(), params, allow_unused=True)
        out.append(_flatten(params, [gi if id(p) in inference else gg for p, gi, gg in zip(params, g_inf, g_gen)]))
        est.step_done()
    return torch.stack(out).double()


def z_scores(d: torch.Tensor, reference: torch.Tensor, reference_se: torch.Tensor | float = 0.0) -> torch.Tensor:
    """|mean - reference| in standard errors, per coordinate (the reference's own s.e. added in quadrature)."""
    se = d.std(0) / math.sqrt(d.shape[0])
    return (d.mean(0) - reference.double()).abs() / (se.pow(2) + torch.as_tensor(reference_se).pow(2)).sqrt().clamp_min(1e-9)


def relative_bias(d: torch.Tensor, exact: torch.Tensor) -> float:
    """||mean - exact|| / ||exact||."""
    return float((d.mean(0) - exact.double()).norm() / exact.double().norm())


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=0))
