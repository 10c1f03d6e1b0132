"""The same workloads in pythae 0.1.2 and Pyro, written as each library's documentation shows.

Runs in the peers' own virtual environment (``bench_workloads.py --setup-peers`` makes it; neither
library is a vaelab dependency), so this file imports only torch, pythae and pyro. Model: the IWAE
paper's 784-200-200-50 tanh MLP, Bernoulli decoder, Adam 1e-3, batch 100, PyTorch's default init.

- pythae: its ``VAE`` / ``IWAE`` models with custom encoder/decoder classes, trained by its
  ``BaseTrainer`` for one epoch (timed: ``trainer.train()``, which also keeps a copy of the best
  model and saves the final one, as vaelab's ``fit`` writes its checkpoint). pythae has no dynamic
  binarization, so the dataset binarizes in ``__getitem__``, the way a pythae user adds it.
  Evaluation: ``model.get_nll(x, n_samples=K)`` at its default batch size of 100.
- Pyro: model/guide functions with ``pyro.module``, a ``pyro.plate`` over the batch and
  ``SVI`` with ``pyro.optim.Adam``; ``TraceMeanField_ELBO`` (the analytic KL) for the VAE and
  ``RenyiELBO(alpha=0, num_particles=K, vectorize_particles=True)`` (the IWAE bound) for IWAE-K.
  Evaluation: ``vectorized_importance_weights`` one data point at a time (its log-weights are
  summed over every plate, so a batch would give one joint weight, not one per point).
"""

from __future__ import annotations

import math
import tempfile
import time

import torch
from torch import nn


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------- pythae
def _pythae_model(k: int):
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.net = _mlp([784, 200, 200, 100])

        def forward(self, x):
            mu, log_var = self.net(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = _mlp([50, 200, 200, 784])

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(-1, 1, 28, 28))

    common = dict(input_dim=(1, 28, 28), latent_dim=50, reconstruction_loss="bce")
    if k == 1:
        return VAE(VAEConfig(**common), encoder=Encoder(), decoder=Decoder())
    return IWAE(IWAEConfig(**common, number_samples=k), encoder=Encoder(), decoder=Decoder())


def pythae_fit(x_train, k: int, seed: int) -> float:
    from pythae.data.datasets import BaseDataset, DatasetOutput
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class DynamicallyBinarized(BaseDataset):
        def __getitem__(self, index):
            return DatasetOutput(data=torch.bernoulli(self.data[index]), labels=self.labels[index])

    torch.manual_seed(seed)
    model = _pythae_model(k)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BaseTrainerConfig(
            output_dir=tmp, num_epochs=1, learning_rate=1e-3, per_device_train_batch_size=100, no_cuda=True
        )
        data = DynamicallyBinarized(x_train, torch.zeros(x_train.shape[0]))
        trainer = BaseTrainer(model, train_dataset=data, training_config=cfg)
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def pythae_is(x, k: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = _pythae_model(1).eval()
    t = time.perf_counter()
    with torch.no_grad():
        log_px = model.get_nll(x, n_samples=k)  # despite the name it returns mean log p(x), nats
    return time.perf_counter() - t, float(log_px)


# ------------------------------------------------------------------------------------------ Pyro
class _PyroVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = _mlp([784, 200, 200, 100]), _mlp([50, 200, 200, 784])

    def model(self, x):
        import pyro
        import pyro.distributions as dist

        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 50), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x):
        import pyro
        import pyro.distributions as dist

        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            mu, log_var = self.encoder(x).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(mu, torch.exp(0.5 * log_var)).to_event(1))


def pyro_svi(x_train, k: int, seed: int) -> float:
    import pyro
    from pyro.infer import SVI, RenyiELBO, TraceMeanField_ELBO
    from pyro.optim import Adam

    pyro.clear_param_store()
    torch.manual_seed(seed)
    vae = _PyroVAE()
    loss = TraceMeanField_ELBO() if k == 1 else RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), loss=loss)
    g = torch.Generator().manual_seed(seed)
    x_train = x_train.reshape(x_train.shape[0], -1)  # (N, 784)
    t = time.perf_counter()
    perm = torch.randperm(x_train.shape[0], generator=g)
    for i in range(0, x_train.shape[0], 100):
        svi.step(torch.bernoulli(x_train[perm[i : i + 100]], generator=g))
    return time.perf_counter() - t


def pyro_is(x, k: int, seed: int) -> tuple[float, float]:
    from pyro.infer.importance import vectorized_importance_weights

    torch.manual_seed(seed)
    vae = _PyroVAE().eval()
    x = x.reshape(x.shape[0], -1)  # (N, 784)
    t = time.perf_counter()
    total = 0.0
    with torch.no_grad():
        for i in range(x.shape[0]):
            xi = x[i : i + 1]  # (1, 784)
            log_w, _, _ = vectorized_importance_weights(vae.model, vae.guide, xi, num_samples=k, max_plate_nesting=1)
            total += float(torch.logsumexp(log_w, 0)) - math.log(k)
    return time.perf_counter() - t, total / x.shape[0]


TRAIN = {"pythae 0.1.2": pythae_fit, "Pyro 1.9.2": pyro_svi}
EVALUATE = {"pythae 0.1.2": pythae_is, "Pyro 1.9.2": pyro_is}
