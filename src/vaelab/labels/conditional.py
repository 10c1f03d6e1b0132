"""``model.labels = "conditional"``: a conditional VAE, q(z|x, y) and p(x|z, y) with every label
observed (Sohn et al. 2015); its bounds are on log p(x|y)."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from ..data import Batch
from ..data.labels import labelled_batches
from .base import LABEL_MODES, LabelMode, observed_labels


@LABEL_MODES.register("conditional")
class Conditional(LabelMode):
    """Every label observed: batches carry y, the bound and validation condition on it."""

    reads_labels = True
    options = ("model.conditional_prior",)

    def label_tensors(self, data, data_cfg, device):
        return observed_labels(data, device)

    def batches(self, loop, generator) -> Iterator[Batch]:
        t = loop.cfg.train
        return labelled_batches(loop.x_train, loop.y_train, t.batch_size, generator, loop.data.dynamic_binarization)

    def observed(self, batch: Batch | Tensor) -> Tensor | None:
        return batch.y if isinstance(batch, Batch) else None

    def condition(self, y: Tensor | None) -> Tensor | None:
        return y
