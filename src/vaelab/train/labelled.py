"""Moved (issue 42): M2's bound is the semi-supervised label mode's, :mod:`vaelab.labels.semi_supervised`.
The names stay importable from here."""

from __future__ import annotations

from ..labels.semi_supervised import enumerated_rows, semi_supervised_bound  # noqa: F401

__all__ = ["enumerated_rows", "semi_supervised_bound"]
