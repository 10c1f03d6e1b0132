"""Learning-rate and KL-weight schedules."""

from __future__ import annotations


def scheduled_lr(lr: float, schedule: str, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``. 'iwae': Burda et al. 2016, Sec. 5 — stage i = 0..7 runs
    3^i epochs at lr * 10^(-i/7); epochs past the 3,280 of the schedule stay in the last stage."""
    if schedule == "constant":
        return lr
    stage, end = 0, 1
    while epoch >= end and stage < 7:
        stage += 1
        end += 3 ** stage
    return lr * 10 ** (-stage / 7)


def warmup_beta(beta: float, warmup_steps: int, step: int) -> float:
    """KL weight after ``step`` steps of a linear warm-up from 0 (Bowman et al. 2016; off when 0)."""
    return beta * min(1.0, step / warmup_steps) if warmup_steps else beta
