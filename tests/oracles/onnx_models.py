"""Small models for the whole-model ONNX tests, built here (no downloads): the seed CNN, CNN_BN
with BatchNorm statistics that are not the identity (folded), and resnet_small, each with seeded
random weights, calibrated by npquant's PTQ on seeded synthetic images (realistic scales: ranges
observed on the model's own activations), converted under the ``onnxruntime`` profile."""

from __future__ import annotations

import numpy as np

from npquant import nn
from npquant.convert import IntegerModel, convert
from npquant.models import cnn, cnn_bn, resnet_small
from npquant.quant import QuantConfig, calibrate, choose_qparams, fold_batch_norm

# name -> (constructor, one image's shape). resnet_small on 24x24 ends on a 6x6 plane: the global
# average pool divides by 36, an even plane size that is not a power of two (ties possible).
MODELS = {"cnn": (cnn, (1, 28, 28)), "cnn_bn": (cnn_bn, (1, 28, 28)),
          "resnet": (resnet_small, (1, 24, 24))}


def images(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Seeded float32 images: clipped normals with a per-image offset (not zero-centred)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(shape)).astype(np.float32)
    return np.maximum(x, -0.8) + 0.3 * rng.normal(size=(n, 1, 1, 1)).astype(np.float32)


def float_model(name: str, seed: int = 0) -> nn.Module:
    """The BN-folded float model ``name`` with seeded weights and BatchNorm statistics."""
    make, shape = MODELS[name]
    m = make(seed=seed).eval()
    if not any(isinstance(mod, nn.BatchNorm2d) for _, mod in m.named_modules()):
        return m
    rng = np.random.default_rng(seed + 10)
    for _, mod in m.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean = rng.normal(0, 0.2, mod.num_features).astype(np.float32)
            mod.running_var = rng.uniform(0.5, 2, mod.num_features).astype(np.float32)
            mod.weight.data = rng.uniform(0.5, 1.5, mod.num_features).astype(np.float32)
            mod.bias.data = rng.normal(0, 0.2, mod.num_features).astype(np.float32)
    return fold_batch_norm(m, images(shape, 2, seed))


def integer_model(name: str, *, per_channel: bool = True, scheme: str | None = None,
                  profile: str = "onnxruntime", seed: int = 0) -> IntegerModel:
    """``float_model(name)`` through PTQ (min/max, 3 batches of 32) and ``convert``."""
    m = float_model(name, seed)
    shape = MODELS[name][1]
    cal = calibrate(m, images(shape, 96, seed + 1), num_batches=3, batch_size=32)
    qp = choose_qparams(m, cal, profile, QuantConfig(per_channel=per_channel, scheme=scheme))
    return convert(m, qp, profile, input_shape=shape)
