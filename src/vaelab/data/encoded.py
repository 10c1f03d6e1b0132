"""Moved: the "encoded" data set is :mod:`vaelab.derived.encoded` (it loads a trained run, so it lives above
the trainer). This name stays for a deprecation period; the data kind "encoded" is unchanged."""

import importlib
import warnings


def __getattr__(name: str):
    warnings.warn("vaelab.data.encoded moved to vaelab.derived.encoded", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("vaelab.derived.encoded"), name)
