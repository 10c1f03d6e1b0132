"""Configs and checkpoints of older vaelab versions: vaelab 0.1's flat keys (refused with their new place
when written by hand, converted when read from an old checkpoint) and 0.1's weight names."""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from .schema import DATA_COMMON, SECTIONS, DataConfig, component_fields, registry

#: vaelab 0.1's flat keys -> where they live now
MOVED = {
    "data.dataset": "data.kind",
    "data.mnist_split": "data.split",
    "data.data_seed": "data.seed",
    "model.z_dim": "model.latent.dim",
    "model.hidden": "model.encoder.hidden",
    "model.activation": "model.encoder.activation",
    "model.decoder_variance": "model.likelihood.variance",
    "model.fixed_variance": "model.likelihood.fixed_variance",
    "model.prior_components": "model.prior.components",
    "model.prior_weights": "model.prior.weights",
    "model.prior_fixed_weights": "model.prior.fixed_weights",
    "train.n_groups": "train.objective.groups",
    "train.ciwae_beta": "train.objective.beta",
}


def moved(key: str) -> None:
    if key in MOVED:
        new = MOVED[key]
        table, _, opt = new.rpartition(".")
        raise ConfigError(
            f"config key '{key}' moved in vaelab 0.2: write [{table}] {opt} = ... ({new}); see docs/design.md, 'Config'"
        )


def migrate(d: dict) -> dict:
    """Convert a vaelab 0.1 flat config dict (as stored in old checkpoints) to the nested form.

    Keys move per :data:`MOVED`; string components become tables; options the chosen kind does not
    own (0.1 recorded every field of every table) are dropped.
    """
    if isinstance(d.get("model", {}).get("encoder"), dict):
        return d  # already nested
    new: dict = {"data": {}, "model": {}, "train": {}}
    for sec, body in d.items():
        comps = component_fields(sec) if sec in SECTIONS else {}
        for key, value in body.items():
            if key in comps and isinstance(value, str):
                new[sec].setdefault(key, {})["kind"] = value
                continue
            target = MOVED.get(f"{sec}.{key}", f"{sec}.{key}").split(".")
            if len(target) == 3:
                new[target[0]].setdefault(target[1], {})[target[2]] = value
            else:
                new[target[0]][target[1]] = value
    for sec in ("model", "train"):
        for name, f in component_fields(sec).items():
            table = new[sec].get(name)
            if isinstance(table, dict):
                table.setdefault(
                    "kind",
                    f.default_factory().kind
                    if f.default_factory is not dataclasses.MISSING
                    else new["model"]["encoder"]["kind"],
                )
                valid = registry(f.metadata["registry"]).options(table["kind"])
                new[sec][name] = {k: v for k, v in table.items() if k == "kind" or k in valid}
    from ..data import DATASETS

    valid = DATASETS.options(new["data"].get("kind", DataConfig.kind))
    new["data"] = {k: v for k, v in new["data"].items() if k in DATA_COMMON or k in valid}
    return new


def migrate_state(state: dict) -> dict:
    """Format-1 weights: GaussianEncoder kept its MLP at ``encoder.net``; now the encoder is the MLP."""
    return {(k.replace("encoder.net.", "encoder.", 1) if k.startswith("encoder.net.") else k): v for k, v in state.items()}
