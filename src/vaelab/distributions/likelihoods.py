"""Decoder likelihoods p(x|z): turn decoder-network outputs into a distribution over x.

A likelihood knows the data's event shape (``(D,)`` for vectors, ``(C, H, W)`` for images) and
the shape of the parameters it needs per data point (``param_shape``); the decoder network may
output them flat, (N, prod(param_shape)), or already shaped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from ..errors import ConfigError, DataError
from ..registry import Registry

LIKELIHOODS = Registry("likelihood", context=("event_shape", "vocab_size"))


class Likelihood(nn.Module):
    """Maps decoder outputs of shape (..., *param_shape) to p(x|z) with event shape ``event_shape``.

    ``x_range`` is the support's bounding interval, or None for unbounded data; ``tokens``: the data
    are integer token ids (text), which networks on real-valued x cannot read.
    """

    x_range: tuple[float, float] | None = None
    tokens: bool = False

    def __init__(self, event_shape):
        super().__init__()
        self.event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(int(d) for d in event_shape)

    @property
    def x_dim(self) -> int:
        """Numbers per data point."""
        return math.prod(self.event_shape)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the decoder's parameters per data point."""
        return self.event_shape

    @property
    def n_outputs(self) -> int:
        """How many numbers per data point the decoder network must output."""
        return math.prod(self.param_shape)

    def distribution(self, params: Tensor) -> Distribution:
        """p(x|z) from params (..., *param_shape): batch shape (...), event ``event_shape``."""
        raise NotImplementedError

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) in nats: params (..., *param_shape), x (B, *event_shape) broadcasting -> (...)."""
        return self.distribution(params).log_prob(x)

    def log_prob_rows(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x_n|z_n) in nats for decoder outputs per row, params (N, n_outputs) or (N, *param_shape),
        and x (N, *event_shape) -> (N,): :meth:`log_prob` without shaping the parameters first where the
        likelihood reads them flat (the one-sample training path)."""
        shaped = params if tuple(params.shape[1:]) == self.param_shape else params.reshape(-1, *self.param_shape)
        return self.log_prob(shaped, x)

    def mean(self, params: Tensor) -> Tensor:
        """E[x|z], shape (..., *event_shape)."""
        return self.distribution(params).mean

    def check_data(self, x: Tensor, name: str = "data") -> None:
        """Raise :class:`DataError` if x is outside this likelihood's support."""

    def marginal_params(self, x: Tensor) -> Tensor | None:
        """Decoder outputs (``param_shape``) under which p(x|z) has the per-dimension mean of the
        training data x (N, *event_shape), or None when this likelihood has no such closed form.

        Used to initialize the decoder's output bias (``model.decoder_bias``), as in Burda et al.'s
        IWAE code: the decoder then starts at the data's marginal instead of spending its first
        steps learning it.
        """
        return None


def _sum_log_sigmoid_abs(logits: Tensor, out: Tensor | None = None, halvings: int = 3) -> Tensor:
    """sum_d log sigmoid(|l_d|) over the last axis, (..., D) -> (...), with one log per 2^halvings terms.

    sigmoid(|l|) lies in [1/2, 1), so a product of 2^h of them (plus at most h odd leftovers) is
    at least 2^-(2^h + h) and cannot underflow: the sum of logs is the log of the products. Each
    halving multiplies one half of the row into the other, in place. With h = 3 the product's
    relative rounding error is ~10 ulp (~1e-6 nats per group), below the float32 error of summing
    784 terms, while log runs on an eighth of the elements. ``out``: a (..., D) buffer to work in.
    """
    a = (logits.abs() if out is None else torch.abs(logits, out=out)).sigmoid_()  # (..., D)
    n = a.shape[-1]
    for _ in range(halvings):
        if n < 2:
            break
        h = n // 2
        a[..., :h].mul_(a[..., h : 2 * h])
        if n % 2:
            a[..., 0].mul_(a[..., n - 1])
        n = h
    return a[..., :n].log_().sum(-1)


#: logits up to this many numbers take torch's fused binary cross-entropy in the forward pass
SMALL_LIKELIHOOD = 2**18


class _BernoulliLogProb(torch.autograd.Function):
    """sum_d x_d l_d - softplus(l_d) with the gradient (x - sigmoid(l)) written out."""

    @staticmethod
    def forward(ctx, logits: Tensor, x: Tensor) -> Tensor:
        ctx.save_for_backward(logits, x)
        # softplus(l) = relu(l) - log sigmoid(|l|): the same value as F.softplus to float32
        # rounding, without its log1p on every element (the likelihood's forward in ~0.7x the time)
        t = logits * x  # (..., D)
        dot = t.sum(-1)
        buf = t if t.shape == logits.shape else None  # reused unless x adds axes ((S, B, D) data)
        relu_sum = torch.clamp(logits, min=0, out=buf).sum(-1)
        return dot - relu_sum + _sum_log_sigmoid_abs(logits, out=buf)

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, x = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # (..., 1)
        grad_x = (logits * g).sum_to_size(x.shape) if ctx.needs_input_grad[1] else None
        if torch.is_grad_enabled() or logits.shape[:-1] != grad.shape:  # create_graph, or x has more axes
            return ((x - torch.sigmoid(logits)) * g).sum_to_size(logits.shape), grad_x
        grad_logits = torch.sigmoid(logits)  # one (..., D) buffer, updated in place
        return grad_logits.neg_().add_(x).mul_(g), grad_x


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log prod_d Bernoulli(x_d; sigmoid(l_d)) = sum_d x_d l_d - log(1 + e^{l_d}), in nats.

    Equal to ``Independent(Bernoulli(logits=l), 1).log_prob(x)`` in value and gradient (including
    second derivatives), for any x in [0, 1], including (B, D) logits against (S, B, D) data, and as
    accurate in float32 as the softplus form. The forward writes softplus(l) = relu(l) - log sigmoid(|l|)
    and takes one log per 8 factors sigmoid(|l|) (each in [1/2, 1), so their product cannot underflow),
    in one (..., D) buffer; the backward allocates one (..., D) buffer. ``binary_cross_entropy_with_logits``
    runs log-sigmoid, softplus' log1p, on every element: this forward takes ~0.7x the softplus form's
    time, which makes IS evaluation of the IWAE-paper MLP ~10 % faster (docs/performance.md).

    Args:
        logits: (..., D) decoder outputs, e.g. (S, B, D).
        x: data broadcasting against logits, e.g. (B, D).
    Returns:
        (...) log-likelihoods, e.g. (S, B).
    """
    if logits.numel() <= SMALL_LIKELIHOOD and x.dim() <= logits.dim():
        # a VAE step's (1, 100, 784): dispatching the buffer trick's ~20 small ops costs more than the
        # log1p it saves; torch's one fused kernel, its backward in C++ too (a Python backward cost a
        # VAE step ~1 %; tests/test_likelihoods.py: both paths)
        target = x if x.shape == logits.shape else x.expand_as(logits)  # (torch's kernel does not broadcast)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
    return _BernoulliLogProb.apply(logits, x)


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logit_d)); x must be binary {0, 1}."""

    x_range = (0.0, 1.0)

    def distribution(self, params: Tensor) -> Independent:
        return Independent(Bernoulli(logits=params, validate_args=False), len(self.event_shape))

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        # the same value and gradients as distribution(params).log_prob(x) (tests check both), in
        # fewer passes over the (S, B, *event) logits: see bernoulli_log_prob
        n = len(self.event_shape)
        return bernoulli_log_prob(params.flatten(params.dim() - n), x.flatten(x.dim() - n))

    def log_prob_rows(self, params: Tensor, x: Tensor) -> Tensor:
        return bernoulli_log_prob(params if params.dim() == 2 else params.flatten(1), x.flatten(1))  # (N,)

    def marginal_params(self, x: Tensor) -> Tensor:
        """The log-odds of each pixel's mean, clamped to [1e-3, 1 - 1e-3] (a pixel never on must not get -inf)."""
        p = x.float().mean(0).clamp(1e-3, 1 - 1e-3)
        return torch.log(p) - torch.log1p(-p)

    def check_data(self, x: Tensor, name: str = "data") -> None:
        nonbinary = ((x != 0) & (x != 1)).sum().item()
        if nonbinary:
            raise DataError(
                f"{name}: Bernoulli decoder needs binary data in {{0, 1}} but {nonbinary} values are not "
                f'(range [{x.min().item():.3g}, {x.max().item():.3g}]); set binarize = "dynamic" for '
                'intensities in [0, 1], or use likelihood kind = "gaussian"'
            )


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    """p(x|z) = N(x; mu(z), diag sigma^2) with fixed, per-dimension or per-datapoint variance.

    Args:
        variance: "fixed" (sigma^2 = ``fixed_variance``, default 1 as in the two-Gaussian seed),
            "per_dim" (one trainable log sigma^2 per dimension, shared by all data points) or
            "per_datapoint" (the decoder also outputs log sigma^2(z), Kingma & Welling 2014 App. C.2).
        fixed_variance: sigma^2 when ``variance == "fixed"``.
        min_logvar: learned log-variances are clamped below at this value, because an
            unbounded Gaussian likelihood can grow without limit on a point it fits exactly
            (``-inf``: no floor, as Li & Turner's released Frey-faces code).
        mean: "identity" (the decoder's output is the mean) or "sigmoid" (the mean is its sigmoid,
            in (0, 1): Kingma & Welling 2014 App. C.2 for Frey faces; Li & Turner's code).
    """

    def __init__(
        self,
        event_shape,
        variance: str = "fixed",
        fixed_variance: float = 1.0,
        min_logvar: float = -9.0,
        mean: str = "identity",
    ):
        super().__init__(event_shape)
        if variance not in ("fixed", "per_dim", "per_datapoint"):
            raise ConfigError(f"model.likelihood.variance must be 'fixed', 'per_dim' or 'per_datapoint', got {variance!r}")
        if fixed_variance <= 0:
            raise ConfigError(f"model.likelihood.fixed_variance must be > 0, got {fixed_variance}")
        if mean not in ("identity", "sigmoid"):
            raise ConfigError(f"model.likelihood.mean must be 'identity' or 'sigmoid', got {mean!r}")
        self.variance = variance
        self.min_logvar = min_logvar
        self.squash = mean == "sigmoid"
        if variance == "per_dim":
            self.logvar = nn.Parameter(torch.zeros(self.event_shape))
        else:
            self.register_buffer("logvar", torch.full(self.event_shape, math.log(fixed_variance)))

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (2, *self.event_shape) if self.variance == "per_datapoint" else self.event_shape

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        if self.variance == "per_datapoint":
            axis = params.dim() - len(self.event_shape) - 1
            mean, logvar = params.select(axis, 0), params.select(axis, 1)
        else:
            mean, logvar = params, self.logvar
        return (torch.sigmoid(mean) if self.squash else mean), logvar

    def distribution(self, params: Tensor) -> Independent:
        mean, logvar = self._split(params)
        if self.variance != "fixed":
            logvar = logvar.clamp(min=self.min_logvar)
        return Independent(Normal(mean, torch.exp(0.5 * logvar), validate_args=False), len(self.event_shape))

    def mean(self, params: Tensor) -> Tensor:
        return self._split(params)[0]

    def marginal_params(self, x: Tensor) -> Tensor:
        """The data mean; with a per-datapoint variance, also the log of the data variance (clamped
        below at ``min_logvar``) in the log-variance half."""
        mean = x.float().mean(0)
        if self.squash:  # the output whose sigmoid is the data mean
            mean = torch.logit(mean.clamp(1e-4, 1 - 1e-4))
        if self.variance != "per_datapoint":
            return mean
        logvar = torch.log(x.float().var(0, unbiased=False)).clamp(min=self.min_logvar)
        return torch.stack([mean, logvar])  # (2, *event_shape)
