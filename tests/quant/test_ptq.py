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
        calibrate(m, x, observer="entropy")


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


@pytest.mark.parametrize("w_bits, a_bits", [(4, 8), (2, 4), (8, 16), (6, 6)])
def test_bit_widths_reach_the_integer_model(w_bits, a_bits):
    """A W4A8 (etc.) config: qparams, integer weights and every integer output hold values of
    the chosen widths only (4-bit weights in [-7, 7] narrow range, 4-bit outputs in [-8, 7])."""
    from npquant.convert import convert
    from npquant.quant import QuantConfig

    m, x = _model(), _data()
    cfg = QuantConfig(weight_bits=w_bits, act_bits=a_bits, overrides={"4": {"act_bits": 8}})
    qp = choose_qparams(m, calibrate(m, x, num_batches=2, batch_size=32), "tflite", cfg)
    assert qp.input.bits == a_bits and qp.layers["0"].output.bits == a_bits
    assert qp.layers["0"].weight.bits == w_bits and qp.layers["4"].output.bits == 8
    im = convert(m, qp, "tflite", input_shape=(1, 10, 10))
    _, trace = im.run(x[:16], return_trace=True)
    for e in trace:
        q = {"QUANTIZE": qp.input, "CONV_2D": qp.layers["0"].output,
             "FULLY_CONNECTED": qp.layers["4"].output}.get(e.op)
        if q is not None:
            assert e.output.dtype == q.dtype
            assert q.qmin <= e.output.min() and e.output.max() <= q.qmax, e.op
    hi = (1 << (w_bits - 1)) - 1
    assert np.abs(im.ops[1].weight.astype(np.int16)).max() == hi


def test_quant_config_bad_values():
    from npquant.quant import QuantConfig

    for bad in (1, 17, 4.0, True):
        with pytest.raises(ValueError, match="weight_bits must be an int in 2..16"):
            QuantConfig(weight_bits=bad)
    with pytest.raises(ValueError, match="act_bits"):
        QuantConfig(overrides={"0": {"act_bits": 1}})
    with pytest.raises(ValueError, match="keys weight_bits"):
        QuantConfig(overrides={"0": {"bits": 4}})
    m, x = _model(), _data()
    cal = calibrate(m, x, num_batches=1, batch_size=16)
    with pytest.raises(ValueError, match=r"do not exist: \['conv9'\]"):
        choose_qparams(m, cal, "tflite", QuantConfig(overrides={"conv9": {"weight_bits": 4}}))


def test_weights_wider_than_8_bits_are_refused_by_convert():
    from npquant.convert import convert
    from npquant.quant import QuantConfig

    m, x = _model(), _data()
    qp = choose_qparams(m, calibrate(m, x, num_batches=1, batch_size=16), "tflite",
                        QuantConfig(weight_bits=12))
    with pytest.raises(ValueError, match="layer '0': 12-bit weights"):
        convert(m, qp, "tflite", input_shape=(1, 10, 10))
