"""Data sets derived from a trained run (a model's features as data). They need a trained model, so they
live above :mod:`vaelab.train` (the layering of docs/design.md), and register in ``DATASETS`` when this
package is imported, which ``import vaelab`` does."""

from ..registry import import_submodules

import_submodules(__name__)  # a new derived data set is one new file in this folder
