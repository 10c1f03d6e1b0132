"""The label-mode strategy (:class:`LabelMode`), its registry and the tensor helpers the modes share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..data import Batch
from ..data.batches import iterate_batches
from ..data.labels import n_classes
from ..errors import ConfigError, DataError
from ..registry import Registry

#: model.labels -> the mode's class (no options: ``LABEL_MODES.build(name)``)
LABEL_MODES = Registry("label mode")


class BoundStats(dict):
    """What a bound function returns besides the estimate: detached batch-mean statistics in nats,
    name -> 0-d tensor, each a view of ``vector`` (n_stats,), the same numbers formed in one reduction
    (a training step reads them with one ``tolist``)."""

    def __init__(self, names, vector: Tensor):
        super().__init__(zip(names, vector.unbind()))
        self.vector = vector

    @classmethod
    def of_points(cls, per_point: dict[str, Tensor]) -> BoundStats:
        """The batch means of per-point statistics {name: (B,)}, in one stack and one mean."""
        return cls(per_point, torch.stack(list(per_point.values())).mean(1))  # (n_stats, B) -> (n_stats,)


def stats_vector(stats: dict[str, Tensor]) -> Tensor:
    """(n_stats,) the statistics in their order: :class:`BoundStats`' own vector, or any dict's values stacked."""
    vector = getattr(stats, "vector", None)
    return vector if vector is not None else torch.stack(list(stats.values()))


class LabelMode:
    """How a model uses class labels y (one subclass per ``model.labels`` value).

    Capabilities that generic code reads:
        reads_labels: the networks read y (``Conditioned`` encoder and decoder, C >= 1 classes).
        infers_labels: y is latent where unobserved, with a classifier q(y|x): validation scores
            log p(x) and reports the classifier's error.
        options: the label options (dotted config keys) this mode honours; any other label option
            set away from its default is refused (:meth:`check_config`).
    """

    registry_name: str
    reads_labels = False
    infers_labels = False
    options: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- configuration -------------------------------------------------------------------------
    def check_config(self, cfg) -> None:
        """Cross-field rules of a whole run config (``RunConfig``), before anything is built.

        Raises:
            ConfigError: a label option this mode does not honour, or a training option it cannot.
        """
        for key in label_options():
            if key not in self.options and _is_set(cfg, key):
                owners = [n for n in LABEL_MODES.names() if key in mode_class(n).options]
                raise ConfigError(
                    f"{key} has no effect with model.labels = {self.registry_name!r}; "
                    f"it applies to model.labels = {' or '.join(map(repr, owners))}"
                )
        self.check_train(cfg.train)

    def check_train(self, train_cfg) -> None:
        """Training options a model with this mode cannot honour (also asked of models built in Python).

        Raises:
            ConfigError: naming the option.
        """
        if self.reads_labels and train_cfg.free_bits:
            raise ConfigError("train.free_bits is not supported with a labelled model (set free_bits = 0)")
        if self.reads_labels and train_cfg.grad_variance_every:
            raise ConfigError("train.grad_variance_every does not measure labelled models yet (set it to 0)")

    # --- the model -----------------------------------------------------------------------------
    def check_model(self, n_classes: int, classifier: nn.Module | None, class_prior, n_upper: int) -> None:
        """The model's label pieces fit this mode.

        Raises:
            ConfigError: classes without a labelled mode (or none with one), a classifier where the mode
                infers no labels (or none where it does), a class prior on a multi-layer model.
        """
        if self.reads_labels != (n_classes > 0):
            raise ConfigError(
                f"model.labels = {self.registry_name!r} with {n_classes} classes: a labelled model needs C >= 1 "
                "classes, an unlabelled one none"
            )
        if (classifier is not None) != self.infers_labels:
            raise ConfigError(
                f"a classifier q(y|x) belongs to a model whose labels are latent where unobserved "
                f"(model.labels = {' or '.join(repr(n) for n in LABEL_MODES.names() if mode_class(n).infers_labels)})"
                ", and such a model needs one"
            )
        if class_prior is not None and n_upper:
            raise ConfigError("model.conditional_prior applies to one-layer models (the prior is on z_L)")

    def classifier(self, model_cfg, x_shape: tuple[int, ...], n_classes: int, build: Callable) -> nn.Module | None:
        """The network x -> C logits of q(y|x) this mode needs (None: it infers no labels).
        ``build(component, where, in_shape, out_shape)`` builds a registered network."""
        return None

    def latent_label_terms(self, model, x: Tensor, n_samples: int, generator, reparameterize: bool):
        """Log-weight terms with y unobserved (only a mode that infers labels has them).

        Raises:
            DataError: this mode needs the labels.
        """
        raise DataError(f"this {self.registry_name} model needs labels y (B,) here; pass y")

    # --- data ----------------------------------------------------------------------------------
    def latent_label_means(self, model, x: Tensor, n_samples: int = 1, generator=None) -> list[Tensor]:
        """E_q[z_l|x] of every layer with y unobserved, (B, D_l) each (only a mode that infers labels has it).

        Raises:
            DataError: this mode needs the labels.
        """
        raise DataError(f"this {self.registry_name} model needs labels y (B,) here; pass y")

    def label_tensors(self, data, data_cfg, device) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """(training labels, validation labels, positions of the labelled training points); None /
        an empty tensor where unused.

        Raises:
            DataError: a labelled model on data without labels, or an impossible ``data.labelled``.
        """
        return None, None, torch.zeros(0, dtype=torch.long)

    def points_per_epoch(self, n_train: int, labelled: Tensor) -> int:
        """The points one epoch passes over (the batches' count is this / batch size)."""
        return n_train

    def batches(self, loop, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch's batches of ``loop.x_train`` (and its labels), every draw from ``generator``."""
        t = loop.cfg.train
        bucket = "pad_id" in loop.data.info
        return iterate_batches(loop.x_train, t.batch_size, generator, True, loop.data.dynamic_binarization, bucket=bucket)

    # --- the bound -----------------------------------------------------------------------------
    def bound(self, model, batch: Batch | Tensor, objective, estimator, opts, estimate: Callable) -> tuple[Any, BoundStats]:
        """The training bound of a batch and its statistics (see :func:`vaelab.train.step.compute_bound`).

        ``opts`` is a :class:`vaelab.train.bound.BoundOptions`; ``estimate`` is
        :func:`vaelab.train.bound.estimate` (passed in: the label modes sit below the trainer)."""
        x = batch.x if isinstance(batch, Batch) else batch
        return plain_bound(model, x, self.observed(batch), objective, estimator, opts, estimate)

    def observed(self, batch: Batch | Tensor) -> Tensor | None:
        """The labels a training batch's bound conditions on (None: the bound is on log p(x))."""
        return None

    # --- validation and evaluation -------------------------------------------------------------
    def condition(self, y: Tensor | None) -> Tensor | None:
        """The labels validation and evaluation condition the bound on, given a split's labels
        (None: they score log p(x), the labels unseen)."""
        return None


def plain_bound(model, x: Tensor, y: Tensor | None, objective, estimator, opts, estimate: Callable):
    """The bound of the batch x (given labels y, or None) from one pass of ``log_weight_terms``."""
    cond = {} if y is None else {"y": y}
    terms = model.log_weight_terms(x, opts.n_samples * objective.groups, reparameterize=estimator.pathwise, **cond)
    est, rec, kl = estimate(model, terms, objective, estimator, opts)  # rec, kl (B,)
    with torch.no_grad():
        stats = BoundStats.of_points({"rec": rec, "kl": kl, "bound": est.value, "elbo": rec - kl, **est.reported})
    return est, stats


def observed_labels(data, device) -> tuple[Tensor, Tensor | None, Tensor]:
    """Every training label observed: (training labels, validation labels or None, no positions).

    Raises:
        DataError: the data set has no labels.
    """
    n_classes(data.train_labels)
    y_valid = data.valid_labels.to(device) if data.valid_labels is not None else None
    return data.train_labels.to(device), y_valid, torch.zeros(0, dtype=torch.long)


def label_mode_of(model) -> LabelMode:
    """The label mode of a model; a model without one (anything with ``log_weight_terms``) reads no labels."""
    mode = getattr(model, "label_mode", None)
    return mode if mode is not None else LABEL_MODES.build("none")


def mode_class(name: str) -> type[LabelMode]:
    """The registered class of label mode ``name``.

    Raises:
        ConfigError: no such mode (naming the registered ones).
    """
    return cast("type[LabelMode]", LABEL_MODES[name])


def labelled_modes() -> list[str]:
    """The registered modes whose models read labels (for messages)."""
    return [n for n in LABEL_MODES.names() if mode_class(n).reads_labels]


def label_options() -> list[str]:
    """Every label option some registered mode honours (dotted config keys)."""
    return sorted({k for n in LABEL_MODES.names() for k in mode_class(n).options})


def _is_set(cfg, key: str) -> bool:
    """Whether a dotted config key holds anything but its declared default."""
    section, name = key.split(".", 1)
    table = getattr(cfg, section)
    f = next(f for f in dataclasses.fields(table) if f.name == name)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    return getattr(table, name) != default


def tile_rows(x: Tensor, n: int) -> Tensor:
    """n copies of the batch x (B, ...) stacked copy-major: (n*B, ...), row i*B + b = x[b]."""
    return x.unsqueeze(0).expand(n, *x.shape).reshape(n * x.shape[0], *x.shape[1:])


def every_class(x: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """Every point of x (B, ...) once per class, class-major: ((C*B, ...) rows, (C*B,) labels 0..0, 1..1, ...)."""
    ys = torch.arange(n_classes, device=x.device).unsqueeze(1).expand(n_classes, x.shape[0]).reshape(-1)
    return tile_rows(x, n_classes), ys
