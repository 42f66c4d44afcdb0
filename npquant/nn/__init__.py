"""Float neural networks on a small autograd: Tensor, Function, modules, losses, optimizers.

Import surface::

    from npquant import nn
    model = nn.Sequential(nn.Conv2d(1, 8, 3, rng=0), nn.ReLU(), nn.Flatten(), ...)
    loss = nn.cross_entropy(model(nn.Tensor(x)), y); loss.backward(); opt.step()
"""

from npquant.nn import functional
from npquant.nn.layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
)
from npquant.nn.losses import cross_entropy, log_softmax, mse_loss
from npquant.nn.module import HookHandle, Module, Parameter, Sequential, record_activations
from npquant.nn.optim import SGD, Adam, AdamW, Optimizer
from npquant.nn.schedules import ConstantLR, CosineLR, Schedule, StepLR, WarmupLR
from npquant.nn.tensor import Context, Function, Tensor, as_tensor, is_grad_enabled, no_grad

__all__ = [
    "SGD", "Adam", "AdamW", "AdaptiveAvgPool2d", "Add", "AvgPool2d", "BatchNorm2d", "ConstantLR",
    "Context", "Conv2d", "CosineLR", "Dropout", "Flatten", "Function", "HookHandle", "Identity",
    "Linear", "MaxPool2d", "Module", "Optimizer", "Parameter", "ReLU", "ReLU6", "Schedule",
    "Sequential", "StepLR", "Tensor", "WarmupLR", "as_tensor", "cross_entropy", "functional",
    "is_grad_enabled", "log_softmax", "mse_loss", "no_grad", "record_activations",
]
