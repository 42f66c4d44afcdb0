"""Models for tests: seeded weights with BatchNorm statistics that are not the identity."""

from __future__ import annotations

import numpy as np

from npquant import nn


def randomize_batch_norm(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm2d of ``model`` seeded non-trivial statistics and affine parameters
    (mean ~ N(0, 0.2), var ~ U(0.5, 2), gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2)), so folding is
    exercised; returns ``model``."""
    rng = np.random.default_rng(seed)
    for _, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean = rng.normal(0, 0.2, mod.num_features).astype(np.float32)
            mod.running_var = rng.uniform(0.5, 2, mod.num_features).astype(np.float32)
            mod.weight.data = rng.uniform(0.5, 1.5, mod.num_features).astype(np.float32)
            mod.bias.data = rng.normal(0, 0.2, mod.num_features).astype(np.float32)
    return model
