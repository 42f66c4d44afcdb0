"""ResNets for small images (He et al., arXiv:1512.03385, section 4.2): ResNet20 and a small one.

Shortcuts are **option B**: identity when shapes agree, else a 1x1 conv (stride 2) + BatchNorm
projection. Option B is chosen because every op is then a plain conv/BN/add that quantization,
BN folding and integer conversion already handle; the paper's CIFAR option A (zero-padded,
subsampled identity) would need a channel-pad op of its own. Weights use PyTorch's default
module initialization (Kaiming-uniform a = sqrt(5)), seeded.
"""

from __future__ import annotations

import numpy as np

from npquant import nn
from npquant.nn.init import make_rng


class BasicBlock(nn.Module):
    """out = relu2(add(bn2(conv2(relu1(bn1(conv1(x))))), shortcut(x))), 3x3 convs, no conv bias."""

    def __init__(self, in_planes: int, planes: int, stride: int, *, rng: np.random.Generator,
                 dtype=np.float32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False, rng=rng, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(planes, dtype=dtype)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False, rng=rng, dtype=dtype)
        self.bn2 = nn.BatchNorm2d(planes, dtype=dtype)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False, rng=rng, dtype=dtype),
                nn.BatchNorm2d(planes, dtype=dtype))
        else:
            self.shortcut = nn.Identity()
        self.add = nn.Add()
        self.relu2 = nn.ReLU()

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.add(out, self.shortcut(x)))


class ResNet(nn.Module):
    """stem conv3x3 -> BN -> ReLU -> 3 stages of BasicBlocks (stride 1, 2, 2) -> global average
    pool -> flatten -> linear. Sub-modules: conv1, bn1, relu, layer1..3, avgpool, flatten, fc."""

    def __init__(self, blocks: tuple[int, int, int], widths: tuple[int, int, int],
                 in_channels: int = 3, num_classes: int = 10, *,
                 seed: int | np.random.Generator = 0, dtype=np.float32, **_ignored):
        super().__init__()
        rng = make_rng(seed)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False, rng=rng, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(widths[0], dtype=dtype)
        self.relu = nn.ReLU()
        in_planes = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            stage = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock(in_planes, w, stride, rng=rng, dtype=dtype))
                in_planes = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes, rng=rng, dtype=dtype)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        for m in self._modules.values():
            x = m(x)
        return x


def resnet20(*, in_channels: int = 3, num_classes: int = 10, **kw) -> ResNet:
    """ResNet20 for 32x32 input: 3 stages x 3 blocks, 16/32/64 channels (0.27M parameters)."""
    return ResNet((3, 3, 3), (16, 32, 64), in_channels, num_classes, **kw)


def resnet_small(*, in_channels: int = 1, num_classes: int = 10, **kw) -> ResNet:
    """A ResNet8-like model for FashionMNIST on 2 cores: 3 stages x 1 block, 8/16/32 channels."""
    return ResNet((1, 1, 1), (8, 16, 32), in_channels, num_classes, **kw)
