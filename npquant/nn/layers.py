"""Layers with parameters and hyper-parameters as plain attributes, named and laid out as in
PyTorch (NCHW activations, OIHW conv weights, (out, in) linear weights)."""

from __future__ import annotations

import numpy as np

from npquant.nn import functional as F
from npquant.nn.conv import _pair
from npquant.nn.init import bias_uniform, kaiming_uniform, make_rng
from npquant.nn.module import Module, Parameter
from npquant.nn.tensor import Tensor

Seed = int | np.random.Generator


class Conv2d(Module):
    """2-d convolution; ``groups == in_channels`` is depthwise.

    Attributes: in_channels, out_channels, kernel_size, stride, padding, dilation (pairs),
    groups, weight (O, C/groups, KH, KW), bias (O,) or None. Initialized as PyTorch: weight
    Kaiming-uniform with a = sqrt(5), bias U(+-1/sqrt(fan_in)), drawn from ``rng``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True, *,
                 rng: Seed = 0, dtype=np.float32):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        rng = make_rng(rng)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(kaiming_uniform(shape, rng, dtype=dtype))
        self.bias = Parameter(bias_uniform(out_channels, shape, rng, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d expected input (N, {self.in_channels}, H, W), got shape "
                             f"{x.shape}")
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")


class Linear(Module):
    """y = x W^T + b with weight (out_features, in_features); PyTorch's default init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: Seed = 0, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        rng = make_rng(rng)
        shape = (out_features, in_features)
        self.weight = Parameter(kaiming_uniform(shape, rng, dtype=dtype))
        self.bias = Parameter(bias_uniform(out_features, shape, rng, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class BatchNorm2d(Module):
    """Batch norm over NCHW channels (arXiv:1502.03167), PyTorch semantics.

    Training: normalizes with the batch mean and biased variance and updates
    ``running_mean``/``running_var`` (unbiased variance) with ``momentum``; eval: uses the
    running statistics. weight (gamma) = 1 and bias (beta) = 0 initially; ``affine=False``
    keeps them fixed at that (as constants, not parameters).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, *, dtype=np.float32):
        super().__init__()
        if not 0.0 <= momentum <= 1.0 or eps <= 0:
            raise ValueError(f"BatchNorm2d momentum={momentum} must be in [0, 1], eps={eps} > 0")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine = affine
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d expected input (N, {self.num_features}, H, W), got "
                             f"shape {x.shape}")
        if self.affine:
            gamma, beta = self.weight, self.bias
        else:
            gamma = Tensor(np.ones(self.num_features, dtype=x.dtype))
            beta = Tensor(np.zeros(self.num_features, dtype=x.dtype))
        if self.training:
            self.num_batches_tracked = np.array(self.num_batches_tracked + 1, dtype=np.int64)
        return F.batch_norm2d(x, gamma, beta, self.running_mean, self.running_var,
                              training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class ReLU6(Module):
    """min(max(x, 0), 6)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(x)


class _Pool2d(Module):
    """A window pool: kernel_size, stride (defaults to kernel_size), padding, and the op."""

    def __init__(self, kernel_size: int | tuple[int, int], stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over kernel_size windows (stride defaults to kernel_size; -inf padding)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows, zero padding counted in the divisor."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Global average pool to (N, C, 1, 1); only output_size=1 is supported."""

    def __init__(self, output_size: int = 1):
        super().__init__()
        if _pair(output_size, "output_size") != (1, 1):
            raise ValueError(f"AdaptiveAvgPool2d supports output_size 1 only, got {output_size}")
        self.output_size = (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W) in C order."""

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x)


class Dropout(Module):
    """Inverted dropout with probability ``p``; its mask comes from ``self.rng``."""

    def __init__(self, p: float = 0.5, *, rng: Seed = 0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout p={p} must be in [0, 1)")
        self.p, self.rng = p, make_rng(rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training, rng=self.rng)


class Add(Module):
    """Residual add ``a + b`` as a module, so quantization can observe (and quantize) its output."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return F.add(a, b)


class Identity(Module):
    """Returns its input (an empty shortcut)."""

    def forward(self, x: Tensor) -> Tensor:
        return x
