"""Bounds on log p(x) as pure functions of log-weights (K, B) -> (B,), in nats."""

from .elbo import elbo
from .iwae import iwae

OBJECTIVES = {"elbo": elbo, "iwae": iwae}

__all__ = ["OBJECTIVES", "elbo", "iwae"]
