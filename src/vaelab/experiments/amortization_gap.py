"""`vaelab reproduce amortization-gap`: how far amortized inference is from per-datapoint
optimization on MNIST (Cremer, Li & Duvenaud 2018), for a VAE, a semi-amortized VAE (Kim et al.
2018) and a generative model trained by non-amortized SVI (seed 001), with ELBO surgery
(Hoffman & Johnson 2016) for each.

Every model is seed 001's deep generative model, z ~ N(0, I_50), h = ReLU(W1 z) (500 units),
x ~ Bernoulli(sigmoid(W2 h)), with a mirrored one-hidden-layer ReLU encoder where there is one
(dynamic binarization; Adam 1e-3, batch 100), trained for the budget's epochs. On a fixed random subset of the test set:
the amortized ELBO (encoder), the SA-VAE's refined ELBO (its training refinement), the ELBO of
q* optimized per point (Adam, step size decayed to 0, from the encoder's lambda; from the
prior for the non-amortized model), log p_hat(x) by IS with q* as proposal, and the gaps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch

from ..data import load_data
from ..evaluation import (
    ais_log_likelihood,
    amortization_gap,
    elbo_per_point,
    elbo_surgery,
    importance_sampled_log_likelihood,
    optimize_posteriors,
)
from ..evaluation._stats import mean_se
from ..inference import encoder_params, fit_non_amortized, refine
from ..models import build_model, init_decoder_bias
from ..train import fit
from ._study import Budget, budgets, mnist_config, surgery_table, test_subset
from .study import Study, StudyResult, StudyRun, register_study

#: K = 5 plain gradient steps of size 0.02: on the test images of a VAE (tanh MLP, 1 epoch on 2,000 images),
#: 5 steps of 0.001 / 0.003 / 0.01 / 0.03 raised the ELBO by 0.12 / 0.30 / 0.67 / 0.91 nats (1 sample per
#: step); 0.05 lowered it
SAVAE = {"steps": 5, "lr": 0.02, "mode": "end_to_end"}


@dataclass(frozen=True)
class GapBudget:
    name: str
    epochs: int
    n_train: int
    n_test: int
    k_is: int
    opt_steps: int
    note: str
    ais_points: int = 100  # test images also scored by AIS (from the prior), the reference IS is compared with
    ais_steps: int = 200
    ais_chains: int = 8


_SMALL = GapBudget("small", epochs=10, n_train=50000, n_test=1000, k_is=2000, opt_steps=400,
                   note="10 epochs on 50,000 training images; 1,000 test images; q* after 400 Adam steps; "
                   "IS K = 2,000")  # fmt: skip
BUDGETS = budgets(_SMALL, replace(_SMALL, name="medium", epochs=100, n_test=2000, k_is=5000, opt_steps=1000,
                                  note="100 epochs on 50,000; 2,000 test images; q* after 1,000 steps; "
                                  "IS K = 5,000"))  # fmt: skip


def _config(data_dir, b: GapBudget, **over):
    budget = Budget(b.name, epochs=b.epochs, n_test=b.n_test, valid_iwae_k=0)
    seed_dgm = {"model.encoder": {"kind": "mlp", "hidden": [500], "activation": "relu"}, "model.latent.dim": 50}
    return mnist_config(data_dir, budget).override({"train.num_threads": torch.get_num_threads(), **seed_dgm, **over})


def _gaps(model, x, b: GapBudget, amortized: bool) -> dict:
    t0 = time.perf_counter()
    if amortized:
        r = amortization_gap(model, x, steps=b.opt_steps, lr=1e-2, k=b.k_is, elbo_samples=20).summary()
        params = None
    else:  # no encoder: q* from the prior's lambda
        zeros = torch.zeros(x.shape[0], model.latent.n_params)
        params = optimize_posteriors(model, x, b.opt_steps, lr=5e-2, init=zeros)
        opt = elbo_per_point(model, x, params, 20, seed=0)
        ll = importance_sampled_log_likelihood(model, x, k=b.k_is, proposal=params).per_point.double()
        r = {
            "amortized_elbo": None,
            "optimized_elbo": float(opt.mean()),
            "log_px": float(ll.mean()),
            "approximation_gap": float((ll - opt).mean()),
            "amortization_gap": None,
        }
    surgery = elbo_surgery(model, x, params=params).summary()
    return {**r, "surgery": surgery, "ais": _ais_reference(model, x, b, params), "eval_seconds": time.perf_counter() - t0}


def _ais_reference(model, x, b: GapBudget, params) -> dict:
    """On the first ``b.ais_points`` images: AIS from the prior (T = ``ais_steps``, C = ``ais_chains``) and
    IS with K = ``k_is`` (the encoder's q, or q* without an encoder) on the same images, paired."""
    xa = x[: b.ais_points]
    ais = ais_log_likelihood(model, xa, steps=b.ais_steps, chains=b.ais_chains)
    proposal = None if params is None else params[: b.ais_points]
    is_ = importance_sampled_log_likelihood(model, xa, k=b.k_is, proposal=proposal).per_point.double()
    diff, diff_se = mean_se(is_ - ais.per_point)
    return {**ais.summary(), "n": xa.shape[0], "is_log_px": float(is_.mean()), "is_minus_ais": diff,
            "is_minus_ais_se": diff_se}  # fmt: skip


def _refined_elbo(model, x) -> float:
    """The SA-VAE's ELBO after the refinement it was trained with (K SGD steps from its encoder)."""
    with torch.no_grad():
        lam0 = encoder_params(model, x)
    refined = refine(model, x, lam0, SAVAE["steps"], SAVAE["lr"], optimizer="sgd")
    return float(elbo_per_point(model, x, refined, 20, seed=0).mean())


def _body(ctx: StudyRun) -> StudyResult:
    """Train the amortized VAE, SA-VAE and non-amortized SVI; measure their gaps; report."""
    b, out, data_dir, log = ctx.budget, ctx.out, ctx.data_dir, ctx.log
    torch.set_flush_denormal(True)
    cfg = _config(data_dir, b)
    data = load_data(cfg.data, "bernoulli")
    data = replace(data, train=data.train[: b.n_train], train_labels=None)
    x = test_subset(data.test, b.n_test)
    results = {}
    for name, over in (("vae", {}), ("savae", {"train.estimator": {"kind": "savae", **SAVAE}})):
        t0 = time.perf_counter()
        res = fit(_config(data_dir, b, **over), out / "runs" / name, data=data, tensorboard=False)
        train_s = time.perf_counter() - t0
        log(f"amortization-gap: trained {name} in {train_s:.0f} s; evaluating")
        results[name] = {"train_seconds": train_s, **_gaps(res.model, x, b, amortized=True)}
        if name == "savae":
            results[name]["refined_elbo"] = _refined_elbo(res.model, x)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.x_shape)
    init_decoder_bias(model, data.train, cfg.model.decoder_bias)  # as fit does for the amortized rows
    t0 = time.perf_counter()
    na = fit_non_amortized(
        model, data.train, b.epochs, batch_size=100, inner_steps=5, inner_lr=5e-2, lr=1e-3, dynamic_binarization=True
    )
    results["svi"] = {"train_seconds": time.perf_counter() - t0, "history": na.history, **_gaps(model, x, b, False)}
    log("amortization-gap: non-amortized SVI trained and evaluated")
    return StudyResult({"budget": b.__dict__, "results": results}, report(results, b), show=True)


def _quick(b: Budget) -> Budget:
    return replace(b, epochs=1, n_train=2000, n_test=100, k_is=200, opt_steps=50, ais_points=10, ais_steps=10, ais_chains=2)


STUDY = register_study(Study("amortization-gap", _body, BUDGETS, quick=_quick, fresh_runs=True, json_default=str))
run = STUDY.run


def _f(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def report(r: dict, b: GapBudget) -> str:
    labels = {
        "vae": "VAE (amortized)",
        "savae": f"SA-VAE (K = {SAVAE['steps']} SGD steps, lr {SAVAE['lr']})",
        "svi": "non-amortized SVI (5 Adam steps per visit)",
    }
    lines = [
        "# The amortization gap on MNIST, with ELBO surgery",
        "",
        f"Budget `{b.name}`: {b.note}.",
        "Model: seed 001's z (50) -> ReLU 500 -> Bernoulli logits (784); encoder 784 -> ReLU 500 -> (mu, log "
        "sigma^2). Adam 1e-3, batch 100, dynamic binarization.",
        "",
        "Nats per test image (mean over the same test images for every row).",
        "",
        "| training | train s | amortized ELBO | SA-refined ELBO | optimized ELBO q* | log p̂(x) | "
        "approximation gap | amortization gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in r.items():
        lines.append(
            f"| {labels[name]} | {res['train_seconds']:.0f} | {_f(res['amortized_elbo'])} | "
            f"{_f(res.get('refined_elbo'))} | {_f(res['optimized_elbo'])} | {_f(res['log_px'])} | "
            f"{_f(res['approximation_gap'])} | {_f(res['amortization_gap'])} |"
        )
    lines += _ais_lines(r, b, labels)
    lines += [
        "",
        "## ELBO surgery (Hoffman & Johnson 2016): ELBO = E[log p(x|z)] − I_q(x; z) − KL(q(z) ‖ p(z))",
        "",
        f"On the same test images, with the encoder's q (the optimized q* for non-amortized SVI). I_q is capped "
        f"at log N = {math.log(b.n_test):.2f} nats by the N-point aggregate posterior.",
        "",
        *surgery_table({labels[name]: res["surgery"] for name, res in r.items()}, "training"),
    ]
    lines += ["", "Reproduce with `vaelab reproduce amortization-gap --budget " + b.name + "`.", ""]
    return "\n".join(lines)


def _ais_lines(r: dict, b: GapBudget, labels: dict) -> list[str]:
    """The AIS reference table: IS − AIS per training, paired over the same images."""
    a = next(iter(r.values()))["ais"]
    lines = [
        "",
        f"## How far importance sampling is below AIS (first {a['n']} test images)",
        "",
        f"AIS from the prior, T = {a['steps']} steps (sigmoidal geometric path), C = {a['chains']} chains, "
        f"{a['leapfrog']} leapfrog steps per HMC move (Neal 2001; Wu et al. 2017); IS with K = {b.k_is} and the "
        "encoder's q as proposal (q* for non-amortized SVI) on the same images. Both are stochastic lower bounds "
        "on log p(x): IS − AIS < 0 is how far IS falls short of AIS; > 0 would say AIS has not converged.",
        "",
        "| training | AIS log p̂(x) | ± s.e. | IS log p̂(x) | IS − AIS (paired) | chains' ESS | acceptance | AIS s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in r.items():
        a = res["ais"]
        lines.append(
            f"| {labels[name]} | {a['mean']:.2f} | {a['stderr']:.2f} | {a['is_log_px']:.2f} | "
            f"{a['is_minus_ais']:+.3f} ± {a['is_minus_ais_se']:.3f} | {a['ess']:.1f} | {a['accept']:.2f} | "
            f"{a['seconds']:.0f} |"
        )
    return lines
