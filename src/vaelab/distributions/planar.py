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


class PlanarTransform(FlowTransform):
    """f(z) = z + u^ tanh(w^T z + b), with u^ = u + (m(w^T u) - w^T u) w / |w|^2 and m(a) = -1 + log(1 +
    e^a) (their App. A.1; here plus ``MARGIN``), so w^T u^ > -1 and f is invertible for every u, w.

    Args:
        u, w: (B, D) per-point parameters (amortized: output by the encoder).
        b: (B,).
    """

    def __init__(self, u: Tensor, w: Tensor, b: Tensor, constrained: bool = False):
        super().__init__()
        if not constrained:
            wu = (w * u).sum(-1, keepdim=True)  # (B, 1)
            u = u + (MARGIN + F.softplus(wu) - 1.0 - wu) * w / w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
        self.u, self.w, self.b = u, w, b.unsqueeze(-1)  # u^, w (B, D); b (B, 1)
        self.wu = (w * self.u).sum(-1)  # (B,) w^T u^, so that u^T psi = h'(.) w^T u^ costs O(1) per sample
        self._last: tuple[Tensor, Tensor] | None = None  # (z, tanh(w^T z + b)) of the latest _call

    def _call(self, z):
        t = torch.tanh((z * self.w).sum(-1, keepdim=True) + self.b)  # (..., B, 1)
        self._last = (z, t)
        return z + self.u * t  # (..., B, D)

    def _psi(self, z: Tensor) -> Tensor:
        """psi(z) = h'(w^T z + b) w (their eq. 11), (..., B, D)."""
        return (1.0 - torch.tanh((z * self.w).sum(-1, keepdim=True) + self.b).pow(2)) * self.w

    def log_abs_det_jacobian(self, x, y):
        last = self._last
        t = last[1] if last is not None and last[0] is x else torch.tanh((x * self.w).sum(-1, keepdim=True) + self.b)
        return torch.log1p((1.0 - t.squeeze(-1).pow(2)) * self.wu)  # log |1 + u^T psi| (eq. 12); > 0 by A.1

    def inverse_jacobian_transpose(self, x, v):
        # J^T = I + psi u^T; Sherman-Morrison: (I + psi u^T)^{-1} v = v - psi (u^T v) / (1 + u^T psi)
        psi = self._psi(x)
        return v - psi * ((self.u * v).sum(-1, keepdim=True) / (1.0 + (self.u * psi).sum(-1, keepdim=True)))

    def detached(self):
        return PlanarTransform(self.u.detach(), self.w.detach(), self.b.squeeze(-1).detach(), constrained=True)


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
        return [PlanarTransform(u[..., k, :], w[..., k, :], b[..., k, 0]) for k in range(self.n_flows)]
