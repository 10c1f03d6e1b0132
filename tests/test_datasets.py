"""The benchmark data sets: Omniglot (28 x 28 from the raw strokes), Frey faces, Caltech-101
silhouettes, static MNIST. Shapes, ranges, split sizes, checksum and missing-file errors."""

import shutil

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.data import load_data
from vaelab.data.caltech import load_caltech_silhouettes
from vaelab.data.frey import load_frey
from vaelab.data.omniglot import downsample, load_omniglot
from vaelab.data.static_mnist import load_static_mnist
from vaelab.errors import ConfigError, DataError, DataNotFoundError


@pytest.mark.slow
def test_omniglot(data_dir):
    d = load_omniglot(data_dir)
    assert (d.train.shape, d.valid.shape, d.test.shape) == ((23000, 1, 28, 28), (1345, 1, 28, 28), (8115, 1, 28, 28))
    assert d.train.shape[0] + d.valid.shape[0] == 24345  # Burda et al.'s training count: 1,623 characters x 15
    assert 0.0 == float(d.train.min()) and float(d.train.max()) == 1.0 and 0.05 < float(d.train.mean()) < 0.12
    assert set(d.test_labels.tolist()) == set(range(1623)) and (d.test_labels.bincount() == 5).all()
    assert float(d.train[:, :, 0, :].mean()) < 0.01  # ink = 1, paper = 0: the border is blank
    again = load_omniglot(data_dir, seed=1)
    assert not torch.equal(again.valid, d.valid) and torch.equal(again.test, d.test)  # seed moves only validation
    binarized = load_data(RunConfig().override({"data.kind": "omniglot", "data.data_dir": str(data_dir)}).data, "bernoulli")
    assert binarized.dynamic_binarization and set(binarized.test.unique().tolist()) == {0.0, 1.0}


def test_omniglot_downsampling_keeps_strokes():
    img = torch.zeros(1, 105, 105, dtype=torch.bool)
    img[0, 10:95, 50:53] = True  # a vertical stroke, 3 pixels wide
    img[0, 70:72, 5:100] = True  # a horizontal one, 2 pixels high
    small = downsample(img)[0]  # (28, 28)
    scale = 105 / 28
    for i in range(28):
        for j in range(28):
            rows = slice(int(i * scale), -int(-(i + 1) * scale // 1))  # the source area this pixel covers
            cols = slice(int(j * scale), -int(-(j + 1) * scale // 1))
            assert (small[i, j] > 0) == bool(img[0, rows, cols].any()), (i, j)
    assert abs(float(small.mean()) - float(img.float().mean())) < 0.01  # ink mass kept
    assert float(small.max()) <= 1.0 and float(small[:, 13:15].max()) > 0.3  # the 3-pixel stroke stays visible


def test_frey(data_dir):
    d = load_frey(data_dir)
    assert (d.train.shape, d.valid.shape, d.test.shape) == ((1769, 1, 28, 20), (0, 1, 28, 20), (196, 1, 28, 20))
    assert 0.0 < float(d.train.min()) and float(d.train.max()) < 1.0  # bytes 8..238 / 255
    assert d.train_labels is None and "per image, nats" in d.info["density"]
    c = load_frey(data_dir, split="contiguous", valid_fraction=0.1)
    assert (c.train.shape[0], c.valid.shape[0], c.test.shape[0]) == (1592, 177, 196)
    whole = torch.cat([c.train, c.valid, c.test])  # contiguous: video order kept
    frames_diff = (whole[1:] - whole[:-1]).abs().mean()
    assert float(frames_diff) < float((d.train[1:] - d.train[:-1]).abs().mean())  # random order differs more


def test_frey_ten_folds_cover_every_frame_once(data_dir):
    tests = [load_frey(data_dir, fold=i, valid_fraction=0.1) for i in range(10)]
    frames = torch.cat([f.test for f in tests]).flatten(1)  # (1965, 560)
    assert frames.shape[0] == 1965 and torch.unique(frames, dim=0).shape[0] == torch.unique(
        torch.cat([tests[0].train, tests[0].valid, tests[0].test]).flatten(1), dim=0).shape[0]  # fmt: skip
    f3 = tests[3]
    assert (f3.train.shape[0], f3.valid.shape[0], f3.test.shape[0]) == (1591, 177, 197)  # 1965 = 5 x 196 + 5 x 197
    assert not set(map(tuple, f3.test.flatten(1)[:20].tolist())) & set(map(tuple, f3.train.flatten(1).tolist()))
    with pytest.raises(ConfigError, match="data.fold must be -1 or in 0..9"):
        load_frey(data_dir, fold=10)


def test_caltech_silhouettes(data_dir):
    d = load_caltech_silhouettes(data_dir)
    assert (d.train.shape, d.valid.shape, d.test.shape) == ((4100, 1, 28, 28), (2264, 1, 28, 28), (2307, 1, 28, 28))
    assert set(d.train.unique().tolist()) == {0.0, 1.0}
    assert float(torch.cat([d.train[:, 0, 0], d.train[:, 0, -1]]).mean()) < 0.1  # object = 1: borders are background
    assert int(d.train_labels.min()) == 0 and int(d.train_labels.max()) == 100
    planes = d.train[d.train_labels == 0, 0]  # class 1 of the file, "Airplanes Side 2": wider than tall when upright
    width, height = planes.amax(1).sum(-1).mean(), planes.amax(2).sum(-1).mean()  # occupied columns, rows
    assert float(width) > float(height) + 2  # measured: 26.0 vs 23.3 columns vs rows


def test_static_mnist_is_exactly_binary(data_dir):
    d = load_static_mnist(data_dir)
    assert (d.train.shape[0], d.valid.shape[0], d.test.shape[0]) == (50000, 10000, 10000)
    assert set(d.test.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    "loader,files",
    [
        (load_frey, ["frey_rawface.mat"]),
        (load_caltech_silhouettes, ["caltech101_silhouettes_28_split1.mat"]),
        (load_omniglot, ["images_background.npz", "images_evaluation.npz"]),
    ],
)
def test_a_corrupt_or_missing_file_is_one_line(data_dir, tmp_path, monkeypatch, loader, files):
    monkeypatch.delenv("VAELAB_DATA")
    with pytest.raises(DataNotFoundError, match=f"{files[0]} not found") as e:
        loader(tmp_path)
    assert "\n" not in str(e.value) and "--data-dir" in str(e.value)
    for name in files:
        shutil.copy(data_dir / name, tmp_path / name)
    with open(tmp_path / files[-1], "r+b") as f:  # one flipped byte
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(DataError, match="sha256 .* is not the expected") as e:
        loader(tmp_path)
    assert "\n" not in str(e.value)
