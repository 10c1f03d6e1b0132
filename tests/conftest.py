import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from vaelab.config import RunConfig
from vaelab.distributions import GaussianLatent, GaussianLikelihood
from vaelab.models import VAE
from vaelab.nets import mlp

torch.set_flush_denormal(True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores, one thread each, and so do the processes they start. Two
    # OpenMP threads per process on a busy CPU spin at every barrier: a gradient-matrix cell that takes
    # 0.1 s alone took 7-13 s beside two other busy processes (docs/testing.md).
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Each test starts with this process's torch thread count: a study run in-process sets its own
    (``vaelab reproduce tighter-bounds`` sets 2), and under xdist a second thread spinning beside the
    other worker made later tests 10-60x slower (test_rws 0.2 s -> 12 s)."""
    n = torch.get_num_threads()
    yield
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    """Mark every test that reads $VAELAB_DATA (through the data_dir fixture) ``data``."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture
def data_dir() -> Path:
    """The shared data folder, from $VAELAB_DATA; tests needing it are skipped when unset."""
    d = os.environ.get("VAELAB_DATA")
    if not d:
        pytest.skip("VAELAB_DATA not set")
    return Path(d)


class LinearGaussian:
    """z ~ N(0, I_D), x | z ~ N(W z + b, s2 I). W has orthogonal columns, so the exact
    posterior N(S W^T (x - b) / s2, S) with S = (I + W^T W / s2)^-1 is diagonal and lies in the
    encoder's family. log p(x) = log N(x; b, W W^T + s2 I) exactly."""

    def __init__(self, x_dim=5, z_dim=2, s2=0.5, seed=0):
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64))
        self.W = q * torch.tensor([1.5, 0.7], dtype=torch.float64)[:z_dim]  # (x_dim, z_dim), orthogonal cols
        self.b = torch.randn(x_dim, generator=g, dtype=torch.float64)
        self.s2, self.x_dim, self.z_dim = s2, x_dim, z_dim
        self.S = torch.linalg.inv(torch.eye(z_dim, dtype=torch.float64) + self.W.T @ self.W / s2)

    def log_px(self, x):
        cov = self.W @ self.W.T + self.s2 * torch.eye(self.x_dim, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.double())

    def sample(self, n, seed=1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=g, dtype=torch.float64)
        return (
            z @ self.W.T + self.b + math.sqrt(self.s2) * torch.randn(n, self.x_dim, generator=g, dtype=torch.float64)
        ).float()

    def vae(self, encoder_shift=0.0, encoder_logvar_shift=0.0) -> VAE:
        """A vaelab VAE with this generative model; the encoder is exact when the shifts are 0."""
        enc = mlp(self.x_dim, [], 2 * self.z_dim)
        dec = nn.Linear(self.z_dim, self.x_dim)
        lik = GaussianLikelihood(self.x_dim, variance="fixed", fixed_variance=self.s2)
        with torch.no_grad():
            A = self.S @ self.W.T / self.s2  # (z_dim, x_dim): posterior mean = A (x - b)
            lin = enc[0]
            lin.weight[: self.z_dim] = A.float()
            lin.bias[: self.z_dim] = (-(A @ self.b) + encoder_shift).float()
            lin.weight[self.z_dim :] = 0
            lin.bias[self.z_dim :] = (torch.log(torch.diagonal(self.S)) + encoder_logvar_shift).float()
            dec.weight.copy_(self.W.float())
            dec.bias.copy_(self.b.float())
        return VAE(enc, dec, GaussianLatent(self.z_dim), lik)  # default prior: N(0, I)


@pytest.fixture
def linear_gaussian():
    return LinearGaussian()


def tiny_config(**over) -> RunConfig:
    """A small two-Gaussian run: 300 points, 2 epochs, [16] MLPs, 1 thread; ``over`` are dotted keys."""
    base = {
        "data.n_train": 300,
        "data.n_test": 100,
        "train.epochs": 2,
        "train.batch_size": 50,
        "model.encoder.hidden": [16],
        "train.log_every": 2,
        "train.num_threads": 1,
    }
    return RunConfig().override({**base, **over})
