"""Bounds on log p(x) as pure functions of log-weights, in nats.

Samples come first: ``(K, B)`` for ELBO / IWAE / CIWAE, ``(M, K, B)`` for MIWAE / PIWAE, where
M*K samples drawn in one call are grouped by :func:`group` as consecutive blocks of K.
"""

from ._checks import group
from .elbo import elbo
from .iwae import iwae
from .miwae import ciwae, miwae, piwae

OBJECTIVES = ("elbo", "iwae", "miwae", "ciwae", "piwae")

__all__ = ["OBJECTIVES", "ciwae", "elbo", "group", "iwae", "miwae", "piwae"]
