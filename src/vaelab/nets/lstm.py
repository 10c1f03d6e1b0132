"""LSTM encoder and decoder for token sequences (Bowman et al. 2016, "Generating sentences from a
continuous space", Sec. 3), registered together as network ``lstm``: the builder's shapes choose
the direction, as for ``mlp`` and ``conv``.

x is (B, T) int64 token ids padded with 0 (``vaelab.data.text``). Both networks first cut x to
its longest sentence, so padding to a corpus-wide T costs nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..errors import ConfigError
from .registry import NETWORKS

PAD_ID, BOS_ID, UNK_ID = 0, 1, 3  # vaelab.data.text's ids (nets may not import data)


def trim(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (B, T) cut to its longest row's length T' -> (x (B, T'), lengths (B,))."""
    lengths = (x != PAD_ID).sum(-1)
    return x[:, : max(int(lengths.max()), 1)], lengths


class LSTMEncoder(nn.Module):
    """x (B, T) token ids -> (B, n_out): a linear map of the LSTM's last hidden state (at each
    sentence's own last token, via packing)."""

    def __init__(self, vocab_size: int, n_out: int, embed_dim: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        x, lengths = trim(x)
        packed = pack_padded_sequence(self.embed(x), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h (1, B, H), in the batch's own order
        return self.out(h[-1])  # (B, n_out)


class LSTMDecoder(nn.Module):
    """p(x_t | x_<t, z): an LSTM language model whose state or inputs see z.

    Args:
        vocab_size: V. z_dim: latent numbers (0 = a plain language model, no latent).
        condition: "init" (z -> the initial hidden and cell state, Bowman et al.), "input" (z
            concatenated to every input embedding), or "both".
        word_dropout: during training, each input word (not ``<bos>``) is replaced by ``<unk>``
            with this probability (Bowman et al. 2016, Sec. 3.2); off in eval mode.
    """

    autoregressive = True  # VAE.decode passes x for teacher forcing

    def __init__(
        self, vocab_size: int, z_dim: int, embed_dim: int, hidden: int, condition: str = "init", word_dropout: float = 0.0
    ):
        super().__init__()
        if condition not in ("init", "input", "both"):
            raise ConfigError(f"model.decoder.condition must be 'init', 'input' or 'both', got {condition!r}")
        if not 0 <= word_dropout <= 1:
            raise ConfigError(f"model.decoder.word_dropout must be in [0, 1], got {word_dropout}")
        self.z_dim, self.condition, self.word_dropout, self.hidden = z_dim, condition, word_dropout, hidden
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        use_input = z_dim and condition in ("input", "both")
        self.lstm = nn.LSTM(embed_dim + (z_dim if use_input else 0), hidden, batch_first=True)
        self.init = nn.Linear(z_dim, 2 * hidden) if z_dim and condition in ("init", "both") else None
        self.out = nn.Linear(hidden, vocab_size)

    def initial_state(self, z: Tensor | None, n: int) -> tuple[Tensor, Tensor] | None:
        """(h0, c0), each (1, N, H), from z (N, D); None (zeros) without conditioning."""
        if self.init is None or z is None:
            return None
        h, c = torch.tanh(self.init(z)).chunk(2, -1)  # (N, H) each
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def run(self, tokens: Tensor, z: Tensor | None, state=None) -> tuple[Tensor, tuple]:
        """Logits (N, T, V) for input tokens (N, T) given z (N, D) and an LSTM state."""
        e = self.embed(tokens)  # (N, T, E)
        if self.z_dim and self.condition in ("input", "both"):
            assert z is not None, "a decoder conditioned on z needs z"
            e = torch.cat([e, z.unsqueeze(1).expand(-1, e.shape[1], -1)], -1)  # (N, T, E + D)
        h, state = self.lstm(e, state)
        return self.out(h), state

    def forward(self, z: Tensor | None, x: Tensor) -> Tensor:
        """Teacher-forced logits (*lead, T', V) for z (*lead, D) (lead = (S, B) or (B,)) and x (B, T)."""
        x, _ = trim(x)
        b, t = x.shape
        inputs = torch.cat([torch.full((b, 1), BOS_ID, dtype=x.dtype, device=x.device), x[:, :-1]], 1)  # (B, T')
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=x.device) < self.word_dropout
            drop[:, 0] = False  # <bos> stays
            inputs = inputs.masked_fill(drop & (inputs != PAD_ID), UNK_ID)
        lead = z.shape[:-1] if z is not None else (b,)
        n = lead.numel() if isinstance(lead, torch.Size) else b
        inputs = inputs.expand(*lead[:-1], b, t).reshape(n, t)  # (N, T'): the same words under every sample
        zf = z.reshape(n, -1) if z is not None else None
        logits, _ = self.run(inputs, zf, self.initial_state(zf, n))
        return logits.view(*lead, t, -1)  # (*lead, T', V)


@NETWORKS.register("lstm")
def lstm(
    in_shape,
    out_shape,
    vocab_size: int | None = None,
    embed_dim: int = 353,
    hidden: int = 191,
    condition: str = "init",
    word_dropout: float = 0.0,
) -> nn.Module:
    """An LSTM over token sequences: an encoder for in_shape (T,) of token ids, a decoder when
    out_shape is (T, V). Defaults: Bowman et al. 2016's PTB sizes (353-d embeddings, 191 units).

    Args:
        embed_dim: word-embedding size. hidden: LSTM units.
        condition: decoder only: how z enters ("init", "input" or "both"; see :class:`LSTMDecoder`).
        word_dropout: decoder only: rate of replacing input words by ``<unk>`` while training.
    Raises:
        ConfigError: not text data, sizes that are not positive, a word-dropout rate outside [0, 1], or
            a decoder option set on the encoder.
    """
    if not vocab_size:
        raise ConfigError(
            'network \'lstm\' reads token sequences: use a text data set (data.kind = "ptb" or "text") '
            'and likelihood kind = "categorical"'
        )
    for name, v in (("embed_dim", embed_dim), ("hidden", hidden)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"network 'lstm': {name} must be a positive integer, got {v!r}")
    if not 0 <= word_dropout <= 1:  # (1: every input word dropped, Bowman et al.'s inputless decoder)
        raise ConfigError(f"network 'lstm': word_dropout must be a rate in [0, 1], got {word_dropout!r}")
    if len(out_shape) == 2:
        return LSTMDecoder(vocab_size, int(in_shape[0]), embed_dim, hidden, condition, word_dropout)
    if word_dropout or condition != "init":
        raise ConfigError("model.encoder: word_dropout and condition are decoder options; set them in [model.decoder]")
    return LSTMEncoder(vocab_size, int(out_shape[0]), embed_dim, hidden)
