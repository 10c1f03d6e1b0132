"""The semi-supervised bounds of Kingma et al. 2014 (M2), as pure functions of per-class bounds."""

from __future__ import annotations

from torch import Tensor


def unlabelled_bound(bounds: Tensor, log_qy: Tensor, log_py: float) -> Tensor:
    """U(x) = sum_y q(y|x) (L(x, y) - log q(y|x)), by exact enumeration over the C classes
    (Kingma et al. 2014, eq. 7: the labelled bound averaged under q(y|x) plus its entropy H(q(y|x))).

    Args:
        bounds: (C, B) bounds on log p(x, z | y) per class y, i.e. L(x, y) - log p(y), nats (any
            bound of the labelled model: the ELBO of eq. 6, or an IWAE bound over z).
        log_qy: (B, C) log q(y|x), nats.
        log_py: log p(y) of the uniform class prior, nats.
    Returns:
        (B,) U(x) in nats, a lower bound on log p(x). The gradient reaches q(y|x) through the
        enumeration (no score function), and the per-class bounds through their own graphs.
    Raises:
        ValueError: mismatched shapes.
    """
    if bounds.dim() != 2 or log_qy.shape != bounds.T.shape:
        raise ValueError(
            f"unlabelled_bound: bounds (C, B) and log_qy (B, C), got {tuple(bounds.shape)} and {tuple(log_qy.shape)}"
        )
    q = log_qy.T.exp()  # (C, B)
    return (q * (bounds + log_py - log_qy.T)).sum(0)


def labelled_bound(bounds: Tensor, log_py: float) -> Tensor:
    """L(x, y) = bound on log p(x, z | y) + log p(y), (B,) nats (Kingma et al. 2014, eq. 6)."""
    return bounds + log_py
