"""Differentiable layer ops on Tensors (NCHW): linear, batch norm, activations, pools, dropout.

Each op is a ``Function`` whose backward sits right under its forward; the convolution lives
in ``npquant.nn.conv``. Shapes follow PyTorch so the same state dict fits both.
"""

from __future__ import annotations

import numpy as np

from npquant.nn.conv import _pair, conv2d, conv_output_size
from npquant.nn.norm_kernels import bn_train_backward, bn_train_forward, channel_affine
from npquant.nn.pool_kernels import (
    max_pool_2x2_forward,
    max_pool_backward,
    max_pool_forward,
    relu_backward,
)
from npquant.nn.tensor import Add, Function, Reshape, Tensor

__all__ = ["add", "adaptive_avg_pool2d", "avg_pool2d", "batch_norm2d", "conv2d", "dropout",
           "flatten", "linear", "max_pool2d", "relu", "relu6"]


# -- linear ---------------------------------------------------------------------------------
class LinearFn(Function):
    """y = x W^T + b for x (N, in), W (out, in); dx = dy W, dW = dy^T x, db = sum_n dy."""

    @staticmethod
    def forward(ctx, x, w, b=None):
        ctx.x, ctx.w, ctx.has_bias = x, w, b is not None
        y = x @ w.T
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, grad):
        dx = grad @ ctx.w if ctx.needs_input_grad[0] else None
        dw = grad.T @ ctx.x if ctx.needs_input_grad[1] else None
        if not ctx.has_bias:
            return dx, dw
        return dx, dw, (grad.sum(axis=0) if ctx.needs_input_grad[2] else None)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``torch.nn.functional.linear``: x (N, in), weight (out, in), bias (out,)."""
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear input shape {x.shape} does not match weight shape "
                         f"{weight.shape} (expected (N, {weight.shape[-1]}))")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear bias shape {bias.shape} != ({weight.shape[0]},)")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear input dtype {x.dtype} != weight dtype {weight.dtype}")
    return LinearFn.apply(x, weight) if bias is None else LinearFn.apply(x, weight, bias)


# -- batch norm -----------------------------------------------------------------------------
class BatchNorm2dTrainFn(Function):
    """Training-mode batch norm over (N, H, W) per channel (Ioffe & Szegedy, arXiv:1502.03167).

    With M = N*H*W, mu = mean(x), var = mean((x - mu)^2) (biased), xhat = (x - mu)/sqrt(var+eps):
    y = gamma * xhat + beta. Backward, with g = dy * gamma:
    dx = (1/sqrt(var+eps)) * (g - mean(g) - xhat * mean(g * xhat)).
    Both directions are two passes of ``npquant.nn.norm_kernels``.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        n, c = x.shape[:2]
        x3 = np.ascontiguousarray(x).reshape(n, c, -1)
        y, xhat = np.empty_like(x3), np.empty_like(x3)
        mean, var, invstd = (np.empty(c, dtype=x.dtype) for _ in range(3))
        bn_train_forward(x3, gamma, beta, eps, y, xhat, mean, var, invstd)
        ctx.xhat, ctx.invstd, ctx.gamma = xhat, invstd, gamma
        ctx.batch_mean, ctx.batch_var = mean, var
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat = ctx.xhat
        g3 = np.ascontiguousarray(grad, dtype=xhat.dtype).reshape(xhat.shape)
        c = xhat.shape[1]
        dgamma, dbeta = np.empty(c, dtype=xhat.dtype), np.empty(c, dtype=xhat.dtype)
        want_dx = ctx.needs_input_grad[0]
        dx = np.empty_like(xhat) if want_dx else xhat[:0]
        bn_train_backward(g3, xhat, ctx.gamma, ctx.invstd, want_dx, dx, dgamma, dbeta)
        return (dx.reshape(grad.shape) if want_dx else None), dgamma, dbeta


class BatchNorm2dEvalFn(Function):
    """Eval-mode batch norm: y = gamma (x - mean_run)/sqrt(var_run + eps) + beta, an affine map
    per channel, computed in one pass as y = x a + b with a = gamma / sqrt(var_run + eps),
    b = beta - mean_run a; dx = dy a, dgamma = sum dy xhat, dbeta = sum dy (xhat recomputed from
    the kept x in the backward)."""

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, eps):
        invstd = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype)
        a = (gamma * invstd).astype(x.dtype)
        b = (beta - running_mean * a).astype(x.dtype)
        n, c = x.shape[:2]
        x3 = np.ascontiguousarray(x).reshape(n, c, -1)
        y = np.empty_like(x3)
        channel_affine(x3, a, b, y)
        if any(ctx.needs_input_grad):
            ctx.x, ctx.mean, ctx.invstd = x, running_mean.astype(x.dtype), invstd
            ctx.scale = a.reshape(1, -1, 1, 1)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        dx = grad * ctx.scale if ctx.needs_input_grad[0] else None
        xhat = (ctx.x - ctx.mean.reshape(1, -1, 1, 1)) * ctx.invstd.reshape(1, -1, 1, 1)
        return dx, (grad * xhat).sum(axis=(0, 2, 3)), grad.sum(axis=(0, 2, 3))


def batch_norm2d(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: np.ndarray,
                 running_var: np.ndarray, *, training: bool, momentum: float = 0.1,
                 eps: float = 1e-5) -> Tensor:
    """``torch.nn.functional.batch_norm`` for NCHW; updates the running stats in training.

    Running update (PyTorch): ``run = (1 - momentum) * run + momentum * batch``, where the
    batch variance used for ``running_var`` is the *unbiased* one, var * M / (M - 1).
    """
    c = gamma.shape[0]
    if x.ndim != 4 or x.shape[1] != c:
        raise ValueError(f"batch_norm2d input shape {x.shape} does not match {c} channels "
                         f"(expected (N, {c}, H, W))")
    if not training:
        return BatchNorm2dEvalFn.apply(x, gamma, beta, running_mean=running_mean,
                                       running_var=running_var, eps=eps)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    if m < 2:
        raise ValueError(f"batch_norm2d in training needs more than 1 value per channel, "
                         f"got input shape {x.shape}")
    out = BatchNorm2dTrainFn.apply(x, gamma, beta, eps=eps)
    ctx = out._node.ctx if out._node is not None else None
    if ctx is None:  # no tape (inside no_grad): recompute the statistics for the update
        mean = x.data.mean(axis=(0, 2, 3))
        var = x.data.var(axis=(0, 2, 3))
    else:
        mean, var = ctx.batch_mean, ctx.batch_var
    running_mean *= 1.0 - momentum
    running_mean += momentum * mean
    running_var *= 1.0 - momentum
    running_var += momentum * var * (m / (m - 1))
    return out


# -- activations ----------------------------------------------------------------------------
class ReLUFn(Function):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch).

    The backward reads the mask from the output (y > 0 exactly where x > 0), so no mask is
    stored, and applies it in one pass (``relu_backward``)."""

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad):
        return (relu_backward(grad, ctx.y),)


class ReLU6Fn(Function):
    """y = min(max(x, 0), 6); dy/dx = 1 on the open interval (0, 6) (PyTorch's hardtanh)."""

    @staticmethod
    def forward(ctx, x):
        ctx.mask = (x > 0) & (x < 6)
        return np.clip(x, 0, 6)

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx.mask,)


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return ReLUFn.apply(x)


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6)."""
    return ReLU6Fn.apply(x)


def add(a: Tensor, b: Tensor) -> Tensor:
    """Residual add of two same-shape tensors (shape mismatch is a ValueError, no broadcast)."""
    if a.shape != b.shape:
        raise ValueError(f"add operands differ in shape: {a.shape} vs {b.shape}")
    return Add.apply(a, b)


# -- pools ----------------------------------------------------------------------------------
def _windows(xp: np.ndarray, kh: int, kw: int, s: tuple[int, int], oh: int, ow: int):
    """Yield ((i, j), view) for every kernel tap: view[n, c, y, x] = xp[n, c, y*s+i, x*s+j]."""
    for i in range(kh):
        for j in range(kw):
            yield (i, j), xp[:, :, i: i + s[0] * (oh - 1) + 1: s[0],
                             j: j + s[1] * (ow - 1) + 1: s[1]]


def _pool_geometry(x: Tensor, kernel_size, stride, padding, name: str):
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p = _pair(padding, "padding")
    if x.ndim != 4:
        raise ValueError(f"{name} input must be 4-d NCHW, got shape {x.shape}")
    if min(k) < 1 or min(s) < 1 or min(p) < 0 or p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{name}: kernel_size {k}, stride {s} must be >= 1 and padding {p} "
                         f"at most half the kernel")
    oh = conv_output_size(x.shape[2], k[0], s[0], p[0], 1)
    ow = conv_output_size(x.shape[3], k[1], s[1], p[1], 1)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name} input shape {x.shape} is smaller than kernel {k}")
    return k, s, p, oh, ow


class MaxPool2dFn(Function):
    """y = max over each window; the gradient goes to the first maximum in row-major window
    order (PyTorch's CPU kernel keeps the first max it meets). Padding is -inf. The loops are
    numba kernels (``npquant.nn.pool_kernels``)."""

    @staticmethod
    def forward(ctx, x, k, s, p, oh, ow):
        xp = x
        if p[0] or p[1]:
            xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])),
                        constant_values=-np.inf)
        out = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
        want_arg = any(ctx.needs_input_grad)
        arg = np.empty(out.shape if want_arg else (0, 0, 0, 0), dtype=np.int32)
        if k == (2, 2) and s == (2, 2):
            max_pool_2x2_forward(xp, out, arg, want_arg)
        else:
            max_pool_forward(xp, k[0], k[1], s[0], s[1], out, np.empty(out.shape, np.int32)
                             if not want_arg else arg)
        ctx.arg, ctx.p, ctx.xp_shape, ctx.x_shape = arg, p, xp.shape, x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        dxp = np.zeros(ctx.xp_shape, dtype=grad.dtype)
        max_pool_backward(grad, ctx.arg, dxp)
        p, (h, w) = ctx.p, ctx.x_shape[2:]
        return (np.ascontiguousarray(dxp[:, :, p[0]: p[0] + h, p[1]: p[1] + w]),)


def max_pool2d(x: Tensor, kernel_size: int | tuple[int, int], stride=None, padding=0) -> Tensor:
    """``torch.nn.functional.max_pool2d`` (dilation 1, floor mode); stride defaults to kernel."""
    k, s, p, oh, ow = _pool_geometry(x, kernel_size, stride, padding, "max_pool2d")
    return MaxPool2dFn.apply(x, k=k, s=s, p=p, oh=oh, ow=ow)


class AvgPool2dFn(Function):
    """y = (1/(KH*KW)) * sum over each window, zero padding counted (count_include_pad=True);
    the backward spreads dy/(KH*KW) over the window."""

    @staticmethod
    def forward(ctx, x, k, s, p, oh, ow):
        xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]))) if p[0] or p[1] else x
        out = np.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for _, v in _windows(xp, k[0], k[1], s, oh, ow):
            out += v
        ctx.k, ctx.s, ctx.p, ctx.xp_shape, ctx.x_shape = k, s, p, xp.shape, x.shape
        return out / (k[0] * k[1])

    @staticmethod
    def backward(ctx, grad):
        dxp = np.zeros(ctx.xp_shape, dtype=grad.dtype)
        g = grad / (ctx.k[0] * ctx.k[1])
        for _, v in _windows(dxp, ctx.k[0], ctx.k[1], ctx.s, *grad.shape[2:]):
            v += g
        p, (h, w) = ctx.p, ctx.x_shape[2:]
        return (np.ascontiguousarray(dxp[:, :, p[0]: p[0] + h, p[1]: p[1] + w]),)


def avg_pool2d(x: Tensor, kernel_size: int | tuple[int, int], stride=None, padding=0) -> Tensor:
    """``torch.nn.functional.avg_pool2d`` with count_include_pad=True, floor mode."""
    k, s, p, oh, ow = _pool_geometry(x, kernel_size, stride, padding, "avg_pool2d")
    return AvgPool2dFn.apply(x, k=k, s=s, p=p, oh=oh, ow=ow)


class GlobalAvgPoolFn(Function):
    """y[n, c, 0, 0] = mean over (H, W) of x[n, c]; dx = dy / (H*W) broadcast."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    @staticmethod
    def backward(ctx, grad):
        h, w = ctx.shape[2:]
        return (np.broadcast_to(grad / (h * w), ctx.shape).copy(),)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int, int] = 1) -> Tensor:
    """``torch.nn.functional.adaptive_avg_pool2d`` for output size 1 (global average pool)."""
    if _pair(output_size, "output_size") != (1, 1):
        raise ValueError(f"adaptive_avg_pool2d supports output_size 1 only, got {output_size}")
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d input must be 4-d NCHW, got shape {x.shape}")
    return GlobalAvgPoolFn.apply(x)


# -- shape and regularization -----------------------------------------------------------------
def flatten(x: Tensor) -> Tensor:
    """(N, ...) -> (N, prod(...)), C-order as ``torch.flatten(x, 1)``."""
    if x.ndim < 1:
        raise ValueError(f"flatten needs a batch axis, got shape {x.shape}")
    return Reshape.apply(x, shape=(x.shape[0], -1))


class DropoutFn(Function):
    """Inverted dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p); dx = dy * mask/(1-p)."""

    @staticmethod
    def forward(ctx, x, scale_mask):
        ctx.scale_mask = scale_mask
        return x * scale_mask

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx.scale_mask,)


def dropout(x: Tensor, p: float, *, training: bool, rng: np.random.Generator) -> Tensor:
    """Zero each element with probability ``p`` in training, scaling by 1/(1-p); identity in
    eval."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p={p} must be in [0, 1)")
    if not training or p == 0.0:
        return x
    keep = rng.random(x.shape) >= p
    return DropoutFn.apply(x, scale_mask=(keep / (1.0 - p)).astype(x.dtype))
