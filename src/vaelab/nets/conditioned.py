"""Any registered network, made to read a class label beside its input (Sohn et al. 2015's CVAE,
Kingma et al. 2014's M2): the one-hot label is concatenated to a flat input, or broadcast as C extra
channels of an image."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .registry import NETWORKS


class Conditioned(nn.Module):
    """f(input, y) = net([input, onehot(y)]).

    Args:
        kind, options: the registered network and its options (built for the widened input).
        in_shape, out_shape: what the network maps, before conditioning: (D,) or (ch, H, W) in.
        n_classes: C.
        where: the config table, for error messages.
    A network of kind ``conv`` reading an image gets the label as C constant channels
    (ch + C, H, W); every other input is flattened and gets the one-hot vector appended (D + C,).
    """

    def __init__(self, kind: str, options: dict, in_shape, out_shape, n_classes: int, where: str):
        super().__init__()
        in_shape = tuple(int(d) for d in in_shape)
        self.channels = kind == "conv" and len(in_shape) == 3
        self.in_shape, self.n_classes = in_shape, n_classes
        wide = (in_shape[0] + n_classes, *in_shape[1:]) if self.channels else (math.prod(in_shape) + n_classes,)
        self.net = NETWORKS.build(kind, options, where, in_shape=wide, out_shape=out_shape, vocab_size=None)

    def forward(self, inp: Tensor, y: Tensor) -> Tensor:
        """inp (N, *in_shape) (or flat), y (N,) int64 labels -> the network's output (N, ...)."""
        onehot = nn.functional.one_hot(y, self.n_classes).to(inp.dtype)  # (N, C)
        if self.channels:
            img = inp.reshape(-1, *self.in_shape)  # (N, ch, H, W)
            planes = onehot[:, :, None, None].expand(-1, -1, *self.in_shape[1:])  # (N, C, H, W)
            return self.net(torch.cat([img, planes], 1))
        return self.net(torch.cat([inp.reshape(inp.shape[0], -1), onehot], -1))  # (N, D + C)
