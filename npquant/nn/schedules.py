"""Learning-rate schedules as pure functions of the epoch (so resuming needs no state)."""

from __future__ import annotations

import math


class Schedule:
    """``lr_at(epoch)`` gives the learning rate for 0-based ``epoch``."""

    def __init__(self, base_lr: float):
        if not (base_lr >= 0 and math.isfinite(base_lr)):
            raise ValueError(f"base_lr={base_lr} must be a finite number >= 0")
        self.base_lr = float(base_lr)

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError


class ConstantLR(Schedule):
    """lr = base_lr."""

    def lr_at(self, epoch: int) -> float:
        return self.base_lr


class StepLR(Schedule):
    """lr = base_lr * gamma^floor(epoch / step_size) (PyTorch StepLR)."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1):
        super().__init__(base_lr)
        if step_size < 1:
            raise ValueError(f"step_size={step_size} must be >= 1")
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(Schedule):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi * epoch / t_max)) / 2 for epoch <= t_max
    (PyTorch CosineAnnealingLR's closed form), eta_min afterwards."""

    def __init__(self, base_lr: float, t_max: int, eta_min: float = 0.0):
        super().__init__(base_lr)
        if t_max < 1:
            raise ValueError(f"t_max={t_max} must be >= 1")
        self.t_max, self.eta_min = t_max, eta_min

    def lr_at(self, epoch: int) -> float:
        e = min(epoch, self.t_max)
        cos = math.cos(math.pi * e / self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + cos) / 2


class WarmupLR(Schedule):
    """Linear warm-up over ``warmup`` epochs: lr = after.lr_at(0) * (epoch + 1) / (warmup + 1),
    then ``after`` shifted by ``warmup`` epochs."""

    def __init__(self, after: Schedule, warmup: int):
        super().__init__(after.base_lr)
        if warmup < 0:
            raise ValueError(f"warmup={warmup} must be >= 0")
        self.after, self.warmup = after, warmup

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.after.lr_at(0) * (epoch + 1) / (self.warmup + 1)
        return self.after.lr_at(epoch - self.warmup)
