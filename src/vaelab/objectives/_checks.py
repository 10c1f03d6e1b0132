from torch import Tensor


def check_log_w(log_w: Tensor, name: str) -> None:
    if log_w.dim() != 2:
        raise ValueError(f"{name}: log_w must have shape (K, B), got {tuple(log_w.shape)}")
