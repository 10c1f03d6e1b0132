"""Bounds on log p(x) as pure functions of log-weights, in nats, and their registry.

Samples come first: ``(K, B)`` for ELBO / IWAE / CIWAE / VR-alpha, ``(M, K, B)`` for MIWAE / PIWAE, where
M*K samples drawn in one call are grouped by :func:`group` as consecutive blocks of K. The
registered :class:`Objective` classes describe each bound for the estimators (``base.py``).
"""

from ..registry import import_submodules
from ._checks import group
from .base import OBJECTIVES, Objective, Term, combine, grouped, renyi
from .elbo import ELBO, elbo
from .iwae import IWAE, iwae
from .miwae import CIWAE, MIWAE, PIWAE, ciwae, miwae, piwae
from .vr_alpha import VR, VRMax, vr

__all__ = [
    "CIWAE",
    "ELBO",
    "IWAE",
    "MIWAE",
    "OBJECTIVES",
    "PIWAE",
    "VR",
    "Term",
    "VRMax",
    "Objective",
    "ciwae",
    "combine",
    "elbo",
    "group",
    "grouped",
    "iwae",
    "miwae",
    "piwae",
    "renyi",
    "vr",
]

import_submodules(__name__)  # a new piece is one new file in this folder (registry.py)
