"""Quantization of float models: observers, BatchNorm folding, post-training quantization."""

from npquant.quant.chain import chain_layers, check_chain
from npquant.quant.fold import fold_batch_norm, fold_bn_params
from npquant.quant.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    Observer,
    PerChannelMinMaxObserver,
)

__all__ = ["MinMaxObserver", "MovingAverageMinMaxObserver", "Observer",
           "PerChannelMinMaxObserver", "chain_layers", "check_chain", "fold_batch_norm",
           "fold_bn_params"]
