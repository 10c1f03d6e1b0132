"""Gradient estimators for importance-weighted bounds, each registered in ``ESTIMATORS``:
reparameterization, STL, DReG, and the score function (REINFORCE) with a moving-average
baseline, NVIL's learned input-dependent baseline, leave-one-out baselines (RLOO) or VIMCO's.

An estimator turns log-weight terms and an objective into a :class:`BoundEstimate`: the true
bound (what is logged) and, for each parameter group, a surrogate ``value + (s - s.detach())``
whose value equals the bound and whose gradient is the estimator's.
"""

from ..registry import import_submodules
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through
from .baselines import RLOO, VIMCO, MovingAverageBaseline, vimco_baselines
from .disarm import DisARM
from .dreg import DReG, dreg_iwae_surrogate
from .nvil import NVIL
from .relaxed import GumbelSoftmax
from .reparam import Reparam
from .rws import ReweightedWakeSleep
from .score_function import Reinforce, learning_signals
from .semi_amortized import SemiAmortized
from .stl import STL

__all__ = [
    "ESTIMATORS",
    "NVIL",
    "RLOO",
    "STL",
    "VIMCO",
    "BoundEstimate",
    "DReG",
    "DisARM",
    "Estimator",
    "GumbelSoftmax",
    "MovingAverageBaseline",
    "Reinforce",
    "Reparam",
    "ReweightedWakeSleep",
    "SemiAmortized",
    "dreg_iwae_surrogate",
    "learning_signals",
    "straight_through",
    "vimco_baselines",
]

import_submodules(__name__)  # a new piece is one new file in this folder (registry.py)
