"""Run configuration: frozen dataclasses <-> TOML, validated.

A config has three sections, ``[data]``, ``[model]`` and ``[train]``. Every field name is
unique across sections, so each one is also a command-line flag (``--z-dim 2``) and a
``--set`` target (``--set model.z_dim=2``). Unknown keys and wrong types raise
:class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError


def _f(default, help: str, choices: tuple | None = None):
    meta = {"help": help, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _f("two-gaussians", "data set", ("two-gaussians", "mnist", "digits", "array"))
    path: str = _f("", "array data file (.npz/.npy/.csv, N x D floats) when name = 'array'")
    data_dir: str = _f("", "folder holding mnist.pkl.gz (default: $VAELAB_DATA)")
    binarize: str = _f("auto", "'dynamic' resamples x ~ Bernoulli(intensity) per batch; 'auto' = dynamic for "
                       "a Bernoulli decoder on non-binary data", ("auto", "dynamic", "none"))
    mnist_split: str = _f("50k-10k-10k", "MNIST split: train/valid/test, or 60k train + 10k test (IWAE paper)",
                          ("50k-10k-10k", "60k-10k"))
    n_train: int = _f(10000, "two-gaussians: training points")
    n_test: int = _f(5000, "two-gaussians: test points")
    p_data: float = _f(0.3, "two-gaussians: weight of the first component")
    mu1: list = _f([-3.0, -3.0], "two-gaussians: mean of the first component")
    mu2: list = _f([3.0, 3.0], "two-gaussians: mean of the second component")
    valid_fraction: float = _f(0.1, "array/digits/two-gaussians: fraction of the training data held out for validation")
    test_fraction: float = _f(0.2, "array/digits: fraction held out for test")
    data_seed: int = _f(0, "seed for generating/splitting/test-binarizing the data")


@dataclass(frozen=True)
class ModelConfig:
    z_dim: int = _f(2, "latent dimension D (of the first stochastic layer when there are several)")
    hidden: list = _f([64, 64], "hidden widths of the encoder (the decoder mirrors them)")
    upper_z_dims: list = _f([], "dimensions of stochastic layers 2..L, e.g. [50] for the IWAE paper's 2-layer model "
                            "(empty = one layer); the prior is on the top layer")
    upper_hidden: list = _f([100, 100], "hidden widths between consecutive stochastic layers (both directions)")
    activation: str = _f("tanh", "hidden activation", ("tanh", "relu", "elu", "softplus", "leaky_relu", "gelu", "silu"))
    likelihood: str = _f("gaussian", "decoder likelihood p(x|z)", ("bernoulli", "gaussian"))
    decoder_variance: str = _f("fixed", "Gaussian decoder variance", ("fixed", "per_dim", "per_datapoint"))
    fixed_variance: float = _f(1.0, "sigma^2 of the fixed-variance Gaussian decoder")
    prior: str = _f("standard_normal", "prior p(z)", ("standard_normal", "mog", "vamp"))
    prior_components: int = _f(2, "mixture components (MoG) or pseudo-inputs (VampPrior)")
    prior_weights: str = _f("fixed", "MoG mixture weights", ("fixed", "trainable"))
    prior_fixed_weights: list = _f([], "fixed MoG weights (default uniform, i.e. p_prior = 0.5 for 2 components)")


@dataclass(frozen=True)
class TrainConfig:
    objective: str = _f("elbo", "training bound: ELBO, IWAE-K, MIWAE(M,K), CIWAE(beta), PIWAE(M,K)",
                        ("elbo", "iwae", "miwae", "ciwae", "piwae"))
    n_samples: int = _f(1, "importance samples K per data point (per group for miwae / piwae)")
    n_groups: int = _f(1, "M, independent groups of K samples (miwae / piwae; M*K samples in all)")
    ciwae_beta: float = _f(0.5, "CIWAE mixing weight: beta*ELBO + (1-beta)*IWAE")
    estimator: str = _f("reparam", "gradient estimator for the inference network: reparameterization, "
                        "sticking-the-landing, doubly-reparameterized", ("reparam", "stl", "dreg"))
    kl: str = _f("auto", "KL term: closed form, Monte Carlo, or analytic when the prior allows it",
                 ("auto", "analytic", "mc"))
    beta: float = _f(1.0, "weight of the KL term (ELBO only); reported ELBOs always use beta = 1")
    kl_warmup_steps: int = _f(0, "linear warm-up of beta from 0 over this many steps (0 = off)")
    optimizer: str = _f("adam", "optimizer", ("adam", "sgd", "rmsprop", "adagrad"))
    lr: float = _f(1e-3, "learning rate (the first stage's, with lr_schedule = 'iwae')")
    lr_schedule: str = _f("constant", "'iwae': Burda et al.'s stages i = 0..7 of 3^i epochs at lr*10^(-i/7) "
                          "(3,280 epochs in all)", ("constant", "iwae"))
    adam_eps: float = _f(1e-8, "Adam epsilon (the IWAE paper uses 1e-4)")
    batch_size: int = _f(100, "mini-batch size; the loss is the batch mean of the negative bound")
    epochs: int = _f(10, "training epochs")
    seed: int = _f(0, "seed for parameter init, sampling and shuffling")
    log_every: int = _f(100, "write metrics.jsonl / TensorBoard every this many steps")
    diagnostics: bool = _f(True, "per-epoch active units and per-dimension KL on validation data")
    valid_iwae_k: int = _f(0, "per-epoch IWAE-k bound on validation points, an estimate of log p(x) (0 = off)")
    valid_iwae_points: int = _f(500, "validation points for valid_iwae_k")
    device: str = _f("cpu", "torch device ('cpu', 'cuda', 'auto')")
    num_threads: int = _f(0, "torch intra-op threads (0 = torch default)")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def replace(self, **flat: Any) -> "RunConfig":
        """Copy with fields replaced by unique name, e.g. ``cfg.replace(z_dim=4, epochs=2)``."""
        return with_overrides(self, {SECTION_OF[k] + "." + k: v for k, v in flat.items()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
SECTION_OF = {f.name: s for s, cls in SECTIONS.items() for f in fields(cls)}
assert len(SECTION_OF) == sum(len(fields(c)) for c in SECTIONS.values()), "field names must be unique"


def _coerce(key: str, value: Any, f: dataclasses.Field) -> Any:
    kind = f.type  # a string under `from __future__ import annotations`
    expected = {"int": int, "float": float, "str": str, "bool": bool, "list": list}[kind]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(f"config key '{key}' must be {kind}, got {type(value).__name__} {value!r}")
    if expected is list:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"config key '{key}' must be a list of numbers, got {value!r}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {list(choices)}, got {value!r}")
    return value


def from_dict(d: dict) -> RunConfig:
    """Validate a nested ``{"data": {...}, "model": {...}, "train": {...}}`` dict.

    Raises:
        ConfigError: unknown section or key, wrong type, or a value outside its choices.
    """
    sections = {}
    for sec, body in d.items():
        if sec not in SECTIONS:
            raise ConfigError(f"unknown config section '{sec}'; valid sections: {', '.join(SECTIONS)}")
        if not isinstance(body, dict):
            raise ConfigError(f"config section '{sec}' must be a table")
        cls = SECTIONS[sec]
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in body.items():
            if key not in known:
                raise ConfigError(f"unknown config key '{sec}.{key}'; valid keys: {', '.join(known)}")
            kwargs[key] = _coerce(f"{sec}.{key}", value, known[key])
        sections[sec] = cls(**kwargs)
    cfg = RunConfig(**sections)
    _check_values(cfg)
    return cfg


def _check_values(cfg: RunConfig) -> None:
    positive = {"model.z_dim": cfg.model.z_dim, "train.n_samples": cfg.train.n_samples,
                "train.batch_size": cfg.train.batch_size, "train.lr": cfg.train.lr,
                "train.log_every": cfg.train.log_every, "data.n_train": cfg.data.n_train,
                "data.n_test": cfg.data.n_test}
    for key, v in positive.items():
        if v <= 0:
            raise ConfigError(f"config key '{key}' must be > 0, got {v}")
    for key, v in {"train.epochs": cfg.train.epochs, "train.kl_warmup_steps": cfg.train.kl_warmup_steps,
                   "train.beta": cfg.train.beta}.items():
        if v < 0:
            raise ConfigError(f"config key '{key}' must be >= 0, got {v}")
    if any(h <= 0 or int(h) != h for h in cfg.model.hidden):
        raise ConfigError(f"config key 'model.hidden' must be positive integers, got {cfg.model.hidden}")
    if not 0 < cfg.data.p_data < 1:
        raise ConfigError(f"config key 'data.p_data' must be in (0, 1), got {cfg.data.p_data}")
    t = cfg.train
    if (t.objective != "elbo" or t.estimator != "reparam") and (t.beta != 1 or t.kl_warmup_steps):
        raise ConfigError("beta / kl_warmup_steps apply to the ELBO with estimator = \"reparam\" only; "
                          "set beta = 1 and kl_warmup_steps = 0")
    if t.n_groups < 1 or (t.n_groups != 1 and t.objective not in ("miwae", "piwae")):
        raise ConfigError(f"n_groups = {t.n_groups}: M > 1 groups apply to objective miwae / piwae only (M >= 1)")
    if not 0 <= t.ciwae_beta <= 1:
        raise ConfigError(f"config key 'train.ciwae_beta' must be in [0, 1], got {t.ciwae_beta}")
    if t.estimator != "reparam" and t.kl == "analytic":
        raise ConfigError(f"estimator = \"{t.estimator}\" works on Monte Carlo log-weights; set kl = \"mc\" or \"auto\"")
    if t.estimator == "dreg" and cfg.model.prior == "vamp":
        raise ConfigError("estimator = \"dreg\" assumes log p(x, h) does not depend on the encoder, but the VampPrior "
                          "does; use estimator = \"reparam\" or \"stl\" with it")
    if any(d <= 0 or int(d) != d for d in [*cfg.model.upper_z_dims, *cfg.model.upper_hidden]):
        raise ConfigError("config keys 'model.upper_z_dims' / 'model.upper_hidden' must be positive integers")
    if t.valid_iwae_k < 0 or t.valid_iwae_points < 1 or t.adam_eps <= 0:
        raise ConfigError("valid_iwae_k must be >= 0, valid_iwae_points >= 1 and adam_eps > 0")
    if cfg.train.kl == "analytic" and cfg.model.prior != "standard_normal":
        raise ConfigError(f"kl = \"analytic\" needs a closed-form KL; prior '{cfg.model.prior}' has none, use kl = \"mc\"")
    if cfg.data.dataset == "array" and not cfg.data.path:
        raise ConfigError("data.dataset = 'array' needs data.path (an .npz, .npy or .csv file)")


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply ``{"model.z_dim": 4, "epochs": 3, ...}`` (section optional) and re-validate."""
    d = cfg.to_dict()
    for key, value in overrides.items():
        sec, _, name = key.rpartition(".")
        if not sec:
            if name not in SECTION_OF:
                raise ConfigError(f"unknown config key '{name}'; valid keys: {', '.join(SECTION_OF)}")
            sec = SECTION_OF[name]
        if sec not in d:
            raise ConfigError(f"unknown config section '{sec}' in '{key}'")
        d[sec][name] = value
    return from_dict(d)


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``["model.z_dim=4", "data.dataset=mnist"]``; values are TOML, bare words are strings."""
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


def load(path: str | Path) -> RunConfig:
    """Read and validate a TOML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    return from_dict(d)


def dumps(cfg: RunConfig) -> str:
    """TOML text of a config (round-trips through :func:`load`)."""
    lines = []
    for sec, body in cfg.to_dict().items():
        lines.append(f"[{sec}]")
        for k, v in body.items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def field_help() -> list[tuple[str, str, dataclasses.Field]]:
    """(section, name, field) for every config field, for building CLI flags."""
    return [(s, f.name, f) for s, cls in SECTIONS.items() for f in fields(cls)]

