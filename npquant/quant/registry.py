"""Observers by name, as PTQ's configuration and the CLI spell them.

Activations (per tensor): ``minmax``, ``ema`` (moving average), ``histogram`` (PyTorch's L2
search), ``percentile``, ``mse`` (grid search on the histogram), ``kl`` (TensorRT entropy).
Weights (per channel, axis 0, or per tensor): ``minmax``, ``mse``.
"""

from __future__ import annotations

from typing import Any

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

ACTIVATION_OBSERVERS: dict[str, type[Observer]] = {
    "minmax": MinMaxObserver, "ema": MovingAverageMinMaxObserver, "histogram": HistogramObserver,
    "percentile": PercentileObserver, "mse": HistogramMSEObserver, "kl": KLObserver,
}
WEIGHT_OBSERVERS = ("minmax", "mse")


def make_activation_observer(kind: str, **kw: Any) -> Observer:
    """A new per-tensor activation observer ``kind`` (module docstring); ``kw`` go to its
    constructor (e.g. ``percentile=99.9``, ``averaging_constant=0.01``, ``bins=2048``)."""
    if kind not in ACTIVATION_OBSERVERS:
        raise ValueError(f"observer must be one of {sorted(ACTIVATION_OBSERVERS)}, got {kind!r}")
    return ACTIVATION_OBSERVERS[kind](**kw)


def make_weight_observer(kind: str, *, per_channel: bool = True, **kw: Any) -> Observer:
    """A new weight observer ``kind`` ("minmax" or "mse"), per channel on axis 0 or per tensor;
    symmetric unless ``scheme`` says otherwise."""
    if kind not in WEIGHT_OBSERVERS:
        raise ValueError(f"weight observer must be one of {WEIGHT_OBSERVERS}, got {kind!r}")
    kw.setdefault("scheme", "symmetric")
    if kind == "mse":
        return PerChannelMSEObserver(axis=0 if per_channel else None, **kw)
    return PerChannelMinMaxObserver(axis=0, **kw) if per_channel else MinMaxObserver(**kw)
