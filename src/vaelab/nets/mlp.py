"""Multi-layer perceptrons (the IWAE paper's networks are 2 hidden layers of 200 tanh units)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ..errors import ConfigError
from .registry import NETWORKS

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


class FlatInput(nn.Sequential):
    """``nn.Sequential`` whose inputs (N, *in_shape) are flattened to (N, prod(in_shape)) first, so that
    image data works unchanged in networks of dense layers (MLP, the gated MLP)."""

    def __init__(self, in_shape: tuple[int, ...], *layers: nn.Module):
        super().__init__(*layers)
        self.in_ndim = len(in_shape)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_ndim > 1:
            x = x.flatten(x.dim() - self.in_ndim)  # (N, C, H, W) -> (N, C*H*W)
        return super().forward(x)


@NETWORKS.register("mlp")
class MLP(FlatInput):
    """Linear -> activation -> ... -> Linear. ``hidden=[200, 200]`` gives three linear layers.

    Inputs (N, *in_shape) are flattened to (N, prod(in_shape)), so images work unchanged; the
    output is (N, prod(out_shape)).

    Args:
        hidden: widths of the hidden layers (a decoder left unset mirrors the encoder's).
        activation: one of tanh, relu, elu, softplus, leaky_relu, gelu, silu.
    """

    def __init__(self, in_shape, out_shape, hidden: list = [64, 64], activation: str = "tanh"):  # noqa: B006
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"hidden widths must be positive integers, got {list(hidden)}")
        in_shape, out_shape = as_shape(in_shape), as_shape(out_shape)
        widths = [math.prod(in_shape), *hidden, math.prod(out_shape)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(in_shape, *layers)


def as_shape(s) -> tuple[int, ...]:
    """An int or a sequence of ints as a shape tuple."""
    return (int(s),) if isinstance(s, int) else tuple(int(d) for d in s)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh") -> MLP:
    """An MLP between flat widths (shorthand for ``MLP((in_dim,), (out_dim,), ...)``)."""
    return MLP((in_dim,), (out_dim,), list(hidden), activation)
