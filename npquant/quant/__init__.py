"""Quantization of float models: observers, BatchNorm folding, post-training quantization."""

from npquant.quant.chain import Node, chain_layers, check_chain, trace_graph
from npquant.quant.config import QuantConfig
from npquant.quant.fold import fold_batch_norm, fold_bn_params
from npquant.quant.histogram_observers import (
    HistogramMSEObserver,
    HistogramObserver,
    KLObserver,
    PercentileObserver,
)
from npquant.quant.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    Observer,
    PerChannelMinMaxObserver,
    PerChannelMSEObserver,
)
from npquant.quant.ptq import (
    AddQParams,
    Calibration,
    LayerQParams,
    ModelQParams,
    calibrate,
    choose_qparams,
    quantize_bias,
    quantize_weight,
)
from npquant.quant.registry import make_activation_observer, make_weight_observer

__all__ = ["AddQParams", "Calibration", "HistogramMSEObserver", "HistogramObserver", "KLObserver",
           "LayerQParams", "MinMaxObserver", "ModelQParams", "MovingAverageMinMaxObserver", "Node",
           "Observer", "PerChannelMSEObserver", "PerChannelMinMaxObserver", "PercentileObserver",
           "QuantConfig", "calibrate", "chain_layers", "check_chain", "choose_qparams",
           "fold_batch_norm", "fold_bn_params", "make_activation_observer",
           "make_weight_observer", "quantize_bias", "quantize_weight", "trace_graph"]
