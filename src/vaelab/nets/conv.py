"""Convolutional encoder and decoder for small images (28x28 by default).

Encoder: stride-2 4x4 convolutions (each halves H and W), then a linear map to the latent
parameters. Decoder: the mirror image with transposed convolutions. With ``channels = [32, 64]``
and 28x28 inputs the feature maps are 32x14x14 and 64x7x7 (a DCGAN-style layout, as in many VAE
code bases for MNIST).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from .mlp import ACTIVATIONS
from .registry import NETWORKS


def _image_shape(shape, role: str) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ConfigError(
            f"conv {role} needs image data with event shape (C, H, W) or (H, W), got {shape}; "
            'use kind = "mlp" for vector data'
        )
    return shape


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_dim) through len(channels) stride-2 convolutions and a linear layer."""

    def __init__(self, in_shape, out_dim: int, channels: list, activation: str):
        super().__init__()
        c, h, w = _image_shape(in_shape, "encoder")
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
            c, h, w = ch, h // 2, w // 2
        if h < 1 or w < 1:
            raise ConfigError(f"{len(channels)} stride-2 convolutions shrink {in_shape} to nothing; use fewer channels")
        self.in_shape = _image_shape(in_shape, "encoder")
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * h * w, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(-1, *self.in_shape)
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """(N, in_dim) -> (N, C_out, H, W): a linear layer to the smallest feature map, then
    stride-2 transposed convolutions; C_out = prod(out_shape) / (H W)."""

    def __init__(self, in_dim: int, out_shape, channels: list, activation: str):
        super().__init__()
        *lead, h, w = tuple(int(d) for d in out_shape)
        if not lead:
            raise ConfigError(f"conv decoder needs image data, got parameter shape {tuple(out_shape)}")
        scale = 2 ** len(channels)
        if h % scale or w % scale:
            raise ConfigError(f"conv decoder: {h}x{w} images are not divisible by 2^{len(channels)}")
        rev = list(channels)[::-1]
        self.start = (rev[0], h // scale, w // scale)
        self.head = nn.Sequential(nn.Linear(in_dim, math.prod(self.start)), ACTIVATIONS[activation]())
        layers: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
        layers.append(nn.ConvTranspose2d(rev[-1], math.prod(lead), 4, stride=2, padding=1))
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.features(self.head(z).view(-1, *self.start))


@NETWORKS.register("conv")
def conv(in_shape, out_shape, channels: list = [32, 64], activation: str = "relu") -> nn.Module:  # noqa: B006
    """Convolutional network for images: an encoder when the input is an image, a decoder when the
    output is.

    Args:
        channels: feature channels after each stride-2 convolution (the decoder mirrors them).
        activation: one of tanh, relu, elu, softplus, leaky_relu, gelu, silu.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
        raise ConfigError(f"conv channels must be positive integers, got {list(channels)}")
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if len(in_shape) < 2 and len(out_shape) < 2:
        raise ConfigError(
            f"network 'conv' needs images (C, H, W) on one side, got {in_shape} -> {out_shape}; use 'mlp' for vector data"
        )
    if len(in_shape) >= 2:
        return ConvEncoder(in_shape, math.prod(out_shape), channels, activation)
    return ConvDecoder(in_shape[0], out_shape, channels, activation)
