"""Losses: cross-entropy from logits (stable log-softmax) and mean squared error."""

from __future__ import annotations

import numpy as np

from npquant.nn.tensor import Function, Tensor


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable: z - m - log(sum(exp(z - m))), m = max(z).

    NOTE: subtracting the row max keeps every exp() argument <= 0, so nothing overflows and
    the largest term is exactly exp(0) = 1, so the log never sees 0.
    """
    m = z.max(axis=-1, keepdims=True)
    zs = z - m
    return zs - np.log(np.exp(zs).sum(axis=-1, keepdims=True))


class CrossEntropyFn(Function):
    """L = -(1/N) sum_n log softmax(z_n)[t_n]; dL/dz = (softmax(z) - onehot(t)) / N."""

    @staticmethod
    def forward(ctx, logits, target):
        logp = log_softmax(logits)
        n = logits.shape[0]
        ctx.logp, ctx.target = logp, target
        return np.asarray(-logp[np.arange(n), target].mean(), dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        n = ctx.logp.shape[0]
        d = np.exp(ctx.logp)
        d[np.arange(n), ctx.target] -= 1
        return (d * (grad / n),)


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}:"
                         f" {x[tuple(bad)]})")


def cross_entropy(logits: Tensor, target: np.ndarray) -> Tensor:
    """Mean cross-entropy of integer class targets ``target`` (N,) given ``logits`` (N, C)."""
    target = np.asarray(target)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy logits must be (N, C), got shape {logits.shape}")
    if target.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy target shape {target.shape} does not match logits "
                         f"shape {logits.shape} (expected ({logits.shape[0]},))")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy target must be integer class indices, got {target.dtype}")
    if target.size and (target.min() < 0 or target.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy target values must be in [0, {logits.shape[1]}), got "
                         f"[{target.min()}, {target.max()}]")
    _check_finite(logits.data, "cross_entropy logits")
    return CrossEntropyFn.apply(logits, target=target.astype(np.intp))


class MSEFn(Function):
    """L = mean((y - t)^2); dL/dy = 2 (y - t) / size."""

    @staticmethod
    def forward(ctx, y, target):
        ctx.diff = y - target
        return np.asarray((ctx.diff * ctx.diff).mean(), dtype=y.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (ctx.diff * (2.0 * grad / ctx.diff.size),)


def mse_loss(pred: Tensor, target: np.ndarray | Tensor) -> Tensor:
    """Mean squared error against a constant target of the same shape."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target, dtype=pred.dtype)
    if t.shape != pred.shape:
        raise ValueError(f"mse_loss shapes differ: pred {pred.shape} vs target {t.shape}")
    _check_finite(pred.data, "mse_loss pred")
    _check_finite(t, "mse_loss target")
    return MSEFn.apply(pred, target=t.astype(pred.dtype, copy=False))
