"""One training step, callable on its own: bound and surrogates -> backward per group -> step.

``compute_bound`` turns a batch into a :class:`BoundEstimate` and detached statistics;
``train_step`` adds the backward passes, optional clipping and the optimizer step. Tests and
``benchmarks/`` call these; :func:`vaelab.train.fit` is a loop around them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from ..data import Batch
from ..errors import TrainingDivergedError
from ..estimators import ESTIMATORS, BoundEstimate, Estimator
from ..labels import label_mode_of, stats_vector
from ..numerics import denormals_flushed
from ..objectives import OBJECTIVES, Objective
from .bound import BoundOptions, check_shaping, estimate, free_bits_kl, plain_elbo, resolve_kl  # noqa: F401 (public here too)


def resolve(objective: Objective | str, estimator: Estimator | str) -> tuple[Objective, Estimator]:
    """Objects from registry names (options at their defaults); objects pass through."""
    obj = OBJECTIVES.build(objective) if isinstance(objective, str) else objective
    est = ESTIMATORS.build(estimator) if isinstance(estimator, str) else estimator
    return obj, est


def compute_bound(
    model,
    batch: Batch | Tensor,
    objective: Objective,
    estimator: Estimator,
    n_samples: int = 1,
    kl: str = "mc",
    beta: float = 1.0,
    free_bits: float = 0.0,
    global_mean: Callable[[Tensor], Tensor] | None = None,
    classification_weight: float | None = None,
) -> tuple[BoundEstimate, dict]:
    """The training bound with its gradient surrogates, and detached batch-mean statistics (nats).

    Draws S = objective.groups * n_samples samples per point. With ``kl == "analytic"`` or
    beta != 1 (ELBO, reparam only) the gradient is that of the ELBO fed log p(x|z_s) - beta KL;
    otherwise the estimator works on the true log-weights log p(x, h_s) - log q(h_s|x). With
    ``free_bits`` = lambda > 0 the gradient is that of E[log p(x|z)] - beta sum_j max(lambda, KL_j),
    KL_j the batch mean of dimension j's KL (Kingma et al. 2016, App. C.8). The value (``bound``)
    is always the true bound at beta = 1; the training objective, where it differs, is reported as
    ``train_objective``. The model's label mode forms the bound (:mod:`vaelab.labels`: M2 sums over y).

    Args:
        global_mean: under several processes, maps this rank's share-mean of a statistic to the
            global batch's mean (free bits decide which dimensions are clamped from the global
            batch, so that the step equals the single-process one).
        classification_weight: a semi-supervised model's alpha / N (Kingma et al. 2014, eq. 9; None:
            0.1); see :func:`vaelab.labels.semi_supervised.semi_supervised_bound`.
    Returns:
        (estimate, {"elbo", "rec", "kl", "bound", + "train_objective" when beta != 1 or free bits, + the
        estimator's reported values (e.g. "relaxed_bound")}: 0-d tensors).
    Raises:
        ConfigError: an analytic KL, beta != 1 or free bits with another objective or estimator.
    """
    check_shaping(objective, estimator, kl, beta, free_bits)
    opts = BoundOptions(n_samples, kl, beta, free_bits, global_mean, classification_weight)
    return label_mode_of(model).bound(model, batch, objective, estimator, opts, estimate)


def bound_function(model, compile: bool = False) -> Callable:
    """What the training loop calls for each batch: :func:`compute_bound` with the model's label
    mode looked up once and the shaping rule left to the loop's one check at start
    (``train.compile``: through :func:`compiled_bound`)."""
    mode_bound = label_mode_of(model).bound

    def bound(model, batch, objective, estimator, n_samples=1, kl="mc", beta=1.0, free_bits=0.0, global_mean=None,
              classification_weight=None):  # fmt: skip
        opts = BoundOptions(n_samples, kl, beta, free_bits, global_mean, classification_weight)
        return mode_bound(model, batch, objective, estimator, opts, estimate)

    return compiled_bound(bound) if compile else bound


def compiled_bound(fn: Callable | None = None) -> Callable:
    """``fn`` (default :func:`compute_bound`) through ``torch.compile`` (inductor; ``dynamic=False``: one
    graph per K and batch shape, since dynamo's automatic dynamic shapes failed on the noise draw when K
    changed).

    ``fallback_random``: the compiled graph draws z's noise with torch's own generator, as eager code
    does, so a compiled step sees the eager step's samples (and a checkpoint's RNG state replays it)."""
    with warnings.catch_warnings():  # importing inductor warns about torch.jit.script_method
        warnings.simplefilter("ignore", DeprecationWarning)
        fn = torch.compile(fn or compute_bound, dynamic=False, options={"fallback_random": True})

    def bound(*args, **kwargs):
        with warnings.catch_warnings():  # dynamo's tracing trips torch's own deprecation and .grad warnings
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return bound


def backward(est: BoundEstimate, groups: dict[str, list[Tensor]]) -> None:
    """Accumulate gradients of the negative batch-mean surrogates: one pass when both networks
    share a surrogate, else the generative and the inference parameters each get their own."""
    for name, surrogate in est.extra.items():  # the estimator's own groups: separate graphs (stopped signals)
        torch.autograd.backward(-surrogate.mean(), inputs=[p for p in groups[name] if p.requires_grad])
    if est.shared:
        (-est.inference.mean()).backward()
        return
    gen = [p for p in groups["generative"] if p.requires_grad]
    inf = [p for p in groups["inference"] if p.requires_grad]
    if gen:
        torch.autograd.backward(-est.generative.mean(), inputs=gen, retain_graph=bool(inf))
    if inf:
        torch.autograd.backward(-est.inference.mean(), inputs=inf)


def clip_gradients(groups: dict[str, list[Tensor]], grad_clip: float) -> None:
    """Clip each parameter group's gradient norm to ``grad_clip`` (0 = off)."""
    if grad_clip:
        for params in groups.values():
            torch.nn.utils.clip_grad_norm_(params, grad_clip)


def train_step(
    model,
    batch: Batch | Tensor,
    optimizer: torch.optim.Optimizer,
    objective: Objective | str = "elbo",
    estimator: Estimator | str = "reparam",
    n_samples: int = 1,
    kl: str = "mc",
    beta: float = 1.0,
    grad_clip: float = 0.0,
    groups: dict[str, list[Tensor]] | None = None,
    free_bits: float = 0.0,
    sync: Callable[[Tensor, bool], tuple[Tensor, bool]] | None = None,
    global_mean: Callable[[Tensor], Tensor] | None = None,
    classification_weight: float | None = None,
    bound: Callable = compute_bound,
    options: BoundOptions | None = None,
) -> dict[str, float]:
    """One optimizer step on ``batch``; returns {"elbo", "rec", "kl", "bound"} batch means in nats.

    Args:
        model: a :class:`~vaelab.models.VAE` (anything with ``log_weight_terms`` and ``parameter_groups``).
        batch: a :class:`~vaelab.data.Batch` or a (B, *x_shape) tensor.
        optimizer: steps every parameter group of the model.
        objective: an objective object or registry name (in a loop pass objects: a name is built
            anew on every call, which cost a bare loop ~10% of a VAE step in benchmarks/).
        estimator: an estimator object or registry name (likewise; a stateful estimator's state
            lives in the object).
        n_samples: K per group.
        kl: "analytic" or "mc" (see :func:`resolve_kl`).
        beta: KL weight.
        grad_clip: clip each parameter group's gradient norm to this (0 = off).
        groups: the model's parameter groups (pass them to skip recomputing them every step).
        free_bits: lambda, nats per latent dimension (0 = off); see :func:`compute_bound`.
        sync: under several processes, ``sync(stats, finite) -> (stats, finite)`` is called after the
            backward passes with the stacked batch statistics and whether this rank's bound is finite;
            it reduces the gradients in place and returns the global statistics and verdict
            (:class:`~vaelab.train.distributed.Dist`).
        global_mean: under several processes, this rank's share-mean of a statistic -> the global
            batch's (free bits decide their clamp from it; see :func:`compute_bound`).
        classification_weight: a semi-supervised model's alpha / N (see :func:`compute_bound`).
        bound: :func:`compute_bound` or a compiled copy of it (``train.compile``).
        options: the bound's options in one typed value (:class:`~vaelab.train.bound.BoundOptions`);
            given, it replaces ``n_samples``, ``kl``, ``beta``, ``free_bits``, ``global_mean`` and
            ``classification_weight``.
    Raises:
        TrainingDivergedError: the bound is NaN/inf (on any rank); the optimizer has not stepped.
    """
    objective, estimator = resolve(objective, estimator)
    groups = groups if groups is not None else {**model.parameter_groups(), **estimator.parameter_groups()}
    with denormals_flushed((batch.x if isinstance(batch, Batch) else batch).device):  # (the model's: it is on it)
        o = options or BoundOptions(n_samples, kl, beta, free_bits, global_mean, classification_weight)
        est, stats = bound(
            model,
            batch,
            objective,
            estimator,
            o.n_samples,
            o.kl,
            o.beta,
            o.free_bits,
            o.global_mean,
            o.classification_weight,
        )
        vec = stats_vector(stats)  # (n_stats,)
        values = dict(zip(stats, vec.tolist()))
        finite = math.isfinite(values["bound"])
        if not finite and sync is None:
            raise TrainingDivergedError(f"the training bound is {values['bound']}")
        optimizer.zero_grad(set_to_none=True)
        if finite:
            backward(est, groups)
        if sync is not None:
            vec, finite = sync(vec, finite)
            values = dict(zip(stats, vec.tolist()))
            if not finite:
                raise TrainingDivergedError(f"the training bound is {values['bound']} (on at least one rank)")
        clip_gradients(groups, grad_clip)
        optimizer.step()
        estimator.step_done()
    return values
