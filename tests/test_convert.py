"""Conversion to the integer model: bit-exact against a step-by-step reference, accuracy, errors.

The reference below runs the same quantized network with nothing but ``npquant.qparams``
(quantize), ``npquant.requant.requantize`` and int64 numpy loops: no ``npquant.integer`` kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

from npquant import nn
from npquant.convert import IntegerModel, convert
from npquant.models import get_model
from npquant.profiles import PROFILES, get_profile
from npquant.qparams import quantize
from npquant.quant import fold_batch_norm
from npquant.quant.ptq import calibrate, choose_qparams, quantize_bias
from npquant.requant import prepare_requant, requantize


def tiny_model(seed: int = 0) -> nn.Module:
    """14x14 -> conv 3x3 (12) -> pool (6) -> conv 3x3 pad 1 (6) -> pool (3) -> 54 -> 5."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, rng=seed), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, rng=seed + 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(54, 5, rng=seed + 2)).eval()


def _conv_ref(x, w, bias, zx, pad):
    """``bias[o] + sum (x - zx) w`` in int64, padding with zx (real 0), stride 1."""
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)),
                constant_values=zx) - zx
    o, _, kh, kw = w.shape
    oh, ow = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.zeros((x.shape[0], o, oh, ow), dtype=np.int64) + bias.reshape(1, -1, 1, 1)
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, a:a + oh, b:b + ow],
                             w[:, :, a, b].astype(np.int64))
    return out


def reference_run(model: nn.Module, qp, profile: str, x: np.ndarray) -> list[np.ndarray]:
    """The quantized chain step by step: every op's output, in order."""
    prof = get_profile(profile)
    cur = quantize(x, qp.input, rule=prof.quantize)
    outs = [cur]
    layers = [(str(i), m) for i, m in enumerate(model)]
    for name, m in layers:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            lq = qp.layers[name]
            zx, zy = int(lq.input.zero_point), int(lq.output.zero_point)
            w = quantize(m.weight.data, lq.weight, rule=prof.quantize_per_channel)
            b = quantize_bias(m.bias.data, lq.input.scale * lq.weight.scale.astype(np.float64))
            if isinstance(m, nn.Conv2d):
                acc, rule = _conv_ref(cur, w, b.astype(np.int64), zx, m.padding[0]), prof.conv
            else:
                acc = (cur.astype(np.int64) - zx) @ w.astype(np.int64).T + b
                rule = prof.fully_connected
            assert np.abs(acc).max() < 2**31
            params = prepare_requant(rule, float(lq.input.scale), lq.weight.scale,
                                     float(lq.output.scale))
            qmin = zy if lq.activation == "relu" else -128  # ReLU: clamp at real 0
            cur = requantize(acc.astype(np.int32), params, channel_axis=1, zero_point=zy,
                             qmin=qmin, qmax=127).astype(np.int8)
            outs.append(cur)
        elif isinstance(m, nn.MaxPool2d):
            n, c, h, w_ = cur.shape
            cur = cur[:, :, : h // 2 * 2, : w_ // 2 * 2].reshape(n, c, h // 2, 2, w_ // 2, 2
                                                                 ).max(axis=(3, 5))
            outs.append(cur)
        elif isinstance(m, nn.Flatten):
            cur = cur.reshape(cur.shape[0], -1)
            outs.append(cur)
    return outs


def _calibrated(model, seed=0, n=64, shape=(1, 14, 14)):
    x = np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
    return x, calibrate(model, x, num_batches=2, batch_size=n // 2, seed=seed)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_integer_model_equals_step_by_step_reference(profile):
    model = tiny_model()
    x, cal = _calibrated(model)
    qp = choose_qparams(model, cal, profile)
    im = convert(model, qp, profile, input_shape=(1, 14, 14))
    assert [op.op for op in im.ops] == ["QUANTIZE", "CONV_2D", "MAX_POOL_2D", "CONV_2D",
                                         "MAX_POOL_2D", "FLATTEN", "FULLY_CONNECTED",
                                         "DEQUANTIZE"]
    logits, trace = im.run(x, return_trace=True)
    want = reference_run(model, qp, profile, x)
    assert len(trace) == len(want)
    for entry, ref in zip(trace, want, strict=True):
        assert entry.output.dtype == np.int8, entry.op
        assert np.array_equal(entry.output, ref), f"op {entry.index} {entry.op} differs"
    assert np.array_equal(logits, want[-1])
    # without a trace the ops run their output-only path (no accumulators stored; each
    # CONV_2D and its MAX_POOL_2D fused, integer.conv2d_max_pool): same logits
    assert np.array_equal(im.run(x), logits)
    for prev, entry in zip(trace, trace[1:], strict=False):  # the trace is a chain
        assert entry.input is prev.output
    conv = trace[1]
    assert conv.acc.dtype == np.int32 and conv.acc.shape == conv.output.shape
    # The fused ReLU is an integer clamp at the output zero point (real 0).
    assert conv.output.min() >= int(qp.layers["0"].output.zero_point)


def test_quantize_bias_formula():
    b = np.array([0.5, -0.24, 1e-9, 3.0])
    s = np.array([0.1, 0.1, 0.1, 1e-12])
    # 0.5/0.1 = 5.000000000000001 in float64 -> 5; 1e-9 -> 0; the last saturates to 2^31 - 1.
    assert quantize_bias(b, s).tolist() == [5, -2, 0, 2**31 - 1]
    assert quantize_bias(np.array([0.25]), np.array([0.5])).tolist() == [1]  # tie away
    assert quantize_bias(np.array([-0.25]), np.array([0.5])).tolist() == [-1]
    assert quantize_bias(None, np.ones(3)).dtype == np.int32
    with pytest.raises(ValueError, match="bias_scale"):
        quantize_bias(b, -s)


def test_cnn_bn_folded_and_converted_tracks_float():
    """A CNN_BN with random BN statistics: fold, calibrate, convert. Logits agree with float
    within a few output quantization steps (the error budget of two int8 activations and
    per-channel int8 weights on this random net; measured max 2 steps)."""
    model = get_model("cnn_bn", seed=1).eval()
    rng = np.random.default_rng(1)
    for _, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = rng.normal(0, 0.2, m.num_features).astype(np.float32)
            m.running_var = rng.uniform(0.5, 2, m.num_features).astype(np.float32)
    folded = fold_batch_norm(model)
    x, cal = _calibrated(folded, shape=(1, 28, 28))
    for profile in ("tflite", "onnxruntime"):
        im = convert(folded, choose_qparams(folded, cal, profile), profile,
                     input_shape=(1, 28, 28))
        with nn.no_grad():
            want = model(nn.Tensor(x)).data
        got = im.dequantize_logits(im.run(x))
        step = float(im.output_qparams.scale)
        assert np.abs(got - want).max() < 6 * step, (profile, np.abs(got - want).max() / step)


def test_unsupported_layers_are_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU6(), nn.Flatten(),
                          nn.Linear(2 * 4 * 4, 3, rng=0)).eval()
    x, cal = _calibrated(model, shape=(1, 6, 6))
    with pytest.raises(ValueError, match=r"unsupported layer '1' \(ReLU6\)"):
        convert(model, choose_qparams(model, cal, "tflite"), "tflite", input_shape=(1, 6, 6))
    bn = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2), nn.Flatten()).eval()
    x, cal = _calibrated(bn, shape=(1, 6, 6))
    with pytest.raises(ValueError, match=r"'1' \(BatchNorm2d\) must be folded"):
        choose_qparams(bn, cal, "tflite")


def test_bad_inputs_and_mismatched_profile():
    model = tiny_model()
    x, cal = _calibrated(model)
    qp = choose_qparams(model, cal, "tflite")
    with pytest.raises(ValueError, match="chosen for profile 'tflite'"):
        convert(model, qp, "onnxruntime", input_shape=(1, 14, 14))
    im = convert(model, qp, "tflite", input_shape=(1, 14, 14))
    assert isinstance(im, IntegerModel)
    with pytest.raises(ValueError, match=r"shape \(N, 1, 14, 14\)"):
        im.run(x[:, :, :10])
    with pytest.raises(TypeError, match="float"):
        im.run(np.zeros((1, 1, 14, 14), dtype=np.int8))
    with pytest.raises(ValueError, match="no images"):
        im.run(x[:0])
    assert im.predict(x[:0]).shape == (0,)
    bad = x[:2].copy()
    bad[0, 0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        im.run(bad)

    class Skip(nn.Module):  # registers a, b but calls only b
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.ReLU(), nn.Flatten()

        def forward(self, x):
            return self.b(x)

    class Swapped(Skip):  # calls b before a
        def forward(self, x):
            return self.a(self.b(x))

    # calibration traces what forward really does: the graph skips 'a' / runs b before a
    assert [n.name for n in calibrate(Skip(), x, num_batches=1, batch_size=4).graph] == ["b"]
    assert [(n.name, n.inputs) for n in calibrate(Swapped(), x, num_batches=1,
                                                  batch_size=4).graph] == \
        [("b", ("input",)), ("a", ("b",))]

    class Outside(Skip):  # arithmetic between layers that no leaf does
        def forward(self, x):
            return self.b(self.a(x) * 2.0)

    with pytest.raises(ValueError, match="input 0 of layer 'b' was computed outside any layer"):
        calibrate(Outside(), x, num_batches=1, batch_size=4)

    class Twice(Skip):
        def forward(self, x):
            return self.b(self.a(self.a(x)))

    with pytest.raises(ValueError, match="'a' is called twice"):
        calibrate(Twice(), x, num_batches=1, batch_size=4)
