import warnings

import numpy as np
import pytest
import torch

from vaelab.config import RunConfig
from vaelab.data import TwoGaussians, load_array, load_data, load_mnist
from vaelab.errors import DataError, DataNotFoundError


def test_two_gaussians_sizes_labels_and_exact_log_prob():
    tg = TwoGaussians(p_data=0.3, n_train=4000, n_test=100, seed=0)
    s = tg.splits(0.1)
    assert s.train.shape == (4000, 2) and s.test.shape == (100, 2) and s.valid.shape == (400, 2)
    frac = s.train_labels.float().mean().item()  # label 1 = second component, weight 0.7
    assert abs(frac - 0.7) < 4 * (0.21 / 4000) ** 0.5
    x = torch.tensor([[-3.0, -3.0]])
    expected = np.log(0.3 / (2 * np.pi) + 0.7 / (2 * np.pi) * np.exp(-0.5 * 72))
    assert abs(tg.log_prob(x).item() - expected) < 1e-5


def test_array_formats_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x, y=np.arange(20))
    np.savetxt(tmp_path / "c.csv", x, delimiter=",", header="a,b,c", comments="")
    for name in ("a.npy", "b.npz", "c.csv"):
        got, _ = load_array(tmp_path / name)
        np.testing.assert_allclose(got, x, rtol=1e-6)
    assert load_array(tmp_path / "b.npz")[1].shape == (20,)


def _array_cfg(path, **kw):
    return (
        RunConfig().override({"data.kind": "array", "data.path": str(path), **{f"data.{k}": v for k, v in kw.items()}}).data
    )


def test_nan_data_is_rejected_with_row_numbers(tmp_path):
    x = np.zeros((10, 2))
    x[3, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"1 NaN/inf values \(first rows \[3\]\)"):
        load_data(_array_cfg(tmp_path / "x.npy"))


def test_wrong_dimensionality_is_rejected_and_images_keep_their_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(4))
    with pytest.raises(DataError, match="at least 2 axes"):
        load_data(_array_cfg(tmp_path / "x.npy"))
    np.save(tmp_path / "img.npy", np.zeros((40, 3, 5)))
    assert load_data(_array_cfg(tmp_path / "img.npy")).x_shape == (3, 5)


def test_memory_mapped_npy_stays_on_disk_and_trains(tmp_path):
    """data.mmap: the training split reads the file itself (a write to the file shows through), the
    split is contiguous, and training runs on it."""
    from vaelab.train import fit

    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    splits = load_data(_array_cfg(tmp_path / "x.npy", mmap=True))
    assert (splits.train.shape[0], splits.valid.shape[0], splits.test.shape[0]) == (210, 30, 60)
    torch.testing.assert_close(splits.test, torch.from_numpy(x[240:]))  # file order: test last
    on_disk = np.load(tmp_path / "x.npy", mmap_mode="r+")
    on_disk[7, 2] = 123.0
    on_disk.flush()
    assert splits.train[7, 2].item() == 123.0  # not a copy
    cfg = RunConfig().override({"data.kind": "array", "data.path": str(tmp_path / "x.npy"), "data.mmap": True})
    res = fit(cfg.override({"train.epochs": 1, "model.encoder.hidden": [8]}), tmp_path / "r", quiet=True, tensorboard=False)
    assert res.history[0]["train_elbo"] < 0


def test_memory_mapped_input_refuses_what_it_cannot_map(tmp_path):
    np.save(tmp_path / "f64.npy", np.zeros((10, 2)))
    with pytest.raises(DataError, match="float32"):
        load_data(_array_cfg(tmp_path / "f64.npy", mmap=True))
    np.savez(tmp_path / "x.npz", x=np.zeros((10, 2), np.float32))
    with pytest.raises(DataError, match=r"needs a \.npy"):
        load_data(_array_cfg(tmp_path / "x.npz", mmap=True))
    bad = np.zeros((10, 2), np.float32)
    bad[4, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(DataError, match="NaN/inf values in rows 0"):
        load_data(_array_cfg(tmp_path / "inf.npy", mmap=True))


def test_non_binary_data_with_bernoulli_decoder(tmp_path):
    np.save(tmp_path / "x.npy", np.full((50, 4), 2.5))
    with pytest.raises(DataError, match="binary"):
        load_data(_array_cfg(tmp_path / "x.npy", binarize="none"), likelihood="bernoulli")
    with pytest.raises(DataError, match=r"intensities in \[0, 1\]"):
        load_data(_array_cfg(tmp_path / "x.npy", binarize="dynamic"), likelihood="bernoulli")


def test_intensities_get_dynamic_binarization_and_fixed_test_binarization(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(size=(100, 4)))
    a = load_data(_array_cfg(tmp_path / "x.npy"), likelihood="bernoulli")
    b = load_data(_array_cfg(tmp_path / "x.npy"), likelihood="bernoulli")
    assert a.dynamic_binarization and torch.equal(a.test, b.test)
    assert set(a.test.unique().tolist()) <= {0.0, 1.0}


def test_missing_files_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="--data-dir DIR or set VAELAB_DATA"):
        load_mnist(tmp_path)
    with pytest.raises(DataNotFoundError, match="not found"):
        load_array(tmp_path / "nope.npz")


def test_digits_loader():
    s = load_data(RunConfig().override({"data.kind": "digits"}).data, likelihood="bernoulli")
    assert s.x_shape == (1, 8, 8) and s.x_dim == 64 and s.dynamic_binarization
    assert s.train.shape[0] + s.valid.shape[0] + s.test.shape[0] == 1797


@pytest.mark.slow
def test_mnist_from_shared_data(data_dir):
    s = load_mnist(data_dir)
    assert s.train.shape == (50000, 1, 28, 28) and s.valid.shape == (10000, 1, 28, 28) and s.x_shape == (1, 28, 28)
    assert 0 <= s.train.min() and s.train.max() < 1  # stored as byte / 256
    assert s.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    s60 = load_mnist(data_dir, split="60k-10k")
    assert s60.train.shape == (60000, 1, 28, 28)


def test_batches_carry_the_index_of_each_point():
    from vaelab.data import iterate_batches

    x = torch.arange(10.0).view(10, 1)
    seen = []
    for b in iterate_batches(x, 4, torch.Generator().manual_seed(0)):
        assert torch.equal(b.x[:, 0], b.index.float()) and b.mask is None
        seen += b.index.tolist()
    assert sorted(seen) == list(range(10))


def test_dynamic_binarization_is_a_function_of_the_passed_generator_alone():
    """The draws come from a generator on the data's device seeded from the one passed (the CUDA path
    is this code: torch.bernoulli refuses a generator on another device), not from the global RNG."""
    from vaelab.data import iterate_batches

    x = torch.rand(50, 1, 3, 3)

    def one_pass(global_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(global_seed)
        return [b.x for b in iterate_batches(x, 8, torch.Generator().manual_seed(7), dynamic_binarization=True)]

    a, b = one_pass(0), one_pass(1)
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and set(torch.cat(a).unique().tolist()) == {0.0, 1.0}
    other = [b.x for b in iterate_batches(x, 8, torch.Generator().manual_seed(8), dynamic_binarization=True)]
    assert not all(torch.equal(u, v) for u, v in zip(a, other))


def test_static_mnist_from_shared_data(data_dir):
    s = load_data(RunConfig().override({"data.kind": "static-mnist", "data.data_dir": str(data_dir)}).data, "bernoulli")
    assert s.train.shape == (50000, 1, 28, 28) and s.valid.shape[0] == 10000 and s.test.shape[0] == 10000
    assert not s.dynamic_binarization and set(s.test.unique().tolist()) == {0.0, 1.0}
    assert abs(float(s.train.mean()) - 0.131) < 0.005  # the pixel mean the data README states


def test_static_mnist_text_format_corruption_and_missing_files(tmp_path, monkeypatch):
    from vaelab.data.static_mnist import load_static_mnist

    monkeypatch.delenv("VAELAB_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="binarized_mnist_train.amat not found.*download static-mnist"):
        load_static_mnist(tmp_path)
    rng = np.random.default_rng(0)
    monkeypatch.setattr("vaelab.data.static_mnist.SPLITS", {"train": 30, "valid": 10, "test": 10})
    for split, n in {"train": 30, "valid": 10, "test": 10}.items():  # Larochelle's original text format
        np.savetxt(tmp_path / f"binarized_mnist_{split}.amat", rng.integers(0, 2, (n, 784)), fmt="%d")
    assert load_static_mnist(tmp_path).train.shape == (30, 1, 28, 28)
    (tmp_path / "binarized_mnist_test.amat").write_text("0 1 2\n")
    with pytest.raises(DataError, match="expected 10 rows of 784 binary pixels"):
        load_static_mnist(tmp_path)


def test_standardize_uses_training_statistics_and_records_the_log_jacobian(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 3)) * [50.0, 0.01, 1.0] + [1000.0, -5.0, 0.0]).astype(np.float32)
    x[:, 2] = 7.0  # a constant dimension keeps std 1
    np.save(tmp_path / "x.npy", x)
    d = load_data(_array_cfg(tmp_path / "x.npy", standardize=True), "gaussian")
    assert torch.allclose(d.train.mean(0), torch.zeros(3), atol=1e-3)
    assert torch.allclose(d.train.std(0), torch.tensor([1.0, 1.0, 0.0]), atol=1e-3)
    mean, std = torch.tensor(d.info["standardize_mean"]), torch.tensor(d.info["standardize_std"])
    assert std[2] == 1 and abs(float(std[0]) - 50) < 5 and abs(float(mean[0]) - 1000) < 10
    # log N(x_raw; mean, diag std^2) = log N(x_std; 0, I) + log-Jacobian: the record converts a bound to raw nats
    normal = torch.distributions.Normal
    raw = d.test * std + mean
    lhs = normal(mean.double(), std.double()).log_prob(raw.double()).sum(-1)
    rhs = normal(0.0, 1.0).log_prob(d.test.double()).sum(-1) + d.info["standardize_log_jacobian"]
    assert torch.allclose(lhs, rhs, atol=1e-3)
    with pytest.raises(DataError, match="real-valued"):
        load_data(_array_cfg(tmp_path / "x.npy", standardize=True), "bernoulli")


def test_unscaled_user_data_offers_standardization(tmp_path):
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).normal(size=(50, 4)) * 100).astype(np.float32))
    with pytest.warns(UserWarning, match="data.standardize = true"):
        load_data(_array_cfg(tmp_path / "x.npy"), "gaussian")


def test_data_whose_dimensions_differ_in_scale_offer_standardization_though_the_median_looks_fine(tmp_path):
    """Issue 43: stds from 0.0036 to 1050 (median near 1) trained to an ELBO of -556,389 with no hint."""
    scales = np.array([0.0036, 0.5, 1.0, 1.0, 2.0, 1050.0], dtype=np.float32)
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).normal(size=(200, 6)) * scales).astype(np.float32))
    with pytest.warns(UserWarning, match=r"stds of the training data range from 0.00\d+ to \d{3,4}, far from"):
        load_data(_array_cfg(tmp_path / "x.npy"), "gaussian")
    np.save(tmp_path / "y.npy", np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unit-scale data: no hint
        load_data(_array_cfg(tmp_path / "y.npy"), "gaussian")
