"""``model.labels = "none"``: labels unused (the plain VAE)."""

from __future__ import annotations

from .base import LABEL_MODES, LabelMode


@LABEL_MODES.register("none")
class NoLabels(LabelMode):
    """The model reads no labels; a data set's labels are ignored."""
