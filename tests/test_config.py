import re

import pytest

from vaelab import config as C
from vaelab.errors import ConfigError


def test_toml_round_trip(tmp_path):
    cfg = C.RunConfig().override(
        {
            "model.latent.dim": 7,
            "model.encoder.hidden": [32, 16],
            "model.prior": "mog",
            "model.prior.weights": "trainable",
            "model.prior.fixed_weights": [0.4, 0.6],
            "train.beta": 0.5,
            "model.decoder": {"kind": "mlp", "hidden": [8]},
        }
    )
    p = tmp_path / "run.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(p) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("[model.latent]\nkind = 'gaussian'\ndimm = 3\n", "unknown option 'model.latent.dimm' for latent family 'gaussian'"),
        ("[modle]\nx = 3\n", "unknown config section 'modle'"),
        ("[model.latent]\nkind = 'gaussian'\ndim = 'three'\n", "'model.latent.dim' must be int"),
        ("[train]\nepochs = 2.5\n", "'train.epochs' must be int"),
        ("[model.prior]\nkind = 'laplace'\n", "'model.prior.kind' must be one of"),
        ("[train]\nlr = -1.0\n", "'train.lr' must be > 0"),
        ("[model.prior]\nkind = 'mog'\n[train]\nkl = 'analytic'\n[train.objective]\nkind = 'iwae'\n", "ELBO"),
        ("[model]\nupper_z_dims = [2]\n[train]\nkl = 'analytic'\n", "several stochastic layers"),
        ("[data]\nkind = 'mnist'\nn_train = 5\n", "unknown option 'data.n_train' for data set 'mnist'"),
        ("[model.prior]\ncomponents = 3\n", "needs a 'kind'"),
    ],
)
def test_bad_configs_raise_naming_the_key(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        C.load(p)


@pytest.mark.parametrize(
    "old, new",
    [
        ("[model]\nz_dim = 3\n", r"\[model.latent\] dim"),
        ("[model]\nprior_components = 3\n", r"\[model.prior\] components"),
        ("[data]\ndataset = 'mnist'\n", r"\[data\] kind"),
        ("[train]\nn_groups = 2\n", r"\[train.objective\] groups"),
    ],
)
def test_old_flat_keys_name_their_new_place(tmp_path, old, new):
    p = tmp_path / "old.toml"
    p.write_text(old)
    with pytest.raises(ConfigError, match="moved in vaelab 0.2: write " + new):
        C.load(p)


def test_a_kind_name_is_shorthand_for_its_table():
    cfg = C.from_dict({"model": {"prior": "mog"}, "train": {"objective": "iwae"}})
    assert cfg.model.prior == C.Component("mog", {}) and cfg.train.objective.kind == "iwae"


def test_set_overrides_parse_toml_values_and_kinds_reset_options():
    over = C.parse_set(["model.latent.dim=4", "train.lr=1e-4", "data.kind=digits", "model.encoder.hidden=[8, 8]"])
    cfg = C.with_overrides(C.RunConfig(), over)
    assert cfg.model.latent.options["dim"] == 4 and cfg.train.lr == 1e-4 and cfg.data.kind == "digits"
    assert cfg.model.encoder.options["hidden"] == [8, 8]
    vamp = cfg.override({"model.prior": "vamp", "model.prior.components": 7})
    assert vamp.model.prior.options == {"components": 7}
    assert vamp.override({"model.prior": "mog"}).model.prior.options == {}  # a new kind starts from its defaults
    with pytest.raises(ConfigError, match="SECTION.KEY"):
        C.with_overrides(C.RunConfig(), {"zz": 1})
    with pytest.raises(ConfigError, match="key=value"):
        C.parse_set(["z_dim"])


def test_int_is_accepted_for_float_but_bool_is_not_int():
    assert C.RunConfig().override({"train.lr": 1}).train.lr == 1.0
    with pytest.raises(ConfigError):
        C.RunConfig().override({"train.epochs": True})


def test_old_checkpoint_configs_migrate():
    old = {
        "data": {
            "dataset": "mnist",
            "path": "",
            "mnist_split": "60k-10k",
            "n_train": 10000,
            "data_seed": 3,
            "binarize": "dynamic",
            "data_dir": "",
        },
        "model": {
            "z_dim": 50,
            "hidden": [200, 200],
            "activation": "tanh",
            "likelihood": "bernoulli",
            "decoder_variance": "fixed",
            "fixed_variance": 1.0,
            "prior": "vamp",
            "prior_components": 10,
            "prior_weights": "fixed",
            "prior_fixed_weights": [],
            "upper_z_dims": [],
            "upper_hidden": [100],
        },
        "train": {"objective": "miwae", "n_samples": 8, "n_groups": 4, "ciwae_beta": 0.5, "estimator": "stl", "epochs": 3},
    }
    cfg = C.from_dict(C.migrate(old))
    assert cfg.data.kind == "mnist" and cfg.data.options == {"split": "60k-10k"} and cfg.data.seed == 3
    assert cfg.model.latent.options == {"dim": 50} and cfg.model.prior == C.Component("vamp", {"components": 10})
    assert cfg.model.likelihood.kind == "bernoulli" and cfg.model.encoder.options["hidden"] == [200, 200]
    assert cfg.train.objective == C.Component("miwae", {"groups": 4}) and cfg.train.estimator.kind == "stl"


@pytest.mark.parametrize(
    "key,hint",
    [("train.alpha", "did you mean 'train.objective.alpha'?"), ("train.epoch", "did you mean 'train.epochs'?"),
     ("model.latnt.dim", "did you mean 'model.latent.dim'?"), ("model.components", "'model.prior.components'")],
)  # fmt: skip
def test_a_misspelled_or_misplaced_key_gets_a_did_you_mean(key, hint):
    """Issue 43, finding 6."""
    with pytest.raises(ConfigError, match=re.escape(hint)):
        C.RunConfig().override({key: 1})
