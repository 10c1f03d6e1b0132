"""Sentence-level evaluation of text VAEs and language models: NLL per sentence and perplexity per
word from importance-sampled log p(x) (not from the ELBO alone), beside the ELBO, its
reconstruction and KL terms, active units and the mutual information I_q(x; z).

Perplexity convention: exp(-sum_n log p(x_n) / sum_n (|x_n| + 1)) where |x_n| is the number of
words of sentence n and the + 1 is its ``<eos>`` (which the model predicts and is scored on);
``<bos>`` is never predicted and not counted. This is the usual PTB convention (Mikolov's 82,430
test tokens = 78,669 words + 3,761 ``<eos>``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..data.text import lengths
from ..evaluation import elbo_surgery, importance_sampled_log_likelihood, latent_diagnostics
from ..evaluation._stats import mean_se
from ..progress import bar


def perplexity(log_px: Tensor, n_tokens: Tensor) -> float:
    """exp(-sum log p(x_n) / sum n_tokens_n): per-sentence log-likelihoods (N,) in nats and their
    token counts (N,) (words + ``<eos>``)."""
    return math.exp(-float(log_px.double().sum()) / float(n_tokens.double().sum()))


@dataclass
class TextEvaluation:
    """One model on one split. Nats per sentence unless named otherwise.

    Attributes:
        nll: -mean log p_hat(x) (IS with ``k`` samples for a VAE, exact for a language model).
        ppl: perplexity per word (``<eos>`` counted; module docstring) from the same log p_hat.
        elbo, rec, kl: the ELBO = rec - kl; kl is the exact mean KL(q(z|x) || p(z)) and rec = elbo + kl
            (None for a language model).
        ppl_elbo: the perplexity bound implied by the ELBO (>= ppl).
        active_units: Burda et al.'s A_u > 0.01 count; mutual_info: I_q(x; z) (Hoffman & Johnson),
            with ``mutual_info_cap`` = log N its largest estimable value.
    """

    n: int
    n_tokens: int
    k: int
    nll: float
    nll_stderr: float
    ppl: float
    elbo: float | None = None
    rec: float | None = None
    kl: float | None = None
    ppl_elbo: float | None = None
    active_units: int | None = None
    mutual_info: float | None = None
    mutual_info_cap: float | None = None

    def summary(self) -> dict:
        return {**asdict(self), "units": "nats per sentence; perplexity per token (words + <eos>)"}


def evaluate_language_model(lm, x: Tensor) -> TextEvaluation:
    """Exact NLL per sentence and perplexity of a :class:`~vaelab.text.LanguageModel` on x (N, T)."""
    log_px = lm.log_likelihood(x)  # (N,)
    n_tok = lengths(x)
    mean, se = mean_se(log_px)
    return TextEvaluation(
        n=x.shape[0], n_tokens=int(n_tok.sum()), k=0, nll=-mean, nll_stderr=se, ppl=perplexity(log_px, n_tok)
    )


def evaluate_text_vae(
    model, x: Tensor, k: int = 500, batch_size: int = 50, seed: int = 0, mi_samples: int = 4
) -> TextEvaluation:
    """IS log p(x) with K = ``k`` samples (chunked; :func:`importance_sampled_log_likelihood`), the
    K-sample ELBO on the same samples, the exact KL, active units and I_q(x; z).

    Args:
        model: a text :class:`~vaelab.models.VAE`. x: (N, T) padded token ids.
        k: importance samples per sentence (Bowman et al. and most text-VAE papers: 500).
        batch_size: sentences per IS pass (each pass holds at most ``eval_rows`` logit rows).
        mi_samples: samples per sentence for the mutual-information estimate (ELBO surgery).
    Returns:
        :class:`TextEvaluation` in nats per sentence.
    """
    order = torch.argsort(lengths(x), stable=True)
    xs = x[order]  # similar lengths per pass: less padding, same means
    was = model.training
    model.eval()  # no word dropout
    stages = bar(total=3, desc="text VAE evaluation (IS, diagnostics, mutual information)", unit="stage")
    try:
        res = importance_sampled_log_likelihood(model, xs, k=k, batch_size=batch_size, seed=seed, iwae_k=min(k, 64))
        stages.update(1)
        diag = latent_diagnostics(model, xs, batch_size=batch_size, seed=seed)
        stages.update(1)
        surgery = elbo_surgery(model, xs, n_samples=mi_samples, batch_size=batch_size, seed=seed)
        stages.update(1)
    finally:
        stages.close()
        model.train(was)
    kl = float(diag.kl_per_dim.sum()) if diag.kl_per_dim is not None else diag.kl_mc
    n_tok = lengths(xs)
    return TextEvaluation(
        n=x.shape[0],
        n_tokens=int(n_tok.sum()),
        k=k,
        nll=-res.mean,
        nll_stderr=res.stderr,
        ppl=perplexity(res.per_point, n_tok),
        elbo=res.elbo_mean,
        rec=res.elbo_mean + kl,
        kl=kl,
        ppl_elbo=perplexity(res.per_point_elbo, n_tok),
        active_units=diag.active_units,
        mutual_info=surgery.mutual_info,
        mutual_info_cap=surgery.mutual_info_cap,
    )
