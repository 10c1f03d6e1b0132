"""Registries: one per axis of the design (priors, likelihoods, latent families, networks,
objectives, estimators, data sets), filled by decorators where each piece is defined.

A registered piece is a class or function whose keyword arguments with defaults are its
*options*: the config table ``[model.prior] kind = "mog"; components = 2`` calls
``PRIORS.build("mog", {"components": 2}, z_dim=...)``. Arguments without a default (``z_dim``,
``event_shape``, ...) are *context*, supplied by the builder, never by the config. So the config
validator, the CLI's ``--help`` and the docs all read the same signature, and adding a piece is
one file and one decorator (docs/design.md, "Registries").
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One config option of a registered piece: its name, default and the doc line from its docstring."""

    name: str
    default: Any
    help: str = ""

    @property
    def type_name(self) -> str:
        return type(self.default).__name__ if self.default is not None else "any"


class Registry:
    """Name -> constructor, with the constructor's defaulted keyword arguments as options.

    Args:
        axis: what is registered, for messages ("prior", "latent family", ...).
        context: argument names the builder passes itself (never config options).
    """

    def __init__(self, axis: str, context: tuple[str, ...] = ()):
        self.axis = axis
        self.context = set(context)
        self._items: dict[str, Callable] = {}

    def register(self, name: str) -> Callable:
        """Decorator: ``@PRIORS.register("mog")`` on a class or function."""

        def deco(obj: Callable) -> Callable:
            if name in self._items:
                raise ValueError(f"{self.axis} {name!r} is registered twice")
            self._items[name] = obj
            setattr(obj, "registry_name", name)  # noqa: B010 (functions and classes alike)
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a piece registered for a test or a notebook session)."""
        self._items.pop(name)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> Callable:
        if name not in self._items:
            raise ConfigError(f"unknown {self.axis} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def options(self, name: str) -> dict[str, Option]:
        """The config options of ``name``: keyword arguments with defaults, minus context names."""
        obj = self[name]
        target = obj.__init__ if inspect.isclass(obj) else obj
        docs = _arg_docs(inspect.getdoc(obj) or "")
        out = {}
        for p in inspect.signature(target).parameters.values():
            if p.name in ("self",) or p.name in self.context or p.default is inspect.Parameter.empty:
                continue
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[p.name] = Option(p.name, p.default, docs.get(p.name, ""))
        return out

    def check(self, name: str, options: dict, where: str) -> dict:
        """Validate ``options`` for ``name`` (unknown keys, types); return them coerced.

        Raises:
            ConfigError: naming ``where`` (e.g. ``model.prior``) and the valid options.
        """
        valid = self.options(name)
        out = {}
        for key, value in options.items():
            if key not in valid:
                listed = ", ".join(valid) or "none"
                raise ConfigError(f"unknown option '{where}.{key}' for {self.axis} '{name}'; its options: {listed}")
            out[key] = _coerce(f"{where}.{key}", value, valid[key].default)
        return out

    def build(self, name: str, options: dict | None = None, where: str = "", **context: Any) -> Any:
        """Construct ``name`` with validated ``options`` and the builder's ``context`` arguments."""
        opts = self.check(name, dict(options or {}), where or self.axis)
        obj = self[name]
        target = obj.__init__ if inspect.isclass(obj) else obj
        accepted = inspect.signature(target).parameters
        ctx = {k: v for k, v in context.items() if k in accepted}
        return obj(**ctx, **opts)

    def describe(self) -> str:
        """One line per piece, ``name(option=default, ...)``, for ``--help`` and the docs."""
        rows = []
        for name in self._items:
            opts = ", ".join(f"{o.name}={o.default!r}" for o in self.options(name).values())
            rows.append(f"{name}({opts})")
        return "; ".join(rows)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (ints are accepted for floats)."""
    if default is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        value = tuple(value)
    if expected is list and isinstance(value, tuple):
        value = list(value)
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(f"config key '{key}' must be {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def _arg_docs(doc: str) -> dict[str, str]:
    """``name: text`` lines of a Google-style ``Args:`` section (first line of each)."""
    out, in_args = {}, False
    for line in doc.splitlines():
        s = line.strip()
        if s in ("Args:", "Options:"):
            in_args = True
            continue
        if in_args and s.endswith(":") and " " not in s:
            break
        if in_args and ":" in s and not line.startswith(" " * 8):
            name, _, text = s.partition(":")
            for n in name.split(","):
                out[n.strip()] = text.strip()
    return out


def import_submodules(package: str) -> None:
    """Import every public module of ``package`` so its decorators register their pieces: a new
    prior, bound or network is then one new file, with no import line to add anywhere."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
