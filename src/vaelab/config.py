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
from .labels import LABEL_MODES
from .labels.semi_supervised import DEFAULT_CLASSIFICATION_WEIGHT
from .registry import _coerce


@dataclass(frozen=True)
class Component:
    """A registered piece: ``kind`` and the options that kind owns (validated by its registry)."""

    kind: str
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.options}


#: choices of options that the code applying them also checks (the functions are callable outside
#: a config): one tuple each, read from here by models/init.py, allocator.py and train/optim.py
DECODER_BIAS_MODES = ("auto", "data-mean", "default")
MALLOC_MODES = ("auto", "tuned", "system")
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "for-loop")
TRACKERS = ("tensorboard", "mlflow", "wandb")


def _f(default, help: str, choices: tuple | None = None):
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _c(kind: str, registry: str, help: str, **options):
    return field(default_factory=lambda: Component(kind, dict(options)), metadata={"registry": registry, "help": help})


@dataclass(frozen=True)
class DataConfig:
    kind: str = _f("two-gaussians", "data set (its own options go in the same table)")
    binarize: str = _f(
        "auto",
        "'dynamic' resamples x ~ Bernoulli(intensity) per batch; 'auto' = dynamic for "
        "a Bernoulli decoder on non-binary data",
        ("auto", "dynamic", "none"),
    )
    data_dir: str = _f("", "folder holding the data files (default: $VAELAB_DATA)")
    seed: int = _f(0, "seed for generating / splitting / test-binarizing the data")
    labelled: int = _f(
        0,
        "semi-supervised models: how many training labels to keep, the same number per class, drawn with "
        "data.seed (e.g. 100 for MNIST); the other training points are unlabelled (0 = keep every label)",
    )
    standardize: bool = _f(
        False,
        "real-valued data: subtract the training split's per-dimension mean and divide by its std (constant "
        "dimensions keep std 1); log-likelihoods are then of the standardized data (run.json records the "
        "log-Jacobian that converts them to the raw data's nats)",
    )
    options: dict = _f({}, "the loader's own options (n_train, split, path, ...)")


@dataclass(frozen=True)
class ModelConfig:
    encoder: Component = _c("mlp", "NETWORKS", "encoder network, x -> parameters of q(z_1|x)")
    decoder: Component | None = field(
        default=None,
        metadata={
            "registry": "NETWORKS",
            "help": "decoder network, z_1 -> likelihood parameters (default: mirror the encoder)",
        },
    )
    latent: Component = _c("gaussian", "LATENTS", "latent family of q(z_1|x)")
    prior: Component = _c("standard_normal", "PRIORS", "prior p(z) on the top stochastic layer")
    likelihood: Component = _c("gaussian", "LIKELIHOODS", "decoder likelihood p(x|z_1)")
    upper_z_dims: list = _f(
        [],
        "dimensions of Gaussian stochastic layers 2..L, e.g. [50] for the IWAE paper's "
        "2-layer model (empty = one layer); the prior is on the top layer",
    )
    upper_hidden: list = _f([100, 100], "hidden widths (tanh MLPs) between consecutive stochastic layers")
    labels: str = _f(
        "none",
        "'conditional': a CVAE q(z|x, y), p(x|z, y) on labelled data (Sohn et al. 2015); 'semi-supervised': "
        "Kingma et al. 2014's M2, y latent where unlabelled, with a classifier q(y|x); 'none': labels unused "
        "(a registered label mode: vaelab.labels)",
    )
    conditional_prior: bool = _f(False, "labelled models: a learned Gaussian p(z|y) per class instead of the prior")
    classifier: Component | None = field(
        default=None,
        metadata={
            "registry": "NETWORKS",
            "help": "semi-supervised models: the network x -> class logits of q(y|x) "
            "(default: the encoder's kind and options)",
        },
    )
    decoder_bias: str = _f(
        "auto",
        "decoder output bias at the start: 'data-mean' (p(x|z) starts at the training data's per-dimension "
        "mean, as in Burda et al.'s code), 'default' (PyTorch's init), 'auto' (data-mean where the decoder "
        "and likelihood allow it)",
        DECODER_BIAS_MODES,
    )


@dataclass(frozen=True)
class TrainConfig:
    objective: Component = _c("elbo", "OBJECTIVES", "training bound")
    estimator: Component = _c("reparam", "ESTIMATORS", "gradient estimator")
    n_samples: int = _f(1, "importance samples K per data point (per group for miwae / piwae)")
    kl: str = _f(
        "auto", "KL term: closed form, Monte Carlo, or analytic when the prior allows it", ("auto", "analytic", "mc")
    )
    beta: float = _f(1.0, "weight of the KL term (ELBO only); reported ELBOs always use beta = 1")
    kl_warmup_steps: int = _f(
        0,
        "KL annealing: warm-up of beta from 0 over this many steps (0 = off); with "
        "kl_anneal = 'cyclical', the length of one cycle",
    )
    kl_anneal: str = _f(
        "linear",
        "shape of the KL annealing: 'linear' (Bowman et al. 2016), 'sigmoid' (logistic, "
        "centred at half the warm-up) or 'cyclical' (Fu et al. 2019)",
        ("linear", "sigmoid", "cyclical"),
    )
    kl_cycle_ratio: float = _f(0.5, "cyclical annealing: fraction of each cycle over which beta rises (then it stays)")
    free_bits: float = _f(
        0.0,
        "free bits lambda, nats per latent dimension: the KL of each dimension (batch mean) "
        "counts at least lambda in the gradient (Kingma et al. 2016); 0 = off",
    )
    optimizer: str = _f("adam", "optimizer", ("adam", "sgd", "rmsprop", "adagrad"))
    lr: float = _f(1e-3, "learning rate (the first stage's, with lr_schedule = 'iwae')")
    lr_schedule: str = _f(
        "constant",
        "'iwae': Burda et al.'s stages i = 0..7 of 3^i epochs at lr*10^(-i/7) (3,280 epochs in all); "
        "'iwae-2': stages of 2^i epochs (255 in all; Li & Turner's Caltech schedule)",
        ("constant", "iwae", "iwae-2"),
    )
    adam_eps: float = _f(1e-8, "Adam epsilon (the IWAE paper uses 1e-4)")
    adam_beta2: float = _f(0.999, "Adam's second-moment decay beta2 (Li & Turner's numpy code uses 0.99)")
    weight_decay: float = _f(
        0.0,
        "L2 penalty on the weight matrices (not biases), added to the gradient of the mean loss: a N(0, I) prior "
        "on the weights (MAP) is 1 / (training points x importance samples K), as Li & Turner's numpy code; 0 = off",
    )
    optimizer_impl: str = _f(
        "auto",
        "torch's optimizer implementation: 'fused' (one kernel per parameter: adam, sgd; adagrad on "
        "CPU), 'foreach' (one op per update term over all parameters), 'for-loop' (ops per parameter); "
        "'auto' = fused where torch has it for this optimizer and device, else torch's default",
        OPTIMIZER_IMPLS,
    )
    grad_clip: float = _f(0.0, "clip the gradient norm of each parameter group to this value (0 = off)")
    divergence_retries: int = _f(
        3,
        "on a NaN/inf bound, roll the epoch back to its start and retry it with the "
        "learning rate times divergence_lr_factor, at most this many times per run (0 = stop)",
    )
    divergence_lr_factor: float = _f(0.5, "learning-rate factor applied at each divergence roll-back, in (0, 1]")
    batch_size: int = _f(100, "mini-batch size; the loss is the batch mean of the negative bound")
    labelled_batch: int = _f(
        0,
        "semi-supervised models: labelled points joining each batch of batch_size unlabelled ones "
        "(0 = the labelled points spread evenly over an epoch, as in Kingma et al.'s code)",
    )
    classification_weight: float = _f(
        DEFAULT_CLASSIFICATION_WEIGHT,
        "semi-supervised models: weight of the labelled points' mean log q(y|x) beside the per-point bound, "
        "Kingma et al. 2014's alpha / N (eq. 9; the paper's alpha = 0.1 N)",
    )
    epochs: int = _f(10, "training epochs")
    seed: int = _f(0, "seed for parameter init, sampling and shuffling")
    log_every: int = _f(100, "write metrics.jsonl / TensorBoard every this many steps")
    valid_every: int = _f(1, "validate (ELBO, diagnostics, IWAE-k) every this many epochs (0 = never)")
    checkpoint_every: int = _f(1, "write last.pt / best.pt every this many epochs (0 = never)")
    early_stopping: int = _f(
        0,
        "stop when the validation ELBO (the best.pt criterion) has not improved for this many validations; "
        "fit then returns best.pt's model (0 = never; needs a validation split)",
    )
    checkpoint_every_steps: int = _f(
        0,
        "also write last.pt every this many optimizer steps within an epoch, for long "
        "epochs; a resume continues from that step (0 = off)",
    )
    diagnostics: bool = _f(True, "per-epoch active units and per-dimension KL on validation data")
    valid_iwae_k: int = _f(0, "per-epoch IWAE-k bound on validation points, an estimate of log p(x) (0 = off)")
    valid_iwae_points: int = _f(500, "validation points for valid_iwae_k")
    grad_variance_every: int = _f(
        0,
        "measure the encoder gradient's variance over repeated estimates "
        "(grad_variance.jsonl) every this many steps (0 = off)",
    )
    grad_variance_draws: int = _f(100, "repeated gradient estimates R per measurement")
    grad_variance_points: int = _f(100, "validation points in the fixed mini-batch of each measurement")
    trackers: list = _f(
        ["tensorboard"],
        "experiment trackers fed every epoch's metrics: 'tensorboard' (tb/ in the run directory), 'mlflow' "
        "(MLFLOW_TRACKING_URI, train.tracking_uri or sqlite:///mlflow.db), 'wandb' (honours WANDB_MODE=offline); "
        "mlflow and wandb are optional extras: pip install 'vaelab[mlflow]' / 'vaelab[wandb]'",
        TRACKERS,
    )
    tracking_uri: str = _f(
        "", "MLflow tracking URI when MLFLOW_TRACKING_URI is unset (default: sqlite:///mlflow.db in the working directory)"
    )
    experiment: str = _f("vaelab", "MLflow experiment / W&B project the run is logged under")
    device: str = _f("cpu", "torch device ('cpu', 'cuda', 'auto'); under torchrun, 'cuda' is cuda:LOCAL_RANK")
    dist_timeout: float = _f(
        600.0, "under torchrun: seconds a process waits for the others in a collective before the run fails"
    )
    num_threads: int = _f(0, "torch intra-op threads (0 = torch default)")
    malloc: str = _f(
        "auto",
        "glibc malloc thresholds (process-wide, kept after training): 'tuned' keeps freed temporaries "
        "under 32 MiB in the heap instead of unmapping them (fewer page faults per step), 'system' "
        "leaves glibc's adaptive defaults, 'auto' = tuned on a CPU device",
        choices=MALLOC_MODES,
    )
    precision: str = _f(
        "fp32",
        "'bf16' runs the networks under bfloat16 autocast; densities, log-weights and bounds stay float32 "
        "(docs/performance.md, 'Compiled and mixed-precision steps')",
        choices=("fp32", "bf16"),
    )
    compile: bool = _f(
        False,
        "torch.compile the step's bound (model log-weights, objective, estimator; inductor, one graph per K); "
        "backward and optimizer stay eager",
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


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
DATA_COMMON = ("kind", "binarize", "data_dir", "seed", "labelled", "standardize")

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


def registry(name: str):
    """The registry object named in a component field's metadata (imported lazily)."""
    from .data import DATASETS
    from .distributions import LATENTS, LIKELIHOODS, PRIORS
    from .estimators import ESTIMATORS
    from .nets import NETWORKS
    from .objectives import OBJECTIVES

    return {
        "NETWORKS": NETWORKS,
        "LATENTS": LATENTS,
        "PRIORS": PRIORS,
        "LIKELIHOODS": LIKELIHOODS,
        "OBJECTIVES": OBJECTIVES,
        "ESTIMATORS": ESTIMATORS,
        "DATASETS": DATASETS,
    }[name]


def component_fields(section: str) -> dict[str, dataclasses.Field]:
    """The fields of ``[section]`` that are components (a table with a ``kind`` from a registry), by name."""
    return {f.name: f for f in fields(SECTIONS[section]) if "registry" in f.metadata}


def _section_to_dict(sec) -> dict:
    if isinstance(sec, DataConfig):
        return {k: getattr(sec, k) for k in DATA_COMMON} | dict(sec.options)
    out = {}
    for f in fields(sec):
        v = getattr(sec, f.name)
        if v is None:
            continue
        out[f.name] = v.to_dict() if isinstance(v, Component) else v
    return out


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


def _moved(key: str) -> None:
    if key in MOVED:
        new = MOVED[key]
        table, _, opt = new.rpartition(".")
        raise ConfigError(
            f"config key '{key}' moved in vaelab 0.2: write [{table}] {opt} = ... ({new}); see docs/design.md, 'Config'"
        )


def _data_section(body: dict) -> DataConfig:
    from .data import DATASETS

    common = {f.name: f for f in fields(DataConfig) if f.name in DATA_COMMON}
    kwargs, options = {}, {}
    for key, value in body.items():
        _moved(f"data.{key}")
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
        _moved(f"{sec}.{key}")
        if key not in known:
            raise ConfigError(f"unknown config key '{sec}.{key}'; valid keys: {', '.join(known)}")
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
    _check_values(cfg)
    return cfg


def _check_values(cfg: RunConfig) -> None:
    t = cfg.train
    positive = {
        "train.n_samples": t.n_samples,
        "train.batch_size": t.batch_size,
        "train.lr": t.lr,
        "train.log_every": t.log_every,
        "train.adam_eps": t.adam_eps,
        "train.valid_iwae_points": t.valid_iwae_points,
        "train.grad_variance_points": t.grad_variance_points,
    }
    for key, v in positive.items():
        if v <= 0:
            raise ConfigError(f"config key '{key}' must be > 0, got {v}")
    _check_adam(t)
    for key in (
        "epochs",
        "kl_warmup_steps",
        "beta",
        "valid_every",
        "checkpoint_every",
        "early_stopping",
        "checkpoint_every_steps",
        "valid_iwae_k",
        "grad_clip",
        "weight_decay",
        "num_threads",
        "grad_variance_every",
        "labelled_batch",
        "classification_weight",
    ):
        if getattr(t, key) < 0:
            raise ConfigError(f"config key 'train.{key}' must be >= 0, got {getattr(t, key)}")
    if cfg.data.labelled < 0:
        raise ConfigError(f"config key 'data.labelled' must be >= 0, got {cfg.data.labelled}")
    if cfg.model.labels not in LABEL_MODES:
        raise ConfigError(f"config key 'model.labels' must be one of {LABEL_MODES.names()}, got {cfg.model.labels!r}")
    LABEL_MODES.build(cfg.model.labels).check_config(cfg)  # the options it honours, the training it can do
    if t.grad_variance_draws < 2:
        raise ConfigError(f"config key 'train.grad_variance_draws' must be >= 2, got {t.grad_variance_draws}")
    if any(d <= 0 or int(d) != d for d in [*cfg.model.upper_z_dims, *cfg.model.upper_hidden]):
        raise ConfigError("config keys 'model.upper_z_dims' / 'model.upper_hidden' must be positive integers")
    _check_shaping(cfg)


def _check_adam(t: TrainConfig) -> None:
    if not 0 <= t.adam_beta2 < 1:
        raise ConfigError(f"config key 'train.adam_beta2' must be in [0, 1), got {t.adam_beta2}")
    if t.optimizer != "adam" and t.adam_beta2 != TrainConfig.adam_beta2:  # set away from its default
        raise ConfigError(f"train.adam_beta2 = {t.adam_beta2} has no effect with optimizer = '{t.optimizer}'; use adam")


def _check_shaping(cfg: RunConfig) -> None:
    """beta, its warm-up and the analytic KL: where they apply (``estimators.base.shaping_allowed``)."""
    from .estimators.base import shaping_allowed

    t = cfg.train
    shaped = not shaping_allowed(t.objective.kind, t.estimator.kind)
    if shaped and (t.beta != 1 or t.kl_warmup_steps):
        raise ConfigError(
            "beta / kl_warmup_steps apply to the ELBO with estimator 'reparam' only; "
            "set train.beta = 1 and train.kl_warmup_steps = 0"
        )
    if t.kl == "analytic" and shaped:
        raise ConfigError('kl = "analytic" applies to the ELBO with estimator \'reparam\' only; set train.kl = "mc"')
    if t.kl == "analytic" and cfg.model.upper_z_dims:
        raise ConfigError(
            'kl = "analytic" has no closed form with several stochastic layers (KL(q(h|x) || p(h)) '
            'couples them); set train.kl = "mc" or "auto"'
        )


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
            raise ConfigError(f"unknown config key '{key}'")
    return from_dict(d)


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
    from .data import DATASETS

    valid = DATASETS.options(new["data"].get("kind", DataConfig.kind))
    new["data"] = {k: v for k, v in new["data"].items() if k in DATA_COMMON or k in valid}
    return new
