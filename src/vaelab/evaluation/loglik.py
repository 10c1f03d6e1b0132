"""Importance-sampled estimate of log p(x) with q(z|x) as proposal."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..allocator import tune_malloc
from ..distributed import Dist
from ..errors import DataError
from ..labels import label_mode_of
from ..numerics import denormals_flushed, eval_rows
from ..objectives import elbo, group, iwae, miwae
from ..progress import bar
from ._labels import labels_of

#: Target size of one chunk's activations; see ``importance_sampled_log_likelihood``.
CHUNK_BYTES = 16 * 2**20
#: on a GPU: 1,300-row chunks left an H200 launch-bound at 50x its matrix-product time (benchmarks/results.md)
CHUNK_BYTES_CUDA = 512 * 2**20


@dataclass
class LogLikelihoodResult:
    """Summary of an IS log-likelihood evaluation, in nats per data point.

    Attributes:
        k: importance samples per point.
        n: number of data points.
        mean, std, stderr: of the per-point estimates log p_hat(x_i) (stderr = std / sqrt(n)).
        elbo_mean: the K-sample Monte Carlo ELBO on the same samples.
        iwae_k, iwae_mean: the IWAE bound L_k for a smaller k (default 64), estimated without
            extra samples as the average of IWAE-k over the floor(K/k) disjoint blocks of k.
        x_dim: numbers per data point (for nats per dimension).
        per_point: (N,) log p_hat(x_i); ``per_point_elbo``, ``per_point_iwae``: (N,) estimates.
    """

    k: int
    n: int
    mean: float
    std: float
    stderr: float
    elbo_mean: float
    elbo_std: float
    iwae_k: int
    iwae_mean: float
    x_dim: int
    per_point: Tensor
    per_point_elbo: Tensor
    per_point_iwae: Tensor

    @property
    def nll(self) -> float:
        """Negative log-likelihood, positive, nats per data point."""
        return -self.mean

    @property
    def mean_per_dim(self) -> float:
        """log p_hat(x) in nats per dimension."""
        return self.mean / self.x_dim

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if not k.startswith("per_point")}
        d.update(nll=self.nll, mean_per_dim=self.mean_per_dim, units="nats per data point")
        return d


@torch.no_grad()
def importance_sampled_log_likelihood(
    model,
    x: Tensor,
    k: int = 5000,
    batch_size: int = 100,
    max_rows: int | None = None,
    seed: int = 0,
    iwae_k: int = 64,
    device: str | torch.device | None = None,
    proposal: Tensor | None = None,
    dist: Dist | None = None,
    malloc: str = "auto",
    y: Tensor | None = None,
) -> LogLikelihoodResult:
    """log p(x) ~= logsumexp_k log w_k - log K with z_k ~ q(z|x) (Burda et al. 2016, Sec. 5.2;
    Rezende et al. 2014, App. E).

    Memory is bounded independently of K and N: one (K, B) float32 buffer of log-weights is
    preallocated and filled chunk by chunk (no concatenation), each chunk scoring
    ``c = max(1, max_rows // B)`` samples, i.e. at most ``max_rows`` decoder rows at a time.
    By default ``max_rows = CHUNK_BYTES / (4 * (4*x_dim + 64))``, about 16 MB of float32
    activations per chunk (x_dim = numbers per point; 1,300 rows for MNIST, 58,000 for 2-D data;
    ``CHUNK_BYTES_CUDA`` = 512 MB on a GPU, where small chunks leave it waiting on kernel launches). Peak
    extra memory is then
    ``4*K*B`` bytes for the buffer plus ~16 MB: for K=5000, B=100 on MNIST, 2 MB + 16 MB. Small
    chunks are also the fast choice on CPU: the 784-wide likelihood terms stay in cache (measured
    2.7x faster per point than 100,000-row chunks on the 2-core CI machine; docs/design.md).

    Args:
        model: a :class:`vaelab.models.VAE` (anything with ``posterior``, ``log_weight_terms`` and
            ``check_input``); any latent family: its samples come from ``sample`` when it has no
            ``rsample``.
        x: (N, *x_shape) evaluation data (already binarized for Bernoulli decoders).
        k: importance samples K per point.
        batch_size: B, data points per pass.
        max_rows: bound on K_chunk * B rows scored at once (default: from ``CHUNK_BYTES``).
        seed: seeds a private ``torch.Generator``: the same seed gives the same numbers.
        iwae_k: also report IWAE-``iwae_k`` (Rainforth et al. 2018's IWAE-64), from the same samples
            (capped at K).
        proposal: optional (N, latent.n_params) per-point variational parameters lambda_i to use as
            the proposal q_lambda_i(z) instead of the encoder's q(z|x_i) (e.g. after per-datapoint
            optimization, :func:`vaelab.inference.refine`); one-layer models.
        dist: under torchrun, the process group (:class:`~vaelab.distributed.Dist`): batch j of B
            points is scored by rank j mod W and the per-point estimates are summed over ranks, so
            every rank returns the whole result. Each batch's samples come from a generator seeded
            by (seed, j), which makes the numbers independent of the number of processes.
        malloc: glibc's malloc thresholds, as ``train.malloc`` (:func:`vaelab.allocator.tune_malloc`):
            "auto" fixes them on a CPU device, so each chunk's ~4 MB decoder outputs stay in the heap
            instead of being mapped and page-faulted in anew (0.17-0.35 M minor faults for 100 MNIST
            points at K = 5000, ~1 k when tuned, 10-20 % of the time). Process-wide and kept after
            the call; "system" leaves glibc's defaults.
        y: (N,) labels for a conditional model: the estimate is then of log p(x|y). A
            semi-supervised model without y is scored on log p(x), its proposal q(y|x) q(z|x, y)
            (:class:`~vaelab.models.terms.SampledLabelTerms`).
    Returns:
        :class:`LogLikelihoodResult` in nats.
    Raises:
        ValueError: if k < 1, ``proposal`` is not (N, latent.n_params), or ``malloc`` is unknown.
        DataError: x is empty, is not (N, *model.x_shape), has NaN/inf, or is outside the likelihood's support.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.shape[0] == 0:
        raise DataError("the evaluation data hold no points (an empty split): evaluate another split or hold out data")
    model.check_input(x, "evaluation data")
    if proposal is not None and tuple(proposal.shape) != (x.shape[0], model.latent.n_params):
        raise ValueError(f"proposal must be ({x.shape[0]}, {model.latent.n_params}), got {tuple(proposal.shape)}")
    x_dim = math.prod(x.shape[1:])
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if max_rows is None:
        budget = CHUNK_BYTES_CUDA if device.type == "cuda" else CHUNK_BYTES
        max_rows = eval_rows(model, max(64, budget // (4 * (4 * x_dim + 64))))
    tune_malloc(malloc, device)
    was_training = model.training
    model.eval()  # before the prior is fixed: a VampPrior's components are the encoder in eval mode
    try:
        with denormals_flushed(device), fixed_prior(model):
            return _estimate(model, x, k, batch_size, max_rows, seed, iwae_k, device, x_dim, proposal, dist or Dist(), y)
    finally:
        model.train(was_training)


def fixed_prior(model) -> AbstractContextManager:
    """The model's prior computed once for an evaluation (``Prior.fixed``: a VampPrior's encoder pass
    on its pseudo-inputs, not once per chunk); a model whose prior cannot be fixed is left as it is."""
    fixed = getattr(getattr(model, "prior", None), "fixed", None)
    return fixed() if fixed is not None else nullcontext()


def _proposal(model, xb, yb: dict, proposal, start: int, device):
    if proposal is not None:
        return model.latent.distribution(proposal[start : start + xb.shape[0]].to(device))
    return model.posterior(xb, **yb)


def batch_seed(seed: int, j: int) -> int:
    """The seed of batch j's sample generator: a function of (seed, j) only, so a batch gets the same
    samples whichever process scores it."""
    return (seed * 1_000_003 + j) % (2**63)


def _estimate(model, x, k, batch_size, max_rows, seed, iwae_k, device, x_dim, proposal, dist, y) -> LogLikelihoodResult:
    n = x.shape[0]
    gen = torch.Generator(device=device)
    pts = torch.zeros(3, n)  # (3, N): log p_hat, ELBO, IWAE-k per point; zero where another rank scores
    log_px, elbo_pts, iwae_pts = pts[0], pts[1], pts[2]
    iwae_k = max(1, min(iwae_k, k))
    n_blocks = k // iwae_k
    log_w = torch.empty(k, min(batch_size, n), device=device)  # (K, B) reused for every batch
    shown = bar(total=n, desc=f"IS log p(x), K={k}", unit="pt")
    for j, start in enumerate(range(0, n, batch_size)):
        if j % dist.world != dist.rank:
            continue
        gen.manual_seed(batch_seed(seed, j))
        xb = x[start : start + batch_size].to(device)  # (B, *x_shape)
        b = xb.shape[0]
        buf = log_w[:, :b]
        yb = labels_of(y if y is None else y.to(device), start, batch_size)
        sampled_labels = label_mode_of(model).infers_labels and not yb
        q = None if sampled_labels else _proposal(model, xb, yb, proposal, start, device)  # M2: q(y|x) q(z|x, y)
        chunk = max(1, max_rows // b)
        for s in range(0, k, chunk):
            c = min(chunk, k - s)
            buf[s : s + c] = model.log_weight_terms(xb, c, generator=gen, posterior=q, **yb).log_w  # (c, B)
        log_px[start : start + b] = iwae(buf).cpu()
        elbo_pts[start : start + b] = elbo(buf).cpu()
        iwae_pts[start : start + b] = miwae(group(buf[: n_blocks * iwae_k], n_blocks)).cpu()  # (M, k, B) blocks
        shown.update(b * dist.world)
    shown.close()
    if dist.active:  # each point was scored on one rank: the sum is exact
        pts = dist.sum_(pts)
        log_px, elbo_pts, iwae_pts = pts[0], pts[1], pts[2]
    std = float(log_px.double().std()) if n > 1 else 0.0
    return LogLikelihoodResult(
        k=k,
        n=n,
        mean=float(log_px.double().mean()),
        std=std,
        stderr=std / math.sqrt(n),
        elbo_mean=float(elbo_pts.double().mean()),
        elbo_std=float(elbo_pts.double().std()) if n > 1 else 0.0,
        iwae_k=iwae_k,
        iwae_mean=float(iwae_pts.double().mean()),
        x_dim=x_dim,
        per_point=log_px,
        per_point_elbo=elbo_pts,
        per_point_iwae=iwae_pts,
    )
