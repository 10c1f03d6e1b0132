"""Run configuration: frozen dataclasses <-> nested TOML, validated against the registries.

A config has three sections. Components are tables with a ``kind`` picked from a registry and
the options that kind owns (docs/design.md, "Config")::

    [data]                      # kind + binarize / data_dir / seed, + the loader's own options
    kind = "mnist"
    split = "60k-10k"
    [model]                     # upper_z_dims / upper_hidden: stochastic layers 2..L
    [model.encoder]             # networks: mlp | conv
    kind = "mlp"
    hidden = [200, 200]
    [model.latent]              # gaussian | bernoulli | categorical | relaxed_*
    kind = "gaussian"
    dim = 50
    [model.prior]
    kind = "vamp"
    components = 500
    [train]                     # epochs, lr, n_samples, ...
    [train.objective]
    kind = "miwae"
    groups = 8
    [train.estimator]
    kind = "dreg"

``[model.decoder]`` left out mirrors the encoder (same kind, reversed widths). ``prior = "mog"``
inside ``[model]`` is shorthand for ``[model.prior] kind = "mog"``. Unknown keys, wrong types and
the flat keys of vaelab 0.1 raise :class:`ConfigError` naming the key (and, for old keys, the new one).

The package: :mod:`.schema` (the tables), :mod:`.codec` (dicts, TOML, ``--set``, registry lookups),
:mod:`.rules` (cross-field checks) and :mod:`.migration` (vaelab 0.1). Every name stays importable from
``vaelab.config``.
"""

from dataclasses import fields  # noqa: F401 (vaelab.config.fields, as before the split)

from ..errors import ConfigError  # noqa: F401
from .codec import RunConfig, dumps, from_dict, load, parse_set, read_toml, with_overrides
from .migration import MOVED, migrate, migrate_state
from .schema import (
    DATA_COMMON,
    DECODER_BIAS_MODES,
    MALLOC_MODES,
    OPTIMIZER_IMPLS,
    SECTIONS,
    TRACKERS,
    Component,
    DataConfig,
    ModelConfig,
    TrainConfig,
    component_fields,
    registry,
)

__all__ = [
    "DATA_COMMON", "DECODER_BIAS_MODES", "MALLOC_MODES", "MOVED", "OPTIMIZER_IMPLS", "SECTIONS", "TRACKERS",
    "Component", "DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "component_fields", "dumps", "from_dict",
    "load", "migrate", "migrate_state", "parse_set", "read_toml", "registry", "with_overrides",
]  # fmt: skip
