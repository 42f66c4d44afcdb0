"""Quantization of float models: observers, BatchNorm folding, post-training quantization, fake
quantization and quantization-aware training (``npquant.quant.qat`` holds the QAT loop)."""

from npquant.quant.chain import Node, chain_layers, check_chain, trace_graph
from npquant.quant.config import QuantConfig
from npquant.quant.fake_quant import LSQ, PACT, FakeQuantize, fake_quantize
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
from npquant.quant.qat_model import QATModel, calibrate_qat, prepare_qat
from npquant.quant.registry import make_activation_observer, make_weight_observer

__all__ = ["AddQParams", "Calibration", "FakeQuantize", "HistogramMSEObserver",
           "HistogramObserver", "KLObserver", "LSQ", "LayerQParams", "MinMaxObserver",
           "ModelQParams", "MovingAverageMinMaxObserver", "Node", "Observer", "PACT",
           "PerChannelMSEObserver", "PerChannelMinMaxObserver", "PercentileObserver", "QATModel",
           "QuantConfig", "calibrate", "calibrate_qat", "chain_layers", "check_chain",
           "choose_qparams", "fake_quantize", "fold_batch_norm", "fold_bn_params",
           "make_activation_observer", "make_weight_observer", "prepare_qat", "quantize_bias",
           "quantize_weight", "trace_graph"]
