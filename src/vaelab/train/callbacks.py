"""End-of-epoch callbacks of the training loop: validation, divergence guard, metrics,
checkpoints. Each is ``callback(loop, row)``; ``row`` is the epoch's metrics dict, filled in
order, and ``loop`` the running :class:`~vaelab.train.loop.Loop` (model, optimizer, state, writer)."""

from __future__ import annotations

import math
import os
import resource
import sys
import time
import warnings

import torch

from .. import faults
from ..data.bundle import binarize_fixed
from ..errors import ConfigError, TrainingDivergedError
from ..evaluation import classification_error, importance_sampled_log_likelihood, latent_diagnostics
from ..evaluation.elbo import evaluate_elbo
from ..evaluation.grad_variance import gradient_variance


class Validation:
    """Validation ELBO (fixed seed), latent diagnostics and the IWAE-k estimate, every ``every`` epochs."""

    def __init__(self, every: int, diagnostics: bool, iwae_k: int, iwae_points: int, seed: int):
        self.every, self.diagnostics, self.iwae_k, self.iwae_points, self.seed = (
            every,
            diagnostics,
            iwae_k,
            iwae_points,
            seed,
        )

    def __call__(self, loop, row: dict) -> None:
        x = loop.x_valid
        if not self.every or row["epoch"] % self.every or x.shape[0] == 0:
            return
        # under torchrun rank 0 validates and the others take its numbers: every rank then makes
        # the same best-checkpoint and divergence decisions
        row.update(loop.dist.broadcast(self._measure(loop, x, row["epoch"]) if loop.dist.is_main else None))

    def _measure(self, loop, x, epoch: int) -> dict:
        y = loop.label_mode.condition(loop.y_valid)  # M2 is validated on log p(x), labels unseen
        out = {"valid_elbo": evaluate_elbo(loop.model, x, loop.kl, seed=self.seed, y=y)}
        if loop.label_mode.infers_labels and loop.y_valid is not None:
            out["valid_error"] = classification_error(loop.model, x, loop.y_valid).error
        if self.diagnostics and x.shape[0] > 1:
            diag = latent_diagnostics(loop.model, x[:10000], y=y[:10000] if y is not None else None)
            out["active_units"] = diag.active_units
            loop.writer.append_jsonl("diagnostics.jsonl", {"epoch": epoch, **diag.summary()})
        if self.iwae_k:
            out["valid_iwae"] = importance_sampled_log_likelihood(
                loop.model,
                x[: self.iwae_points],
                k=self.iwae_k,
                seed=self.seed,
                malloc=loop.cfg.train.malloc,
                y=y[: self.iwae_points] if y is not None else None,
            ).mean
        return out


class EpochLines:
    """Off a terminal (a batch job's log), one line at an epoch's end when ``every_s`` seconds have
    passed since the last, and at the last epoch: what the progress bar shows on a terminal."""

    def __init__(self, every_s: float = 30.0):
        self.every_s, self.last = every_s, time.perf_counter()

    def __call__(self, loop, row: dict) -> None:
        now, e, n = time.perf_counter(), row["epoch"], loop.epochs
        if now - self.last < self.every_s and e < n:
            return
        self.last = now
        took = row.get("total_time_s") or (now - loop.t0)
        left = took / e * (n - e)  # (took counts the epochs of earlier legs of a resumed run too)
        valid = f", validation ELBO {row['valid_elbo']:.3f}" if row.get("valid_elbo") is not None else ""
        print(f"epoch {e}/{n}: train ELBO {row['train_elbo']:.3f}{valid} nats; {took / 60:.1f} min, "
              f"about {left / 60:.1f} min left", file=sys.stderr, flush=True)  # fmt: skip


def check_validation_size(iwae_k: int, iwae_points: int, n_valid: int) -> None:
    """Validation's IWAE-k holds a (K, B) buffer of log-weights (B <= 100 points at a time): refused
    before training when it cannot fit in this machine's memory, rather than at the end of epoch 1.

    Raises:
        ConfigError: naming the two keys and the size.
    """
    b = min(iwae_points, n_valid, 100)
    need = 4 * iwae_k * b  # float32 log-weights
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]  # a process limit (ulimit -v, a batch system's) counts too
    total = min(total, limit) if limit != resource.RLIM_INFINITY else total
    if iwae_k and b and need > total // 2:
        raise ConfigError(
            f"train.valid_iwae_k = {iwae_k} over {b} validation points at a time needs {need / 2**30:.1f} GiB of "
            f"log-weights, more than half of the {total / 2**30:.0f} GiB this process may use; lower train.valid_iwae_k"
        )


class DivergenceGuard:
    """Stops when the validation ELBO is NaN/inf, before anything of this epoch is saved."""

    def __call__(self, loop, row: dict) -> None:
        v = row.get("valid_elbo")
        if v is not None and not math.isfinite(v):
            raise loop.diverged(f"validation ELBO is {v} after epoch {row['epoch']}")


class MetricsLogger:
    """Times the epoch, appends the row to the history and to metrics.csv / metrics.jsonl / TensorBoard."""

    def __call__(self, loop, row: dict) -> None:
        now = time.perf_counter()
        row["epoch_time_s"], row["total_time_s"] = now - loop.epoch_start, now - loop.t0
        loop.state.history.append(row)
        loop.writer.epoch(row)


class EarlyStopping:
    """Stop when the validation ELBO has not improved for ``patience`` validations (``loop.converged``).
    Every rank sees rank 0's validation numbers, so every rank stops at the same epoch."""

    def __init__(self, patience: int):
        self.patience = patience

    def __call__(self, loop, row: dict) -> None:
        if not self.patience or row.get("valid_elbo") is None:
            return
        seen = [r["valid_elbo"] for r in loop.state.history if r.get("valid_elbo") is not None] + [row["valid_elbo"]]
        best = max(range(len(seen)), key=seen.__getitem__)  # the first of equal values, as best.pt
        if len(seen) - 1 - best >= self.patience:
            loop.converged = True
            loop.writer.append_jsonl("events.jsonl", {"event": "early_stopping", "epoch": row["epoch"],
                                                      "best_epoch": best + 1, "patience": self.patience})  # fmt: skip


class Checkpointer:
    """last.pt every ``every`` epochs (and after the last one); best.pt on a better validation ELBO."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, loop, row: dict) -> None:
        if not self.every:
            return
        v = row.get("valid_elbo")
        better = v is not None and v > loop.state.best
        if better:
            loop.state.best = v
        if row["epoch"] % self.every and row["epoch"] != loop.epochs and not better and not loop.converged:
            return
        faults.point("epoch.logged")
        loop.save(best=better)


class GradientVarianceMonitor:
    """Every ``every`` optimizer steps, the variance of the encoder gradient over ``draws`` repeated
    estimates at the current parameters (the training estimator, measured on a copy), on the first
    ``points`` validation points (training points when there is no validation set). One line per
    measurement in grad_variance.jsonl: step, epoch, total, per_layer, mean_sq_norm."""

    def __init__(self, every: int, draws: int, points: int):
        self.every, self.draws, self.points = every, draws, points
        self.x: torch.Tensor | None = None

    def __call__(self, loop) -> None:
        if not self.every or loop.state.step % self.every or not loop.dist.is_main:
            return
        if self.x is None:
            self.x = self._points(loop)
        x, t = self.x, loop.cfg.train
        r = gradient_variance(loop.model, x, loop.estimator, loop.objective, t.n_samples, self.draws, seed=t.seed)
        loop.writer.append_jsonl(
            "grad_variance.jsonl",
            {
                "step": loop.state.step,
                "epoch": loop.state.epoch,
                "time_s": time.perf_counter() - loop.t0,
                "estimator": r["estimator"],
                "total": r["total"],
                "mean_sq_norm": r["mean_sq_norm"],
                "per_layer": r["per_layer"],
                "draws": self.draws,
                "points": int(x.shape[0]),
            },
        )

    def _points(self, loop) -> torch.Tensor:
        if loop.x_valid.shape[0]:
            return loop.x_valid[: self.points]
        x = loop.x_train[: self.points]
        if loop.data.dynamic_binarization:  # a fixed binarization, so every measurement sees the same batch
            x = binarize_fixed(x.cpu(), loop.cfg.train.seed).to(x.device)
        return x


class EpochCallback:
    """Adapts a plain ``f(epoch, model, row)``."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, loop, row: dict) -> None:
        self.fn(row["epoch"], loop.model, row)


def default_callbacks(t) -> list:
    """The standard end-of-epoch sequence for a ``[train]`` config."""
    return [
        Validation(t.valid_every, t.diagnostics, t.valid_iwae_k, t.valid_iwae_points, t.seed),
        DivergenceGuard(),
        EarlyStopping(t.early_stopping),
        MetricsLogger(),
        Checkpointer(t.checkpoint_every),
    ]


def default_step_hooks(t) -> list:
    """Hooks run after every optimizer step, ``hook(loop)``, for a ``[train]`` config."""
    return (
        [GradientVarianceMonitor(t.grad_variance_every, t.grad_variance_draws, t.grad_variance_points)]
        if t.grad_variance_every
        else []
    )


def warn_no_validation(x_valid: torch.Tensor, every: int, early_stopping: int = 0) -> None:
    """A warning when nothing will be validated; an error when early stopping then could never act.

    Raises:
        ConfigError: ``train.early_stopping`` without a validation split or with ``valid_every = 0``.
    """
    if early_stopping and (not every or x_valid.shape[0] == 0):
        why = "train.valid_every = 0" if not every else "the validation set is empty"
        raise ConfigError(
            f"train.early_stopping = {early_stopping} needs validation, but {why}: give the data a validation "
            "split (e.g. data.valid_fraction) or set train.early_stopping = 0"
        )
    if every and x_valid.shape[0] == 0:
        warnings.warn("the validation set is empty: no validation ELBO, no best.pt (last.pt is still written)", stacklevel=3)


__all__ = [
    "Checkpointer",
    "EarlyStopping",
    "DivergenceGuard",
    "EpochCallback",
    "GradientVarianceMonitor",
    "MetricsLogger",
    "TrainingDivergedError",
    "Validation",
    "default_callbacks",
    "default_step_hooks",
    "warn_no_validation",
]
