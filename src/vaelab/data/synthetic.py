"""The two-Gaussian synthetic data of the prior-choice study (seed 000)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from .bundle import DataSplits


@dataclass(frozen=True)
class TwoGaussians:
    """p_data(x) = p * N(x; mu1, I) + (1 - p) * N(x; mu2, I) on R^d.

    Args:
        p_data: weight of the first component.
        mu1, mu2: component means (same length d).
        n_train, n_test: sample sizes. seed: RNG seed for the samples.
    """

    p_data: float = 0.3
    mu1: tuple = (-3.0, -3.0)
    mu2: tuple = (3.0, 3.0)
    n_train: int = 10000
    n_test: int = 5000
    seed: int = 0

    @classmethod
    def from_config(cls, c) -> "TwoGaussians":
        return cls(c.p_data, tuple(c.mu1), tuple(c.mu2), c.n_train, c.n_test, c.data_seed)

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
        n_va = int(round(valid_fraction * self.n_train))
        x_va, y_va = self.sample(n_va, g)  # a fresh validation sample, so the N training points stay N
        return DataSplits(x_tr, x_va, x_te, y_tr, y_va, y_te,
                          info={"source": "two-gaussians", "p_data": self.p_data, "mu1": list(self.mu1),
                                "mu2": list(self.mu2), "log_2pi": math.log(2 * math.pi)})
