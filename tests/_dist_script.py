"""Entry point the distributed tests launch under torchrun (not a test module).

``_dist_script.py ARGV [--next ARGV ...]`` runs ``vaelab.cli.main`` on each ARGV in turn in this one
process, so that one two-rank launch checks several configurations (the launch itself is not what those
tests check; process starts were a third of the suite's time). Each run joins and leaves its own process
group, its rendezvous keys under a prefix of their own (a second group in one process would otherwise
read the first one's gloo addresses from the store). The exit status is the first non-zero run's.

NOISE_FREE=1 (every run) or ``--noise-free`` first in a run's ARGV (that run) makes the Gaussian latent draw
z = E_q[z] (every sample; a flow: its base mean's image), so a run's result depends on the data order and the
gradient arithmetic only: 2 ranks x 50 points must then equal 1 x 100. The tests apply the same two functions
in-process for the one-process reference runs.
FAULT_RANK=r with FAULT_SPEC=POINT:N arms vaelab.faults on rank r only (a killed rank).
THREADS_FILE=F: after the last run, each rank writes the names of its live threads to F.RANK (a process group
left alive keeps its gloo threads into interpreter shutdown, where they aborted ranks: docs/reliability.md).
"""

import os
import sys


def mean_draw(self, q, n, generator=None):
    """GaussianLatent.draw without noise: n copies of E_q[z]."""
    return q.mean.expand(n, *q.mean.shape)


def mean_point(self, q, generator=None):
    """GaussianLatent.draw_point without noise: E_q[z], (B, D)."""
    return q.mean


def flow_mean_draw(self, q, n, generator=None):
    """FlowLatent.draw without noise: the image of the base distribution's mean under the flow."""
    z = q.base_dist.base_dist.loc
    z = z.expand(n, *z.shape)
    for t in q.transforms:
        z = t(z)  # cached, as the real draw: log q of this sample needs no inverse
    return z


def noise_free_patches() -> list:
    """(owner, attribute, replacement) triples that make every continuous latent's draw noise-free."""
    from vaelab.distributions.flows import FlowLatent
    from vaelab.distributions.latents import GaussianLatent

    return [
        (GaussianLatent, "draw", mean_draw),
        (GaussianLatent, "draw_point", mean_point),
        (FlowLatent, "draw", flow_mean_draw),
    ]


def _runs(argv: list[str]) -> list[list[str]]:
    runs = [[]]
    for a in argv:
        if a == "--next":
            runs.append([])
        else:
            runs[-1].append(a)
    return runs


def _own_prefix(i: int, attempt_store) -> None:
    """Run ``i``'s process group under its own store prefix (``attempt_store``: vaelab's own)."""
    import torch.distributed as dist

    from vaelab import distributed

    distributed._attempt_store = lambda *a, **kw: dist.PrefixStore(f"run{i}", attempt_store(*a, **kw))


def main() -> int:
    patches = noise_free_patches()
    drawn = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    if os.environ.get("FAULT_RANK") is not None and os.environ.get("FAULT_RANK") == os.environ.get("RANK", "0"):
        os.environ["VAELAB_FAULT"] = os.environ["FAULT_SPEC"]
    from vaelab import distributed
    from vaelab.cli import main as vaelab_main

    attempt_store, status = distributed._attempt_store, 0
    for i, argv in enumerate(_runs(sys.argv[1:])):
        _own_prefix(i, attempt_store)
        noise_free = bool(os.environ.get("NOISE_FREE")) or argv[:1] == ["--noise-free"]
        argv = argv[1:] if argv[:1] == ["--noise-free"] else argv
        for owner, name, fn in patches if noise_free else drawn:
            setattr(owner, name, fn)
        code = vaelab_main(argv)
        status = status or code or 0
        sys.stdout.flush()
        sys.stderr.flush()
    if os.environ.get("THREADS_FILE"):
        _write_thread_names(f"{os.environ['THREADS_FILE']}.{os.environ.get('RANK', '0')}")
    return status


def _write_thread_names(path: str) -> None:
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    with open(path, "w") as f:
        f.write("\n".join(names))


if __name__ == "__main__":
    sys.exit(main())
