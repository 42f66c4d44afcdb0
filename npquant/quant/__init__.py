"""Quantization of float models: observers, BatchNorm folding, post-training quantization, fake
quantization and quantization-aware training (``npquant.quant.qat`` holds the QAT loop)."""

from npquant.quant.chain import chain_layers, check_chain
from npquant.quant.fake_quant import LSQ, PACT, FakeQuantize, fake_quantize
from npquant.quant.fold import fold_batch_norm, fold_bn_params
from npquant.quant.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    Observer,
    PerChannelMinMaxObserver,
)
from npquant.quant.ptq import (
    Calibration,
    LayerQParams,
    ModelQParams,
    QuantConfig,
    calibrate,
    choose_qparams,
    quantize_bias,
    quantize_weight,
)
from npquant.quant.qat_model import QATModel, calibrate_qat, prepare_qat

__all__ = ["LSQ", "PACT", "Calibration", "FakeQuantize", "LayerQParams", "MinMaxObserver",
           "ModelQParams", "MovingAverageMinMaxObserver", "Observer", "PerChannelMinMaxObserver",
           "QATModel", "QuantConfig", "calibrate", "calibrate_qat", "fake_quantize",
           "prepare_qat",
           "chain_layers", "check_chain", "choose_qparams", "fold_batch_norm", "fold_bn_params",
           "quantize_bias", "quantize_weight"]
