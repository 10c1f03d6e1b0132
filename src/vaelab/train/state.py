"""One run state: :func:`capture` and :func:`restore` are the only code that reads or writes what a
bit-identical continuation needs. Checkpoints (:func:`checkpoint_payload`), the in-memory snapshot an
epoch rolls back to after a divergence, and resume all go through them.

The state: weights, optimizer and estimator state, this process's random streams (z's noise on the
CPU and, on a GPU, its generator; the shuffle generator shared by every rank), the counters (epoch,
step, best validation bound, history, divergence roll-backs and their learning-rate factor) and the
position within an unfinished epoch. A checkpoint adds what rebuilds the run (format, model spec,
config) and, under torchrun, every rank's generators.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import CheckpointError
from .optim import regroup_state
from .run import FORMAT
from .run import restore as restore_weights  # noqa: I001


def capture(loop) -> dict:
    """This process's run state as it is now (references, not copies: deep-copy to keep it)."""
    st = loop.state
    return {
        "model": loop.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "estimator": loop.estimator.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": loop.cuda_rng(),  # None on a CPU device
        "shuffle_rng": loop.shuffle_gen.get_state(),
        "rank": loop.dist.rank,
        "world_size": loop.dist.world,
        "epoch": st.epoch,
        "step": st.step,
        "best_valid_elbo": st.best,
        "history": st.history,
        "lr_scale": loop.lr_scale,
        "divergence_retries_used": loop.retries,
        "converged": loop.converged,  # early stopping fired: a resume trains no further
        "mid_epoch": st.mid_epoch(),
    }


def checkpoint_payload(loop) -> dict:
    """:func:`capture` plus what rebuilds the run; under torchrun a collective (every rank's generators)."""
    payload = {"format": FORMAT, **capture(loop), "model_spec": loop.model.spec, "config": loop.cfg.to_dict()}
    if loop.dist.active:  # every rank saves at the same step
        payload["torch_rng_ranks"] = loop.dist.gather(torch.get_rng_state())
        if payload["cuda_rng"] is not None:
            payload["cuda_rng_ranks"] = loop.dist.gather(payload["cuda_rng"])
    return payload


def restore(loop, state: dict, source: str) -> None:
    """Set the loop to ``state`` (a :func:`capture`, or a checkpoint of any format since 0.1).

    Keys a state lacks keep the loop's values (an older checkpoint has no mid-epoch position; the
    snapshot of a roll-back leaves out the roll-back counters). A checkpoint of another optimizer, or
    from vaelab 0.1, restores everything but the optimizer state, with a warning.

    Raises:
        CheckpointError: the weights do not fit the model.
    """
    restore_weights(loop.model, state["model"], source)
    loop.estimator.load_state_dict(state.get("estimator", {}))
    _restore_optimizer(loop, state)
    st = loop.state
    st.epoch, st.step = state["epoch"], state["step"]
    st.best, st.history = state.get("best_valid_elbo", st.best), list(state.get("history", st.history))
    for k, v in state.get("mid_epoch", {}).items():  # a state captured within an epoch
        setattr(st, k, v)
    loop.lr_scale = state.get("lr_scale", loop.lr_scale)
    loop.retries = state.get("divergence_retries_used", loop.retries)
    loop.converged = state.get("converged", loop.converged)
    torch.set_rng_state(_rank_rng(loop.dist, state))
    cuda_ranks = state.get("cuda_rng_ranks")
    loop.set_cuda_rng(
        cuda_ranks[loop.dist.rank] if cuda_ranks and len(cuda_ranks) == loop.dist.world else state.get("cuda_rng")
    )
    loop.shuffle_gen.set_state(state["shuffle_rng"])


def _restore_optimizer(loop, state: dict) -> None:
    """The optimizer state when it fits (same optimizer, same groups), else a warning."""
    config = state.get("config")  # a checkpoint's; an in-memory snapshot is this run's own
    if config is not None:
        old = config["train"]["optimizer"]
        if state.get("format", 1) < FORMAT or old != loop.cfg.train.optimizer:
            warnings.warn(
                f"resuming with a fresh {loop.cfg.train.optimizer} state (the checkpoint's optimizer state "
                f"is from {'vaelab 0.1' if state.get('format', 1) < FORMAT else old})",
                stacklevel=5,
            )
            return
    # the implementation (fused, foreach; capturable, set by train.cuda_graphs on a GPU) is this run's, not
    # the checkpoint's: torch's load_state_dict would otherwise take it from the saved param groups
    impl = {k: v for k, v in loop.optimizer.param_groups[0].items() if k in ("fused", "foreach", "capturable")}
    opt = state["optimizer"]
    groups = regroup_state(opt["param_groups"], loop.optimizer.param_groups)
    if groups is None:
        raise CheckpointError(
            f"the checkpoint's optimizer has param groups of {[len(g['params']) for g in opt['param_groups']]} "
            f"parameters, this run's {[len(g['params']) for g in loop.optimizer.param_groups]}: not this run's checkpoint"
        )
    loop.optimizer.load_state_dict({**opt, "param_groups": [{**g, **impl} for g in groups]})


def _rank_rng(dist, state: dict) -> torch.Tensor:
    """This rank's z-noise generator state: its own when the state was captured by as many processes
    (by this very process, for a snapshot); else rank 0's is reused, offset per rank (and the resumed
    run is no longer bit-exact)."""
    ranks = state.get("torch_rng_ranks")
    if ranks is not None and len(ranks) == dist.world:
        return ranks[dist.rank]
    if ranks is None and state.get("world_size", 1) == dist.world and state.get("rank", 0) == dist.rank:
        return state["torch_rng"]
    warnings.warn(
        f"last.pt was written by {len(ranks) if ranks else 1} process(es), this run has {dist.world}: "
        "the random streams restart (the resumed run is not bit-identical to an uninterrupted one)",
        stacklevel=4,
    )
    if dist.rank:
        return torch.Generator().manual_seed(int(state["step"]) * 7919 + dist.rank).get_state()
    return state["torch_rng"]
