"""LogWeightTerms: the per-sample log-densities a model produces and objectives reduce."""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..distributions import stopped
from ..labels.semi_supervised import SampledLabelTerms  # noqa: F401 (its home since issue 42: vaelab.labels)


class LogWeightTerms:
    """Per-sample log-density terms for S samples h_s ~ q(h|x) of a batch of B points, in nats.

    For L stochastic layers h = (z_1, ..., z_L), q(h|x) = q(z_1|x) prod_l q(z_l|z_{l-1}) and
    p(x, h) = p(x|z_1) prod_l p(z_l|z_{l+1}) p(z_L) (Burda et al. 2016, Sec. 2).

    Attributes:
        zs: per-layer samples, ``zs[l]`` of shape (S, B, *event_l).
        z: ``zs[0]``, the layer the decoder of x reads.
        log_px_z: (S, B) log p(x | z_1).
        log_pz: (S, B) log p(h) = log p(z_L) + sum_l log p(z_l | z_{l+1}), computed on first access.
        log_qz: (S, B) log q(h | x), computed on first access.
        log_qz_stopped: (S, B) log q(h | x) with the inference parameters detached (same value;
            the gradient keeps only the path through h). Used by STL and DReG.
        posterior: q(z_1|x), batch shape (B,).
        posteriors: q(z_1|x), q(z_2|z_1), ...: one distribution per layer, batch shapes (B,), (S, B), ...
        reparameterized: whether the samples carry gradient (all layers drawn with ``rsample``).
        x: the (B, *x_shape) data the terms score (input-dependent baselines read it).

    log p and log q are lazy because the analytic-KL ELBO never needs them, and computing them
    anyway costs ~10% of a training step on the IWAE-paper MLP.

    ``sample_axis=False``: one sample given per point, ``zs[l]`` (B, *event_l) and ``log_px_z`` (B,);
    the attributes above still read (1, B, ...) and (1, B), made on first access, while
    :attr:`mean_log_px_z` reads the per-point tensor itself (the one-sample ELBO's backward then has
    no views to undo).
    """

    def __init__(
        self,
        model,
        zs: list[Tensor],
        log_px_z: Tensor,
        posteriors: list[Distribution],
        x: Tensor | None = None,
        y=None,
        sample_axis: bool = True,
    ):
        self.posteriors, self._model, self.x = posteriors, model, x
        self._y = y  # the labels a labelled model's prior p(z_L|y) reads
        if sample_axis:  # the cached properties below then never run
            self.zs, self.log_px_z = zs, log_px_z
        self._point = None if sample_axis else (zs, log_px_z)

    @cached_property
    def zs(self) -> list[Tensor]:
        return [z.unsqueeze(0) for z in self._point[0]]  # type: ignore[index]  # (B, ...) -> (1, B, ...)

    @cached_property
    def log_px_z(self) -> Tensor:
        return self._point[1].unsqueeze(0)  # type: ignore[index]  # (B,) -> (1, B)

    @property
    def mean_log_px_z(self) -> Tensor:
        """(1/S) sum_s log p(x|z_s), (B,) nats."""
        return self.log_px_z.mean(0) if self._point is None else self._point[1]

    @property
    def z(self) -> Tensor:
        return self.zs[0]

    @property
    def posterior(self) -> Distribution:
        return self.posteriors[0]

    @property
    def reparameterized(self) -> bool:
        return self._model.reparameterized

    @cached_property
    def log_pz(self) -> Tensor:
        return self._model.log_prior_latents(self.zs, self._y)

    @cached_property
    def log_qz(self) -> Tensor:
        return torch.stack([q.log_prob(z) for q, z in zip(self.posteriors, self.zs)]).sum(0)  # (S, B)

    @cached_property
    def log_qz_stopped(self) -> Tensor:
        log_q = stopped(self.posteriors[0]).log_prob(self.zs[0])  # (S, B)
        for layer, z_lower, z in zip(self._model.upper_encoders, self.zs[:-1], self.zs[1:]):
            log_q = log_q + layer.stopped(z_lower).log_prob(z)
        return log_q

    @property
    def log_w(self) -> Tensor:
        """Importance log-weights log p(x, h_s) - log q(h_s | x), shape (S, B)."""
        return self.log_px_z + self.log_pz - self.log_qz

    @property
    def log_w_stopped(self) -> Tensor:
        """``log_w`` with log q's parameters detached: equal values, path-only gradient (S, B)."""
        return self.log_px_z + self.log_pz - self.log_qz_stopped

    def kl(self, analytic: bool = False) -> Tensor:
        """KL(q(h|x) || p(h)) per sample, (S, B), nats: the closed form broadcast over samples when
        ``analytic`` (one layer and a prior with a closed form only), else log q - log p."""
        if not analytic:
            return self.log_qz - self.log_pz
        return self.analytic_kl().expand_as(self.log_px_z)

    def analytic_kl(self) -> Tensor:
        """KL(q(z|x) || p(z)) in closed form per data point, (B,) nats: the same for every sample
        (Kingma & Welling 2014, eq. 7). Raises ValueError with several stochastic layers."""
        if self._model.n_layers != 1:
            raise ValueError("analytic KL needs one stochastic layer")
        return self._model.prior_given(self._y).analytic_kl(self.posterior)
