"""The decoder's output bias starts at the data's marginal (vaelab.models.init)."""

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.data import load_data
from vaelab.errors import ConfigError
from vaelab.models import build_model, init_decoder_bias
from vaelab.train.run import make_data_and_model


def _model(likelihood="bernoulli", decoder=None, x_shape=(6,), prior="standard_normal"):
    over = {"model.likelihood": likelihood, "model.encoder.hidden": [5], "model.latent.dim": 2, "model.prior": prior}
    if decoder:
        over["model.decoder"] = decoder
    return build_model(RunConfig().override(over).model, x_shape)


def _zero_weights(model):  # p(x|z) then no longer depends on z: the bias alone sets it
    with torch.no_grad():
        list(model.decoder.modules())[-1].weight.zero_()


def test_bernoulli_decoder_starts_at_the_pixel_means():
    x = torch.tensor([[1, 0, 0, 1, 1, 0], [1, 0, 1, 1, 0, 0], [1, 0, 0, 0, 1, 0], [1, 0, 1, 1, 0, 0]]).float()
    model = _model()
    assert init_decoder_bias(model, x, "auto")
    _zero_weights(model)
    mean = model.likelihood.mean(model.decode(torch.randn(3, 2)))  # (3, 6)
    # pixels always on / always off are clamped to 1 - 1e-3 / 1e-3: finite logits
    expected = x.mean(0).clamp(1e-3, 1 - 1e-3).expand(3, 6)
    torch.testing.assert_close(mean, expected)


def test_gaussian_per_datapoint_decoder_starts_at_the_data_mean_and_variance():
    x = torch.randn(500, 6) * torch.arange(1.0, 7.0) + 3.0
    model = _model({"kind": "gaussian", "variance": "per_datapoint"})
    assert init_decoder_bias(model, x, "data-mean")
    _zero_weights(model)
    p = model.conditional(torch.randn(4, 2))  # batch (4,), event (6,)
    torch.testing.assert_close(p.mean, x.mean(0).expand(4, 6))
    torch.testing.assert_close(p.variance, x.var(0, unbiased=False).expand(4, 6), rtol=1e-4, atol=1e-5)


def test_default_leaves_the_bias_and_unsupported_decoders_are_refused_or_skipped():
    x = torch.bernoulli(torch.full((20, 1, 8, 8), 0.3))
    model = _model(x_shape=(1, 8, 8))
    before = list(model.decoder.modules())[-1].bias.clone()
    assert not init_decoder_bias(model, x.flatten(1).view(20, 1, 8, 8), "default")
    torch.testing.assert_close(list(model.decoder.modules())[-1].bias, before)
    conv = _model(decoder={"kind": "conv", "channels": [4]}, x_shape=(1, 8, 8))
    assert not init_decoder_bias(conv, x, "auto")  # a transposed convolution's bias is per channel
    with pytest.raises(ConfigError, match="decoder has no per-output bias"):
        init_decoder_bias(conv, x, "data-mean")
    with pytest.raises(ConfigError, match="decoder_bias must be one of"):
        init_decoder_bias(model, x, "mean")


def test_fit_initializes_from_the_training_split():
    cfg = RunConfig().override({"data.kind": "two-gaussians", "model.encoder.hidden": [4]})
    data, model, _ = make_data_and_model(cfg)
    torch.testing.assert_close(list(model.decoder.modules())[-1].bias, data.train.mean(0))
    _, untouched, _ = make_data_and_model(cfg.override({"model.decoder_bias": "default"}), data=data)
    assert not torch.allclose(list(untouched.decoder.modules())[-1].bias, data.train.mean(0))


@pytest.mark.slow
def test_vamp_prior_keeps_its_latents_on_static_mnist(data_dir):
    """The regression test of the collapse: with PyTorch's default output bias, a VampPrior VAE
    (40 latents, 300-300 tanh, Adam 1e-3) on static MNIST had 0 active units within 20 steps and
    never recovered; started at the data mean it keeps all of them."""
    torch.manual_seed(0)
    cfg = RunConfig().override(
        {
            "data.kind": "static-mnist",
            "data.data_dir": str(data_dir),
            "data.binarize": "auto",
            "model.likelihood": "bernoulli",
            "model.latent.dim": 40,
            "model.encoder": {"kind": "mlp", "hidden": [300, 300], "activation": "tanh"},
            "model.prior": {"kind": "vamp", "components": 50},
        }
    )
    data = load_data(cfg.data, "bernoulli")
    x = data.train[:5000]
    model = build_model(cfg.model, data.x_shape, pseudo_init=x[:50])
    init_decoder_bias(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(60):
        t = model.log_weight_terms(x[torch.randint(0, 5000, (100,))])
        loss = -(t.log_px_z + t.log_pz - t.log_qz).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        active = (model.posterior(x[:1000]).mean.var(0) > 0.01).sum().item()
    assert active >= 20, f"{active} active units: the VampPrior collapsed"
