"""The seed's small CNNs (Quantization-DNNs): two 3x3 conv blocks and one linear classifier."""

from __future__ import annotations

import numpy as np

from npquant import nn
from npquant.nn.init import make_rng


def _after_block(size: int) -> int:
    """Spatial size after a 3x3 valid conv then a 2x2 max pool: floor((size - 2) / 2)."""
    return (size - 2) // 2


class CNN(nn.Module):
    """Conv(C->40, 3x3) -> [BN] -> ReLU -> MaxPool 2 -> Conv(40->40, 3x3) -> [BN] -> ReLU ->
    MaxPool 2 -> Flatten -> Linear(40*s*s -> classes).

    For 28x28 input s = 5 (28 -> 26 -> 13 -> 11 -> 5, flatten 1000); for 32x32, s = 6 (1440).
    ``batch_norm=True`` is CNN_BN: a BatchNorm2d after each conv, before the ReLU. Sub-modules
    are named conv1, bn1, relu1, pool1, conv2, bn2, relu2, pool2, flatten, fc, in call order.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 28, num_classes: int = 10, *,
                 batch_norm: bool = False, width: int = 40,
                 seed: int | np.random.Generator = 0, dtype=np.float32):
        super().__init__()
        s = _after_block(_after_block(input_size))
        if s < 1:
            raise ValueError(f"CNN input_size={input_size} is too small (needs >= 10)")
        rng = make_rng(seed)
        self.in_channels, self.input_size, self.num_classes = in_channels, input_size, num_classes
        self.conv1 = nn.Conv2d(in_channels, width, 3, rng=rng, dtype=dtype)
        if batch_norm:
            self.bn1 = nn.BatchNorm2d(width, dtype=dtype)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(width, width, 3, rng=rng, dtype=dtype)
        if batch_norm:
            self.bn2 = nn.BatchNorm2d(width, dtype=dtype)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width * s * s, num_classes, rng=rng, dtype=dtype)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        # The children run in registration order, so forward is the Sequential loop.
        for m in self._modules.values():
            x = m(x)
        return x


def cnn(**kw) -> CNN:
    """CNN without batch norm (defaults: 1x28x28 input, 10 classes)."""
    return CNN(batch_norm=False, **kw)


def cnn_bn(**kw) -> CNN:
    """CNN_BN: BatchNorm2d after each conv."""
    return CNN(batch_norm=True, **kw)
