"""The training loop: optimizer, β warm-up, logging, checkpoints, resume, divergence handling.

Loss semantics: the loss minimized is ``-mean_over_batch(bound)`` where ``bound`` is the
per-point training bound (ELBO with the KL weighted by β, IWAE-K, MIWAE(M,K), CIWAE(β),
PIWAE(M,K)), in nats; gradient estimators (STL, DReG) and PIWAE change only the gradient, through
surrogates (``vaelab.estimators``). Every number written to logs is labelled: ``elbo`` is always
the β = 1 ELBO, ``rec`` = E_q[log p(x|h)], ``kl`` = KL(q(h|x) || p(h)), ``train_bound`` the
training bound's true value (PIWAE: IWAE(M*K)), ``valid_iwae`` the IWAE-``valid_iwae_k`` bound on
validation points — all nats per data point.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import config as config_mod
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import DataSplits, iterate_batches, load_data
from .errors import CheckpointError, ConfigError, TrainingDivergedError
from .evaluation import latent_diagnostics
from .models import VAE, build_vae
from .estimators import BoundEstimate, estimate_bound
from .evaluation import importance_sampled_log_likelihood
from .objectives import elbo

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
              "adagrad": torch.optim.Adagrad}
CSV_FIELDS = ["epoch", "step", "train_elbo", "train_rec", "train_kl", "train_bound", "valid_elbo",
              "valid_iwae", "beta", "lr", "active_units", "train_time_s", "epoch_time_s", "total_time_s"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is available; use device = 'cpu'")
    return dev


def kl_mode(cfg: RunConfig, model: VAE) -> str:
    if cfg.train.kl != "auto":
        return cfg.train.kl
    closed_form = model.prior.has_analytic_kl and model.n_layers == 1 and cfg.train.estimator == "reparam"
    return "analytic" if closed_form else "mc"


def scheduled_lr(cfg: RunConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``. 'iwae': Burda et al. 2016, Sec. 5 — stage i = 0..7 runs
    3^i epochs at lr * 10^(-i/7); epochs past the 3,280 of the schedule stay in the last stage."""
    if cfg.train.lr_schedule == "constant":
        return cfg.train.lr
    stage, end = 0, 1
    while epoch >= end and stage < 7:
        stage += 1
        end += 3 ** stage
    return cfg.train.lr * 10 ** (-stage / 7)


def bound_terms(model: VAE, x: Tensor, n_samples: int, objective: str, kl: str, beta: float,
                estimator: str = "reparam", n_groups: int = 1, ciwae_beta: float = 0.5) -> tuple[BoundEstimate, dict]:
    """The training bound with its gradient surrogates, and detached statistics (batch means, nats).

    Draws S = n_groups * n_samples samples per point. With ``kl == "analytic"`` (ELBO, reparam
    estimator only) the log-weights fed to the ELBO are log p(x|z_k) - KL(q||p) (Kingma & Welling
    2014, eq. 7); otherwise the bound is computed from the true log-weights
    log p(x, h_k) - log q(h_k|x).
    """
    terms = model.log_weight_terms(x, n_samples * n_groups)
    rec = terms.log_px_z  # (S, B)
    if kl == "analytic":
        kl_k = model.prior.analytic_kl(terms.posterior).expand_as(rec)  # (S, B), same KL for every sample
    else:
        kl_k = terms.log_qz - terms.log_pz  # (S, B)
    if objective == "elbo" and estimator == "reparam" and (kl == "analytic" or beta != 1.0):
        bound = elbo(rec - beta * kl_k if beta != 1.0 else rec - kl_k)  # (B,)
        est = BoundEstimate(bound.detach(), bound, bound)
    else:
        stopped = terms.log_w_stopped if estimator != "reparam" else None
        est = estimate_bound(terms.log_w, objective, estimator, n_groups, ciwae_beta, stopped)
    with torch.no_grad():
        rec_m, kl_m = rec.mean(), kl_k.mean()
        stats = {"rec": rec_m, "kl": kl_m, "bound": est.value.mean(), "elbo": rec_m - kl_m}
    return est, stats


def backward(model: VAE, est: BoundEstimate) -> None:
    """Accumulate gradients of the negative batch-mean surrogates: one pass when both networks
    share a surrogate, else the generative and the inference parameters each get their own."""
    if est.shared:
        (-est.inference.mean()).backward()
        return
    gen = [p for p in model.generative_parameters() if p.requires_grad]
    inf = [p for p in model.inference_parameters() if p.requires_grad]
    if gen:
        torch.autograd.backward(-est.generative.mean(), inputs=gen, retain_graph=True)
    torch.autograd.backward(-est.inference.mean(), inputs=inf)


@torch.no_grad()
def evaluate_elbo(model: VAE, x: Tensor, kl: str, batch_size: int = 1000, seed: int = 0) -> float:
    """Single-sample ELBO averaged over x (nats per point), with a fixed RNG seed."""
    if x.shape[0] == 0:
        return float("nan")
    was = model.training
    model.eval()
    total = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            _, stats = bound_terms(model, xb, 1, "elbo", kl, 1.0)
            total += float(stats["elbo"]) * xb.shape[0]
    model.train(was)
    return total / x.shape[0]


@dataclass
class TrainResult:
    """What :func:`fit` returns. Values in nats per data point."""

    run_dir: Path
    model: VAE
    data: DataSplits
    history: list = field(default_factory=list)
    best_valid_elbo: float = -math.inf
    seconds: float = 0.0


class _Loggers:
    """metrics.jsonl, metrics.csv and TensorBoard, opened in append mode (resume-safe)."""

    def __init__(self, run_dir: Path, tensorboard: bool):
        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        new_csv = not (run_dir / "metrics.csv").exists()
        self.csv_file = open(run_dir / "metrics.csv", "a", newline="")
        self.csv = csv.DictWriter(self.csv_file, fieldnames=CSV_FIELDS)
        if new_csv:
            self.csv.writeheader()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # tensorboard is a dependency, but keep training if it is broken
                print("warning: tensorboard unavailable; logging to CSV/JSONL only", file=sys.stderr)

    def step(self, step: int, values: dict) -> None:
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, step)

    def epoch(self, row: dict) -> None:
        self.csv.writerow(row)
        self.csv_file.flush()
        self.jsonl.flush()
        if self.tb:
            for k in ("valid_elbo", "train_elbo", "active_units"):
                if row.get(k) is not None:
                    self.tb.add_scalar(f"epoch/{k}", row[k], row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        self.jsonl.close()
        self.csv_file.close()
        if self.tb:
            self.tb.close()


def _make(cfg: RunConfig, data: DataSplits | None) -> tuple[DataSplits, VAE, torch.optim.Optimizer, torch.device]:
    device = resolve_device(cfg.train.device)
    if data is None:
        data = load_data(cfg.data, cfg.model.likelihood)
    torch.manual_seed(cfg.train.seed)
    pseudo = None
    if cfg.model.prior == "vamp":
        idx = torch.randperm(data.train.shape[0])[: cfg.model.prior_components]
        pseudo = data.train[idx]
        if pseudo.shape[0] < cfg.model.prior_components:
            raise ConfigError(f"prior_components={cfg.model.prior_components} pseudo-inputs but only "
                              f"{data.train.shape[0]} training points")
    model = build_vae(cfg.model, data.x_dim, pseudo_init=pseudo).to(device)
    check = data.train if not data.dynamic_binarization else data.valid
    model.check_input(check, "train" if not data.dynamic_binarization else "valid")
    kwargs = {"eps": cfg.train.adam_eps} if cfg.train.optimizer == "adam" else {}
    opt = OPTIMIZERS[cfg.train.optimizer](model.parameters(), lr=cfg.train.lr, **kwargs)
    return data, model, opt, device


def fit(cfg: RunConfig, run_dir: str | Path, data: DataSplits | None = None, resume: bool = False,
        quiet: bool = False, tensorboard: bool = True, epoch_callback=None) -> TrainResult:
    """Train a VAE as configured, writing everything to ``run_dir``.

    Args:
        cfg: the run configuration.
        run_dir: output folder (config.toml, metrics.csv/jsonl, tb/, last.pt, best.pt).
        data: optional preloaded :class:`DataSplits` (else loaded from ``cfg.data``).
        resume: continue from ``run_dir/last.pt`` (model, optimizer, RNG and epoch counter).
        quiet: no progress bar (it is also hidden when stderr is not a terminal).
        epoch_callback: optional ``f(epoch, model, row)`` called after each epoch.
    Returns:
        :class:`TrainResult`.
    Raises:
        TrainingDivergedError: the loss became NaN/inf; ``last.pt`` / ``best.pt`` keep the last
            good epoch.
        CheckpointError: ``resume`` without a readable ``last.pt``.
    """
    run_dir = Path(run_dir)
    if torch.device(resolve_device(cfg.train.device)).type == "cpu":
        torch.set_flush_denormal(True)  # denormals cost 2-3x on these MLPs
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    start_epoch, step, best, history = 0, 0, -math.inf, []
    if resume:
        ckpt = load_checkpoint(run_dir / "last.pt")
        data, model, opt, device = _make(cfg, data)
        model.load_state_dict(ckpt["model"])
        old_opt = ckpt["config"]["train"]["optimizer"]
        if old_opt == cfg.train.optimizer:
            opt.load_state_dict(ckpt["optimizer"])
            for group in opt.param_groups:  # a changed --lr on resume takes effect
                group["lr"] = scheduled_lr(cfg, ckpt["epoch"])
        else:
            print(f"warning: {run_dir} was trained with {old_opt}; resuming with a fresh {cfg.train.optimizer} state",
                  file=sys.stderr)
        start_epoch, step, best = ckpt["epoch"], ckpt["step"], ckpt["best_valid_elbo"]
        torch.set_rng_state(ckpt["torch_rng"])
        shuffle_gen = torch.Generator().manual_seed(0)
        shuffle_gen.set_state(ckpt["shuffle_rng"])
        history = list(ckpt.get("history", []))
    else:
        if (run_dir / "last.pt").exists():
            raise CheckpointError(f"{run_dir} already holds a run; use --resume to continue it or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        data, model, opt, device = _make(cfg, data)
        shuffle_gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    (run_dir / "config.toml").write_text(config_mod.dumps(cfg))
    kl = kl_mode(cfg, model)
    t, n_samples = cfg.train, cfg.train.n_samples
    x_train = data.train.to(device)
    x_valid = data.valid.to(device)
    logs = _Loggers(run_dir, tensorboard)
    show = not quiet and sys.stderr.isatty()
    t0 = time.perf_counter() - (history[-1]["total_time_s"] if history else 0.0)
    try:
        for epoch in range(start_epoch, t.epochs):
            model.train()
            for group in opt.param_groups:
                group["lr"] = scheduled_lr(cfg, epoch)
            te = time.perf_counter()
            sums = torch.zeros(4)
            n_seen = 0
            n_batches = math.ceil(x_train.shape[0] / t.batch_size)
            bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{t.epochs}", disable=not show, leave=False)
            for xb in iterate_batches(x_train, t.batch_size, shuffle_gen, True, data.dynamic_binarization):
                beta = t.beta * min(1.0, step / t.kl_warmup_steps) if t.kl_warmup_steps else t.beta
                est, stats = bound_terms(model, xb, n_samples, t.objective, kl, beta, t.estimator, t.n_groups,
                                         t.ciwae_beta)
                loss = -stats["bound"]
                if not math.isfinite(loss.item()):
                    raise TrainingDivergedError(
                        f"loss is {loss.item()} at epoch {epoch + 1}, step {step}; stopped. The last good checkpoint "
                        f"is {run_dir / 'last.pt'} (epoch {epoch}); lower the learning rate and resume or retrain"
                    )
                opt.zero_grad(set_to_none=True)
                backward(model, est)
                opt.step()
                step += 1
                b = xb.shape[0]
                sums += torch.stack([stats["elbo"], stats["rec"], stats["kl"], stats["bound"]]) * b
                n_seen += b
                if step % t.log_every == 0:
                    logs.step(step, {"elbo": float(stats["elbo"]), "rec": float(stats["rec"]),
                                     "kl": float(stats["kl"]), f"{t.objective}_bound": float(stats["bound"]),
                                     "beta": beta, "lr": opt.param_groups[0]["lr"]})
                bar.update(1)
            bar.close()
            train_time = time.perf_counter() - te  # the optimization loop alone (benchmarked)
            means = (sums / max(n_seen, 1)).tolist()
            valid_elbo = evaluate_elbo(model, x_valid, kl, seed=cfg.train.seed)
            diag = latent_diagnostics(model, x_valid[:10000]) if t.diagnostics and x_valid.shape[0] > 1 else None
            valid_iwae = None
            if t.valid_iwae_k and x_valid.shape[0]:
                valid_iwae = importance_sampled_log_likelihood(model, x_valid[:t.valid_iwae_points], k=t.valid_iwae_k,
                                                               seed=cfg.train.seed).mean
            now = time.perf_counter()
            row = {"epoch": epoch + 1, "step": step, "train_elbo": means[0], "train_rec": means[1],
                   "train_kl": means[2], "train_bound": means[3], "valid_elbo": valid_elbo, "valid_iwae": valid_iwae,
                   "beta": beta,
                   "lr": opt.param_groups[0]["lr"], "active_units": diag.active_units if diag else None,
                   "train_time_s": train_time, "epoch_time_s": now - te, "total_time_s": now - t0}
            if not math.isfinite(valid_elbo):
                raise TrainingDivergedError(
                    f"validation ELBO is {valid_elbo} after epoch {epoch + 1}; stopped. The last good checkpoint is "
                    f"{run_dir / 'last.pt'} (epoch {epoch}); lower the learning rate and resume or retrain"
                )
            history.append(row)
            logs.epoch(row)
            if diag:
                with open(run_dir / "diagnostics.jsonl", "a") as f:
                    f.write(json.dumps({"epoch": epoch + 1, **diag.summary()}) + "\n")
            payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                       "step": step, "best_valid_elbo": max(best, valid_elbo), "config": cfg.to_dict(),
                       "torch_rng": torch.get_rng_state(), "shuffle_rng": shuffle_gen.get_state(),
                       "history": history}
            if valid_elbo > best:
                best = valid_elbo
                save_checkpoint(payload, run_dir / "best.pt")
            save_checkpoint(payload, run_dir / "last.pt")
            if epoch_callback:
                epoch_callback(epoch + 1, model, row)
    finally:
        logs.close()
    return TrainResult(run_dir, model, data, history, best, time.perf_counter() - t0)


def load_run(run_dir: str | Path, which: str = "best", data: DataSplits | None = None,
             load_data_too: bool = True) -> tuple[RunConfig, VAE, DataSplits | None]:
    """Rebuild config, model (with trained weights) and, optionally, data from a run directory.

    Raises:
        CheckpointError: the run directory or checkpoint is missing or unreadable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    path = run_dir / f"{which}.pt"
    if which == "best" and not path.exists():
        path = run_dir / "last.pt"
    ckpt = load_checkpoint(path)
    cfg = config_mod.from_dict(ckpt["config"])
    if data is None and load_data_too:
        data = load_data(cfg.data, cfg.model.likelihood)
    x_dim = data.x_dim if data is not None else ckpt["model"]["encoder.net.0.weight"].shape[1]
    model = build_vae(cfg.model, x_dim)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its config ({str(e).splitlines()[0]})") from None
    model.eval()
    return cfg, model, data
