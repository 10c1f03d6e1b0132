"""Multi-process data-parallel training and evaluation with ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc-per-node N -m vaelab train ...`` (or ``vaelab train --nproc N``) starts N copies
of the same command; each reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from its environment
(:meth:`Dist.from_env`). Every rank draws the same global batch of ``train.batch_size`` points (the
shuffle generator, and with it the dynamic binarization, is seeded alike on every rank) and trains
on its contiguous share of it; one all-reduce per step then sums the gradients weighted by each
share's size, so the step is the one a single process takes on the whole batch, whatever the number
of processes, the last partial batch included. Only z's noise differs: every rank draws its own.

Why not ``DistributedDataParallel``: DDP's reducer expects one backward pass per forward, but DReG,
PIWAE and the learned baselines take two or three (one per parameter group, with stopped
surrogates), and its mean over ranks is wrong when the ranks' shares differ in size (the last batch).
Reducing one flat buffer after all backward passes serves every estimator with one collective per
step; the price is that communication does not overlap the backward pass (for these MLPs the
reduction is latency-bound anyway: docs/performance.md). The same buffer carries the batch
statistics and two flags (a non-finite bound anywhere, a stop request anywhere), so the ranks agree
on every decision.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor

from .data import Batch
from .errors import ConfigError, VaelabError


@dataclass
class Dist:
    """This process's place in a multi-process run (rank 0 of 1 when not distributed).

    Attributes:
        rank: this process's index, 0 .. world - 1; rank 0 writes every file.
        world: the number of processes.
        local_rank: the index on this machine (picks the GPU).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    store: dist.Store | None = field(default=None, repr=False)
    timeout_s: float = 600.0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device, timeout_s: float = 600.0) -> Dist:
        """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA);
        a single process when ``WORLD_SIZE`` is unset or 1.

        Raises:
            ConfigError: the environment names a world but not this process's rank.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not timeout_s > 0:
            raise ConfigError(f"train.dist_timeout must be > 0 seconds, got {timeout_s}")
        if "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
            raise ConfigError("WORLD_SIZE > 1 without RANK / MASTER_ADDR: launch with torchrun --nproc-per-node N")
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":  # nccl's object collectives use the current device: one GPU per rank
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            _import_dynamo_first()
            backend = "nccl" if device.type == "cuda" else "gloo"
            timeout = datetime.timedelta(seconds=timeout_s)
            store = _attempt_store(rank, world, timeout)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
            return cls(rank, world, local, dist.PrefixStore("vaelab/liveness", store), timeout_s)
        return cls(rank, world, local, timeout_s=timeout_s)

    @contextlib.contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Around a collective: a peer that died or hangs (the backend's timeout, ``train.dist_timeout``)
        ends in one :class:`RankLostError` naming it, not in the backend's traceback.

        Raises:
            RankLostError: naming the ranks that did not answer a liveness call through the store.
        """
        try:
            yield
        except dist.DistError as e:
            raise self._lost(what, e) from None
        except RuntimeError as e:  # gloo reports a closed connection or a timeout as a plain RuntimeError
            if "gloo" not in str(e).lower() and "timed out" not in str(e).lower():
                raise
            raise self._lost(what, e) from None

    def _lost(self, what: str, err: BaseException) -> RankLostError:
        silent = self.unresponsive()
        timed_out = "timed out" in str(err).lower()
        cause = f"waited train.dist_timeout = {self.timeout_s:g} s" if timed_out else "lost the connection"
        who = f"rank {', '.join(map(str, silent))}" if silent else "a peer process"
        return RankLostError(f"{who} stopped answering (hung, stopped or dead): rank {self.rank} {cause} in {what}")

    def unresponsive(self, grace_s: float = 5.0) -> list[int]:
        """The ranks that do not answer a liveness call through the rendezvous store within ``grace_s``:
        each live rank that lost a collective sets its key, then waits for the others'."""
        if self.store is None:
            return []
        try:
            self.store.set(f"alive/{self.rank}", "1")
            deadline = time.monotonic() + grace_s
            while True:
                silent = [r for r in range(self.world) if not self.store.check([f"alive/{r}"])]
                if not silent or time.monotonic() > deadline:
                    return silent
                time.sleep(0.1)
        except (RuntimeError, dist.DistError):  # the store itself is gone (rank 0 hosted it)
            return [0]

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: cuda:LOCAL_RANK."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.active else device

    def share(self, batch: Batch) -> tuple[Batch, float]:
        """This rank's contiguous share of the global batch and its weight B_r / B. A rank left
        without points (a last batch smaller than the world) gets the batch's first point at
        weight 0, so that it still runs the same backward passes and reductions as the others."""
        if not self.active:
            return batch, 1.0
        n = len(batch)
        lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        if hi == lo:
            return _rows(batch, 0, 1), 0.0
        return _rows(batch, lo, hi), (hi - lo) / n

    def reduce_step(
        self, params: Sequence[Tensor], stats: Tensor, weight: float, flags: Sequence[float]
    ) -> tuple[Tensor, Tensor]:
        """One all-reduce: gradients and batch-mean statistics weighted by ``weight``, summed over
        ranks into the global batch's; ``flags`` summed. The reduced gradients are written back
        (a parameter no rank produced a gradient for keeps ``grad = None``).

        Returns:
            (reduced stats, reduced flags).
        """
        grads = [p.grad for p in params]
        dev = stats.device
        parts = [
            g.reshape(-1) * weight if g is not None else torch.zeros(p.numel(), device=dev) for p, g in zip(params, grads)
        ]
        has = torch.tensor([float(g is not None) for g in grads], device=dev)
        buf = torch.cat([*parts, stats * weight, has, torch.tensor(list(flags), device=dev, dtype=stats.dtype)])
        with self.collective("the gradient all-reduce"):
            dist.all_reduce(buf)
        offset = 0
        for p in params:  # views into this step's fresh buffer: no copy
            n = p.numel()
            p.grad = buf[offset : offset + n].view_as(p)
            offset += n
        k = stats.numel()
        out_stats, out_has = buf[offset : offset + k], buf[offset + k : offset + k + len(params)]
        for p, h in zip(params, out_has.tolist()):
            if h == 0:
                p.grad = None
        return out_stats, buf[offset + k + len(params) :]

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (a picklable object)."""
        if not self.active:
            return obj
        box = [obj]
        with self.collective("a broadcast from rank 0"):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum_(self, t: Tensor) -> Tensor:
        """``t`` summed over ranks (a new tensor, on t's device)."""
        if not self.active:
            return t
        buf = t.to(self.device_of_group()).clone()
        with self.collective("a sum over ranks"):
            dist.all_reduce(buf)
        return buf.to(t.device)

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        with self.collective("a gather over ranks"):
            dist.all_gather_object(out, obj)
        return out

    def sync_tensors(self, tensors: Sequence[Tensor]) -> None:
        """Make every rank's copies of ``tensors`` (parameters, buffers) rank 0's, in place."""
        if not self.active:
            return
        with torch.no_grad():
            for t in {id(t): t for t in tensors}.values():
                dist.broadcast(t.data, src=0)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any rank."""
        if not self.active:
            return flag
        t = torch.tensor([float(flag)], device=self.device_of_group())
        with self.collective("a vote over ranks"):
            dist.all_reduce(t)
        return bool(t.item() > 0)

    def device_of_group(self) -> torch.device:
        """Where this group's collectives take their tensors (nccl: the rank's GPU)."""
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")

    def close(self, sync: bool = False) -> None:
        """Leave the process group. ``sync`` (a run that ended normally on every rank): meet at a barrier
        first, so no rank tears its connections down while another still talks to it (a gloo peer that
        loses its connection mid-exchange aborts: the SIGABRT seen now and then in CI's 2-rank runs)."""
        if self.active and dist.is_initialized():
            if sync:
                with self.collective("the closing barrier"):
                    dist.barrier()
            dist.destroy_process_group()


class RankLostError(VaelabError, RuntimeError):
    """A peer process of a torchrun group died or stopped answering within ``train.dist_timeout``;
    ``restarting``: torch's elastic agent will start the group again (``--max-restarts``)."""

    restarting = False


def _import_dynamo_first() -> None:
    """Import ``torch._dynamo`` before the process group exists (the first ``torch.optim`` optimizer
    imports it otherwise). Imported while a group exists, it keeps a C++ reference to that group, so
    ``destroy_process_group`` cannot free it: its gloo worker threads then live into interpreter shutdown,
    and one still releasing the last collective's work there must take the GIL to free a tensor's Python
    object; Python ends the thread inside a C++ destructor and the rank dies of SIGABRT ("terminate called
    without an active exception"). Under CPU contention 9 of 225 two-rank launches did; with this import
    first, none of 300 (benchmarks/two_rank_loop.py, docs/reliability.md)."""
    import torch._dynamo  # noqa: F401


def _attempt_store(rank: int, world: int, timeout: datetime.timedelta) -> dist.Store:
    """The rendezvous store of this attempt: torchrun's agent keeps one store for every restart of the
    group, and gloo found the dead attempt's addresses there (a restarted group failed with "Gloo
    connectFullMesh failed ... Connection refused"); each attempt's keys get their own prefix."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # else rank 0 hosts it (a plain env:// launch)
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=not agent and rank == 0, timeout=timeout, multi_tenant=not agent)  # fmt: skip
    from .launch import restart_count

    return dist.PrefixStore(f"vaelab/attempt_{restart_count()}", store)


def _rows(batch: Batch, lo: int, hi: int) -> Batch:
    return batch.map(lambda t: t[lo:hi])


def refuse_rank_local_state(estimator) -> None:
    """Estimators that keep running statistics of each batch (NVIL's signal mean and variance, the
    moving-average baseline) would keep one per rank under several processes: refused.

    Raises:
        ConfigError: naming the estimator and what to use instead.
    """
    if getattr(estimator, "rank_local_state", False):
        name = type(estimator).registry_name
        raise ConfigError(
            f"estimator '{name}' keeps running statistics of each batch's learning signal, which would differ "
            "between processes; train it in one process, or use 'vimco' / 'rloo' under torchrun"
        )
