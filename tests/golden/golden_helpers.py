"""A small integer model for the golden tests."""

from __future__ import annotations

import numpy as np

from npquant import nn
from npquant.convert import convert
from npquant.quant.ptq import calibrate, choose_qparams


def small_model(profile: str = "tflite"):
    """conv(1->3, 3x3) + ReLU, max pool, FC(48->4): a tiny integer model and 16 images."""
    model = nn.Sequential(nn.Conv2d(1, 3, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 4, rng=1)).eval()
    x = np.random.default_rng(0).normal(size=(16, 1, 10, 10)).astype(np.float32)
    cal = calibrate(model, x, num_batches=2, batch_size=8)
    return convert(model, choose_qparams(model, cal, profile), profile,
                   input_shape=(1, 10, 10)), x
