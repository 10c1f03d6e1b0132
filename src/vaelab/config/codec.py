"""Configs in and out: nested dicts and TOML files to a validated :class:`RunConfig` and back, dotted
``--set`` overrides, and the registry lookups that validate each component's kind and options."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import ConfigError
from ..registry import _coerce
from .migration import moved
from .rules import check
from .schema import (
    DATA_COMMON,
    SECTIONS,
    Component,
    DataConfig,
    ModelConfig,
    TrainConfig,
    _section_to_dict,
    component_fields,
    registry,
)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def override(self, overrides: dict[str, Any]) -> RunConfig:
        """Copy with dotted keys replaced and re-validated, e.g.
        ``cfg.override({"train.epochs": 2, "model.prior": "mog", "model.prior.components": 3})``.

        Setting a component to a string picks its kind (its options reset, except those set in the
        same call); setting it to a dict replaces the whole table; ``"data.kind"`` likewise resets
        the loader's options.
        """
        return with_overrides(self, overrides)

    def to_dict(self) -> dict:
        """The nested TOML-shaped dict (components as ``{"kind": ..., **options}`` tables)."""
        return {name: _section_to_dict(getattr(self, name)) for name in SECTIONS}


def _component(where: str, value: Any, reg_name: str) -> Component:
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{where}' must be a table with a 'kind' (or a kind name), got {value!r}")
    body = dict(value)
    kind = body.pop("kind", None)
    if kind is None:
        raise ConfigError(f"config table [{where}] needs a 'kind' key")
    reg = registry(reg_name)
    if not isinstance(kind, str) or kind not in reg:
        raise ConfigError(f"config key '{where}.kind' must be one of {reg.names()}, got {kind!r}")
    return Component(kind, reg.check(kind, body, where))


def _data_section(body: dict) -> DataConfig:
    from ..data import DATASETS

    common = {f.name: f for f in fields(DataConfig) if f.name in DATA_COMMON}
    kwargs, options = {}, {}
    for key, value in body.items():
        moved(f"data.{key}")
        if key in common:
            kwargs[key] = _coerce_field(f"data.{key}", value, common[key])
        else:
            options[key] = value
    kind = kwargs.get("kind", DataConfig.kind)
    if kind not in DATASETS:
        raise ConfigError(f"config key 'data.kind' must be one of {DATASETS.names()}, got {kind!r}")
    return DataConfig(**kwargs, options=DATASETS.check(kind, options, "data"))


def _section(sec: str, body: dict):
    if sec == "data":
        return _data_section(body)
    cls = SECTIONS[sec]
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in body.items():
        moved(f"{sec}.{key}")
        if key not in known:
            hint = did_you_mean(f"{sec}.{key}") or f"; valid keys: {', '.join(known)}"
            raise ConfigError(f"unknown config key '{sec}.{key}'{hint}")
        f = known[key]
        where = f"{sec}.{key}"
        kwargs[key] = (
            _component(where, value, f.metadata["registry"]) if "registry" in f.metadata else _coerce_field(where, value, f)
        )
    return cls(**kwargs)


def _coerce_field(key: str, value: Any, f: dataclasses.Field) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    value = _coerce(key, value, default)
    choices = f.metadata.get("choices")
    if isinstance(value, list) and choices:  # a list of names, each one of the choices
        if not all(isinstance(v, str) and v in choices for v in value) or len(set(value)) != len(value):
            raise ConfigError(f"config key '{key}' must be a list of distinct names from {list(choices)}, got {value!r}")
        return value
    if isinstance(value, list) and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"config key '{key}' must be a list of numbers, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {list(choices)}, got {value!r}")
    return value


def from_dict(d: dict) -> RunConfig:
    """Validate a nested ``{"data": {...}, "model": {...}, "train": {...}}`` dict.

    Raises:
        ConfigError: unknown section, key or option, wrong type, a value outside its choices, or
            a key of the old flat format (naming its new place).
    """
    sections = {}
    for sec, body in d.items():
        if sec not in SECTIONS:
            raise ConfigError(f"unknown config section '{sec}'; valid sections: {', '.join(SECTIONS)}")
        if not isinstance(body, dict):
            raise ConfigError(f"config section '{sec}' must be a table")
        sections[sec] = _section(sec, body)
    cfg = RunConfig(**sections)
    check(cfg)
    return cfg


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply ``{"model.latent.dim": 4, "train.epochs": 3, "model.prior": "mog", ...}`` and re-validate.

    Raises:
        ConfigError: an unknown section, key or option.
    """
    d = cfg.to_dict()
    # kinds first, so options set in the same call survive the reset of a changed kind
    for key, value in sorted(overrides.items(), key=lambda kv: not _sets_kind(kv[0])):
        parts = key.split(".")
        if parts[0] not in SECTIONS or len(parts) < 2:
            raise ConfigError(f"config key '{key}' must be SECTION.KEY with SECTION one of {', '.join(SECTIONS)}")
        sec, name, rest = parts[0], parts[1], parts[2:]
        comps = component_fields(sec)
        if sec == "data" and name == "kind" and not rest:
            d["data"] = {k: v for k, v in d["data"].items() if k in DATA_COMMON} | {"kind": value}
        elif name in comps and not rest:
            d[sec][name] = value if isinstance(value, dict) else {"kind": value}
        elif name in comps and len(rest) == 1:
            table = d[sec].get(name) or _mirror_default(d, sec, name)
            d[sec][name] = {**table, rest[0]: value}
        elif not rest:
            d[sec][name] = value
        else:
            raise ConfigError(f"unknown config key '{key}'{did_you_mean(key)}")
    return from_dict(d)


def did_you_mean(key: str) -> str:
    """'; did you mean 'train.objective.alpha'?' for a misspelled or misplaced dotted key, else ''. Candidates:
    every plain key of the three tables and every option of every registered kind of every component."""
    candidates = []
    for sec, cls in SECTIONS.items():
        for f in fields(cls):
            if "registry" not in f.metadata:
                candidates.append(f"{sec}.{f.name}")
                continue
            reg = registry(f.metadata["registry"])
            candidates += [f"{sec}.{f.name}.{o}" for kind in reg.names() for o in reg.options(kind)]
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = sorted({c for c in candidates if c.rsplit(".", 1)[-1] == leaf and c != key})
    close = same_leaf or difflib.get_close_matches(key, sorted(set(candidates)), n=2, cutoff=0.75)
    return f"; did you mean {' or '.join(repr(c) for c in close[:3])}?" if close else ""


def _sets_kind(key: str) -> bool:
    parts = key.split(".")
    return key == "data.kind" or (len(parts) == 2 and parts[0] in SECTIONS and parts[1] in component_fields(parts[0]))


def _mirror_default(d: dict, sec: str, name: str) -> dict:
    # an unset decoder starts from the encoder's kind when one of its options is set
    return {"kind": d["model"]["encoder"]["kind"]} if (sec, name) == ("model", "decoder") else {"kind": ""}


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``["model.latent.dim=4", "data.kind=mnist"]``; values are TOML, bare words are strings."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def read_toml(path: str | Path) -> dict:
    """The raw table of a TOML file.

    Raises:
        ConfigError: missing file or invalid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None


def load(path: str | Path) -> RunConfig:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: missing or invalid file, or any error of :func:`from_dict`.
    """
    return from_dict(read_toml(path))


def dumps(cfg: RunConfig, header: str = "") -> str:
    """TOML text of a config (round-trips through :func:`load`); ``header`` lines become comments."""
    lines = [f"# {h}" for h in header.splitlines()]
    for sec, body in cfg.to_dict().items():
        tables = {k: v for k, v in body.items() if isinstance(v, dict)}
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items() if k not in tables]
        lines.append("")
        for name, table in tables.items():
            lines.append(f"[{sec}.{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
