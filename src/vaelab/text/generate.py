"""Generating sentences from a text VAE or language model: greedy, sampled and beam-search decoding
from given codes z, from the prior, through a sentence's posterior mean, and homotopies (decoded
linear interpolations between two sentences' codes; Bowman et al. 2016, Sec. 5.2, Table 3).

Every function takes the decoder's owner (a :class:`~vaelab.models.VAE` with an ``lstm`` decoder,
or a :class:`~vaelab.text.LanguageModel`) and returns token-id lists ending before ``<eos>``; turn
them into words with :meth:`vaelab.data.text.Vocabulary.decode`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.text import BOS_ID, EOS_ID, PAD_ID
from ..errors import ConfigError
from ..progress import bar

METHODS = ("greedy", "sample", "beam")


def _decoder(model):
    dec = model.decoder
    if not getattr(dec, "autoregressive", False):
        raise ConfigError("this model has no token decoder; sentence generation needs a text model (network 'lstm')")
    return dec


@torch.no_grad()
def decode_codes(
    model,
    z: Tensor | None,
    method: str = "greedy",
    max_length: int = 50,
    n: int | None = None,
    temperature: float = 1.0,
    beam_width: int = 10,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Decode sentences from codes z (N, D) (None for a language model, then ``n`` sentences).

    Args:
        method: "greedy" (argmax word each step), "sample" (ancestral sampling at ``temperature``)
            or "beam" (beam search of width ``beam_width``, highest total log-probability).
        max_length: words per sentence at most (generation stops there without ``<eos>``).
    Returns:
        N lists of token ids (without ``<eos>``).
    Raises:
        ConfigError: unknown method, or a model without a token decoder.
    """
    dec = _decoder(model)
    if method not in METHODS:
        raise ConfigError(f"unknown decoding method {method!r}; choose one of: {', '.join(METHODS)}")
    was = dec.training
    dec.eval()
    try:
        count = z.shape[0] if z is not None else int(n or 1)
        if method == "beam":
            rows = bar(range(count), desc=f"beam search, width {beam_width}", unit="sentence")
            return [beam_search(dec, None if z is None else z[i : i + 1], beam_width, max_length)[0] for i in rows]
        return _step_all(dec, z, count, method, max_length, temperature, generator)
    finally:
        dec.train(was)


def _step_all(dec, z, n, method, max_length, temperature, generator) -> list[list[int]]:
    device = next(dec.parameters()).device
    state = dec.initial_state(z, n)
    tok = torch.full((n, 1), BOS_ID, dtype=torch.long, device=device)  # (N, 1)
    out = torch.full((n, max_length), PAD_ID, dtype=torch.long, device=device)  # (N, T)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(max_length):
        logits, state = dec.run(tok, z, state)  # (N, 1, V)
        logits = logits[:, -1].clone()
        logits[:, [PAD_ID, BOS_ID]] = float("-inf")  # never generated
        if method == "greedy":
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
        nxt = nxt.masked_fill(done, PAD_ID)
        out[:, t] = nxt
        done |= nxt == EOS_ID
        if bool(done.all()):
            break
        tok = nxt.unsqueeze(1)
    return [_until_eos(row) for row in out.tolist()]


def _until_eos(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else [i for i in ids if i != PAD_ID]


def beam_search(dec, z: Tensor | None, width: int = 10, max_length: int = 50) -> tuple[list[int], float]:
    """Beam search for one code z (1, D) (None: a language model), keeping the ``width`` best prefixes
    by total log-probability.

    Returns:
        (token ids without ``<eos>``, log p(ids, <eos> | z) in nats); a sentence cut at
        ``max_length`` words has no ``<eos>`` and its score has no ``<eos>`` term. The best of the
        finished sentences and the prefixes still open at the end.
    """
    device = next(dec.parameters()).device
    state = dec.initial_state(z, 1)
    beams: list[tuple[list[int], float]] = [([], 0.0)]  # (tokens, log-prob)
    finished: list[tuple[list[int], float]] = []
    for _ in range(max_length):
        k = len(beams)
        tok = torch.tensor([[b[0][-1] if b[0] else BOS_ID] for b in beams], device=device)  # (k, 1)
        zk = None if z is None else z.expand(k, -1)
        logits, new_state = dec.run(tok, zk, state)
        logp = torch.log_softmax(logits[:, -1], -1)  # (k, V)
        logp[:, [PAD_ID, BOS_ID]] = float("-inf")
        total = logp + torch.tensor([b[1] for b in beams], device=device)[:, None]
        best = total.flatten().topk(width)
        keep, nxt_beams = [], []
        for score, flat in zip(best.values.tolist(), best.indices.tolist()):
            src, word = divmod(flat, logp.shape[1])
            if word == EOS_ID:
                finished.append((beams[src][0], score))
            else:
                keep.append(src)
                nxt_beams.append((beams[src][0] + [word], score))
        if not nxt_beams or (finished and max(f[1] for f in finished) >= nxt_beams[0][1]):
            break  # no open prefix can beat the best finished sentence (log-probabilities only fall)
        idx = torch.tensor(keep, device=device)
        state = tuple(s[:, idx] for s in new_state) if new_state is not None else None
        beams = nxt_beams
    return max(finished + (beams if len(beams[0][0]) == max_length else []), key=lambda b: b[1])


@torch.no_grad()
def sample_prior(
    model, n: int, method: str = "greedy", generator: torch.Generator | None = None, **kwargs
) -> list[list[int]]:
    """n sentences decoded from z ~ p(z) (a VAE) or from the language model alone."""
    if getattr(model, "prior", None) is None:
        return decode_codes(model, None, method, n=n, generator=generator, **kwargs)
    z = model.prior.sample(n)  # torch.distributions take no generator: seed torch for repeatable codes
    return decode_codes(model, z.reshape(n, -1), method, generator=generator, **kwargs)


@torch.no_grad()
def posterior_mean_codes(model, x: Tensor) -> Tensor:
    """E_q[z|x] for token rows x (B, T): (B, D)."""
    was = model.training
    model.eval()
    try:
        return model.latent.mean(model.posterior(x)).reshape(x.shape[0], -1)
    finally:
        model.train(was)


@torch.no_grad()
def reconstruct(model, x: Tensor, method: str = "greedy", **kwargs) -> list[list[int]]:
    """Decode each sentence of x (B, T) from its posterior mean E_q[z|x]."""
    return decode_codes(model, posterior_mean_codes(model, x), method, **kwargs)


@torch.no_grad()
def homotopy(model, x_a: Tensor, x_b: Tensor, steps: int = 5, method: str = "greedy", **kwargs) -> list[list[int]]:
    """Sentences decoded along z_t = (1 - t) z_a + t z_b, t = 0, 1/(steps-1), ..., 1, between the
    posterior means of two sentences x_a, x_b (each (T,) or (1, T)): Bowman et al. 2016, Table 3."""
    if steps < 2:
        raise ConfigError(f"a homotopy needs at least 2 steps, got {steps}")
    za, zb = (posterior_mean_codes(model, x.reshape(1, -1)) for x in (x_a, x_b))  # (1, D) each
    t = torch.linspace(0, 1, steps, device=za.device)[:, None]  # (steps, 1)
    return decode_codes(model, (1 - t) * za + t * zb, method, **kwargs)
