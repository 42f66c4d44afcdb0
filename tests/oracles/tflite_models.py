"""Seeded, calibrated integer models for the whole-model TFLite tests (no downloads): the seed
CNN, CNN_BN (BatchNorm folded) and the small ResNet, random weights and BatchNorm statistics,
their qparams chosen by PTQ (min/max observers) on seeded random images."""

from __future__ import annotations

from functools import cache

import numpy as np

from npquant import nn
from npquant.convert import IntegerModel, convert
from npquant.models import cnn, cnn_bn, resnet_small
from npquant.quant import calibrate, choose_qparams, fold_batch_norm

MODELS = {"cnn": ((1, 28, 28), cnn), "cnn_bn": ((1, 28, 28), cnn_bn),
          "resnet_small": ((1, 16, 16), resnet_small)}
# the profile of each TFLite kernel path measured whole-model
PATHS = {"reference": "tflite", "xnnpack": "tflite-xnnpack", "optimized": "tflite-optimized"}


def images(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Seeded images: clipped normal noise with a per-image offset (not centred on 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    return np.maximum(x, -0.8) + 0.3 * rng.normal(size=(n, 1, 1, 1)).astype(np.float32)


def _float_model(name: str) -> nn.Module:
    shape, make = MODELS[name]
    m = make(seed=0)
    rng = np.random.default_rng(10)
    for _, mod in m.named_modules():  # BatchNorm statistics that are not the identity
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean = rng.normal(0, 0.2, mod.num_features).astype(np.float32)
            mod.running_var = rng.uniform(0.5, 2, mod.num_features).astype(np.float32)
            mod.weight.data = rng.uniform(0.5, 1.5, mod.num_features).astype(np.float32)
            mod.bias.data = rng.normal(0, 0.2, mod.num_features).astype(np.float32)
    return m.eval()


@cache
def integer_model(name: str, profile: str) -> IntegerModel:
    """``name`` folded, calibrated on 64 seeded images and converted under ``profile``."""
    shape, _ = MODELS[name]
    x = images(shape, 64, seed=1)
    folded = fold_batch_norm(_float_model(name), x[:2])
    cal = calibrate(folded, x, num_batches=2, batch_size=32)
    return convert(folded, choose_qparams(folded, cal, profile), profile, input_shape=shape)
