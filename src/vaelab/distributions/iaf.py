"""Inverse autoregressive flow posteriors (Kingma et al. 2016, eq. 10-14 and Sec. 4)."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from ..errors import ConfigError
from .flows import FlowLatent, FlowTransform
from .latents import LATENTS


class MADE(nn.Module):
    """A masked autoregressive network (Germain et al. 2015) with a context input: (z, h) -> (m, s),
    where output i of m and of s depends on z_j only for j before i in ``order`` (and on all of h).

    Args:
        dim: D.
        context: H, the width of h.
        hidden: widths of the masked hidden layers.
        order: the autoregressive order of the D inputs (a permutation of 0..D-1).
    """

    mask_out: Tensor  # buffer

    def __init__(self, dim: int, context: int, hidden: list[int], order: list[int]):
        super().__init__()
        rank = torch.empty(dim, dtype=torch.long)
        rank[torch.tensor(order)] = torch.arange(dim)  # input d's position in the order
        degrees, layers = [rank], []
        for width in hidden:  # hidden degrees cycle through 0..D-2: unit with degree k sees inputs ranked <= k
            degrees.append(torch.arange(width) % max(dim - 1, 1))
        sizes = [dim, *hidden]
        for i, width in enumerate(hidden):
            layers.append(nn.Linear(sizes[i], width))
            self.register_buffer(f"mask{i}", (degrees[i + 1][:, None] >= degrees[i][None, :]).float())
        self.hidden = nn.ModuleList(layers)
        self.context = nn.Linear(context, hidden[0]) if hidden else None
        self.out = nn.Linear(sizes[-1], 2 * dim)
        self.context_out = nn.Linear(context, 2 * dim, bias=False)  # h reaches every output, the first too
        out_mask = (rank[:, None] > degrees[-1][None, :]).float()  # strictly earlier inputs only
        self.register_buffer("mask_out", torch.cat([out_mask, out_mask]))
        with torch.no_grad():  # s starts near +1.5: sigma ~ 0.8, close to the identity (their Sec. 4)
            self.out.bias[dim:].fill_(1.5)

    def forward(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        a = z
        for i, layer in enumerate(self.hidden):
            lin = cast(nn.Linear, layer)
            a = nn.functional.linear(a, lin.weight * getattr(self, f"mask{i}"), lin.bias)
            if i == 0 and self.context is not None:
                a = a + self.context(h)
            a = nn.functional.elu(a)
        out = nn.functional.linear(a, self.out.weight * self.mask_out, self.out.bias) + self.context_out(h)
        m, s = out.chunk(2, dim=-1)
        return m, s


class IAFTransform(FlowTransform):
    """One IAF step z -> sigma * z + (1 - sigma) * m, [m, s] = MADE(z, h), sigma = sigmoid(s): the
    numerically stable gated update of Kingma et al. 2016, Sec. 4 (their eq. 10-14 with mu = m).
    log |det| = sum_i log sigma_i, the Jacobian being triangular in the MADE's order.

    Args:
        made: the step's :class:`MADE`. h: (B, H) the encoder's context for each point.
        params: None, or a dict of detached parameters to call the MADE with (``detached``).
    """

    def __init__(self, made: MADE, h: Tensor, params: dict | None = None):
        super().__init__()
        self.made, self.h, self.params = made, h, params
        self._last: tuple[Tensor, Tensor] | None = None  # (z, s) of the latest _call: the log-det reuses s

    def _net(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.params is None:
            return self.made(z, h)
        return functional_call(self.made, self.params, (z, h))

    def _ms(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._net(z, self.h.expand(*z.shape[:-1], self.h.shape[-1]))

    def _step(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """(sigma * z + (1 - sigma) * m, s) for [m, s] = MADE(z, h)."""
        m, s = self._net(z, h)
        sigma = torch.sigmoid(s)
        return sigma * z + (1.0 - sigma) * m, s

    def _call(self, z):
        y, s = self._step(z, self.h.expand(*z.shape[:-1], self.h.shape[-1]))
        self._last = (z, s)
        return y

    def log_abs_det_jacobian(self, x, y):
        last = self._last
        s = last[1] if last is not None and last[0] is x else self._ms(x)[1]
        return nn.functional.logsigmoid(s).sum(-1)

    def inverse_jacobian_transpose(self, x, v):
        # the full (N, D, D) Jacobian by vmap(jacrev) over rows, then one triangular-by-permutation solve
        d = x.shape[-1]
        rows, hs = x.reshape(-1, d), self.h.expand(*x.shape[:-1], self.h.shape[-1]).reshape(-1, self.h.shape[-1])

        jac = vmap(jacrev(lambda z, h: self._step(z, h)[0]))(rows, hs)  # (N, D, D)
        out = torch.linalg.solve(jac.transpose(-1, -2), v.reshape(-1, d, 1))
        return out.reshape(v.shape)

    def detached(self):
        params = {k: p.detach() for k, p in self.made.named_parameters()}
        params.update(dict(self.made.named_buffers()))
        return IAFTransform(self.made, self.h.detach(), params)


@LATENTS.register("iaf")
class IAFLatent(FlowLatent):
    """A diagonal Gaussian through K IAF steps (Kingma et al. 2016): the encoder outputs (mu, log
    sigma^2, h); each step's MADE is a trainable part of this family (the inference group), and
    successive steps reverse the variable order (their Sec. 4).

    Args:
        dim: D.
        n_flows: K steps.
        hidden: the MADEs' hidden widths (default [2 D]).
        context: H, the width of the context h the encoder outputs.
    """

    def __init__(self, dim: int = 2, n_flows: int = 2, hidden: list[int] | None = None, context: int | None = None):
        super().__init__(dim, n_flows)
        if hidden is not None and not isinstance(hidden, (list, tuple)):
            raise ConfigError(f"model.latent.hidden must be a list of widths, e.g. [{2 * dim}], got {hidden!r}")
        hidden = [2 * dim] if hidden is None else list(hidden)
        if not hidden or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden):
            raise ConfigError(f"model.latent.hidden must be a non-empty list of positive widths, got {hidden!r}")
        self.context = 2 * dim if context is None else context
        if not isinstance(self.context, int) or self.context < 1:
            raise ConfigError(f"model.latent.context must be a positive integer, got {context!r}")
        orders = [list(range(dim)), list(range(dim))[::-1]]
        self.mades = nn.ModuleList(MADE(dim, self.context, hidden, orders[k % 2]) for k in range(n_flows))

    @property
    def n_flow_params(self) -> int:
        return self.context

    def transforms(self, flow_params):
        return [IAFTransform(made, flow_params) for made in self.mades]
