"""The training bound of a semi-supervised model (Kingma et al. 2014's M2) on a batch that mixes
labelled and unlabelled points: one conditional pass over the labelled rows and every
(class, unlabelled point) pair, then the per-class bounds combined by
:mod:`vaelab.objectives.semi_supervised`."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import Batch
from ..errors import ConfigError, DataError
from ..estimators import BoundEstimate, straight_through
from ..models.vae import every_class
from ..objectives.semi_supervised import labelled_bound, unlabelled_bound
from .bound import estimate


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


def semi_supervised_bound(
    model, batch: Batch | Tensor, objective, estimator, n_samples: int, kl: str, beta: float, alpha: float
) -> tuple[BoundEstimate, dict]:
    """M2's bound on a batch: L(x, y) on the labelled points (eq. 6), U(x) on the others (eq. 7, the
    sum over y exact), each weighted by the batch's row weights, and the classification term
    ``alpha`` * mean over labelled points of log q(y|x) in the inference surrogate (eq. 9, per data
    point: the paper's alpha = 0.1 N is ``alpha = 0.1`` here, as in the authors' code, which scales
    log q(y|x) by alpha N / N_l and divides the objective by N).

    Any objective and estimator serve the per-class bound on log p(x, z|y): the estimator runs once
    on the R = B_l + C B_u rows, and its surrogates are combined like its values, so the classifier's
    gradient comes from the enumeration (no score function).

    Returns:
        (estimate with (B,) weighted values and surrogates, {"elbo", "rec", "kl", "bound",
        "classifier_nll"}). The bound's batch mean estimates the mean bound per training point.
    Raises:
        DataError: labels outside -1..C-1.
    """
    x = batch.x if isinstance(batch, Batch) else batch
    b, c = x.shape[0], model.n_classes
    y = batch.y if isinstance(batch, Batch) and batch.y is not None else torch.full((b,), -1, device=x.device)
    if b and (int(y.min()) < -1 or int(y.max()) >= c):
        raise DataError(f"labels must lie in 0..{c - 1} (or -1 for unlabelled points)")
    rows_x, rows_y, lab = enumerated_rows(x, y, c)
    n_l = int(lab.sum())
    terms = model.log_weight_terms(rows_x, n_samples * objective.groups, reparameterize=estimator.pathwise, y=rows_y)
    est, rec, kl_s = estimate(model, terms, objective, estimator, kl, beta, 0.0, None)
    log_qy = model.classify(x)  # (B, C)
    weight = _weight(batch, b, x)  # (B,)
    label_weight = _label_weight(batch, lab, n_l)  # (B,)
    order = torch.cat([torch.nonzero(lab).flatten(), torch.nonzero(~lab).flatten()])
    inverse = torch.argsort(order)  # rows [labelled, unlabelled] -> the batch's order

    def per_point(v: Tensor, log_py: float) -> Tensor:  # (R,) per row -> (B,) weighted per point
        lab_v = labelled_bound(v[:n_l], log_py)
        unl_v = unlabelled_bound(v[n_l:].reshape(c, b - n_l), log_qy[~lab], log_py)
        return torch.cat([lab_v, unl_v])[inverse] * weight

    cls = torch.zeros(b, device=x.device).masked_scatter(lab, log_qy[lab].gather(1, y[lab].unsqueeze(1)).squeeze(1))
    cls_term = alpha * label_weight * cls  # (B,) eq. 9's classification term, per point
    value = per_point(est.value, model.log_py).detach()
    inference = straight_through(value, per_point(est.inference, model.log_py) + cls_term)
    generative = inference if est.shared else straight_through(value, per_point(est.generative, model.log_py))
    out = BoundEstimate(
        value, inference, generative, est.extra, {k: per_point(v, model.log_py).detach() for k, v in est.reported.items()}
    )
    with torch.no_grad():
        rec_p = per_point(rec.mean(0), 0.0)  # E_q[log p(x|y, z)]
        elbo_p = per_point((rec - kl_s).mean(0), model.log_py)
        stats = {"rec": rec_p.mean(), "kl": (rec_p - elbo_p).mean(), "bound": value.mean(), "elbo": elbo_p.mean()}
        stats["classifier_nll"] = -(label_weight * cls).mean()
        stats.update({k: v.mean() for k, v in out.reported.items()})
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


def check_semi_supervised(train_cfg, model) -> None:
    """Options that a semi-supervised or conditional model cannot honour.

    Raises:
        ConfigError: naming the option.
    """
    labels = getattr(model, "labels", "none")
    if labels == "none" and train_cfg.classification_weight != 0.1:
        raise ConfigError('train.classification_weight applies to model.labels = "semi-supervised" only')
    if labels != "none" and train_cfg.free_bits:
        raise ConfigError("train.free_bits is not supported with a labelled model (set free_bits = 0)")
    if labels != "none" and train_cfg.grad_variance_every:
        raise ConfigError("train.grad_variance_every does not measure labelled models yet (set it to 0)")
