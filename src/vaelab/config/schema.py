"""The config schema: the ``[data]``, ``[model]`` and ``[train]`` tables as frozen dataclasses, each field
with its default, help text, choices or the registry its component is validated against."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from ..labels.semi_supervised import DEFAULT_CLASSIFICATION_WEIGHT


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
    kind: str = _f(
        "vae",
        "model family: 'vae' (bottom-up inference, Burda et al. 2016) or 'top-down' (Ladder VAE, Sønderby et "
        "al. 2016: the posterior of each layer merges a bottom-up estimate with the generative layer above; needs "
        "model.upper_z_dims) or 'top-down-residual' (the same with NVAE's posterior relative to the prior)",
    )
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
    # --- the bound trained and its shaping (train.bound.BoundOptions at run time)
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
    # --- the optimizer and divergence recovery
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
    # --- batches (labelled_batch, classification_weight: the semi-supervised label mode's)
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
    # --- the loop: epochs, seed, logging, validation, checkpoints
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
    # --- diagnostics measured while training
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
    # --- experiment trackers
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
    # --- the machine: device, processes, threads, memory, precision, compilation
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
    cuda_graphs: bool = _f(
        False,
        "capture the whole training step (bound, backward, optimizer) as one CUDA graph per batch shape and "
        "replay it (docs/performance.md); where it cannot be captured (CPU, torchrun, a score-function "
        "estimator, KL annealing, bf16) the step runs eagerly after a one-line warning",
    )


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
DATA_COMMON = ("kind", "binarize", "data_dir", "seed", "labelled", "standardize")


def registry(name: str):
    """The registry object named in a component field's metadata (imported lazily)."""
    from ..data import DATASETS
    from ..distributions import LATENTS, LIKELIHOODS, PRIORS
    from ..estimators import ESTIMATORS
    from ..nets import NETWORKS
    from ..objectives import OBJECTIVES

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
