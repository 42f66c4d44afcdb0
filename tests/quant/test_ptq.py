"""PTQ: seeded calibration, the qparams rules per profile, weight and bias quantization."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npquant import nn
from npquant.profiles import get_profile
from npquant.quant import calibrate, choose_qparams, quantize_weight


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3, rng=1)).eval()


def _data(n=96, seed=0):
    return (np.random.default_rng(seed).normal(size=(n, 1, 10, 10)) * 2).astype(np.float32)


def test_calibration_is_seeded_and_sees_the_chosen_batches():
    m, x = _model(), _data()
    a = calibrate(m, x, num_batches=2, batch_size=16, seed=1)
    b = calibrate(m, x, num_batches=2, batch_size=16, seed=1)
    c = calibrate(m, x, num_batches=2, batch_size=16, seed=2)
    assert a.observers["1"].range() == b.observers["1"].range()
    assert a.observers["input"].range() != c.observers["input"].range()
    picked = x[np.random.default_rng(1).permutation(len(x))[:32]]
    assert float(a.observers["input"].min_val) == float(picked.min())
    assert a.num_batches == 2 and set(a.observers) == {"input", "0", "1", "2", "3", "4"}


def test_ema_calibration_differs_from_minmax():
    m, x = _model(), _data()
    mm = calibrate(m, x, num_batches=4, batch_size=16)
    ema = calibrate(m, x, num_batches=4, batch_size=16, observer="ema", averaging_constant=0.5)
    assert float(ema.observers["input"].max_val) < float(mm.observers["input"].max_val)
    with pytest.raises(ValueError, match="observer must be one of"):
        calibrate(m, x, observer="percentile")


@pytest.mark.parametrize("profile", ["tflite", "onnxruntime", "pow2"])
def test_qparams_follow_the_profile(profile):
    prof = get_profile(profile)
    m, x = _model(), _data()
    qp = choose_qparams(m, calibrate(m, x, num_batches=2, batch_size=32), prof)
    conv, fc = qp.layers["0"], qp.layers["4"]
    assert conv.activation == "relu" and conv.activation_layer == "1" and fc.activation is None
    assert conv.weight.axis == 0 and conv.weight.narrow_range == prof.narrow_range_weights
    assert np.all(conv.weight.zero_point == 0)
    assert fc.input is conv.output  # pool and flatten keep the qparams
    np.testing.assert_array_equal(conv.bias_scale, np.float64(conv.input.scale)
                                  * conv.weight.scale.astype(np.float64))
    if profile == "pow2":  # every scale a power of two, so every M is one
        for q in (conv.input, conv.output, fc.output):
            assert np.all(np.log2(q.scale) == np.round(np.log2(q.scale)))
    else:  # after a fused ReLU the range starts at 0: Z = qmin
        assert int(conv.output.zero_point) == -128
    w = quantize_weight(m[0].weight.data, conv.weight, prof)
    assert w.dtype == np.int8 and (w.min() >= -127 if prof.narrow_range_weights else True)
    # Symmetric per channel: each channel's largest |w| lands on the end of the range (127;
    # PyTorch's S = max|w| / 127.5 puts a negative extreme on -128); a power-of-two scale is
    # rounded up, so it lands in (63.5, 127].
    peak = np.abs(w.astype(np.int16)).max(axis=(1, 2, 3))
    assert peak.min() >= (64 if profile == "pow2" else 127) and peak.max() <= 128
    json.dumps(qp.to_dict())  # plain data


def test_choose_qparams_needs_a_calibration():
    with pytest.raises(TypeError, match="Calibration"):
        choose_qparams(_model(), {"input": None}, "tflite")
