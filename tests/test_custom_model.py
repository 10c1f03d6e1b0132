"""A model built by hand in Python trains through vaelab's trainer, is saved, and reloads through
the documented path; old (vaelab 0.1) run directories still load."""

import pytest
import torch
from torch import nn

from vaelab import VAE, RunConfig, fit, importance_sampled_log_likelihood, load_run
from vaelab.checkpoint import load_checkpoint, save_checkpoint
from vaelab.data import load_data
from vaelab.distributions import BernoulliLikelihood, GaussianLatent
from vaelab.errors import CheckpointError


def conv_vae(z: int = 4, width: int = 8) -> VAE:
    """A user's own small conv net on 8x8 digits (the README's example, shrunk)."""
    enc = nn.Sequential(nn.Conv2d(1, width, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 16, 2 * z))
    dec = nn.Sequential(
        nn.Linear(z, width * 16), nn.ReLU(), nn.Unflatten(1, (width, 4, 4)), nn.ConvTranspose2d(width, 1, 4, 2, 1)
    )
    return VAE(enc, dec, latent=GaussianLatent(z), likelihood=BernoulliLikelihood((1, 8, 8)))


def _cfg(**over):
    return RunConfig().override(
        {
            "data.kind": "digits",
            "model.likelihood": "bernoulli",
            "train.epochs": 3,
            "train.lr": 3e-3,
            "train.num_threads": 1,
            **over,
        }
    )


def test_a_hand_built_model_trains_saves_and_reloads(tmp_path):
    torch.manual_seed(0)
    res = fit(_cfg(), tmp_path / "r", model=conv_vae(), quiet=True, tensorboard=False)
    assert res.history[-1]["valid_elbo"] > res.history[0]["valid_elbo"]
    with pytest.raises(CheckpointError, match="built in Python; pass it back"):
        load_run(tmp_path / "r")
    data = load_data(_cfg().data, "bernoulli")
    res_py = fit(_cfg(**{"train.epochs": 1}), tmp_path / "py", model=conv_vae(), data=data, quiet=True, tensorboard=False)
    with pytest.raises(CheckpointError, match="trained on data passed from Python"):
        load_run(tmp_path / "py", model=conv_vae())
    assert load_run(tmp_path / "py", model=conv_vae(), data=data)[2] is data and res_py.history
    cfg, model, data = load_run(tmp_path / "r", "last", model=conv_vae())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), res.model.state_dict().values()))
    ll = importance_sampled_log_likelihood(model, data.test[:50], k=64)
    assert ll.mean > res.history[-1]["valid_elbo"] - 5
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_run(tmp_path / "r", "last", model=conv_vae(width=6))


def test_a_registered_model_reloads_from_its_spec_alone(tmp_path):
    fit(
        _cfg(**{"model.encoder": {"kind": "conv", "channels": [4]}, "model.latent.dim": 3}),
        tmp_path / "r",
        quiet=True,
        tensorboard=False,
    )
    ckpt = load_checkpoint(tmp_path / "r" / "last.pt")
    assert ckpt["model_spec"]["x_shape"] == [1, 8, 8] and ckpt["model_spec"]["model"]["encoder"]["kind"] == "conv"
    _, model, data = load_run(tmp_path / "r", load_data_too=False)
    assert data is None and model.x_shape == (1, 8, 8) and model.z_dim == 3


def test_vaelab_0_1_run_directories_still_load(tmp_path):
    run = tmp_path / "old"
    res = fit(
        RunConfig().override(
            {
                "data.n_train": 200,
                "train.epochs": 1,
                "model.encoder.hidden": [8],
                "model.prior": {"kind": "mog", "components": 2},
            }
        ),
        run,
        quiet=True,
        tensorboard=False,
    )
    new = load_checkpoint(run / "last.pt")
    # rewrite it as vaelab 0.1 wrote it: flat config, GaussianEncoder keys, no format / spec
    old_state = {
        ("encoder.net." + k[len("encoder.") :] if k.startswith("encoder.") else k): v for k, v in new["model"].items()
    }
    old_cfg = {
        "data": {
            "dataset": "two-gaussians",
            "path": "",
            "data_dir": "",
            "binarize": "auto",
            "mnist_split": "50k-10k-10k",
            "n_train": 200,
            "n_test": 5000,
            "p_data": 0.3,
            "mu1": [-3.0, -3.0],
            "mu2": [3.0, 3.0],
            "valid_fraction": 0.1,
            "test_fraction": 0.2,
            "data_seed": 0,
        },
        "model": {
            "z_dim": 2,
            "hidden": [8],
            "upper_z_dims": [],
            "upper_hidden": [100, 100],
            "activation": "tanh",
            "likelihood": "gaussian",
            "decoder_variance": "fixed",
            "fixed_variance": 1.0,
            "prior": "mog",
            "prior_components": 2,
            "prior_weights": "fixed",
            "prior_fixed_weights": [],
        },
        "train": {
            "objective": "elbo",
            "n_samples": 1,
            "n_groups": 1,
            "ciwae_beta": 0.5,
            "estimator": "reparam",
            "optimizer": "adam",
            "lr": 1e-3,
            "epochs": 1,
        },
    }
    for name in ("last.pt", "best.pt"):
        save_checkpoint(
            {k: v for k, v in new.items() if k not in ("format", "model_spec")} | {"model": old_state, "config": old_cfg},
            run / name,
        )
    cfg, model, data = load_run(run)
    assert cfg.model.prior.kind == "mog" and data.x_shape == (2,)
    for k, v in res.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.warns(UserWarning, match="fresh adam state"):  # and it resumes
        fit(cfg.override({"train.epochs": 2}), run, resume=True, quiet=True, tensorboard=False)


def test_data_of_the_wrong_shape_for_a_model_is_a_clear_error(tmp_path):
    data = load_data(RunConfig().override({"data.kind": "digits"}).data, "bernoulli")
    model = VAE(nn.Flatten(), nn.Linear(2, 64), GaussianLatent(1), BernoulliLikelihood((64,)))
    with pytest.raises(ValueError, match=r"expected shape \(N, 64\), got \(\d+, 1, 8, 8\)"):
        fit(_cfg(), tmp_path / "r", model=model, data=data, quiet=True)


def test_a_network_of_the_wrong_width_is_named_with_the_width_it_needs():
    """8 encoder outputs for GaussianLatent(8) would otherwise be split into a 4-d latent and the
    error would surface later, blaming the decoder."""
    from torch import nn

    from vaelab.distributions import BernoulliLikelihood, GaussianLatent
    from vaelab.errors import ConfigError

    x = torch.zeros(3, 4)
    bad_enc = VAE(nn.Linear(4, 8), nn.Linear(8, 4), latent=GaussianLatent(8), likelihood=BernoulliLikelihood((4,)))
    with pytest.raises(ConfigError, match=r"encoder \(Linear\) outputs 8 .* needs 16"):
        bad_enc.posterior(x)
    bad_dec = VAE(nn.Linear(4, 16), nn.Linear(8, 5), latent=GaussianLatent(8), likelihood=BernoulliLikelihood((4,)))
    with pytest.raises(ConfigError, match=r"decoder \(Linear\) outputs 5 .* needs 4"):
        bad_dec.decode(torch.zeros(2, 3, 8))
