"""Gated dense networks, the layers of Tomczak & Welling 2018's VampPrior models."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .mlp import FlatInput, as_shape
from .registry import NETWORKS


class GatedDense(nn.Module):
    """h = (W x + b) * sigmoid(V x + c): a gated linear unit (Dauphin et al. 2017), as the GatedDense
    layer of the VampPrior authors' code (github.com/jmtomczak/vae_vampprior, utils/nn.py) with no
    activation on the first half. Both halves are one ``nn.Linear`` of twice the width.

    Shapes: (N, in_features) -> (N, out_features).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * out_features)  # (W; V) stacked: one GEMM for both halves

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.linear(x).chunk(2, dim=-1)
        return h * torch.sigmoid(gate)


@NETWORKS.register("gated_mlp")
class GatedMLP(FlatInput):
    """GatedDense -> ... -> Linear: the VampPrior paper's encoder and decoder (``hidden=[300, 300]``).

    Inputs (N, *in_shape) are flattened to (N, prod(in_shape)); the output is (N, prod(out_shape)).
    The last layer is linear: the latent family or likelihood applies its own link (the authors' code
    applies a hardtanh(-6, 2) to the encoder's log-variance, which vaelab's Gaussian latent does not).

    Args:
        hidden: widths of the gated hidden layers (a decoder left unset mirrors the encoder's).
    Raises:
        ConfigError: no hidden layer, or a width that is not a positive integer.
    """

    def __init__(self, in_shape, out_shape, hidden: list = [300, 300]):  # noqa: B006
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"gated_mlp needs one or more positive integer hidden widths, got {list(hidden)}")
        in_shape, out_shape = as_shape(in_shape), as_shape(out_shape)
        widths = [math.prod(in_shape), *hidden]
        layers: list[nn.Module] = [GatedDense(a, b) for a, b in zip(widths[:-1], widths[1:])]
        super().__init__(in_shape, *layers, nn.Linear(widths[-1], math.prod(out_shape)))
