import math

import pytest
import torch

from vaelab.checkpoint import load_checkpoint
from vaelab.config import RunConfig
from vaelab.errors import CheckpointError, TrainingDivergedError
from vaelab.train import fit, load_run


def tiny(**kw):
    base = dict(n_train=300, n_test=100, epochs=2, batch_size=50, hidden=[16], log_every=2, num_threads=1)
    base.update(kw)
    return RunConfig().replace(**base)


def test_same_seed_gives_identical_numbers(tmp_path):
    a = fit(tiny(prior="mog"), tmp_path / "a", quiet=True, tensorboard=False)
    b = fit(tiny(prior="mog"), tmp_path / "b", quiet=True, tensorboard=False)
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    c = fit(tiny(prior="mog", seed=1), tmp_path / "c", quiet=True, tensorboard=False)
    assert strip(c.history) != strip(a.history)


def test_resume_matches_an_uninterrupted_run(tmp_path):
    full = fit(tiny(epochs=3), tmp_path / "full", quiet=True, tensorboard=False)
    fit(tiny(epochs=1), tmp_path / "part", quiet=True, tensorboard=False)
    resumed = fit(tiny(epochs=3), tmp_path / "part", resume=True, quiet=True, tensorboard=False)
    assert [r["valid_elbo"] for r in resumed.history] == [r["valid_elbo"] for r in full.history]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_run_directory_contents_and_labels(tmp_path):
    res = fit(tiny(kl_warmup_steps=4, beta=0.5), tmp_path / "r", quiet=True)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.toml", "metrics.csv", "metrics.jsonl", "diagnostics.jsonl", "last.pt", "best.pt", "tb"} <= names
    row = res.history[-1]
    assert math.isclose(row["train_elbo"], row["train_rec"] - row["train_kl"], rel_tol=1e-5)
    assert row["beta"] == 0.5  # warm-up finished: 12 steps > 4
    first = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0]
    assert "\"beta\": 0.125" in first  # first log after 2 steps; that step used beta = 0.5 * 1/4


def test_training_improves_the_elbo(tmp_path):
    res = fit(tiny(epochs=8, n_train=1000), tmp_path / "r", quiet=True, tensorboard=False)
    assert res.history[-1]["valid_elbo"] > res.history[0]["valid_elbo"] + 0.3


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    fit(tiny(epochs=1), tmp_path / "r", quiet=True, tensorboard=False)
    good = load_checkpoint(tmp_path / "r" / "last.pt")
    with pytest.raises(TrainingDivergedError, match="last good checkpoint"):
        fit(tiny(epochs=3, lr=1e12, optimizer="sgd"), tmp_path / "r", resume=True, quiet=True, tensorboard=False)
    kept = load_checkpoint(tmp_path / "r" / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())
    assert all(torch.equal(good["model"][k], kept["model"][k]) for k in good["model"])


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    fit(tiny(epochs=1), tmp_path / "r", quiet=True, tensorboard=False)
    (tmp_path / "r" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_run(tmp_path / "r", "best")
    with pytest.raises(CheckpointError, match="already holds a run"):
        fit(tiny(epochs=1), tmp_path / "r", quiet=True, tensorboard=False)


@pytest.mark.parametrize("prior", ["standard_normal", "mog", "vamp"])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_every_prior_trains_with_every_bound(tmp_path, prior, objective):
    res = fit(tiny(prior=prior, objective=objective, n_samples=3, epochs=1), tmp_path / "r", quiet=True,
              tensorboard=False)
    assert math.isfinite(res.history[-1]["valid_elbo"])
    if objective == "iwae":
        assert res.history[-1]["train_bound"] >= res.history[-1]["train_elbo"] - 1e-4
