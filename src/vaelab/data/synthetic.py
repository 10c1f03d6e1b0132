"""The two-Gaussian synthetic data of the prior-choice study (seed 000)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from ..errors import ConfigError
from .bundle import DataSplits
from .registry import DATASETS


@dataclass(frozen=True)
class TwoGaussians:
    """p_data(x) = p * N(x; mu1, I) + (1 - p) * N(x; mu2, I) on R^d.

    Args:
        p_data: weight of the first component.
        mu1: mean of the first component.
        mu2: mean of the second component (same length d).
        n_train: training sample size.
        n_test: test sample size.
        seed: RNG seed for the samples.
    """

    p_data: float = 0.3
    mu1: tuple = (-3.0, -3.0)
    mu2: tuple = (3.0, 3.0)
    n_train: int = 10000
    n_test: int = 5000
    seed: int = 0

    @classmethod
    def from_config(cls, c) -> TwoGaussians:
        """From a ``[data]`` table of kind two-gaussians (its options, defaults filled in)."""
        o = {**{k: v.default for k, v in DATASETS.options("two-gaussians").items()}, **c.options}
        return cls(o["p_data"], tuple(o["mu1"]), tuple(o["mu2"]), o["n_train"], o["n_test"], c.seed)

    def distribution(self) -> MixtureSameFamily:
        means = torch.tensor([self.mu1, self.mu2], dtype=torch.float32)  # (2, d)
        mix = Categorical(probs=torch.tensor([self.p_data, 1 - self.p_data]))
        return MixtureSameFamily(mix, Independent(Normal(means, torch.ones_like(means)), 1))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p_data(x) in nats, x: (N, d) -> (N,)."""
        return self.distribution().log_prob(x)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(x (n, d), component label (n,) with 0 = first component)."""
        means = torch.tensor([self.mu1, self.mu2], dtype=torch.float32)
        labels = (torch.rand(n, generator=generator) >= self.p_data).long()
        x = means[labels] + torch.randn(n, means.shape[1], generator=generator)
        return x, labels

    def entropy_mc(self, n: int = 200_000, seed: int = 12345) -> float:
        """Monte Carlo estimate of E_{p_data}[log p_data(x)] (the model ceiling), in nats."""
        x, _ = self.sample(n, torch.Generator().manual_seed(seed))
        return float(self.log_prob(x).double().mean())

    def splits(self, valid_fraction: float = 0.1) -> DataSplits:
        g = torch.Generator().manual_seed(self.seed)
        x_tr, y_tr = self.sample(self.n_train, g)
        x_te, y_te = self.sample(self.n_test, g)
        if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) or not 0 <= valid_fraction < 1e6:
            raise ConfigError(f"data.valid_fraction must be a number >= 0 (relative to n_train), got {valid_fraction!r}")
        n_va = int(round(valid_fraction * self.n_train))
        x_va, y_va = self.sample(n_va, g)  # a fresh validation sample, so the N training points stay N
        return DataSplits(
            x_tr,
            x_va,
            x_te,
            y_tr,
            y_va,
            y_te,
            info={
                "source": "two-gaussians",
                "p_data": self.p_data,
                "mu1": list(self.mu1),
                "mu2": list(self.mu2),
                "log_2pi": math.log(2 * math.pi),
            },
        )


@DATASETS.register("two-gaussians")
def two_gaussians(
    seed: int = 0,
    n_train: int = 10000,
    n_test: int = 5000,
    p_data: float = 0.3,
    mu1: list = [-3.0, -3.0],  # noqa: B006 (registry option defaults: read, never mutated)
    mu2: list = [3.0, 3.0],  # noqa: B006
    valid_fraction: float = 0.1,
) -> DataSplits:
    """The synthetic two-Gaussian data of the prior-choice study (seed 000).

    Args:
        n_train: training points (validation adds a fresh valid_fraction * n_train).
        n_test: test points.
        p_data: weight of the first component, in (0, 1).
        mu1: mean of the first component.
        mu2: mean of the second component (same length).
        valid_fraction: size of the validation sample relative to n_train.
    """
    if not 0 < p_data < 1:
        raise ConfigError(f"data.p_data must be in (0, 1), got {p_data}")
    if len(mu1) != len(mu2) or not mu1:
        raise ConfigError(f"data.mu1 and data.mu2 must be lists of the same length, got {mu1}, {mu2}")
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"data.n_train and data.n_test must be >= 1, got {n_train}, {n_test}")
    tg = TwoGaussians(p_data, tuple(float(m) for m in mu1), tuple(float(m) for m in mu2), n_train, n_test, seed)
    return tg.splits(valid_fraction)
