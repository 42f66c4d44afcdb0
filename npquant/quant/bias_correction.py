"""Bias correction: fold the expected error of quantized weights into the bias.

Quantizing weights ``W -> W^`` shifts each layer's output on average by

    E[y^ - y] = (W^ - W) E[x]                       (Nagel et al. 2019, arXiv:1906.04721, eq. 6)

(for a conv, ``sum_{i, kh, kw} (W^ - W)[o, i, kh, kw] E[x_i]``, padding taps ignored). The mean
``E[x_i]`` of each input channel comes from calibration (``Calibration.channel_means``), so
subtracting the shift from the float bias, ``b' = b - (W^ - W) E[x]``, cancels the error on
average; it is then quantized as usual (``S_b = S_in S_w`` is unchanged, so the qparams stay
valid). This is the "bias adjust" step of TI's TIDL calibration done once, analytically; it
helps most at 2-4-bit weights, where ``W^ - W`` is large.
"""

from __future__ import annotations

import copy

import numpy as np

from npquant import nn
from npquant.profiles import Profile, get_profile
from npquant.qparams import dequantize
from npquant.quant.chain import chain_graph, chain_layers, resolve
from npquant.quant.ptq import Calibration, ModelQParams, quantize_weight


def bias_shift(weight: np.ndarray, weight_hat: np.ndarray, input_mean: np.ndarray,
               groups: int = 1) -> np.ndarray:
    """``(W^ - W) E[x]`` per output channel for OIHW conv weights (or ``(O, I)`` linear), with
    ``groups`` as in ``nn.Conv2d`` (input channel of output ``o``, tap ``i``:
    ``(o // (O / groups)) (I / groups) + i``)."""
    dw = weight_hat.astype(np.float64) - weight.astype(np.float64)
    dw = dw.reshape(dw.shape[0], dw.shape[1], -1).sum(axis=2)  # sum the spatial taps
    o_len, i_len = dw.shape
    mean = np.asarray(input_mean, dtype=np.float64)
    if mean.shape != (i_len * groups,):
        raise ValueError(f"input_mean has shape {mean.shape}, the layer reads {i_len * groups} "
                         "channels")
    per_group = o_len // groups
    return np.array([dw[o] @ mean[(o // per_group) * i_len:(o // per_group + 1) * i_len]
                     for o in range(o_len)])


def correct_bias(model: nn.Module, calibration: Calibration, qparams: ModelQParams,
                 profile: Profile | str) -> nn.Module:
    """A copy of the (BN-folded) ``model`` whose conv/linear biases are ``b - (W^ - W) E[x]``
    (module docstring), for the weights ``W^`` of ``qparams`` under ``profile``.

    Convert the returned model with the same ``qparams``. Raises ValueError for a layer whose
    input channel means were not recorded by ``calibrate``.
    """
    prof = get_profile(profile)
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    nodes = calibration.graph or chain_graph(chain_layers(out))
    inputs = {n.name: resolve(nodes, n.inputs[0]) for n in nodes}
    for name, lq in qparams.layers.items():
        m = modules[name]
        src = inputs.get(name)
        if src not in calibration.channel_means:
            raise ValueError(f"no channel means of {src!r} (the input of {name!r}); "
                             "calibrate this model first")
        w_hat = dequantize(quantize_weight(m.weight.data, lq.weight, prof), lq.weight)
        shift = bias_shift(m.weight.data, w_hat, calibration.channel_means[src],
                           getattr(m, "groups", 1))
        bias = np.zeros(m.weight.data.shape[0]) if m.bias is None else m.bias.data
        corrected = (bias.astype(np.float64) - shift).astype(m.weight.data.dtype)
        if m.bias is None:
            m.bias = nn.Parameter(corrected)
        else:
            m.bias.data = corrected
    return out
