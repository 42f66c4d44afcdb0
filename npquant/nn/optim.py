"""Optimizers with PyTorch's update rules: SGD (momentum, Nesterov, weight decay), Adam, AdamW.

Each ``step()`` reads ``p.grad`` of every parameter and updates ``p.data`` in place; the state
(momentum buffers, moments, step count) is plain arrays so it round-trips through ``.npz``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from npquant.nn.module import Parameter


class Optimizer:
    """Holds the parameter list, the learning rate ``lr`` and per-parameter state arrays."""

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if not (isinstance(lr, float | int) and lr >= 0 and np.isfinite(lr)):
            raise ValueError(f"lr={lr!r} must be a finite number >= 0")
        self.lr = float(lr)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self.step_count = 0

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to None."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.step_count += 1
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p, p.grad, state)

    def _update(self, p: Parameter, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat {key: array}: ``step_count``, ``lr`` and ``state.<i>.<name>`` per parameter."""
        out = {"step_count": np.array(self.step_count, dtype=np.int64),
               "lr": np.array(self.lr, dtype=np.float64)}
        for i, state in enumerate(self.state):
            for k, v in state.items():
                out[f"state.{i}.{k}"] = v.copy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` saved (shapes checked against the parameters)."""
        self.step_count = int(state["step_count"])
        self.lr = float(state["lr"])
        self.state = [{} for _ in self.params]
        for key, v in state.items():
            if not key.startswith("state."):
                continue
            _, i, name = key.split(".", 2)
            i = int(i)
            if i >= len(self.params):
                raise ValueError(f"optimizer state {key}: no parameter {i}")
            if name == "step":  # a per-parameter step counter (Adam), an integer scalar
                self.state[i][name] = np.array(v, dtype=np.int64)
                continue
            if v.shape != self.params[i].shape:
                raise ValueError(f"optimizer state {key} shape {v.shape} does not match "
                                 f"parameter {i} shape {self.params[i].shape}")
            self.state[i][name] = np.array(v, dtype=self.params[i].dtype)


class SGD(Optimizer):
    """PyTorch SGD: g = grad + wd*p; b = g (first step) else b = mu*b + (1 - dampening)*g;
    d = g + mu*b (Nesterov) or b; p -= lr*d."""

    def __init__(self, params: Iterable[Parameter], lr: float, *, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum={momentum} and weight_decay={weight_decay} must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening 0")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p, grad, state):
        g = grad + self.weight_decay * p.data if self.weight_decay else grad
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf = state["momentum_buffer"]
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            buf = state["momentum_buffer"]
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, arXiv:1412.6980) as PyTorch: with t the step,
    m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    ``weight_decay`` here is L2 (added to g); AdamW decouples it."""

    decoupled = False

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, *,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps <= 0 or weight_decay < 0:
            raise ValueError(f"betas={betas} must be in [0, 1), eps={eps} > 0, "
                             f"weight_decay={weight_decay} >= 0")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, p, grad, state):
        b1, b2 = self.betas
        if self.decoupled:  # AdamW (Loshchilov & Hutter, arXiv:1711.05101): p *= 1 - lr*wd
            p.data *= 1.0 - self.lr * self.weight_decay
            g = grad
        else:
            g = grad + self.weight_decay * p.data if self.weight_decay else grad
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] = np.zeros((), dtype=np.int64)
        state["step"] += 1
        t = int(state["step"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - b1) * (g - m)  # = b1 m + (1 - b1) g, written as PyTorch's lerp
        v *= b2
        v += (1.0 - b2) * g * g
        step_size = self.lr / (1.0 - b1 ** t)
        denom = np.sqrt(v) / np.sqrt(1.0 - b2 ** t) + self.eps
        p.data -= (step_size * (m / denom)).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01 as PyTorch)."""

    decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, *,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)
