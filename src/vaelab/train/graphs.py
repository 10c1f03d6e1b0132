"""``train.cuda_graphs``: the whole training step — bound, backward, gradient clipping and the optimizer
step — captured as one CUDA graph and replayed on each batch copied into static input buffers.

At MNIST scale a GPU step is launch-bound (benchmarks/results.md: 10-14x its GEMM bound on an H200);
a replay launches the step's ~150 kernels as one. The capture follows PyTorch's whole-network recipe
(docs, "CUDA Graphs"): warm-up steps on a side stream, ``zero_grad(set_to_none=True)``, then one step
under ``torch.cuda.graph`` with fused Adam. What eager ``train_step`` does on the host is moved to the
device or undone:

- the warm-up and the capture leave no trace: weights, optimizer moments and step counts, and the CPU
  and CUDA generators are restored in place (the graph keeps their addresses), so the run is the one
  eager training would give, and a checkpoint's RNG state replays it;
- a non-finite bound cannot stop the step from the host: fused Adam reads ``found_inf`` (as under
  ``GradScaler``) and skips the update and the step count on the device; the host then reads the
  step's statistics (one synchronization, as eager ``train_step``) and raises TrainingDivergedError;
- the learning rate and the batch shape are baked into a graph: one graph per (batch shape, learning
  rate, bound options), captured when first met (a new learning rate each epoch recaptures; at most
  ``MAX_GRAPHS`` kept); a roll-back that restores the run state drops them all.

:func:`graph_problem` says why a run cannot be captured (the run then trains eagerly after a one-line
warning): no CUDA device, several processes (the step's all-reduce would sit outside the graph), an
estimator that updates state or reads values on the host each step (``Estimator.graph_safe``), KL
annealing (beta changes every step), bf16 autocast (its cast cache cannot be captured), or an optimizer
without a fused kernel. A step whose capture fails (a host read inside a user's module) falls back
the same way, with the reason.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import warnings
from collections import OrderedDict

import torch

from ..data import Batch
from ..errors import TrainingDivergedError
from ..labels import stats_vector
from .bound import BoundOptions
from .step import backward, bound_function, clip_gradients

#: graphs kept at once (full batches and the epoch's last, smaller batch, across a learning-rate change)
MAX_GRAPHS = 4
#: eager steps on the side stream before a capture (PyTorch's recipe: lets lazy state and kernels settle)
WARMUP_STEPS = 3


def graph_problem(loop) -> str | None:
    """Why ``loop``'s training step cannot be captured as a CUDA graph, or None when it can."""
    t = loop.cfg.train
    if loop.dist.active:
        return "under torchrun the step's all-reduce runs outside a graph"
    if not getattr(loop.estimator, "graph_safe", False):
        return f"estimator '{type(loop.estimator).registry_name}' updates its state or reads values on the host each step"
    if t.kl_warmup_steps:
        return "KL annealing changes beta every step (train.kl_warmup_steps)"
    if t.precision != "fp32":
        return f"train.precision = {t.precision!r}: autocast's cast cache cannot be captured"
    if not all(g.get("fused") for g in loop.optimizer.param_groups):
        return "the optimizer has no fused kernel (train.optimizer_impl): it cannot skip a non-finite step on the device"
    if loop.device.type != "cuda":  # (last: on a CPU the reasons above are still named)
        return f"no CUDA device (the model is on {loop.device.type})"
    return None


class CudaGraphs:
    """The device side of :class:`GraphedStep`: torch.cuda's graph, stream and generator calls."""

    def record(self, fn):
        """(graph, fn's outputs): ``fn`` captured, its outputs the tensors each replay rewrites."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        return graph, out

    def side_stream(self):
        """A context running its block on a fresh stream, ordered after and before the current one."""
        s, main = torch.cuda.Stream(), torch.cuda.current_stream()
        s.wait_stream(main)

        @contextlib.contextmanager
        def ctx():
            with torch.cuda.stream(s):
                yield
            main.wait_stream(s)

        return ctx()

    def rng_state(self):
        return torch.cuda.get_rng_state()

    def set_rng_state(self, state) -> None:
        torch.cuda.set_rng_state(state)


class GraphedStep:
    """:func:`~vaelab.train.step.train_step` through captured graphs, for one model, optimizer,
    objective, estimator and parameter groups (``bound``: the training loop's bound function;
    ``grad_clip`` as ``train_step``'s). ``backend``: :class:`CudaGraphs`, or a stand-in with the same
    methods (tests replay eagerly on a CPU)."""

    def __init__(self, model, optimizer, objective, estimator, groups, bound=None, grad_clip: float = 0.0, backend=None):
        self.model, self.optimizer, self.objective, self.estimator = model, optimizer, objective, estimator
        self.groups, self.grad_clip = groups, grad_clip
        self.bound = bound or bound_function(model)
        self.backend = backend or CudaGraphs()
        self.graphs: OrderedDict = OrderedDict()  # key -> (graph, static batch, static statistics, their names)
        self.names: list[str] = []

    @classmethod
    def for_loop(cls, loop, backend=None) -> GraphedStep:
        t = loop.cfg.train
        return cls(loop.model, loop.optimizer, loop.objective, loop.estimator, loop.groups, loop.bound, t.grad_clip, backend)

    def reset(self) -> None:
        """Drop every graph (the run state they point into was replaced: a roll-back, a resume)."""
        self.graphs.clear()

    def step(self, batch: Batch, opts: BoundOptions, lr: float) -> dict[str, float]:
        """One optimizer step on ``batch`` by replaying its graph (captured first if new); returns the
        batch statistics as ``train_step`` does.

        Raises:
            TrainingDivergedError: the bound is NaN/inf; the optimizer has not stepped.
        """
        held = _tensors(batch)  # every tensor of the batch (x, indices, labels, masks, weights): each is refilled
        key = (tuple((k, tuple(v.shape), v.dtype) for k, v in held.items()), lr, opts)
        if key not in self.graphs:
            self._capture(key, batch, opts)
        self.graphs.move_to_end(key)
        graph, static, stats, names = self.graphs[key]
        for k, v in held.items():
            getattr(static, k).copy_(v)
        graph.replay()
        values = dict(zip(names, stats.tolist()))
        if not math.isfinite(values["bound"]):
            raise TrainingDivergedError(f"the training bound is {values['bound']}")
        self.estimator.step_done()
        return values

    def _body(self, batch: Batch, opts: BoundOptions) -> torch.Tensor:
        """The step as device work only: (n_stats,) statistics out, the update skipped when the bound is not finite."""
        optimizer = self.optimizer
        est, stats = self.bound(self.model, batch, self.objective, self.estimator, opts.n_samples, opts.kl, opts.beta,
                                opts.free_bits, opts.global_mean, opts.classification_weight)  # fmt: skip
        self.names = list(stats)
        vec = stats_vector(stats)  # (n_stats,)
        found_inf = (~torch.isfinite(stats["bound"])).float()  # () read by fused Adam: skip this update
        optimizer.zero_grad(set_to_none=True)  # the backward allocates this step's gradients (the graph's own)
        backward(est, self.groups)
        clip_gradients(self.groups, self.grad_clip)
        optimizer.found_inf = found_inf
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
        return vec

    def _capture(self, key, batch: Batch, opts: BoundOptions) -> None:
        saved = self._save()
        for g in self.optimizer.param_groups:  # torch refuses to capture step() otherwise (fused Adam ignores the flag)
            g["capturable"] = True
        static = dataclasses.replace(batch, **{k: v.clone() for k, v in _tensors(batch).items()})
        try:
            with self.backend.side_stream():
                for _ in range(WARMUP_STEPS):
                    self._body(static, opts)
            self.optimizer.zero_grad(set_to_none=True)
            graph, stats = self.backend.record(lambda: self._body(static, opts))
        finally:
            self._load(saved)
        if len(self.graphs) >= MAX_GRAPHS:
            self.graphs.popitem(last=False)
        self.graphs[key] = (graph, static, stats, self.names)

    def _save(self) -> dict:
        """Copies of what a warm-up step changes: parameters, buffers, optimizer state, generators."""
        tensors = [
            *self.model.parameters(),
            *self.model.buffers(),
            *(p for g in self.optimizer.param_groups for p in g["params"]),
        ]
        opt = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items()}
               for p, st in self.optimizer.state.items()}  # fmt: skip
        return {"tensors": [(x, x.detach().clone()) for x in dict.fromkeys(tensors)], "optimizer": opt,
                "cpu_rng": torch.get_rng_state(), "rng": self.backend.rng_state(),
                "estimator": copy.deepcopy(self.estimator.state_dict())}  # fmt: skip

    def _load(self, saved: dict) -> None:
        """Write ``saved`` back in place (the graph reads these very tensors); optimizer state that the
        warm-up created is zeroed, which is Adam's fresh state (zero moments, step 0)."""
        with torch.no_grad():
            for x, before in saved["tensors"]:
                x.copy_(before)
            for p, state in self.optimizer.state.items():
                old = saved["optimizer"].get(id(p))
                for k, v in state.items():
                    if torch.is_tensor(v):
                        v.copy_(old[k]) if old is not None else v.zero_()
        torch.set_rng_state(saved["cpu_rng"])
        self.backend.set_rng_state(saved["rng"])
        self.estimator.load_state_dict(saved["estimator"])
        # (the gradients stay: the graph writes its own into the memory its capture allocated, and PyTorch's
        # recipe keeps those tensors referenced; an eager step sets them to None itself)


def _tensors(batch: Batch) -> dict:
    """{field: tensor} for the fields of ``batch`` that hold one."""
    return {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch) if torch.is_tensor(getattr(batch, f.name))}


def graphed_step(loop) -> GraphedStep | None:
    """A :class:`GraphedStep` for ``loop`` when ``train.cuda_graphs`` is on and the step can be captured;
    else None, with a one-line warning naming the reason when the option was asked for."""
    if not loop.cfg.train.cuda_graphs:
        return None
    problem = graph_problem(loop)
    if problem is not None:
        warnings.warn(f"train.cuda_graphs: {problem}; the step runs without graph capture", stacklevel=3)
        return None
    return GraphedStep.for_loop(loop)
