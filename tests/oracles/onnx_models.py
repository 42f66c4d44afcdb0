"""Small models for the whole-model ONNX tests, built here (no downloads): the seed CNN, CNN_BN
with BatchNorm statistics that are not the identity (folded), and resnet_small, each with seeded
random weights, calibrated by npquant's PTQ on seeded synthetic images (realistic scales: ranges
observed on the model's own activations), converted under the ``onnxruntime`` profile."""

from __future__ import annotations

import numpy as np
from seeded_models import randomize_batch_norm

from npquant import nn
from npquant.convert import IntegerModel, convert
from npquant.models import cnn, cnn_bn, resnet20, resnet_small
from npquant.quant import QuantConfig, calibrate, choose_qparams, fold_batch_norm

# name -> (constructor, one image's shape). resnet_small on 24x24 ends on a 6x6 plane: the global
# average pool divides by 36, an even plane size that is not a power of two (ties possible).
MODELS = {"cnn": (cnn, (1, 28, 28)), "cnn_bn": (cnn_bn, (1, 28, 28)),
          "resnet": (resnet_small, (1, 24, 24))}
SLOW_MODELS = {"resnet20": (resnet20, (3, 32, 32))}  # 9 blocks, 8x8 global pool


def images(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Seeded float32 images: clipped normals with a per-image offset (not zero-centred)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(shape)).astype(np.float32)
    return np.maximum(x, -0.8) + 0.3 * rng.normal(size=(n, 1, 1, 1)).astype(np.float32)


def float_model(name: str, seed: int = 0) -> nn.Module:
    """The BN-folded float model ``name`` with seeded weights and BatchNorm statistics."""
    make, shape = {**MODELS, **SLOW_MODELS}[name]
    m = make(seed=seed).eval()
    if not any(isinstance(mod, nn.BatchNorm2d) for _, mod in m.named_modules()):
        return m
    randomize_batch_norm(m, seed + 10)
    return fold_batch_norm(m, images(shape, 2, seed))


def integer_model(name: str, *, per_channel: bool = True, scheme: str | None = None,
                  profile: str = "onnxruntime", seed: int = 0) -> IntegerModel:
    """``float_model(name)`` through PTQ (min/max, 3 batches of 32) and ``convert``."""
    m = float_model(name, seed)
    shape = {**MODELS, **SLOW_MODELS}[name][1]
    cal = calibrate(m, images(shape, 96, seed + 1), num_batches=3, batch_size=32)
    qp = choose_qparams(m, cal, profile, QuantConfig(per_channel=per_channel, scheme=scheme))
    return convert(m, qp, profile, input_shape=shape)


def torch_quantized_onnx(out_dir, *, quant_format: str, activation_type: str = "QInt8",
                         per_channel: bool = True, symmetric_activations: bool = False,
                         seed: int = 0):
    """An independently built quantized model: a small float PyTorch CNN (conv + BatchNorm +
    ReLU, max pool, a residual add + ReLU, a depthwise conv, global average pool, flatten,
    linear) with seeded random weights, exported by ``torch.onnx.export`` (TorchScript exporter,
    ``dynamo=False``: the dynamo exporter needs onnxscript) and quantized by ONNX Runtime's
    ``quantize_static`` (``quant_format`` "QDQ" or "QOperator", int8 weights, calibrated on 4
    seeded batches of 8 images; ``symmetric_activations``: ORT's ``ActivationSymmetric``, zero
    points 0, so ReLUs stay nodes of their own). Returns ``(path of the quantized model, path of
    the float one)``.
    """
    import logging
    import warnings
    from pathlib import Path

    import torch
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
            x = torch.relu(x + torch.relu(self.c2(x)))
            x = torch.nn.functional.adaptive_avg_pool2d(self.dw(x), 1)
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(seed)
    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
    out_dir = Path(out_dir)
    fp = out_dir / "float.onnx"
    qp = out_dir / (f"{quant_format.lower()}_{activation_type.lower()}"
                    f"{'_sym' if symmetric_activations else ''}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(fp), dynamo=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}}, opset_version=17)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": images((1, 28, 28), 8, seed + 100 + i)}
                                 for i in range(4)])

        def get_next(self):
            return next(self.batches, None)

    logging.disable(logging.WARNING)  # "please consider pre-processing" on every call
    try:
        quantize_static(str(fp), str(qp), Reader(),
                        quant_format=getattr(QuantFormat, quant_format),
                        activation_type=getattr(QuantType, activation_type),
                        weight_type=QuantType.QInt8, per_channel=per_channel,
                        extra_options={"ActivationSymmetric": bool(symmetric_activations)})
    finally:
        logging.disable(logging.NOTSET)
    return qp, fp
