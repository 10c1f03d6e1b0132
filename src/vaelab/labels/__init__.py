"""Label modes: how a model uses class labels y, one registered strategy per ``model.labels`` value.

A mode owns everything that differs between unlabelled, conditional (CVAE) and semi-supervised (M2)
training: its config rules, the classifier it builds, the batches an epoch draws, the bound a batch
gets (M2's exact sum over y lives in its mode, as Pyro's enumeration lives in the objective), and
which labels validation and evaluation read. Generic code asks ``label_mode_of(model)`` and its
capability flags (``reads_labels``, ``infers_labels``), never the mode's name. A new mode is one module
here plus ``@LABEL_MODES.register``.
"""

from __future__ import annotations

from ..registry import import_submodules
from .base import (
    LABEL_MODES,
    BoundStats,
    LabelMode,
    every_class,
    label_mode_of,
    labelled_modes,
    mode_class,
    stats_vector,
    tile_rows,
)
from .conditional import Conditional
from .none import NoLabels
from .semi_supervised import SemiSupervised

__all__ = [
    "LABEL_MODES",
    "BoundStats",
    "stats_vector",
    "Conditional",
    "LabelMode",
    "NoLabels",
    "SemiSupervised",
    "every_class",
    "label_mode_of",
    "labelled_modes",
    "mode_class",
    "tile_rows",
]

import_submodules(__name__)  # none.py, conditional.py, semi_supervised.py register themselves
