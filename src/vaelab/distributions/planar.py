"""Planar-flow posteriors (Rezende & Mohamed 2015, Sec. 4.1, eq. 10-12 and App. A.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .flows import FlowLatent, FlowTransform
from .latents import LATENTS

#: m(a) = -1 + MARGIN + softplus(a): w^T u^ > -1 + MARGIN, so 1 + u^T psi >= MARGIN in floating point too
#: (with App. A.1's m, w^T u^ rounds to -1 for w^T u << 0 and the log-determinant to -inf)
MARGIN = 1e-3


def constrain(u: Tensor, w: Tensor) -> Tensor:
    """u^ = u + (m(w^T u) - w^T u) w / |w|^2 with m(a) = -1 + MARGIN + softplus(a) (App. A.1), on the last
    axis of any (..., D) pair: w^T u^ > -1 + MARGIN."""
    wu = torch.linalg.vecdot(w, u).unsqueeze(-1)  # (..., 1)
    return u + (MARGIN + F.softplus(wu) - 1.0 - wu) * w / w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)


class PlanarTransform(FlowTransform):
    """K planar steps f_k(z) = z + u^_k tanh(w_k^T z + b_k) (their eq. 10) as one transform: the steps run
    in sequence, their log-determinants in one vectorized pass (a Transform per step cost ~2x the ops).
    u^ = u + (m(w^T u) - w^T u) w / |w|^2 with m(a) = -1 + log(1 + e^a) (App. A.1; here plus ``MARGIN``),
    so w^T u^ > -1 and every step is invertible for every u, w.

    Args:
        u: (..., K, D) per-point parameters (amortized: output by the encoder).
        w: (..., K, D), likewise.
        b: (..., K).
        constrained: u is already u^ (:func:`constrain`).
    """

    def __init__(self, u: Tensor, w: Tensor, b: Tensor, constrained: bool = False):
        super().__init__()
        self.u = u if constrained else constrain(u, w)  # (..., K, D)
        self.w, self.b = w, b
        self.wu = torch.linalg.vecdot(w, self.u)  # (..., K) w^T u^: u^T psi = h'(.) w^T u^, O(1) per sample
        self._steps = list(zip(self.u.unbind(-2), w.unbind(-2), b.unbind(-1)))  # one unbind, not K selects
        self._last: tuple[Tensor, Tensor] | None = None  # (z, tanh(w_k^T z_k + b_k) for every k) of the latest call

    def _forward(self, z: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """z_K, the inputs [z_0 .. z_{K-1}] and the activations [tanh(w_k^T z_{k-1} + b_k)] ((..., B, 1) each)."""
        inputs, acts = [], []
        for u, w, b in self._steps:
            t = torch.tanh(torch.linalg.vecdot(z, w) + b).unsqueeze(-1)  # (..., B, 1)
            inputs.append(z)
            acts.append(t)
            z = torch.addcmul(z, u, t)  # z + u^ t, (..., B, D)
        return z, inputs, acts

    def _call(self, z):
        y, _, acts = self._forward(z)
        self._last = (z, torch.cat(acts, dim=-1))  # (..., B, K)
        return y

    def log_abs_det_jacobian(self, x, y):
        last = self._last
        t = last[1] if last is not None and last[0] is x else torch.cat(self._forward(x)[2], dim=-1)
        return torch.log1p((1.0 - t.pow(2)) * self.wu).sum(-1)  # sum_k log |1 + u^T psi_k| (eq. 12); > 0 by A.1

    def inverse_jacobian_transpose(self, x, v):
        # J = J_K ... J_1, J_k^T = I + psi_k u_k^T; Sherman-Morrison on each, J_1^{-T} first
        _, inputs, acts = self._forward(x)
        for (u, w, _), t in zip(self._steps, acts):
            psi = (1.0 - t.pow(2)) * w  # (..., B, D)
            v = v - psi * (torch.linalg.vecdot(u, v) / (1.0 + torch.linalg.vecdot(u, psi))).unsqueeze(-1)
        return v

    def detached(self):
        return PlanarTransform(self.u.detach(), self.w.detach(), self.b.detach(), constrained=True)


@LATENTS.register("planar")
class PlanarLatent(FlowLatent):
    """A diagonal Gaussian through K planar steps whose (u, w, b) the encoder outputs per data point
    (Rezende & Mohamed 2015, Sec. 4.1 and 6: the flow's parameters are functions of x).

    Args:
        dim: D.
        n_flows: K (their Table 2 uses 10, 20, 40, 80).
    """

    def __init__(self, dim: int = 2, n_flows: int = 10):
        super().__init__(dim, n_flows)

    @property
    def n_flow_params(self) -> int:
        return self.n_flows * (2 * self.dim + 1)

    def transforms(self, flow_params):
        steps = flow_params.reshape(*flow_params.shape[:-1], self.n_flows, 2 * self.dim + 1)  # (B, K, 2D + 1)
        u, w, b = steps.split([self.dim, self.dim, 1], dim=-1)
        return [PlanarTransform(u, w, b[..., 0])]  # the K steps as one transform
