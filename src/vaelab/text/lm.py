"""The baseline every text VAE is compared with: an LSTM language model, the VAE's decoder without a
latent code (the same :class:`~vaelab.nets.lstm.LSTMDecoder`, ``z_dim = 0``), trained by maximum
likelihood with the same batches, optimizer and early stopping on validation NLL."""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import Tensor, nn

from ..data import DataSplits, iterate_batches
from ..distributions.tokens import TokenLikelihood
from ..errors import TrainingDivergedError
from ..nets.lstm import LSTMDecoder
from ..numerics import denormals_flushed, eval_rows


class LanguageModel(nn.Module):
    """p(x) = prod_t p(x_t | x_<t) with an LSTM (no latent variable).

    Args:
        vocab_size: V.
        max_length: T of the padded data (the likelihood's event shape).
        embed_dim: word-embedding size, as for the ``lstm`` decoder.
        hidden: LSTM units, as for the ``lstm`` decoder.
        word_dropout: training-time rate of replacing input words by ``<unk>``.
    """

    prior = None  # vaelab.text.generate: decode without a code

    def __init__(self, vocab_size: int, max_length: int, embed_dim: int = 353, hidden: int = 191, word_dropout: float = 0.0):
        super().__init__()
        self.decoder = LSTMDecoder(vocab_size, 0, embed_dim, hidden, word_dropout=word_dropout)
        self.likelihood = TokenLikelihood((max_length,), vocab_size)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats, x (B, T) padded token ids -> (B,); ``<eos>`` included, padding not."""
        return self.likelihood.log_prob(self.decoder(None, x), x)

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, batch_size: int = 200) -> Tensor:
        """log p(x_n) for every row of x (N, T): (N,) nats, in eval mode (no word dropout)."""
        was = self.training
        self.eval()
        try:
            rows = eval_rows(self, batch_size)
            return torch.cat([self.log_prob(xb) for xb in x.split(rows)])
        finally:
            self.train(was)


def fit_language_model(
    data: DataSplits,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    embed_dim: int = 353,
    hidden: int = 191,
    word_dropout: float = 0.0,
    grad_clip: float = 5.0,
    seed: int = 0,
    log=print,
) -> tuple[LanguageModel, list[dict]]:
    """Train the LSTM-LM on ``data.train`` with Adam; keep the weights of the best validation NLL.

    Returns:
        (model in eval mode with the best weights, history rows {"epoch", "train_nll", "valid_nll",
        "seconds"}: nats per sentence).
    Raises:
        TrainingDivergedError: the loss became NaN/inf.
    """
    torch.manual_seed(seed)
    lm = LanguageModel(data.info["vocab_size"], data.x_shape[0], embed_dim, hidden, word_dropout)
    opt = torch.optim.Adam(lm.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    best, best_state, history, t0 = math.inf, None, [], time.perf_counter()
    with denormals_flushed(torch.device("cpu")):
        for epoch in range(epochs):
            lm.train()
            total = 0.0
            for batch in iterate_batches(data.train, batch_size, gen, bucket=True):
                loss = -lm.log_prob(batch.x).mean()
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(f"language model: the loss is {loss.item()} at epoch {epoch + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(lm.parameters(), grad_clip)
                opt.step()
                total += loss.item() * len(batch)
            valid = -float(lm.log_likelihood(data.valid).mean())
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_nll": total / data.train.shape[0],
                    "valid_nll": valid,
                    "seconds": time.perf_counter() - t0,
                }
            )
            log(f"LSTM-LM epoch {epoch + 1}: train NLL {history[-1]['train_nll']:.2f}, valid NLL {valid:.2f}")
            if valid < best:
                best, best_state = valid, copy.deepcopy(lm.state_dict())
    assert best_state is not None  # at least one epoch ran
    lm.load_state_dict(best_state)
    return lm.eval(), history
