"""Quantization of float models: observers, BatchNorm folding, post-training quantization."""

from npquant.quant.chain import chain_layers, check_chain
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

__all__ = ["Calibration", "LayerQParams", "MinMaxObserver", "ModelQParams",
           "MovingAverageMinMaxObserver", "Observer", "PerChannelMinMaxObserver", "QuantConfig",
           "calibrate",
           "chain_layers", "check_chain", "choose_qparams", "fold_batch_norm", "fold_bn_params",
           "quantize_bias", "quantize_weight"]
