"""Every layer's backward against central finite differences in float64 (no framework needed)."""

from __future__ import annotations

import numpy as np
import pytest
from nn_helpers import numeric_grad_check

from npquant import nn
from npquant.nn import functional as F


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def away_from_kinks(x, kinks=(0.0,), margin=1e-2):
    """Move values off the non-differentiable points, where finite differences are meaningless."""
    x = x.copy()
    for k in kinks:
        close = np.abs(x - k) < margin
        x[close] = k + 0.5
    return x


def bn_train(x, w, b):
    return F.batch_norm2d(x, w, b, np.zeros(3), np.ones(3), training=True)


def bn_eval(x, w, b):
    return F.batch_norm2d(x, w, b, np.full(3, 0.3), np.full(3, 2.0), training=False)


CASES = {
    "conv": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
             [randn(2, 2, 4, 4), randn(3, 2, 3, 3, seed=1), randn(3, seed=2)]),
    "conv_s2_dil_groups": (lambda x, w: F.conv2d(x, w, stride=2, padding=2, dilation=2, groups=2),
                           [randn(1, 4, 6, 6), randn(4, 2, 3, 3, seed=1)]),
    "depthwise": (lambda x, w: F.conv2d(x, w, padding=1, groups=3),
                  [randn(1, 3, 4, 4), randn(3, 1, 3, 3, seed=1)]),
    "linear": (F.linear, [randn(3, 4), randn(2, 4, seed=1), randn(2, seed=2)]),
    "bn_train": (bn_train, [randn(2, 3, 3, 3) * 2 + 1, randn(3, seed=1), randn(3, seed=2)]),
    "bn_eval": (bn_eval, [randn(2, 3, 3, 3), randn(3, seed=1), randn(3, seed=2)]),
    "relu": (F.relu, [away_from_kinks(randn(2, 3, 3))]),
    "relu6": (F.relu6, [away_from_kinks(randn(2, 3, 3) * 5, (0.0, 6.0))]),
    "maxpool": (lambda x: F.max_pool2d(x, 2), [randn(1, 2, 4, 4)]),
    "maxpool_overlap_pad": (lambda x: F.max_pool2d(x, 3, 2, 1), [randn(1, 2, 5, 5)]),
    "avgpool_pad": (lambda x: F.avg_pool2d(x, 3, 2, 1), [randn(1, 2, 5, 5)]),
    "global_avgpool": (F.adaptive_avg_pool2d, [randn(2, 3, 3, 2)]),
    "flatten": (F.flatten, [randn(2, 3, 2)]),
    "add": (F.add, [randn(2, 3), randn(2, 3, seed=1)]),
    "dropout": (lambda x: F.dropout(x, 0.5, training=True, rng=np.random.default_rng(7)),
                [randn(3, 4)]),
    "cross_entropy": (lambda z: nn.cross_entropy(z, np.array([2, 0, 1])), [randn(3, 4)]),
    "mse": (lambda y: nn.mse_loss(y, randn(3, 4, seed=9)), [randn(3, 4)]),
    "matmul_mul_sum": (lambda a, b: ((a @ b) * (a @ b)).sum(), [randn(2, 3), randn(3, 2)]),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_backward_matches_finite_differences(case):
    fn, inputs = case
    numeric_grad_check(fn, inputs)


def test_residual_block_finite_differences():
    from npquant.models.resnet import BasicBlock

    block = BasicBlock(2, 4, 2, rng=np.random.default_rng(0), dtype=np.float64)
    # training-mode BN: every parameter of both branches (incl. the 1x1 projection) is checked
    numeric_grad_check(block, [randn(2, 2, 5, 5)], params=block.parameters())
