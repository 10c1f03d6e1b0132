"""Data-dependent initialization: the decoder's output bias set to the data's marginal.

Burda et al.'s IWAE code starts the decoder at the training set's per-pixel log-odds. Without it
the first steps of training are spent learning the mean image, and that gradient also reaches the
encoder as one common direction for every point. A fixed N(0, I) prior pulls the codes back; a
prior that moves with the encoder (the VampPrior) does not, and Adam's normalized steps then carry
every code the same way until the encoder's tanh units saturate: all posteriors become one, KL 0,
0 active units, within ~20 steps (measured, docs/design.md "Decoder output bias").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import DECODER_BIAS_MODES
from ..errors import ConfigError


def output_bias(decoder: nn.Module, n_outputs: int) -> nn.Parameter | None:
    """The decoder's per-output bias: the last module's when it is an ``nn.Linear`` with
    ``n_outputs`` outputs (MLP decoders); None otherwise (a transposed convolution's bias is per
    channel, an LSTM's per word)."""
    last = list(decoder.modules())[-1]
    if isinstance(last, nn.Linear) and last.out_features == n_outputs and last.bias is not None:
        return last.bias
    return None


@torch.no_grad()
def init_decoder_bias(model, x_train: Tensor, mode: str = "auto") -> bool:
    """Set the decoder's output bias so that p(x|z) starts at the per-dimension mean of ``x_train``.

    Args:
        model: a :class:`~vaelab.models.VAE`.
        x_train: (N, *x_shape) training data (intensities in [0, 1] for dynamic binarization: their
            mean is the binarized pixels' mean).
        mode: "auto" (initialize when the likelihood has a marginal and the decoder a per-output
            bias, else leave PyTorch's default), "data-mean" (initialize or raise), "default" (leave).
    Returns:
        True when the bias was set.
    Raises:
        ConfigError: an unknown mode, or "data-mean" where it cannot take effect.
    """
    if mode not in DECODER_BIAS_MODES:
        raise ConfigError(f"model.decoder_bias must be one of {DECODER_BIAS_MODES}, got {mode!r}")
    if mode == "default":
        return False
    params = model.likelihood.marginal_params(x_train)
    bias = output_bias(model.decoder, model.likelihood.n_outputs)
    if params is None or bias is None:
        if mode == "data-mean":
            what = "likelihood has no closed-form marginal" if params is None else "decoder has no per-output bias"
            raise ConfigError(f'model.decoder_bias = "data-mean" cannot take effect: the {what}; use "auto" or "default"')
        return False
    bias.copy_(params.reshape(-1).to(bias))
    return True
