"""``train.precision = "bf16"``: the networks in bfloat16, the densities and bounds in float32.

Each network of a model (encoder, decoder, classifier, the nets of the upper stochastic layers) runs
its forward pass under ``torch.autocast(dtype=torch.bfloat16)`` (matrix products and convolutions in
bf16, autocast's own float32 list elsewhere) and hands float32 outputs on. Everything after the
networks stays float32: the latent's and the likelihood's log-densities, the log-weights
log p(x, z) - log q(z|x), the log-sum-exp of the IWAE bound and the IS accumulation (float64). bf16
keeps float32's exponent range, so no loss scaling is needed (Micikevicius et al. 2018 is about fp16).

Why wrap each network's ``forward`` rather than the whole step in ``autocast``: under a global
autocast the elementwise log-density arithmetic would follow the bf16 network outputs (an 8-bit
mantissa: a 784-pixel Bernoulli log-likelihood of ~-100 nats would carry ~0.5-nat rounding steps).
The wrapper is an instance attribute bound to the module (``types.MethodType``), so state dicts and
checkpoints are the same in either precision, and ``copy.deepcopy`` rebinds it to the copy.
"""

from __future__ import annotations

import functools
import time
import types
import warnings

import torch
from torch import Tensor, nn

from ..errors import ConfigError

PRECISIONS = ("fp32", "bf16")


def networks(model: nn.Module) -> list[nn.Module]:
    """The networks of a :class:`~vaelab.models.VAE`: encoder, decoder, classifier, upper layers' nets."""
    nets = [getattr(model, "encoder", None), getattr(model, "decoder", None), getattr(model, "classifier", None)]
    for layer in [*getattr(model, "upper_encoders", ()), *getattr(model, "upper_decoders", ())]:
        nets.append(getattr(layer, "net", None))
    return [n for n in nets if n is not None]


def set_precision(model: nn.Module, precision: str) -> nn.Module:
    """Run ``model``'s networks in ``precision`` ("fp32" or "bf16"), in place; returns ``model``.

    Raises:
        ConfigError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for net in networks(model):
        net.__dict__.pop("forward", None)  # back to the class's forward
        if precision == "bf16":
            net.forward = types.MethodType(_bf16_forward, net)
    return model


#: bf16 at more than this multiple of fp32's time for the same matrix product: warned about
SLOWER = 1.2


@functools.cache
def bf16_cost(device: str = "cpu") -> float:
    """Measured now, once per process and device: a forward and backward pass of the IWAE paper's MLP
    (784-200-200-100, batch 100) under bf16 autocast over its float32 time, best of 5 rounds of 10 (on a
    CPU with AVX512-BF16 ~0.5; without fast bf16 kernels several times 1)."""
    net = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 100)).to(device)
    x = torch.randn(100, 784, device=device)

    def best(bf16: bool) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(10):
                with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                    out = net(x)
                out.float().sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times)

    best(True)  # warm-up: kernel selection
    return best(True) / best(False)


def warn_if_slow(precision: str, device: torch.device | str) -> None:
    """One warning when bf16 on a CPU is slower than float32 there (measured by :func:`bf16_cost`)."""
    if precision != "bf16" or torch.device(device).type != "cpu":
        return
    cost = bf16_cost("cpu")
    if cost > SLOWER:
        warnings.warn(
            f"train.precision = 'bf16': on this CPU an MLP's forward and backward pass take {cost:.1f}x their float32 time "
            "(no fast bf16 kernels here), so training will be slower, not faster; use precision = 'fp32'",
            stacklevel=3,
        )


def precision_of(model: nn.Module) -> str:
    """The precision :func:`set_precision` last set ("fp32" when never)."""
    nets = networks(model)
    return "bf16" if nets and "forward" in nets[0].__dict__ else "fp32"


def _bf16_forward(self: nn.Module, *args, **kwargs):
    device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
    with torch.autocast(device, dtype=torch.bfloat16):
        out = type(self).forward(self, *args, **kwargs)
    return _to_float32(out)


def _to_float32(out):
    if isinstance(out, Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, tuple | list):
        return type(out)(_to_float32(o) for o in out)
    return out
