"""Training: the step (``train_step``), the loop (``fit``) with its callbacks, and run directories.

``train_step`` is one optimizer step that anyone can call; ``fit`` wraps it in epochs, validation,
logging, checkpointing and divergence handling; ``RunWriter`` is the only place that writes files.
"""

from ..allocator import tune_malloc
from ..numerics import denormals_flushed, flush_denormal_enabled
from .callbacks import Checkpointer, DivergenceGuard, EpochCallback, MetricsLogger, Validation
from .io import RunWriter
from .loop import Loop, check_run, fit
from .optim import OPTIMIZERS, build_optimizer, resolve_device
from .run import TrainResult, load_run, read_checkpoint
from .schedule import scheduled_lr, warmup_beta
from .step import backward, compute_bound, resolve, resolve_kl, train_step

__all__ = [
    "OPTIMIZERS",
    "Checkpointer",
    "DivergenceGuard",
    "EpochCallback",
    "Loop",
    "MetricsLogger",
    "RunWriter",
    "TrainResult",
    "Validation",
    "backward",
    "build_optimizer",
    "check_run",
    "compute_bound",
    "denormals_flushed",
    "fit",
    "flush_denormal_enabled",
    "load_run",
    "read_checkpoint",
    "resolve",
    "resolve_device",
    "resolve_kl",
    "scheduled_lr",
    "train_step",
    "tune_malloc",
    "warmup_beta",
]
