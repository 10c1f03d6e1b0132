"""Train/valid/test splits and the dispatcher from a DataConfig to a loader."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


@dataclass
class DataSplits:
    """Data for one run. All x tensors are float32 (N, *x_shape); labels (N,) int64 or None.

    Attributes:
        dynamic_binarization: when True, ``train`` holds intensities in [0, 1] and every batch
            is resampled as x ~ Bernoulli(intensity); ``valid`` / ``test`` were binarized once
            with a fixed seed, so evaluations are comparable across runs.
        info: loader details worth recording (source file, split sizes, ...).
    """

    train: Tensor
    valid: Tensor
    test: Tensor
    train_labels: Tensor | None = None
    valid_labels: Tensor | None = None
    test_labels: Tensor | None = None
    dynamic_binarization: bool = False
    info: dict = field(default_factory=dict)

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Event shape of one data point: (D,) for vectors, (C, H, W) for images."""
        return tuple(self.train.shape[1:])

    @property
    def x_dim(self) -> int:
        """Numbers per data point."""
        return math.prod(self.x_shape)


def binarize_fixed(x: Tensor, seed: int) -> Tensor:
    """One fixed stochastic binarization x ~ Bernoulli(x), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(x, generator=g)


def is_binary(x: Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def as_float_tensor(a, name: str) -> Tensor:
    """numpy/array-like -> float32 tensor (N, *x_shape), with a clear error for bad shape or NaN/inf."""
    a = np.asarray(a)
    if a.ndim < 2:
        raise DataError(
            f"{name}: expected an array of N points with at least 2 axes (N x D, or N x H x W), got shape {a.shape}"
        )
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise DataError(f"{name}: expected numbers, got dtype {a.dtype}")
    a = a.astype(np.float32)
    bad = int((~np.isfinite(a)).sum())
    if bad:
        rows = np.unique(np.nonzero(~np.isfinite(a))[0])[:5].tolist()
        raise DataError(f"{name}: {bad} NaN/inf values (first rows {rows}); remove or impute them")
    return torch.from_numpy(np.ascontiguousarray(a))


def finalize(splits: DataSplits, likelihood: str, binarize: str, seed: int) -> DataSplits:
    """Apply the binarization policy and check the data fits the likelihood."""
    if binarize == "auto":
        binarize = "dynamic" if likelihood == "bernoulli" and not is_binary(splits.train) else "none"
    if binarize == "dynamic":
        for name in ("train", "valid", "test"):
            x = getattr(splits, name)
            if x.numel() and (x.min() < 0 or x.max() > 1):
                raise DataError(
                    f"{name}: dynamic binarization needs intensities in [0, 1], got [{x.min():.3g}, {x.max():.3g}]; "
                    'rescale the data or set binarize = "none"'
                )
        splits.valid = binarize_fixed(splits.valid, seed + 1)
        splits.test = binarize_fixed(splits.test, seed + 2)
        splits.dynamic_binarization = True
    elif likelihood == "bernoulli":
        for name in ("train", "valid", "test"):
            x = getattr(splits, name)
            if not is_binary(x):
                raise DataError(
                    f"{name}: Bernoulli decoder needs binary data in {{0, 1}} (got range [{x.min():.3g}, {x.max():.3g}]); "
                    'set binarize = "dynamic" for intensities in [0, 1], or likelihood = "gaussian"'
                )
    splits.info["binarization"] = binarize
    return splits


def load_data(data_cfg, likelihood: str = "gaussian") -> DataSplits:
    """Load the data set named by a :class:`vaelab.config.DataConfig` through ``DATASETS``.

    Raises:
        ConfigError: unknown data set or option.
        DataNotFoundError: a data file is missing (the message says where to put it).
        DataError: the data has the wrong shape, NaN/inf, or does not fit the likelihood.
    """
    from . import DATASETS  # the loaders register themselves on import of the package

    c = data_cfg
    splits = DATASETS.build(c.kind, c.options, where="data", data_dir=c.data_dir or None, seed=c.seed)
    splits.info.setdefault("dataset", c.kind)
    if getattr(c, "standardize", False):
        standardize(splits, likelihood)
    elif likelihood == "gaussian" and c.kind == "array":
        _suggest_standardize(splits.train)
    return finalize(splits, likelihood, c.binarize, c.seed)


def standardize(splits: DataSplits, likelihood: str) -> DataSplits:
    """Standardize every split with the training split's per-dimension mean and std, in place.

    log p(x_raw) = log p(x_std) + ``info["standardize_log_jacobian"]`` (= -sum_d log std_d, nats per
    data point), recorded with the mean and std so samples can be mapped back (x = x_std * std + mean).

    Raises:
        DataError: a Bernoulli likelihood (binary data is not standardized) or no training points.
    """
    if likelihood == "bernoulli":
        raise DataError("data.standardize applies to real-valued data; a Bernoulli decoder reads {0, 1} values as they are")
    if not splits.train.is_floating_point():
        raise DataError("data.standardize applies to real-valued data, not to token ids or integer codes")
    if splits.train.shape[0] < 2:
        raise DataError("data.standardize needs at least 2 training points to estimate a std")
    mean = splits.train.mean(0)  # (*x_shape)
    std = splits.train.std(0)
    std = torch.where(std > 1e-6 * std.max().clamp_min(1e-30), std, torch.ones_like(std))  # constant dims: keep
    for name in ("train", "valid", "test"):
        setattr(splits, name, (getattr(splits, name) - mean) / std)
    splits.info.update(
        standardized=True,
        standardize_log_jacobian=float(-std.double().log().sum()),
        standardize_mean=mean.flatten().tolist(),
        standardize_std=std.flatten().tolist(),
    )
    return splits


def _suggest_standardize(x: Tensor) -> None:
    if x.shape[0] < 2:
        return
    stds = x.flatten(1).std(0)
    spread = float(stds.median())
    live = stds[stds > 0]  # (constant dimensions: nothing to scale)
    lo, hi = (float(live.min()), float(live.max())) if live.numel() else (0.0, 0.0)
    if 0 < spread < 0.1 or spread > 10:
        where = f"the median per-dimension std of the training data is {spread:.3g}"
    elif lo and hi / lo > 100:  # the median looks fine, but one decoder variance cannot fit both ends
        where = f"the per-dimension stds of the training data range from {lo:.3g} to {hi:.3g}"
    else:
        return
    warnings.warn(
        f"data: {where}, far from the unit-variance Gaussian decoder's scale; set data.standardize = true "
        "(or learn the variance: model.likelihood.variance = 'per_dim')",
        stacklevel=3,
    )
