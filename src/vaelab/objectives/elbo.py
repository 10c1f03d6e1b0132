"""The evidence lower bound."""

from torch import Tensor

from ._checks import check_log_w
from .base import OBJECTIVES, Objective, Term


def elbo(log_w: Tensor) -> Tensor:
    """Monte Carlo ELBO per data point: (1/K) sum_k log w_k (Kingma & Welling 2014, eq. 3).

    Args:
        log_w: log-weights log p(x, z_k) - log q(z_k|x), shape (K, B), in nats. With an
            analytic KL the caller may pass log p(x|z_k) - KL(q||p) instead; the mean is then
            the lower-variance ELBO estimator of eq. 7.
    Returns:
        (B,) ELBO estimates in nats.
    Raises:
        ValueError: if log_w is not 2-D.
    """
    check_log_w(log_w, "elbo")
    return log_w.mean(dim=0)


@OBJECTIVES.register("elbo")
class ELBO(Objective):
    """The S-sample Monte Carlo ELBO: S groups of one sample (Kingma & Welling 2014, eq. 3)."""

    def terms(self, s):
        return [Term(1.0, s)]
