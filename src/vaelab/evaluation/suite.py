"""The evaluation suite of `vaelab evaluate`: IS log-likelihood, IWAE-64, ELBO, the two
posterior gaps, active units per layer — one dict of scalars, written as JSON and CSV."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.text import lengths
from ..labels import label_mode_of
from ..progress import bar
from ._stats import mean_se
from .active_units import latent_diagnostics
from .classify import classification_error
from .loglik import importance_sampled_log_likelihood


def evaluate_model(
    model,
    x: Tensor,
    k: int = 5000,
    iwae_k: int = 64,
    batch_size: int = 100,
    seed: int = 0,
    per_point: bool = False,
    dist=None,
    y: Tensor | None = None,
) -> dict:
    """All evaluation numbers for one model on data x (N, *x_shape), in nats per data point.

    Keys:
        log_px, log_px_se: IS estimate log p_hat(x) with K = ``k`` (Burda et al. 2016, Sec. 5.2),
            mean over points and its standard error; ``nll`` = -log_px; ``bits_per_dim`` =
            nll / (x_dim ln 2). For a text model (token sequences, nats per sentence) instead ``ppl``,
            the perplexity per token over ``n_tokens`` words + ``<eos>`` (docs/text.md), and
            ``bits_per_dim`` is None.
        iwae, iwae_se: the IWAE-``iwae_k`` bound (Rainforth et al. 2018's IWAE-64).
        elbo, elbo_se: the ELBO (mean of all K log-weights).
        gap, gap_se: log p_hat(x) - ELBO, an estimate of KL(q(h|x) || p(h|x)) (paired s.e.).
        neg_kl_QP, neg_kl_QP_se: IWAE-k - log p_hat(x), Rainforth et al.'s -KL(Q||P): minus the
            KL from the importance-weighted proposal Q to the posterior (paired s.e.).
        active_units, active_units_per_layer: Burda et al.'s A_u > 10^-2 count, total and per layer.
        kl_mc: E_x KL(q(h|x) || p(h)), one-sample Monte Carlo.
        per_point_log_px, per_point_elbo: with ``per_point=True``, the N per-point estimates of log p(x)
            and of the ELBO (for paired comparisons).

    With labels y (N,): a conditional model is scored on log p(x|y) (``conditioned`` = True); a
    semi-supervised one on log p(x) (labels unseen), and its classifier's ``error`` / ``error_se``
    (argmax q(y|x) against y, binomial s.e.) are added.

    Under torchrun pass ``dist`` (:class:`~vaelab.distributed.Dist`): the IS estimate, the costly
    part, is shared out by batches; every rank returns the same dict.
    Raises:
        DataError: x has the wrong shape, NaNs, or values outside the likelihood's support.
    """
    mode = label_mode_of(model)
    cond = mode.condition(y)
    stages = bar(total=3, desc="evaluation (IS log p(x), latent diagnostics, classifier)", unit="stage", leave=True)
    ll = importance_sampled_log_likelihood(model, x, k=k, batch_size=batch_size, seed=seed, iwae_k=iwae_k, dist=dist, y=cond)
    stages.update(1)
    diag = latent_diagnostics(model, x[:10000], seed=seed, y=cond[:10000] if cond is not None else None)
    stages.update(1)
    out: dict[str, Any] = {"n": ll.n, "k": ll.k, "iwae_k": ll.iwae_k, "x_dim": ll.x_dim, "conditioned": cond is not None}
    if mode.infers_labels and y is not None:
        cls = classification_error(model, x, y)
        out["error"], out["error_se"] = cls.error, cls.se
    stages.update(1)
    stages.close()
    out["log_px"], out["log_px_se"] = mean_se(ll.per_point)
    out["log_px_std"] = ll.std
    out["nll"] = -out["log_px"]
    if getattr(model, "autoregressive", False):  # token sequences: per-token perplexity, not bits per padded slot
        n_tokens = float(lengths(x).sum())
        out["bits_per_dim"] = None
        out["ppl"] = math.exp(-float(ll.per_point.double().sum()) / n_tokens)
        out["n_tokens"] = int(n_tokens)
    else:
        out["bits_per_dim"] = out["nll"] / (ll.x_dim * math.log(2))
    out["iwae"], out["iwae_se"] = mean_se(ll.per_point_iwae)
    out["elbo"], out["elbo_se"] = mean_se(ll.per_point_elbo)
    out["gap"], out["gap_se"] = mean_se(ll.per_point - ll.per_point_elbo)
    out["neg_kl_QP"], out["neg_kl_QP_se"] = mean_se(ll.per_point_iwae - ll.per_point)
    out["active_units"] = diag.active_units
    out["active_units_per_layer"] = "+".join(str(a) for a in diag.active_units_per_layer)
    out["kl_mc"] = diag.kl_mc
    out["units"] = "nats per data point"
    if per_point:
        out["per_point_log_px"] = ll.per_point.tolist()
        out["per_point_elbo"] = ll.per_point_elbo.tolist()
    return out


def write_evaluation(run_dir: str | Path, split: str, result: dict) -> tuple[Path, Path]:
    """Write ``evaluation_{split}.json`` and ``evaluation_{split}.csv`` (one row) in run_dir."""
    run_dir = Path(run_dir)
    js, cs = run_dir / f"evaluation_{split}.json", run_dir / f"evaluation_{split}.csv"
    js.write_text(json.dumps(result, indent=2))
    scalars = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
    with open(cs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(scalars))
        w.writeheader()
        w.writerow(scalars)
    return js, cs


def summary_lines(r: dict) -> list[str]:
    """Human-readable lines for a result of :func:`evaluate_model`."""
    return [
        f"  log p(x) by IS, K={r['k']}: {r['log_px']:.3f} ± {r['log_px_se']:.3f} (s.e.) nats; "
        f"NLL {r['nll']:.3f} "
        + (
            f"({r['bits_per_dim']:.4f} bits/dim)"
            if r.get("bits_per_dim") is not None
            else f"(perplexity {r['ppl']:.2f} per token)"
        ),
        f"  IWAE-{r['iwae_k']}: {r['iwae']:.3f}   ELBO: {r['elbo']:.3f} nats",
        f"  gap log p(x) - ELBO (KL(q||p(h|x))): {r['gap']:.3f} ± {r['gap_se']:.3f}; "
        f"-KL(Q||P) = IWAE-{r['iwae_k']} - log p(x): {r['neg_kl_QP']:.3f} ± {r['neg_kl_QP_se']:.3f}",
        f"  active units: {r['active_units']} ({r['active_units_per_layer']} per layer); KL(q||p): {r['kl_mc']:.3f} nats",
        *(
            [f"  classifier q(y|x): error {100 * r['error']:.2f} ± {100 * r['error_se']:.2f} % (s.e.)"]
            if "error" in r
            else []
        ),
        *(["  (log p(x|y): conditioned on the labels)"] if r.get("conditioned") else []),
        *(
            [f"  log p(x) by AIS, T={r['ais_steps']}, C={r['ais_chains']} from the {r['ais_start']}: "
             f"{r['ais_log_px']:.3f} ± {r['ais_log_px_se']:.3f}; IS - AIS {r['is_minus_ais']:+.3f} ± "
             f"{r['is_minus_ais_se']:.3f} (paired); chains' ESS {r['ais_ess']:.1f}, acceptance {r['ais_accept']:.2f}"]
            if "ais_log_px" in r
            else []
        ),
        *(
            [f"  BDMC on {r['bdmc_n']} simulated points, T={r['bdmc_steps']}: log p(x) in [{r['bdmc_lower']:.3f}, "
             f"{r['bdmc_upper']:.3f}], gap {r['bdmc_gap']:.3f} nats (bounds AIS's error on such data)"]
            if "bdmc_gap" in r
            else []
        ),
    ]  # fmt: skip


def with_ais(result: dict, ais, is_per_point: list) -> dict:
    """``result`` (of :func:`evaluate_model` with ``per_point=True``) with the AIS estimate beside IS:
    ``ais_log_px`` ± ``ais_log_px_se``, the paired ``is_minus_ais`` ± s.e., and the run's settings."""
    result.update(ais_log_px=ais.mean, ais_log_px_se=ais.stderr, ais_steps=ais.steps, ais_chains=ais.chains,
                  ais_start=ais.start, ais_ess=ais.ess, ais_accept=ais.accept, ais_seconds=ais.seconds)  # fmt: skip
    result["is_minus_ais"], result["is_minus_ais_se"] = mean_se(torch.tensor(is_per_point).double() - ais.per_point)
    return result


def with_bdmc(result: dict, b) -> dict:
    """``result`` with BDMC's bounds on simulated data (:func:`vaelab.evaluation.ais.bdmc`)."""
    result.update(bdmc_lower=b.forward.mean, bdmc_upper=b.reverse.mean, bdmc_gap=b.gap, bdmc_n=b.x.shape[0],
                  bdmc_steps=b.forward.steps, bdmc_chains=b.forward.chains)  # fmt: skip
    return result


__all__ = ["evaluate_model", "summary_lines", "with_ais", "with_bdmc", "write_evaluation"]
