"""p(x|z) for token sequences: a categorical over the vocabulary at every position, padding masked.

x is (B, T) int64 token ids padded with id 0 (``vaelab.data.text``); the decoder outputs logits
(..., T', V) for the first T' <= T positions (it stops at the batch's longest sentence), given the
true previous tokens (teacher forcing). log p(x|z) = sum over the valid positions t of
log softmax(logits_t)[x_t], ``<eos>`` included, so the NLL of a sentence of n words covers n + 1
tokens (Bowman et al. 2016, Sec. 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, DataError
from .likelihoods import LIKELIHOODS, Likelihood

PAD_ID = 0  # vaelab.data.text.PAD_ID (distributions may not import data)


@LIKELIHOODS.register("categorical")
class TokenLikelihood(Likelihood):
    """Autoregressive categorical likelihood over padded token sequences of event shape (T,).

    Args:
        vocab_size: V, from the data set's vocabulary (context, not an option).
    Raises:
        ConfigError: no vocabulary (the data set is not text).
    """

    x_range = None
    tokens = True

    def __init__(self, event_shape, vocab_size: int | None = None):
        super().__init__(event_shape)
        if not vocab_size:
            raise ConfigError(
                "likelihood 'categorical' models token sequences: use a text data set "
                '(data.kind = "ptb" or "text"), which supplies the vocabulary'
            )
        if len(self.event_shape) != 1:
            raise ConfigError(f"likelihood 'categorical' needs (T,) token sequences, got event shape {self.event_shape}")
        self.vocab_size = int(vocab_size)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (*self.event_shape, self.vocab_size)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) in nats: logits (..., T', V) and x (B, T) -> (...), padding excluded."""
        t = params.shape[-2]
        target = x[..., :t].expand(params.shape[:-1])  # (..., T')
        nll = F.cross_entropy(params.reshape(-1, self.vocab_size), target.reshape(-1), ignore_index=PAD_ID, reduction="none")
        return -nll.view(params.shape[:-1]).sum(-1)

    def distribution(self, params: Tensor):
        raise ConfigError("a token sequence is generated word by word: use vaelab.text.generate (greedy, sample, beam)")

    def mean(self, params: Tensor) -> Tensor:
        raise ConfigError("a token sequence has no mean to decode: use vaelab.text.generate (greedy, sample, beam)")

    def check_data(self, x: Tensor, name: str = "data") -> None:
        if x.dtype not in (torch.int64, torch.int32):
            raise DataError(f'{name}: token ids must be integers, got {x.dtype}; load text with data.kind = "ptb" or "text"')
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise DataError(f"{name}: token ids must be in [0, {self.vocab_size}), got [{x.min()}, {x.max()}]")
        if x.numel() and not (x != PAD_ID).any(-1).all():
            raise DataError(f"{name}: a sentence with no tokens (all padding)")
