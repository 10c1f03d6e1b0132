"""Annealed importance sampling (AIS) for log p(x), and bidirectional Monte Carlo (BDMC) bounds on its error.

AIS (Neal 2001) anneals C chains per data point from a start density f_0 (the prior p(h), or the
encoder's q(h|x) as in Wu, Burda, Salakhutdinov & Grosse 2017) to the unnormalized posterior p(x, h)
through f_t(h) = f_0(h)^(1 - b_t) p(x, h)^b_t, 0 = b_0 < ... < b_T = 1, each step a Hamiltonian Monte
Carlo transition that leaves f_t invariant. The chains' log-weights

    log w = sum_t (b_t - b_{t-1}) (log p(x, h_{t-1}) - log f_0(h_{t-1}))

have E[w] = p(x), so log-mean-exp over chains is a stochastic lower bound on log p(x) (Neal 2001,
eq. 9-11) that tightens as T grows. Run backwards from an exact posterior sample, which simulated data
provide ((x, h) ~ p), the same sum estimates 1 / p(x) and gives a stochastic upper bound: BDMC (Grosse,
Ghahramani & Adams 2015, Sec. 4), whose gap bounds AIS's error on data like the simulated.

Latents h = (z_1, ..., z_L) are handled flattened, (C, B, D_1 + ... + D_L); they must be continuous
with a density everywhere (Gaussian, flows, several stochastic layers). Units: nats per data point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..labels import label_mode_of
from ..objectives import iwae
from ..progress import bar
from ._labels import labels_of
from ._stats import mean_se

START = ("prior", "encoder")


@dataclass
class AISResult:
    """An AIS estimate of log p(x), nats per data point.

    Attributes:
        per_point: (N,) log-mean-exp over the chains of each point's log-weights (a stochastic lower
            bound on log p(x_i); for reverse AIS, an upper bound).
        mean, stderr: over points (stderr = std / sqrt(N)).
        steps, chains, leapfrog: T, C and the leapfrog steps per HMC transition.
        start: "prior" or "encoder".
        ess: mean over points of the chains' effective sample size (sum w)^2 / sum w^2, in 1..C.
        accept: the HMC acceptance rate over all transitions (the step size is adapted toward 0.65).
        seconds: wall time.
    """

    per_point: Tensor
    mean: float
    stderr: float
    steps: int
    chains: int
    leapfrog: int
    start: str
    ess: float
    accept: float
    seconds: float

    def summary(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "per_point"}


def schedule(steps: int, kind: str = "sigmoid", delta: float = 4.0) -> Tensor:
    """b_0 = 0 < b_1 < ... < b_T = 1, (T + 1,) float64.

    "sigmoid" (Grosse et al. 2015, Sec. 6): b_t proportional to sigmoid(delta (2t/T - 1)), rescaled to
    [0, 1], denser at both ends; "linear": t / T.

    Raises:
        ConfigError: T < 1 or an unknown kind.
    """
    if steps < 1:
        raise ConfigError(f"AIS needs at least one annealing step, got {steps}")
    t = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    if kind == "linear":
        return t
    if kind != "sigmoid":
        raise ConfigError(f"unknown AIS schedule {kind!r}; choose 'sigmoid' or 'linear'")
    s = torch.sigmoid(delta * (2 * t - 1))
    return (s - s[0]) / (s[-1] - s[0])


def check_model(model, start: str, y: Tensor | None) -> None:
    """AIS's requirements of a model.

    Raises:
        ConfigError: discrete latents, a start density unknown away from its own samples, unobserved
            discrete labels, or an unknown start.
    """
    if start not in START:
        raise ConfigError(f"AIS start {start!r}: choose 'prior' or 'encoder'")
    families = [model.latent, *(e.family for e in model.inference_layers)]
    discrete = [f for f in families if f.support != "real" or f.relaxed]
    if discrete:
        raise ConfigError(
            f"AIS needs continuous latents with a density everywhere (HMC moves them); {type(discrete[0]).__name__} "
            f"has support {discrete[0].support!r}: evaluate this model by importance sampling"
        )
    if start == "encoder" and not all(f.scores_any_point for f in families):
        raise ConfigError(
            "AIS from the encoder needs log q(h|x) at every point, which a flow knows only at its own samples; "
            "start from the prior (start = 'prior')"
        )
    if label_mode_of(model).infers_labels and y is None:
        raise ConfigError("AIS anneals continuous latents only: pass the labels y of a model whose labels are latent")


class _Path:
    """The annealing path of one batch: the start density f_0, p(x, h), and h's layout (C, B, D).

    From the prior, a model with several stochastic layers is annealed in non-centered coordinates
    (Papaspiliopoulos et al. 2007): h = (e_1, ..., e_{L-1}, z_L) with z_l = mu_l(z_{l+1}) + sigma_l(z_{l+1}) e_l,
    so f_0 is N(0, I) x p(z_L) and one HMC step size suits every layer, however narrow p(z_l | z_{l+1})
    has become in training (the centered z_1 of a top-down model stalled HMC at 9 % acceptance). The map is
    a bijection pushing f_0 onto p(h), so the normalizer annealed to is still p(x).
    """

    def __init__(self, model, x: Tensor, y: Tensor | None, start: str):
        self.model, self.x, self.y, self.start = model, x, y, start
        self.dims = [math.prod(model.latent.event_shape), *(e.z_dim for e in model.inference_layers)]
        self._q = model.posterior(x, y) if start == "encoder" else None
        self.whiten = start == "prior" and model.n_layers > 1

    def split(self, h: Tensor) -> list[Tensor]:
        """(C, B, D) -> per layer [(C, B, *event_1), (C, B, D_2), ...] (path coordinates)."""
        parts = list(h.split(self.dims, dim=-1))
        parts[0] = parts[0].reshape(*h.shape[:-1], *self.model.latent.event_shape)
        return parts

    def latents(self, h: Tensor) -> list[Tensor]:
        """The latents z_1..z_L of path coordinates h."""
        parts = self.split(h)
        if not self.whiten:
            return parts
        zs = parts[:]
        for i in reversed(range(len(parts) - 1)):
            p = self.model.upper_decoders[i](zs[i + 1])  # p(z_i | z_{i+1})
            zs[i] = p.mean + p.stddev * parts[i]
        return zs

    def draw_start(self, chains: int) -> Tensor:
        """h ~ f_0, (C, B, D)."""
        m, b = self.model, self.x.shape[0]
        if self._q is not None:
            zs = [m.latent.draw(self._q, chains)]  # (C, B, *event)
            for layer in m.inference_layers:
                zs.append(layer.family.draw(layer(zs[-1]), 1)[0])
        elif m.class_prior is not None and self.y is not None:
            zs = m.sample_latents(chains, self.y)  # (C, B, ...)
        else:
            zs = [z.reshape(chains, b, *z.shape[1:]) for z in m.sample_latents(chains * b)]
        if self.whiten:  # z_l -> e_l = (z_l - mu_l) / sigma_l
            for i in range(len(zs) - 1):
                p = m.upper_decoders[i](zs[i + 1])
                zs[i] = (zs[i] - p.mean) / p.stddev
        return torch.cat([z.reshape(chains, b, -1) for z in zs], -1).detach()

    def log_densities(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(log p(x, h), log f_0(h)), each (C, B), in path coordinates."""
        m = self.model
        if self.whiten:
            parts, zs = self.split(h), self.latents(h)
            log_start = m.prior_given(self.y).log_prob(zs[-1])
            for e in parts[:-1]:
                log_start = log_start + torch.distributions.Normal(0.0, 1.0).log_prob(e).flatten(2).sum(-1)
            return log_start + m.likelihood.log_prob(m.decode(zs[0], self.x, self.y), self.x), log_start
        zs = self.split(h)
        log_prior = m.log_prior_latents(zs, self.y)  # (C, B)
        log_joint = log_prior + m.likelihood.log_prob(m.decode(zs[0], self.x, self.y), self.x)
        if self._q is None:
            return log_joint, log_prior
        return log_joint, m.log_posterior(self.x, zs, self.y, self._q)


def hmc(
    h: Tensor,
    log_target: Callable[[Tensor], tuple[Tensor, tuple]],
    step_size: Tensor,
    leapfrog: int,
    current: tuple[Tensor, Tensor, tuple] | None = None,
    correct: bool = True,
) -> tuple[Tensor, Tensor]:
    """One Hamiltonian Monte Carlo transition on every chain at once (Neal 2011, Sec. 5.3.2).

    Args:
        h: (C, B, D) positions.
        log_target: h -> ((C, B) log f(h), extras): the target's log-density (unnormalized) and any
            per-chain values computed with it (unused here; :func:`anneal` reads them at the start state).
        step_size: (C, B) leapfrog step sizes epsilon.
        leapfrog: leapfrog steps L.
        current: (log f(h), its gradient, extras) at h, if known (saves a pass).
        correct: the Metropolis accept / reject step (False only to show a test's power).
    Returns:
        (new positions (C, B, D), (C, B) bool accepted).
    """
    lf, grad, _ = current if current is not None else _value_and_grad(log_target, h)
    eps = step_size.unsqueeze(-1)  # (C, B, 1)
    p0 = torch.randn_like(h)
    p = p0 + 0.5 * eps * grad
    h_new = h
    for i in range(leapfrog):
        h_new = h_new + eps * p
        lf_new, grad_new, _ = _value_and_grad(log_target, h_new)
        p = p + (eps if i < leapfrog - 1 else 0.5 * eps) * grad_new
    log_ratio = (lf_new - 0.5 * (p * p).sum(-1)) - (lf - 0.5 * (p0 * p0).sum(-1))  # -H(new) + H(old)
    if correct:
        accept = torch.log(torch.rand_like(log_ratio)) < torch.nan_to_num(log_ratio, nan=-math.inf)
    else:
        accept = torch.isfinite(log_ratio)
    return torch.where(accept.unsqueeze(-1), h_new, h), accept


def _value_and_grad(log_target, h: Tensor) -> tuple[Tensor, Tensor, tuple]:
    with torch.enable_grad():
        h = h.detach().requires_grad_(True)
        lf, extra = log_target(h)
        (grad,) = torch.autograd.grad(lf.sum(), h)
    return lf.detach(), grad, tuple(e.detach() for e in extra)


def anneal(path: _Path, h: Tensor, betas: Tensor, leapfrog: int, step_size: float, shown=None) -> tuple[Tensor, float]:
    """Run the chains h (C, B, D) along ``betas`` (b_0 -> b_T, either direction).

    Each step t first scores the chains at h (one pass: the log-weight increment and the gradient of
    log f_t), then moves them by one HMC transition targeting f_t, its step size adapted per chain.

    Returns:
        ((C, B) float64 log-weights sum_t (b_t - b_{t-1}) (log p(x, h_{t-1}) - log f_0(h_{t-1})),
        the acceptance rate over all transitions).
    """
    eps = torch.full(h.shape[:2], step_size, device=h.device, dtype=h.dtype)  # (C, B)
    log_w = torch.zeros(h.shape[:2], device=h.device, dtype=torch.float64)
    accepted = torch.zeros((), device=h.device)  # on the device: no host synchronization per step (a GPU stalls on one)
    for t in range(1, betas.numel()):
        beta = float(betas[t])

        def log_target(z: Tensor, beta: float = beta) -> tuple[Tensor, tuple]:
            lj, l0 = path.log_densities(z)
            return l0 + beta * (lj - l0), (lj, l0)

        current = _value_and_grad(log_target, h)
        lj, l0 = current[2]
        log_w += (beta - float(betas[t - 1])) * (lj - l0).double()
        h, accept = hmc(h, log_target, eps, leapfrog, current)
        eps = torch.where(accept, eps * 1.02, eps * 0.98).clamp(1e-4, 1.0)  # toward ~0.65 acceptance (Wu et al.)
        accepted += accept.float().mean()
        if shown is not None:
            shown.update(1)
    return log_w, float(accepted) / max(betas.numel() - 1, 1)


def _ess(log_w: Tensor) -> Tensor:
    """(C, B) -> (B,) (sum w)^2 / sum w^2."""
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))


@torch.no_grad()
def ais_log_likelihood(
    model,
    x: Tensor,
    steps: int = 500,
    chains: int = 16,
    leapfrog: int = 10,
    step_size: float = 0.05,
    start: str = "prior",
    batch_size: int = 100,
    seed: int = 0,
    y: Tensor | None = None,
    kind: str = "sigmoid",
) -> AISResult:
    """AIS estimate of log p(x) per point (Neal 2001; Wu et al. 2017 for decoder-based models), nats.

    Args:
        model: a :class:`~vaelab.models.VAE` with continuous latents (flows and several layers included).
        x: (N, *x_shape) points.
        steps: T intermediate densities (geometric path, ``kind`` schedule: :func:`schedule`).
        chains: C independent chains per point; the estimate is log-mean-exp over them.
        leapfrog: HMC's leapfrog steps L per move.
        step_size: HMC's initial epsilon (adapted per chain toward 65 % acceptance).
        start: f_0 = "prior" p(h) or "encoder" q(h|x) (a closer start: fewer steps for the same error).
        batch_size: points annealed together (C * batch_size chains per pass).
        seed: the chains' random stream (the result is reproducible for a fixed seed and batch size).
        y: (N,) labels of a labelled model.
        kind: the schedule of b_t ("sigmoid" or "linear").
    Returns:
        :class:`AISResult`; ``per_point`` is a stochastic lower bound on log p(x_i) (E[w] = p(x)).
    Raises:
        ConfigError: discrete latents, latent labels, or a start density not known everywhere.
    """
    check_model(model, start, y)
    betas, t0 = schedule(steps, kind), time.perf_counter()
    was, device = model.training, next(model.parameters()).device
    model.eval()
    out, ess, acc = torch.empty(x.shape[0], dtype=torch.float64), [], 0.0
    n_batches = math.ceil(x.shape[0] / batch_size)
    shown = bar(total=steps * n_batches, desc=f"AIS log p(x), T={steps}, C={chains}", unit="step")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start_i in range(0, x.shape[0], batch_size):
            xb = x[start_i : start_i + batch_size].to(device)
            yb = labels_of(None if y is None else y.to(device), start_i, batch_size).get("y")
            path = _Path(model, xb, yb, start)
            log_w, a = anneal(path, path.draw_start(chains), betas, leapfrog, step_size, shown)
            out[start_i : start_i + xb.shape[0]] = iwae(log_w).cpu()
            ess.append(_ess(log_w).cpu())
            acc += a * xb.shape[0]
    shown.close()
    model.train(was)
    n = x.shape[0]
    return AISResult(out, *mean_se(out), steps, chains, leapfrog, start, float(torch.cat(ess).mean()), acc / n,
                     time.perf_counter() - t0)  # fmt: skip


@dataclass
class BDMCResult:
    """Bidirectional Monte Carlo on data simulated from the model, nats per data point.

    Attributes:
        forward: AIS from the prior (a stochastic lower bound on log p(x)).
        reverse: reverse AIS from the exact posterior sample that generated x (a stochastic upper bound).
        gap: mean over points of upper - lower: a bound on the forward estimate's error on such data.
        x: (N, *x_shape) the simulated points (to evaluate other estimators, IS for one, on them).
    """

    forward: AISResult
    reverse: AISResult
    gap: float
    x: Tensor

    def summary(self) -> dict:
        return {"lower": self.forward.mean, "upper": self.reverse.mean, "gap": self.gap,
                "forward": self.forward.summary(), "reverse": self.reverse.summary()}  # fmt: skip


@torch.no_grad()
def bdmc(
    model,
    n: int = 100,
    steps: int = 500,
    chains: int = 16,
    leapfrog: int = 10,
    step_size: float = 0.05,
    seed: int = 0,
    kind: str = "sigmoid",
) -> BDMCResult:
    """Sandwich log p(x) on ``n`` points simulated from the model (Grosse et al. 2015, Sec. 4): forward
    AIS from the prior below, reverse AIS (the same path run from b = 1 to 0, started at the exact
    posterior sample h that generated x) above. Both tighten as T grows; their gap bounds the forward
    estimate's error on data like these.

    Raises:
        ConfigError: as :func:`ais_log_likelihood` (a labelled model: simulate with labels yourself).
    """
    check_model(model, "prior", None)
    if label_mode_of(model).reads_labels:
        raise ConfigError("BDMC simulates (x, h) ~ p without labels: not for a labelled model")
    was, device = model.training, next(model.parameters()).device
    model.eval()
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        sim = _Path(model, torch.empty(n, *model.x_shape, device=device), None, "prior")
        h = sim.draw_start(1)  # (1, n, D) the exact posterior samples
        x = model.likelihood.distribution(model.decode(sim.latents(h)[0][0])).sample()  # (n, *x_shape)
        forward = ais_log_likelihood(model, x, steps, chains, leapfrog, step_size, "prior", n, seed + 1, kind=kind)
        path = _Path(model, x, None, "prior")
        shown = bar(total=steps, desc=f"reverse AIS, T={steps}, C={chains}", unit="step")
        log_w, acc = anneal(path, h.expand(chains, -1, -1).clone(), schedule(steps, kind).flip(0), leapfrog,
                            step_size, shown)  # fmt: skip
        shown.close()
    model.train(was)
    upper = -iwae(log_w).cpu()  # E[w_rev] = 1 / p(x): -log-mean-exp bounds log p(x) from above
    reverse = AISResult(upper, *mean_se(upper), steps, chains, leapfrog, "posterior", float(_ess(log_w).mean()), acc,
                        time.perf_counter() - t0)  # fmt: skip
    return BDMCResult(forward, reverse, float((upper - forward.per_point).mean()), x.cpu())
