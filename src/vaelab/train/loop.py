"""The training loop: set up (fresh, resumed, or around a user's model), then epochs of
:func:`~vaelab.train.step.train_step` followed by end-of-epoch callbacks."""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import config as config_mod
from .. import faults, progress
from .._version import __version__
from ..allocator import tune_malloc
from ..config import RunConfig
from ..data import Batch, DataSplits
from ..distributed import Dist, RankLostError, refuse_rank_local_state
from ..errors import CheckpointError, TrainingDivergedError, TrainingInterrupted, sizes_that_fit
from ..estimators import ESTIMATORS
from ..labels import label_mode_of
from ..models.precision import set_precision, warn_if_slow
from ..numerics import denormals_flushed
from ..objectives import OBJECTIVES
from ..progress import tqdm
from . import step as step_mod  # the dry step's (tests replace this module's train_step)
from .bound import BoundOptions
from .callbacks import (
    EpochCallback,
    EpochLines,
    check_validation_size,
    default_callbacks,
    default_step_hooks,
    warn_no_validation,
)
from .graphs import graphed_step
from .interrupt import StopRequest
from .io import RunWriter, check_writable
from .lock import run_lock
from .optim import build_optimizer, resolve_device
from .run import TrainResult, make_data_and_model, read_checkpoint
from .run import restore as restore_weights
from .schedule import check_schedules, kl_weight, scheduled_lr
from .state import capture, checkpoint_payload, restore
from .step import bound_function, check_shaping, resolve_kl, train_step
from .trackers import check_trackers, close_trackers, start_trackers, tracked_runs


@dataclass
class LoopState:
    """What a checkpoint holds besides weights and optimizer state."""

    epoch: int = 0
    step: int = 0
    best: float = -math.inf
    history: list = field(default_factory=list)
    saved_epoch: int | None = None  # the epoch of the last.pt on disk, if any
    saved_step: int | None = None
    # within the unfinished epoch (a mid-epoch checkpoint resumes here):
    batch: int = 0  # batches done
    epoch_rng: torch.Tensor | None = None  # the shuffle generator at the epoch's start: replays its order
    sums: list = field(default_factory=lambda: [0.0] * 4)  # batch-size-weighted elbo, rec, kl, bound
    n_seen: int = 0

    def mid_epoch(self) -> dict:
        return {"batch": self.batch, "epoch_rng": self.epoch_rng, "sums": list(self.sums), "n_seen": self.n_seen}


class Loop:
    """A configured training run: model, optimizer, data on the device, writer and state."""

    def __init__(self, cfg: RunConfig, run_dir: Path, model, data: DataSplits, writer: RunWriter, device, dist=None):
        t = cfg.train
        self.cfg, self.run_dir, self.model, self.data, self.writer = cfg, run_dir, model.to(device), data, writer
        self.device = torch.device(device)
        self.dist = dist if dist is not None else Dist()
        self.objective = OBJECTIVES.build(t.objective.kind, t.objective.options, "train.objective")
        self.estimator = ESTIMATORS.build(t.estimator.kind, t.estimator.options, "train.estimator")
        self.estimator.check(model)
        if self.dist.active:
            refuse_rank_local_state(self.estimator)
        self.estimator.check_objective(self.objective, t.n_samples)
        self.objective.check_samples(t.n_samples)
        self.estimator.setup(self.model)
        self.kl = resolve_kl(t.kl, model, self.objective, self.estimator)
        set_precision(self.model, t.precision)
        warn_if_slow(t.precision, self.device)
        check_shaping(self.objective, self.estimator, self.kl, t.beta, t.free_bits)  # once: the bound no longer asks
        self.label_mode = label_mode_of(model)
        self.label_mode.check_train(t)
        self.bound = bound_function(model, t.compile)  # the label mode's bound, picked once
        check_schedules(t)
        self.optimizer, self.groups = build_optimizer(
            t.optimizer,
            model,
            t.lr,
            t.adam_eps,
            self.estimator.parameter_groups(),
            t.optimizer_impl,
            t.adam_beta2,
            t.weight_decay,
        )
        self.x_train, self.x_valid = data.train.to(device), data.valid.to(device)
        self.converged = False  # set by the EarlyStopping callback
        self.y_train, self.y_valid, self.labelled = self.label_mode.label_tensors(data, cfg.data, device)
        self.shuffle_gen = torch.Generator().manual_seed(t.seed + 1)  # the same on every rank: one global order
        self.trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.stop_agreed = False  # under torchrun: a stop requested on any rank, as of the last step
        if self.dist.active:
            # the same initial weights everywhere, an estimator's own networks (learned baselines) too
            self.dist.sync_tensors([*self.model.parameters(), *self.model.buffers(), *self.trainable])
            torch.manual_seed(t.seed + 7919 * self.dist.rank)  # each rank draws its own z noise
        self.state = LoopState()
        self.lr_scale, self.retries = 1.0, 0  # divergence roll-backs so far and their learning-rate factor
        self.epochs = t.epochs
        self.step_hooks = default_step_hooks(t)  # hook(loop) after every optimizer step
        self.graphed = graphed_step(self)  # train.cuda_graphs: the step as replayed CUDA graphs (or None, warned)
        self.stop = StopRequest()  # entered by fit: SIGINT/SIGTERM stop after the current step
        self.t0 = self.epoch_start = time.perf_counter()

    def dry_step(self) -> None:
        """One training step on the first batch of a separately seeded shuffle, then undone: weights,
        optimizer and estimator state, counters and every random stream are restored, so the run that
        follows is bit-identical to one without it. A configuration that fails only when it runs
        (a network that does not fit the data, a bound that cannot be computed) fails here, before
        anything is written.

        Raises:
            ConfigError: the bound is not finite on the first batch (the data or the likelihood), or the
                step does not fit in memory; otherwise what the step itself raises.
        """
        t = self.cfg.train
        snap = copy.deepcopy(capture(self))
        fits = sizes_that_fit("a training step", "lower train.batch_size, train.n_samples or the model's sizes")
        try:
            with fits:
                batch = next(iter(self.label_mode.batches(self, torch.Generator().manual_seed(t.seed))))
                opts = BoundOptions(t.n_samples, self.kl, t.beta, t.free_bits, None, t.classification_weight)
                step_mod.train_step(self.model, batch, self.optimizer, self.objective, self.estimator,
                                    grad_clip=t.grad_clip, groups=self.groups, bound=self.bound, options=opts)  # fmt: skip
        except TrainingDivergedError as e:
            raise config_mod.ConfigError(
                f"{e} on the first batch, before any update: check the data's scale and the likelihood "
                "(data.standardize, model.likelihood)"
            ) from None
        finally:
            restore(self, snap, "the state before the dry-run step")

    def diverged(self, what: str) -> TrainingDivergedError:
        st = self.state
        where = (
            f"the last good checkpoint is {self.run_dir / 'last.pt'} (epoch {st.saved_epoch}, step {st.saved_step})"
            if st.saved_epoch is not None
            else "no checkpoint had been written yet"
        )
        return TrainingDivergedError(f"{what}; stopped. {where}; lower the learning rate and resume or retrain")

    def checkpoint_payload(self) -> dict:
        """The run state and what rebuilds the run (:func:`vaelab.train.state.checkpoint_payload`)."""
        return checkpoint_payload(self)

    def cuda_rng(self) -> torch.Tensor | None:
        """The generator state of this rank's GPU (None on a CPU device)."""
        return torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None

    def set_cuda_rng(self, state: torch.Tensor | None) -> None:
        if state is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)

    def save(self, best: bool = False) -> None:
        """Write last.pt (and best.pt) with the state as it is now, mid-epoch or not."""
        payload = self.checkpoint_payload()
        if best:
            self.writer.checkpoint("best.pt", payload)
        self.writer.checkpoint("last.pt", payload)
        self.state.saved_epoch, self.state.saved_step = self.state.epoch, self.state.step

    def stop_if_requested(self, agree: bool = False) -> None:
        """After a SIGINT/SIGTERM: checkpoint now (unless last.pt already holds this step) and stop.
        Under torchrun every rank stops at the same step: after a step the ranks have agreed through
        that step's reduction; ``agree`` (at an epoch's end) takes a vote of its own."""
        if self.dist.active:
            requested = self.dist.any(self.stop.signum is not None) if agree else self.stop_agreed
        else:
            requested = self.stop.signum is not None
        if not requested:
            return
        st = self.state
        if st.saved_step != st.step:
            self.save()
        raise TrainingInterrupted(
            f"{self.stop.name or 'a signal to another rank'} at epoch {st.epoch + 1}, step {st.step}; "
            f"{self.run_dir / 'last.pt'} holds that step; continue with: "
            f"vaelab train --resume {self.run_dir}{self._launch_hint()}"
        )

    def _launch_hint(self) -> str:
        """How the resumed run should be launched: as many processes (per machine) as this one."""
        if not self.dist.active:
            return ""
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.dist.world))
        return f" --nproc {local}" + ("" if local == self.dist.world else " (and the same --nnodes launch on every machine)")

    def snapshot(self) -> dict:
        """In memory, the run state without the roll-back counters: what a diverged epoch is rolled back to."""
        snap = copy.deepcopy(capture(self))
        del snap["lr_scale"], snap["divergence_retries_used"]
        return snap

    def roll_back(self, snap: dict | None, error: TrainingDivergedError, epoch: int) -> None:
        """Restore ``snap`` and lower the learning rate by ``divergence_lr_factor``, or re-raise
        ``error`` (with the roll-backs made) once ``divergence_retries`` are used up."""
        t = self.cfg.train
        if snap is None or self.retries >= t.divergence_retries:
            if self.retries:
                raise TrainingDivergedError(
                    f"{error} (after {self.retries} roll-backs, the learning rate at {self.lr_scale:g} x train.lr)"
                ) from None
            raise error
        self.retries += 1
        self.lr_scale *= t.divergence_lr_factor
        restore(self, copy.deepcopy(snap), "the snapshot at the start of the epoch")  # (kept for a further roll-back)
        if self.graphed is not None:
            self.graphed.reset()  # the optimizer state the graphs wrote into was replaced
        self.writer.append_jsonl(
            "events.jsonl",
            {
                "event": "divergence_roll_back",
                "epoch": epoch + 1,
                "error": str(error),
                "lr_scale": self.lr_scale,
                "retry": self.retries,
            },
        )
        warnings.warn(
            f"{str(error).split(';')[0]}; rolled back to the start of epoch {epoch + 1}, retrying with the "
            f"learning rate x{self.lr_scale:g} (roll-back {self.retries} of {t.divergence_retries})",
            stacklevel=2,
        )

    def train_epoch(self, epoch: int, show: bool) -> dict:
        """One pass over the training data (the rest of it, after a mid-epoch checkpoint)."""
        t, st = self.cfg.train, self.state
        lr = scheduled_lr(t.lr, t.lr_schedule, epoch) * self.lr_scale
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.epoch_start = t0 = time.perf_counter()
        n_points = self.label_mode.points_per_epoch(self.x_train.shape[0], self.labelled)
        beta, n_batches = t.beta, math.ceil(n_points / t.batch_size)
        bar = tqdm(total=n_batches, initial=st.batch, desc=f"epoch {epoch + 1}/{t.epochs}", disable=not show, leave=False)
        for batch in self._epoch_batches():
            beta = kl_weight(t.beta, t.kl_anneal, t.kl_warmup_steps, st.step, t.kl_cycle_ratio)
            local, weight = self.dist.share(batch)  # (the whole batch, 1.0) in one process
            try:
                opts = BoundOptions(t.n_samples, self.kl, beta, t.free_bits,
                                    self._global_mean(weight) if t.free_bits else None, t.classification_weight)  # fmt: skip
                s = self._graphed(local, opts, lr)
                if s is None:
                    s = train_step(self.model, local, self.optimizer, self.objective, self.estimator,
                                   grad_clip=t.grad_clip, groups=self.groups, sync=self._sync(weight), bound=self.bound,
                                   options=opts)  # fmt: skip
            except TrainingDivergedError as e:
                raise self.diverged(f"{e} at epoch {epoch + 1}, step {st.step}") from None
            self._after_step(s, len(batch), {"beta": beta, "lr": lr}, n_batches)
            bar.update(1)
        bar.close()
        m = [v / max(st.n_seen, 1) for v in st.sums]
        st.batch = 0
        return {"epoch": epoch + 1, "step": st.step, "train_elbo": m[0], "train_rec": m[1], "train_kl": m[2],
                "train_bound": m[3], "valid_elbo": None, "valid_iwae": None, "beta": beta, "lr": lr,
                "active_units": None, "train_time_s": time.perf_counter() - t0}  # fmt: skip

    def _graphed(self, batch: Batch, opts: BoundOptions, lr: float) -> dict | None:
        """The step through its CUDA graph (``train.cuda_graphs``), or None: train eagerly. A capture that
        fails (a host read in a user's module) turns graphs off for the run with a one-line warning."""
        if self.graphed is None:
            return None
        try:
            return self.graphed.step(batch, opts, lr)
        except TrainingDivergedError:
            raise
        except Exception as e:  # the capture's state was restored: the eager step that follows is the same step
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.warn(f"train.cuda_graphs: capture failed ({reason}); training without graphs", stacklevel=2)
            self.graphed = None
            return None

    def _epoch_batches(self):
        """This epoch's batches; after a mid-epoch checkpoint, the epoch's shuffle (and binarization)
        draws are replayed from its saved generator state and the batches already trained on skipped."""
        st = self.state
        if st.batch and st.epoch_rng is not None:
            self.shuffle_gen.set_state(st.epoch_rng)
        else:
            st.batch, st.epoch_rng, st.sums, st.n_seen = 0, self.shuffle_gen.get_state(), [0.0] * 4, 0
        return itertools.islice(self.label_mode.batches(self, self.shuffle_gen), st.batch, None)

    def _after_step(self, s: dict, b: int, schedule: dict, n_batches: int) -> None:
        """Counters and running sums, step hooks, the step log, step checkpoints and stop requests."""
        t, st = self.cfg.train, self.state
        st.step, st.batch, st.n_seen = st.step + 1, st.batch + 1, st.n_seen + b
        st.sums = [a + s[k] * b for a, k in zip(st.sums, ("elbo", "rec", "kl", "bound"))]
        for hook in self.step_hooks:
            hook(self)
        if st.step % t.log_every == 0 or st.batch == n_batches:  # and each epoch's last step: a short run logs too
            self.writer.step(st.step, {**s, f"{self.objective_name}_bound": s["bound"], **schedule})
        faults.point("step")
        if t.checkpoint_every_steps and st.step % t.checkpoint_every_steps == 0 and st.batch < n_batches:
            self.save()
        self.stop_if_requested()

    def _sync(self, weight: float):
        """The step's one reduction under torchrun (None in one process): gradients and statistics
        weighted by this rank's share, plus the non-finite and stop flags."""
        if not self.dist.active:
            return None

        def sync(stats, finite):
            flags = [float(not finite and weight > 0), float(self.stop.signum is not None)]
            stats, out = self.dist.reduce_step(self.trainable, stats, weight, flags)
            self.stop_agreed = bool(out[1] > 0)
            return stats, bool(out[0] == 0)

        return sync

    def _global_mean(self, weight: float):
        """Under torchrun, a share's mean -> the global batch's (weights B_r / B summed over ranks)."""
        if not self.dist.active:
            return None
        return lambda t: self.dist.sum_(t * weight)

    @property
    def objective_name(self) -> str:
        return type(self.objective).registry_name


def fit(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    model=None,
    data: DataSplits | None = None,
    init=None,
    resume: bool = False,
    quiet: bool = False,
    tensorboard: bool = True,
    callbacks=(),
    epoch_callback=None,
) -> TrainResult:
    """Train a VAE as configured, writing everything to ``run_dir``.

    Args:
        cfg: the run configuration (``cfg.model`` is ignored when ``model`` is given).
        run_dir: output folder (config.toml, run.json, metrics.csv/jsonl, tb/, last.pt, best.pt).
        model: a model built in Python (any :class:`~vaelab.models.VAE`); reload it later with
            ``load_run(run_dir, model=<the same constructor>)``.
        data: preloaded :class:`DataSplits` (else loaded from ``cfg.data``); run.json records which.
        init: initial weights, a state dict or a checkpoint path (strict loading).
        resume: continue from ``run_dir/last.pt`` (model, optimizer, RNG, epoch and step counters,
            the position within an epoch); the logs are cut back to that checkpoint first.
        quiet: no progress bar (it is also hidden when stderr is not a terminal).
        callbacks: extra ``callback(loop, row)`` run after the built-in end-of-epoch ones.
        epoch_callback: optional ``f(epoch, model, row)`` called after each epoch.
    Returns:
        :class:`TrainResult`.
    Raises:
        TrainingDivergedError: the bound became NaN/inf; ``last.pt`` / ``best.pt`` keep the last good epoch.
        CheckpointError: ``resume`` without a readable ``last.pt``, or a fresh start into a used directory.
        TrainingInterrupted: SIGINT/SIGTERM stopped training after a step; ``last.pt`` holds it.
        RunInUseError: another process is training into ``run_dir`` (its lock file names it).
        ConfigError, DataError: bad configuration or data.
    """
    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device)
    owned = not torch.distributed.is_initialized()  # a process group fit joins, it also leaves
    dist = Dist.from_env(device, cfg.train.dist_timeout)
    device = dist.device(device)
    tune_malloc(cfg.train.malloc, device)
    finished = aborted = False
    try:
        loop, ckpt, provenance = _checked(cfg, run_dir, model, data, init, resume, device, dist, quiet)
        if dist.is_main:
            check_writable(run_dir)
        locked = run_lock(run_dir) if dist.is_main else contextlib.nullcontext()
        with locked, denormals_flushed(device), _threads(cfg.train.num_threads), progress.quiet(quiet):
            _open(loop, ckpt, provenance, tensorboard)
            trackers: list = []
            try:
                trackers = start_trackers(cfg, run_dir, ckpt is not None, dist.is_main)
                show = not progress.is_quiet() and sys.stderr.isatty() and dist.is_main  # fit(quiet=) or --quiet
                lines = not progress.is_quiet() and not sys.stderr.isatty() and dist.is_main  # a batch job's log
                cbs = [*default_callbacks(cfg.train), *trackers, *callbacks,
                       *([EpochCallback(epoch_callback)] if epoch_callback else []),
                       *([EpochLines()] if lines else [])]  # fmt: skip
                loop.t0 = t0 = time.perf_counter() - (loop.state.history[-1]["total_time_s"] if loop.state.history else 0.0)
                with loop.stop, _lost_rank_says_where(loop):
                    for epoch in range(loop.state.epoch, cfg.train.epochs if not loop.converged else 0):
                        _run_epoch(loop, epoch, cbs, show)
                        loop.stop_if_requested(agree=True)
                        if loop.converged:
                            break
                finished = True
            except KeyboardInterrupt:  # a second signal: abort at once
                aborted = True
                raise
            finally:
                loop.writer.close(abort=aborted)
                close_trackers(trackers, finished)
    finally:
        if owned:
            dist.close(sync=finished)
    set_precision(loop.model, "fp32")  # the trained model evaluates in float32 (docs/performance.md)
    if loop.converged and (run_dir / "best.pt").is_file():  # early stopping hands back the best validated model
        loop.model.load_state_dict(read_checkpoint(run_dir / "best.pt")[0]["model"])
    st = loop.state
    stopped = st.history[-1]["epoch"] if loop.converged and st.history else None
    return TrainResult(run_dir, loop.model, loop.data, st.history, st.best, time.perf_counter() - t0, stopped,
                       tracked_runs(run_dir, cfg))  # fmt: skip


def check_run(cfg: RunConfig, *, model=None, data: DataSplits | None = None, resume_dir: str | Path | None = None,
              world: int = 1) -> None:  # fmt: skip
    """Build the whole run ``fit`` would start — data, model, objective, estimator, label mode,
    optimizer, schedules, early stopping, trackers (their server reached within a few seconds) — and
    try one training step, undone; nothing is written and no run directory is created.

    ``vaelab train`` runs this inside :func:`fit`; under ``--nproc`` the launcher runs it once, in
    one process, before any rank starts (``world``: the processes it will start, for the checks that
    depend on them), so a configuration error is one line, exit 2, and never retried.

    Raises:
        ConfigError, DataError, CheckpointError: what ``fit`` would raise before its first epoch.
    """
    device = resolve_device(cfg.train.device)
    resume = resume_dir is not None
    _checked(cfg, Path(resume_dir or "."), model, data, None, resume, device, Dist(), True, world)


def _checked(cfg, run_dir, model, data, init, resume, device, dist: Dist, quiet: bool, world: int = 1):
    """:func:`_build`, then one training step tried and undone (in one process: under torchrun the
    launcher made that check) and the trackers' reachability: everything checked before anything is
    written (docs/design.md). ``world`` > 1: the launcher's check for the processes it will start."""
    with denormals_flushed(device), _threads(cfg.train.num_threads), progress.quiet(quiet):
        loop, ckpt, provenance = _build(cfg, run_dir, model, data, init, resume, device, dist)
        if world > 1:
            refuse_rank_local_state(loop.estimator)
        if not dist.active:
            loop.dry_step()
    check_trackers(cfg, dist.is_main)
    return loop, ckpt, provenance


@contextlib.contextmanager
def _lost_rank_says_where(loop: Loop):
    """A lost peer (:class:`RankLostError`) names the step it was lost at and the checkpoint left."""
    try:
        yield
    except RankLostError as e:
        st = loop.state
        where = f"{loop.run_dir / 'last.pt'} holds step {st.saved_step}" if st.saved_epoch is not None else "no last.pt yet"
        left = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) - int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if left > 0:  # --max-restarts: the agent starts the group again, which resumes from last.pt itself
            lost = RankLostError(f"{e} of step {st.step + 1}; {where}: the group restarts from it ({left} restart(s) left)")
            lost.restarting = True
            raise lost from None
        hint = f"continue with vaelab train --resume {loop.run_dir}{loop._launch_hint()}"
        raise RankLostError(f"{e} of step {st.step + 1}; {where}: {hint}") from None


def _run_epoch(loop: Loop, epoch: int, cbs: list, show: bool) -> None:
    """One epoch and its callbacks; a divergence rolls the epoch back and retries it (Loop.roll_back)."""
    snap = loop.snapshot() if loop.cfg.train.divergence_retries else None
    while True:
        loop.model.train()
        try:
            row = loop.train_epoch(epoch, show)
            loop.state.epoch = epoch + 1
            for cb in cbs:
                cb(loop, row)
            return
        except TrainingDivergedError as e:
            loop.roll_back(snap, e, epoch)


def _build(cfg, run_dir, model, data, init, resume, device, dist: Dist) -> tuple[Loop, dict | None, dict]:
    """The loop, the checkpoint to resume from (or None) and run.json's provenance; every check made,
    nothing written (the loop's writer is a disabled placeholder until :func:`_open`)."""
    ckpt = None
    if resume:
        if not (run_dir / "last.pt").is_file() and (run_dir / "config.toml").is_file():
            warnings.warn(
                f"{run_dir} has no last.pt yet (it stopped before its first checkpoint); starting the run "
                "from the beginning",
                stacklevel=3,
            )
        else:
            ckpt, _ = read_checkpoint(run_dir / "last.pt")  # format-1 checkpoints are migrated
    elif (run_dir / "last.pt").exists():
        raise CheckpointError(f"{run_dir} already holds a run; use --resume to continue it or choose another --out")
    torch.manual_seed(cfg.train.seed)
    with sizes_that_fit("the data", "make the data set's sizes (data.n_train, ...) smaller"):
        data, model, provenance = make_data_and_model(cfg, model, data)
    if init is not None:
        restore_weights(model, init if isinstance(init, dict) else read_checkpoint(Path(init))[0]["model"], str(init))
    loop = Loop(cfg, run_dir, model, data, RunWriter(run_dir, enabled=False), device, dist)
    warn_no_validation(loop.x_valid, cfg.train.valid_every, cfg.train.early_stopping)
    check_validation_size(cfg.train.valid_iwae_k, cfg.train.valid_iwae_points, loop.x_valid.shape[0])
    if ckpt is not None:
        restore(loop, ckpt, "last.pt")
        loop.state.saved_epoch, loop.state.saved_step = ckpt["epoch"], ckpt["step"]  # what last.pt holds
    return loop, ckpt, provenance


def _open(loop: Loop, ckpt: dict | None, provenance: dict, tensorboard: bool) -> None:
    """The run directory's writer (rank 0's), its config.toml and run.json: the first files written."""
    cfg, run_dir = loop.cfg, loop.run_dir
    at = None if ckpt is None else {"epoch": ckpt["epoch"], "step": ckpt["step"], "history": ckpt.get("history", [])}
    tensorboard = tensorboard and "tensorboard" in cfg.train.trackers
    loop.writer = RunWriter(run_dir, tensorboard, enabled=loop.dist.is_main, fresh=ckpt is None, resume_at=at)
    notes = [f"written by vaelab {__version__} for {run_dir.name}; vaelab train --config <this file> reruns it"]
    notes += ["model built in Python (see run.json)"] if loop.model.spec is None else []
    notes += [provenance["note"].lstrip("; ")] if provenance.get("note") else []
    loop.writer.text("config.toml", config_mod.dumps(cfg, header="; ".join(notes)))
    loop.writer.json("run.json", provenance)


@contextlib.contextmanager
def _threads(n: int):
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
