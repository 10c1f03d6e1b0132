"""``model.labels = "semi-supervised"``: Kingma et al. 2014's M2, p(x, y, z) = p(x|y, z) p(z) p(y)
with a uniform p(y), y latent where unlabelled and a classifier q(y|x).

Training mixes labelled and unlabelled points in each batch (:func:`vaelab.data.labels.semi_supervised_batches`)
and bounds them with one conditional pass over the labelled rows and every (class, unlabelled point)
pair, the per-class bounds combined by :mod:`vaelab.objectives.semi_supervised` (the sum over y exact).
Validation and evaluation score log p(x), labels unseen, and report the classifier's error.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from ..data import Batch
from ..data.labels import balanced_subset, semi_supervised_batches
from ..errors import ConfigError, DataError
from ..estimators import BoundEstimate, straight_through
from ..objectives.semi_supervised import labelled_bound, unlabelled_bound
from .base import LABEL_MODES, BoundStats, LabelMode, every_class, observed_labels, tile_rows

#: alpha / N of Kingma et al. 2014, eq. 9 (their alpha = 0.1 N), where train.classification_weight is unset
DEFAULT_CLASSIFICATION_WEIGHT = 0.1


@LABEL_MODES.register("semi-supervised")
class SemiSupervised(LabelMode):
    """M2: labels observed on ``data.labelled`` training points, latent elsewhere."""

    reads_labels = True
    infers_labels = True
    options = (
        "data.labelled",
        "train.labelled_batch",
        "train.classification_weight",
        "model.classifier",
        "model.conditional_prior",
    )

    def classifier(self, model_cfg, x_shape, n_classes, build):
        return build(model_cfg.classifier or model_cfg.encoder, "model.classifier", x_shape, (n_classes,))

    def latent_label_terms(self, model, x: Tensor, n_samples: int, generator, reparameterize: bool):
        """y_s ~ q(y|x), z_s ~ q(z|x, y_s), one joint sample per s: :class:`SampledLabelTerms`."""
        b, s = x.shape[0], n_samples
        log_qy = model.classify(x)  # (B, C)
        y = torch.multinomial(log_qy.exp(), s, replacement=True, generator=generator).T  # (S, B)
        inner = model.log_weight_terms(tile_rows(x, s), 1, generator, reparameterize=reparameterize, y=y.reshape(-1))
        return SampledLabelTerms(inner, log_qy.gather(1, y.T).T, model.log_py, (s, b), x)

    def latent_label_means(self, model, x: Tensor, n_samples: int = 1, generator=None) -> list[Tensor]:
        """E_q[z_l|x] = sum_y q(y|x) E[z_l|x, y] for every layer, the sum over y exact by enumeration
        (the upper layers' E[z_l|x, y] by ``n_samples`` draws, as ``VAE.posterior_means``), (B, D_l) each."""
        b, c = x.shape[0], model.n_classes
        q_y = model.classify(x).exp().T.unsqueeze(-1)  # (C, B, 1)
        xs, ys = every_class(x, c)
        per_class = model.posterior_means(xs, n_samples, generator, y=ys)  # (C B, D_l) each
        return [(q_y * mu.reshape(c, b, -1)).sum(0) for mu in per_class]  # (B, D_l) each

    def label_tensors(self, data, data_cfg, device):
        y_train, y_valid, _ = observed_labels(data, device)
        return y_train, y_valid, balanced_subset(data.train_labels, data_cfg.labelled, data_cfg.seed)

    def points_per_epoch(self, n_train: int, labelled: Tensor) -> int:
        return n_train - labelled.numel() or n_train  # a pass over the unlabelled points (all, if every label is kept)

    def batches(self, loop, generator):
        t = loop.cfg.train
        return semi_supervised_batches(loop.x_train, loop.y_train, loop.labelled, t.batch_size, t.labelled_batch,
                                       generator, loop.data.dynamic_binarization)  # fmt: skip

    def bound(self, model, batch, objective, estimator, opts, estimate):
        return semi_supervised_bound(model, batch, objective, estimator, opts, estimate)


def enumerated_rows(x: Tensor, y: Tensor, n_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """The rows of the conditional pass: the labelled points with their labels, then every
    unlabelled point once per class, class-major.

    Args:
        x: (B, *x_shape); y: (B,) labels, -1 where unlabelled.
    Returns:
        (rows_x (R, *x_shape), rows_y (R,), labelled (B,) bool), R = B_l + C * B_u.
    """
    lab = y >= 0
    x_rep, y_rep = every_class(x[~lab], n_classes)  # (C*B_u, *x_shape), (C*B_u,)
    return torch.cat([x[lab], x_rep]), torch.cat([y[lab], y_rep]), lab


def semi_supervised_bound(model, batch: Batch | Tensor, objective, estimator, opts, estimate) -> tuple[BoundEstimate, dict]:
    """M2's bound on a batch: L(x, y) on the labelled points (eq. 6), U(x) on the others (eq. 7, the
    sum over y exact), each weighted by the batch's row weights, and the classification term
    alpha * mean over labelled points of log q(y|x) in the inference surrogate (eq. 9, per data
    point: the paper's alpha = 0.1 N is ``opts.classification_weight = 0.1`` here, as in the authors'
    code, which scales log q(y|x) by alpha N / N_l and divides the objective by N).

    Any objective and estimator serve the per-class bound on log p(x, z|y): the estimator runs once
    on the R = B_l + C B_u rows, and its surrogates are combined like its values, so the classifier's
    gradient comes from the enumeration (no score function).

    Args:
        opts: :class:`vaelab.train.bound.BoundOptions`; ``estimate``: :func:`vaelab.train.bound.estimate`.
    Returns:
        (estimate with (B,) weighted values and surrogates, {"elbo", "rec", "kl", "bound",
        "classifier_nll"}). The bound's batch mean estimates the mean bound per training point.
    Raises:
        DataError: labels outside -1..C-1.
        ConfigError: free bits (no per-dimension KL is defined over the mixed rows).
    """
    if opts.free_bits:
        raise ConfigError("free bits are not defined for a semi-supervised model's mixed rows; set free_bits = 0")
    x = batch.x if isinstance(batch, Batch) else batch
    b, c = x.shape[0], model.n_classes
    y = batch.y if isinstance(batch, Batch) and batch.y is not None else torch.full((b,), -1, device=x.device)
    if b and (int(y.min()) < -1 or int(y.max()) >= c):
        raise DataError(f"labels must lie in 0..{c - 1} (or -1 for unlabelled points)")
    rows_x, rows_y, lab = enumerated_rows(x, y, c)
    n_l = int(lab.sum())
    terms = model.log_weight_terms(rows_x, opts.n_samples * objective.groups, reparameterize=estimator.pathwise, y=rows_y)
    est, rec, kl = estimate(model, terms, objective, estimator, opts)  # (R,) per row
    log_qy = model.classify(x)  # (B, C)
    weight = _weight(batch, b, x)  # (B,)
    label_weight = _label_weight(batch, lab, n_l)  # (B,)
    order = torch.cat([torch.nonzero(lab).flatten(), torch.nonzero(~lab).flatten()])
    inverse = torch.argsort(order)  # rows [labelled, unlabelled] -> the batch's order

    def per_point(v: Tensor, log_py: float) -> Tensor:  # (R,) per row -> (B,) weighted per point
        lab_v = labelled_bound(v[:n_l], log_py)
        unl_v = unlabelled_bound(v[n_l:].reshape(c, b - n_l), log_qy[~lab], log_py)
        return torch.cat([lab_v, unl_v])[inverse] * weight

    alpha = DEFAULT_CLASSIFICATION_WEIGHT if opts.classification_weight is None else opts.classification_weight
    cls = torch.zeros(b, device=x.device).masked_scatter(lab, log_qy[lab].gather(1, y[lab].unsqueeze(1)).squeeze(1))
    cls_term = alpha * label_weight * cls  # (B,) eq. 9's classification term, per point
    value = per_point(est.value, model.log_py).detach()
    inference = straight_through(value, per_point(est.inference, model.log_py) + cls_term)
    generative = inference if est.shared else straight_through(value, per_point(est.generative, model.log_py))
    out = BoundEstimate(
        value, inference, generative, est.extra, {k: per_point(v, model.log_py).detach() for k, v in est.reported.items()}
    )
    with torch.no_grad():
        rec_p = per_point(rec, 0.0)  # E_q[log p(x|y, z)]
        elbo_p = per_point(rec - kl, model.log_py)
        stats = BoundStats.of_points({"rec": rec_p, "kl": rec_p - elbo_p, "bound": value, "elbo": elbo_p,
                                      "classifier_nll": -(label_weight * cls), **out.reported})  # fmt: skip
    return out, stats


def _weight(batch, b: int, x: Tensor) -> Tensor:
    w = batch.weight if isinstance(batch, Batch) else None
    return w if w is not None else torch.ones(b, device=x.device)


def _label_weight(batch, lab: Tensor, n_l: int) -> Tensor:
    """B / B_l on the labelled rows (its batch mean over log q(y|x) is the labelled points' mean)."""
    lw = batch.label_weight if isinstance(batch, Batch) else None
    if lw is not None:
        return lw
    return lab.float() * (lab.numel() / max(n_l, 1))


class SampledLabelTerms:
    """Log-weight terms of a semi-supervised model (M2) whose labels are unobserved: the latent is
    h = (y, z), drawn y_s ~ q(y|x), z_s ~ q(z|x, y_s), so that

        log w_s = log p(x|y_s, z_s) + log p(z_s) + log p(y_s) - log q(z_s|x, y_s) - log q(y_s|x)

    (Kingma et al. 2014, eq. 7, with the sum over y sampled rather than enumerated). Its mean is an
    unbiased estimate of the unlabelled bound U(x), its log-mean-exp an IS estimate of log p(x).
    Only the values are meant for evaluation: y is discrete, so gradients through these terms are
    not an estimator of anything (training enumerates y, :mod:`vaelab.objectives.semi_supervised`).

    Attributes (each (S, B), nats): ``log_px_z``, ``log_pz`` (z and y), ``log_qz`` (z and y), ``log_w``.
    """

    def __init__(self, inner, log_qy: Tensor, log_py: float, shape: tuple[int, int], x: Tensor):
        self._inner, self.log_qy, self.log_py, self._shape, self.x = inner, log_qy, log_py, shape, x  # log_qy (S, B)
        self.log_px_z = inner.log_px_z.reshape(shape)  # (1, S*B) -> (S, B), s-major as drawn
        self.reparameterized = False

    @cached_property
    def log_pz(self) -> Tensor:
        return self._inner.log_pz.reshape(self._shape) + self.log_py

    @cached_property
    def log_qz(self) -> Tensor:
        return self._inner.log_qz.reshape(self._shape) + self.log_qy

    @property
    def log_w(self) -> Tensor:
        return self.log_px_z + self.log_pz - self.log_qz

    @property
    def mean_log_px_z(self) -> Tensor:
        """(1/S) sum_s log p(x|y_s, z_s), (B,) nats."""
        return self.log_px_z.mean(0)

    def kl(self, analytic: bool = False) -> Tensor:
        """KL(q(y, z|x) || p(y, z)) per sample (S, B): z's closed form (``analytic``) or
        log q - log p, plus log q(y_s|x) - log p(y_s)."""
        kl_z = self._inner.kl(analytic).reshape(self._shape)
        return kl_z + self.log_qy - self.log_py
