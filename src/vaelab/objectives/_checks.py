from torch import Tensor


def check_log_w(log_w: Tensor, name: str, dims: int = 2) -> None:
    if log_w.dim() != dims:
        shape = "(K, B)" if dims == 2 else "(M, K, B)"
        raise ValueError(f"{name}: log_w must have shape {shape}, got {tuple(log_w.shape)}")


def group(log_w: Tensor, m: int) -> Tensor:
    """View (M*K, B) log-weights as (M, K, B); sample s = m*K + k, i.e. consecutive blocks of K.

    ``view`` (not ``repeat``/``permute``) keeps the axis order explicit: group m holds samples
    m*K ... m*K + K - 1. Raises ValueError if M does not divide the number of samples.
    """
    check_log_w(log_w, "group")
    s = log_w.shape[0]
    if m < 1 or s % m:
        raise ValueError(f"cannot split {s} samples into M={m} groups of equal size K")
    return log_w.view(m, s // m, log_w.shape[1])  # (M, K, B)
