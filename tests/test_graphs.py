"""train.cuda_graphs (vaelab.train.graphs) on a CPU, as far as a CPU goes: every reason a step cannot be
captured, the fallback, and the capture logic itself — warm-up undone in place, static buffers refilled,
a non-finite step skipped on the device, one graph per batch shape and learning rate — with a stand-in
backend whose "replay" reruns the recorded step eagerly. On a GPU, benchmarks/gpu_check.sh runs the
real capture against eager training."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from vaelab.config import ConfigError, RunConfig
from vaelab.data import Batch
from vaelab.distributed import Dist
from vaelab.errors import TrainingDivergedError
from vaelab.train import fit
from vaelab.train.bound import BoundOptions
from vaelab.train.graphs import GraphedStep, graph_problem
from vaelab.train.loop import _build


class _Replay:
    def __init__(self, fn, out):
        self.fn, self.out, self.replays = fn, out, 0

    def replay(self):
        self.replays += 1
        self.out.copy_(self.fn())


class EagerGraphs:
    """CudaGraphs' stand-in: ``record`` runs the step once (its effects are undone by the capture, as a
    real capture has none), ``replay`` runs it again into the recorded output; the CPU generator stands
    in for the CUDA one."""

    def __init__(self):
        self.recorded = 0

    def record(self, fn):
        self.recorded += 1
        out = fn()
        return _Replay(fn, out), out

    def side_stream(self):
        return contextlib.nullcontext()

    def rng_state(self):
        return torch.get_rng_state()

    def set_rng_state(self, state):
        torch.set_rng_state(state)


def _cfg(**over):
    base = {"data.kind": "digits", "train.epochs": 1, "train.batch_size": 64, "train.num_threads": 1, "train.seed": 3}
    return RunConfig().override({**base, **over})


def _loop(tmp_path, cfg, name):
    loop, _, _ = _build(cfg, tmp_path / name, None, None, None, False, torch.device("cpu"), Dist())
    return loop


def _params(loop):
    return torch.cat([p.detach().flatten() for p in loop.model.parameters()])


@pytest.mark.parametrize(
    "over, reason",
    [
        ({}, "no CUDA device"),
        ({"train.estimator": "reinforce", "model.latent": {"kind": "bernoulli", "dim": 4}, "model.prior": "bernoulli"},
         "estimator 'reinforce' updates its state or reads values on the host"),
        ({"train.kl_warmup_steps": 10}, "KL annealing"),
        ({"train.precision": "bf16"}, "autocast's cast cache"),
        ({"train.optimizer_impl": "for-loop"}, "no fused kernel"),
    ],
)  # fmt: skip
def test_every_reason_a_step_cannot_be_captured_is_named(tmp_path, over, reason):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (bf16 on this CPU warns of its cost)
        assert reason in graph_problem(_loop(tmp_path, _cfg(**over), "r"))


def test_on_a_cpu_the_option_warns_once_and_trains_eagerly(tmp_path):
    with pytest.warns(UserWarning, match="train.cuda_graphs: no CUDA device .* runs without graph capture"):
        a = fit(_cfg(**{"train.cuda_graphs": True}), tmp_path / "a", quiet=True, tensorboard=False)
    b = fit(_cfg(), tmp_path / "b", quiet=True, tensorboard=False)
    assert torch.equal(torch.cat([p.flatten() for p in a.model.parameters()]),
                       torch.cat([p.flatten() for p in b.model.parameters()]))  # fmt: skip


def test_compile_and_cuda_graphs_together_are_refused():
    with pytest.raises(ConfigError, match="set one"):
        _cfg(**{"train.compile": True, "train.cuda_graphs": True})


@pytest.mark.parametrize("over", [
    {},
    {"train.objective": "iwae", "train.n_samples": 3, "train.estimator": "dreg", "train.grad_clip": 5.0},
    # M2: batches carry labels and weights, every one refilled
    {"model.labels": "semi-supervised", "data.labelled": 50, "train.labelled_batch": 16},
], ids=["vae", "iwae-dreg-clip", "m2"])  # fmt: skip
def test_replayed_steps_train_exactly_the_eager_run(tmp_path, over):
    """Two epochs (each with a smaller last batch: two graphs) and a learning-rate change between them
    (a third): bit for bit the eager run's weights and statistics."""
    cfg = _cfg(**over)
    eager, graphed = _loop(tmp_path, cfg, "e"), _loop(tmp_path, cfg, "g")
    backend = EagerGraphs()
    graphed.graphed = GraphedStep.for_loop(graphed, backend)
    for epoch in range(2):
        rng = torch.get_rng_state()  # (the loops share the global generator: each epoch starts both from one state)
        for loop in (eager, graphed):
            torch.set_rng_state(rng)
            loop.lr_scale = 0.5 if epoch else 1.0  # (a roll-back's factor: a new learning rate)
            rows = loop.train_epoch(epoch, False)
            loop.state.history.append(rows)
    assert torch.equal(_params(eager), _params(graphed))
    for a, b in zip(eager.state.history, graphed.state.history):
        assert {k: v for k, v in a.items() if "time" not in k} == {k: v for k, v in b.items() if "time" not in k}
    assert backend.recorded == 4 and len(graphed.graphed.graphs) == 4  # (full and last batch) x 2 learning rates
    assert sum(g.replays for g, *_ in graphed.graphed.graphs.values()) == graphed.state.step


def test_a_non_finite_bound_skips_the_update_on_the_device_and_raises(tmp_path):
    loop = _loop(tmp_path, _cfg(), "n")
    step = GraphedStep.for_loop(loop, EagerGraphs())
    x = loop.x_train[:64].clone()
    opts = BoundOptions(1, loop.kl)
    step.step(Batch.of(x), opts, 1e-3)
    before = _params(loop).clone()
    moments = [s["exp_avg"].clone() for s in loop.optimizer.state.values()]
    x[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="the training bound is nan"):
        step.step(Batch.of(x), opts, 1e-3)
    assert torch.equal(_params(loop), before)
    assert all(torch.equal(s["exp_avg"], m) for s, m in zip(loop.optimizer.state.values(), moments))
    assert all(int(s["step"]) == 1 for s in loop.optimizer.state.values())


def test_a_failed_capture_leaves_the_state_untouched_and_training_goes_on_eagerly(tmp_path):
    class Failing(EagerGraphs):
        def record(self, fn):
            fn()  # half a capture's worth of changes, then the failure
            raise RuntimeError("operation not permitted when stream is capturing\nmore")

    eager, graphed = _loop(tmp_path, _cfg(), "e"), _loop(tmp_path, _cfg(), "g")
    graphed.graphed = GraphedStep.for_loop(graphed, Failing())
    rng = torch.get_rng_state()
    eager.train_epoch(0, False)
    torch.set_rng_state(rng)
    with pytest.warns(UserWarning, match=r"capture failed \(operation not permitted when stream is capturing\)"):
        graphed.train_epoch(0, False)
    assert graphed.graphed is None and torch.equal(_params(eager), _params(graphed))


def test_a_checkpoint_of_a_graphed_run_resumes_eagerly(tmp_path):
    """Capturing sets the optimizer's ``capturable`` flag (torch checks it); a run resumed from that
    state keeps its own flag, as it keeps its own fused / foreach choice (an eager CPU Adam refuses
    capturable state)."""
    from vaelab.train.state import capture, restore

    graphed = _loop(tmp_path, _cfg(), "g")
    GraphedStep.for_loop(graphed, EagerGraphs()).step(Batch.of(graphed.x_train[:64]), BoundOptions(1, graphed.kl), 1e-3)
    assert all(g["capturable"] for g in graphed.optimizer.param_groups)
    eager = _loop(tmp_path, _cfg(**{"train.optimizer_impl": "for-loop"}), "e")
    restore(eager, capture(graphed), "a graphed run's state")
    assert not any(g["capturable"] for g in eager.optimizer.param_groups)
    eager.train_epoch(0, False)  # the for-loop Adam on a CPU would raise on capturable state
