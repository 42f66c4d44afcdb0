"""Seeded, calibrated integer models for the whole-model TFLite tests (no downloads): the seed
CNN, CNN_BN (BatchNorm folded) and the small ResNet, random weights and BatchNorm statistics,
their qparams chosen by PTQ (min/max observers) on seeded random images."""

from __future__ import annotations

from functools import cache

import numpy as np
from seeded_models import randomize_batch_norm

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
    return randomize_batch_norm(make(seed=0), 10).eval()


@cache
def integer_model(name: str, profile: str) -> IntegerModel:
    """``name`` folded, calibrated on 64 seeded images and converted under ``profile``."""
    shape, _ = MODELS[name]
    x = images(shape, 64, seed=1)
    folded = fold_batch_norm(_float_model(name), x[:2])
    cal = calibrate(folded, x, num_batches=2, batch_size=32)
    return convert(folded, choose_qparams(folded, cal, profile), profile, input_shape=shape)
