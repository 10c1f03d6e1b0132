"""User array data from .npz / .npy / .csv files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError, DataNotFoundError
from .bundle import DataSplits, as_float_tensor
from .registry import DATASETS


def load_array(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an (N, ...) float array and optional (N,) labels.

    - ``.npy``: the array itself, (N, D) or (N, *x_shape).
    - ``.npz``: key ``x`` (or the only array in the file); optional key ``y`` for labels.
    - ``.csv``: comma-separated numbers, one point per row; a non-numeric first row is a header.

    Raises:
        DataNotFoundError: the file does not exist.
        DataError: unsupported extension, unreadable file, or missing ``x`` key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:  # numpy leaks its own file handle when a truncated .npz fails to open: we own the file
        if suffix == ".npy":
            with open(path, "rb") as f:
                return np.load(f, allow_pickle=False), None
        if suffix == ".npz":
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                keys = list(z.keys())
                if "x" in z:
                    return z["x"], (z["y"] if "y" in z else None)
                if len(keys) == 1:
                    return z[keys[0]], None
                raise DataError(f"{path}: .npz needs an array named 'x' (found {keys})")
        if suffix == ".csv":
            try:
                return np.loadtxt(path, delimiter=",", ndmin=2), None
            except ValueError:
                return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1), None
    except DataError:
        raise
    except Exception as e:  # numpy/zipfile raise many types on truncated or foreign files (EOFError, BadZipFile, ...)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: could not read ({reason})") from None
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .npz, .npy or .csv")


def read_mat(path: Path, what: str) -> dict:
    """The variables of a MATLAB (v4-v7.2) file via scipy.

    Raises:
        DataError: one line naming ``what`` the file should have been; scipy raises several types
            (MatReadError, IndexError, ValueError, ...) on truncated or foreign bytes.
    """
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except Exception as e:  # noqa: BLE001 - see Raises
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable {what} ({reason}); re-download it") from None


def check_fractions(**fractions: float) -> None:
    """Held-out fractions (``valid_fraction=0.1, test_fraction=0.2``): each a number in [0, 1).

    Raises:
        DataError: naming the key (``data.<name>``) and the value.
    """
    for name, f in fractions.items():
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f < 1:
            raise DataError(f"data.{name} must be a fraction in [0, 1), got {f!r}")


def split_array(x, y, valid_fraction: float, test_fraction: float, seed: int) -> DataSplits:
    """Shuffle with ``seed`` and split into train / valid / test by fractions."""
    check_fractions(valid_fraction=valid_fraction, test_fraction=test_fraction)
    xt = as_float_tensor(x, "data")
    n = xt.shape[0]
    n_test, n_valid = int(round(test_fraction * n)), int(round(valid_fraction * n))
    if n - n_test - n_valid < 1:
        raise DataError(f"data: {n} points are too few for valid_fraction={valid_fraction}, test_fraction={test_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    te, va, tr = perm[:n_test], perm[n_test : n_test + n_valid], perm[n_test + n_valid :]
    yt = torch.as_tensor(np.asarray(y)).long().reshape(-1) if y is not None else None
    if yt is not None and yt.shape[0] != n:
        raise DataError(f"data: {n} points but {yt.shape[0]} labels")
    pick = (lambda idx: yt[idx]) if yt is not None else (lambda idx: None)
    return DataSplits(
        xt[tr],
        xt[va],
        xt[te],
        pick(tr),
        pick(va),
        pick(te),
        info={"n_train": len(tr), "n_valid": len(va), "n_test": len(te)},
    )


@DATASETS.register("array")
def array_dataset(
    seed: int = 0, path: str = "", valid_fraction: float = 0.1, test_fraction: float = 0.2, mmap: bool = False
) -> DataSplits:
    """A user's array file, split at random with ``data.seed``.

    Args:
        path: the .npz (key ``x``, optional labels ``y``), .npy or .csv file; N points along axis 0.
        valid_fraction: fraction of the points held out for validation.
        test_fraction: fraction held out for test.
        mmap: for a float32 .npy larger than memory: the training split stays on disk, memory-mapped,
            and mini-batches read their rows from it. The split is then contiguous (train, valid, test
            in file order; shuffle the file beforehand), and valid / test are read into memory.
    """
    if not path:
        raise ConfigError("data kind 'array' needs data.path (an .npz, .npy or .csv file), e.g. --path x.npz")
    if mmap:
        return mmap_splits(Path(path), valid_fraction, test_fraction)
    x, y = load_array(path)
    splits = split_array(x, y, valid_fraction, test_fraction, seed)
    splits.info["source"] = str(path)
    return splits


MMAP_CHUNK = 16384  # rows checked for NaN/inf at a time: the check streams, it never holds the file


def mmap_splits(path: Path, valid_fraction: float, test_fraction: float) -> DataSplits:
    """Contiguous train / valid / test splits of a float32 .npy whose training rows stay on disk.

    Raises:
        DataNotFoundError: no such file. DataError: not a float32 .npy of N points, NaN/inf values,
        or too few points for the fractions.
    """
    check_fractions(valid_fraction=valid_fraction, test_fraction=test_fraction)
    if not path.is_file():
        raise DataNotFoundError(f"data file not found: {path}")
    if path.suffix.lower() != ".npy":
        raise DataError(f"{path}: data.mmap needs a .npy file (an .npz or .csv is read whole)")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several types on foreign bytes
        raise DataError(f"{path}: could not read ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if a.dtype != np.float32 or a.ndim < 2:
        raise DataError(f"{path}: data.mmap needs float32 data of shape (N, ...), got {a.dtype} {a.shape}; convert it once")
    for start in range(0, a.shape[0], MMAP_CHUNK):
        if not np.isfinite(a[start : start + MMAP_CHUNK]).all():
            raise DataError(f"{path}: NaN/inf values in rows {start}..{start + MMAP_CHUNK - 1}; remove or impute them")
    n = a.shape[0]
    n_test, n_valid = int(round(test_fraction * n)), int(round(valid_fraction * n))
    n_train = n - n_test - n_valid
    if n_train < 1:
        raise DataError(f"data: {n} points are too few for valid_fraction={valid_fraction}, test_fraction={test_fraction}")
    with warnings.catch_warnings():  # read-only by design: nothing writes into training data
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        train = torch.from_numpy(a[:n_train])
    valid, test = (torch.from_numpy(np.array(a[i:j])) for i, j in ((n_train, n_train + n_valid), (n_train + n_valid, n)))
    info = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test, "source": str(path), "mmap": True}
    return DataSplits(train, valid, test, info=info)
