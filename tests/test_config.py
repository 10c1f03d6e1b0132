import pytest

from vaelab import config as C
from vaelab.errors import ConfigError


def test_toml_round_trip(tmp_path):
    cfg = C.RunConfig().replace(z_dim=7, hidden=[32, 16], prior="mog", prior_weights="trainable", beta=0.5)
    p = tmp_path / "run.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(p) == cfg


@pytest.mark.parametrize("text, match", [
    ("[model]\nzdim = 3\n", "unknown config key 'model.zdim'"),
    ("[modle]\nz_dim = 3\n", "unknown config section 'modle'"),
    ("[model]\nz_dim = 'three'\n", "'model.z_dim' must be int"),
    ("[train]\nepochs = 2.5\n", "'train.epochs' must be int"),
    ("[model]\nprior = 'laplace'\n", "'model.prior' must be one of"),
    ("[train]\nlr = -1.0\n", "'train.lr' must be > 0"),
    ("[model]\nprior = 'mog'\n[train]\nkl = 'analytic'\n", "closed-form KL"),
])
def test_bad_configs_raise_naming_the_key(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        C.load(p)


def test_set_overrides_parse_toml_values():
    over = C.parse_set(["model.z_dim=4", "train.lr=1e-4", "data.dataset=digits", "hidden=[8, 8]"])
    cfg = C.with_overrides(C.RunConfig(), over)
    assert cfg.model.z_dim == 4 and cfg.train.lr == 1e-4 and cfg.data.dataset == "digits"
    assert cfg.model.hidden == [8, 8]
    with pytest.raises(ConfigError, match="unknown config key 'zz'"):
        C.with_overrides(C.RunConfig(), {"zz": 1})
    with pytest.raises(ConfigError, match="key=value"):
        C.parse_set(["z_dim"])


def test_int_is_accepted_for_float_but_bool_is_not_int():
    assert C.RunConfig().replace(lr=1).train.lr == 1.0
    with pytest.raises(ConfigError):
        C.RunConfig().replace(epochs=True)
