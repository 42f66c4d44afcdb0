"""Residual networks end to end: trace, fold, calibrate, convert, run integer-only.

The integer ResNet is checked against two independent things: each ADD against the kernel on
the traced inputs of the ops the wiring names, and the whole network against its float64
fake-quant simulation (npquant.quant.simulate), code for code, under a single-rounding profile
(under TFLite's double rounding ~0.4% of codes per layer differ by design: a fraction within
2^-9 of one half is first rounded to exactly one half, then away from zero).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from seeded_models import randomize_batch_norm

from npquant import integer, nn
from npquant.convert import AddOp, AvgPoolOp, check_convertible, convert
from npquant.models import resnet_small
from npquant.quant import QuantConfig, calibrate, choose_qparams, fold_batch_norm
from npquant.quant.bias_correction import bias_shift, correct_bias
from npquant.quant.simulate import FakeQuantModel

SHAPE = (1, 16, 16)


def _model(seed: int = 0) -> nn.Module:
    """resnet_small with BatchNorm statistics that are not the identity."""
    return randomize_batch_norm(resnet_small(seed=seed), seed + 10).eval()


def _data(n: int = 96, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + SHAPE).astype(np.float32)
    return np.maximum(x, -0.8) + 0.3 * rng.normal(size=(n, 1, 1, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def folded_and_calibration():
    x = _data()
    f = fold_batch_norm(_model(), x[:2])
    return f, calibrate(f, x, num_batches=3, batch_size=32), x


def test_folding_a_resnet_keeps_its_function(folded_and_calibration):
    f, _, x = folded_and_calibration
    m = _model()
    with nn.no_grad():
        a, b = m(nn.Tensor(x[:8])).data, f(nn.Tensor(x[:8])).data
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not any(isinstance(mod, nn.BatchNorm2d) for _, mod in f.named_modules())
    with pytest.raises(ValueError, match="BasicBlock"):
        fold_batch_norm(m)  # without an example the model must be a chain


def test_resnet_converts_with_add_and_global_average_pool(folded_and_calibration):
    f, cal, x = folded_and_calibration
    qp = choose_qparams(f, cal, "tflite")
    assert sorted(qp.adds) == ["layer1.0.add", "layer2.0.add", "layer3.0.add"]
    assert all(a.activation == "relu" for a in qp.adds.values())
    im = convert(f, qp, "tflite", input_shape=SHAPE)
    kinds = [op.op for op in im.ops]
    assert kinds.count("ADD") == 3 and kinds.count("AVERAGE_POOL_2D") == 1
    assert im.wiring is not None
    names = [op.name for op in im.ops]
    # the stage-2 shortcut conv reads the output of stage 1's ADD (fused relu2)
    sc = names.index("layer2.0.shortcut.0")
    assert im.wiring[sc] == (names.index("layer1.0.add"),)
    assert im.wiring[names.index("layer2.0.add")] == (names.index("layer2.0.conv2"), sc)
    q, trace = im.run(x[:8], return_trace=True)
    assert q.dtype == np.int8 and q.shape == (8, 10)
    assert np.array_equal(im.run(x[:8]), q)  # the output-only path gives the same logits
    for e in trace:
        op = im.ops[e.index]
        if isinstance(op, AddOp):  # the ADD op is the kernel on the wired inputs
            a, b = (trace[j].output for j in im.wiring[e.index])
            assert np.array_equal(e.input, a) and np.array_equal(e.other, b)
            ref = integer.add(a, b, a_scale=float(op.a_qparams.scale),
                              a_zero_point=int(op.a_qparams.zero_point),
                              b_scale=float(op.b_qparams.scale),
                              b_zero_point=int(op.b_qparams.zero_point),
                              out_scale=float(op.output_qparams.scale),
                              out_zero_point=int(op.output_qparams.zero_point),
                              profile="tflite", activation="relu")
            assert np.array_equal(e.output, ref)
        if isinstance(op, AvgPoolOp):  # round(mean q) over the plane, ties away (TFLite)
            s = e.input.astype(np.int64).sum(axis=(2, 3), keepdims=True)
            cnt = e.input.shape[2] * e.input.shape[3]
            ref = np.where(s >= 0, (s + cnt // 2) // cnt, -((-s + cnt // 2) // cnt))
            assert np.array_equal(e.output.astype(np.int64), ref)


@pytest.mark.parametrize(("profile", "config"), [
    ("tflite-single-rounding", QuantConfig()),
    ("tflite-single-rounding", QuantConfig(weight_bits=4, act_bits=6, weight_observer="mse")),
    ("pow2", QuantConfig()),
    ("tflite-single-rounding", QuantConfig(per_channel=False, scheme="symmetric")),
])
def test_integer_resnet_equals_its_fake_quant_simulation(folded_and_calibration, profile,
                                                         config):
    """Every stored tensor of the integer ResNet, code for code, equals the float64 simulation
    where the requantization rounds once (single rounding, power of two)."""
    f, cal, x = folded_and_calibration
    qp = choose_qparams(f, cal, profile, config)
    im = convert(f, qp, profile, input_shape=SHAPE)
    fq = FakeQuantModel(f, qp, profile, input_shape=SHAPE)
    codes: dict[str, np.ndarray] = {}
    logits = fq.forward(x[:32], codes)
    _, trace = im.run(x[:32], return_trace=True)
    compared = 0
    for e in trace:
        op = im.ops[e.index]
        lq = qp.layers.get(op.name) or qp.adds.get(op.name)
        key = (lq.activation_layer or op.name) if lq is not None else op.name
        if key in codes:
            assert np.array_equal(e.output.astype(np.int64), codes[key].reshape(e.output.shape)), \
                f"{op.op} {op.name}: {np.mean(e.output != codes[key].reshape(e.output.shape))}"
            compared += 1
    assert compared == 3 + 10 + 1  # ADDs, 9 convs + fc, the average pool
    assert np.array_equal(im.predict(x[:32]), logits.argmax(axis=1))


def test_low_bit_activations_are_stored_in_their_range(folded_and_calibration):
    f, cal, x = folded_and_calibration
    cfg = QuantConfig(weight_bits=3, act_bits=4, overrides={"layer2.0.add": {"act_bits": 3}})
    qp = choose_qparams(f, cal, "tflite", cfg)
    assert qp.adds["layer2.0.add"].output.bits == 3
    im = convert(f, qp, "tflite", input_shape=SHAPE)
    _, trace = im.run(x[:8], return_trace=True)
    for e in trace[1:]:
        q = getattr(im.ops[e.index], "output_qparams", None)
        if q is not None:
            assert q.qmin <= e.output.min() and e.output.max() <= q.qmax, e.name
    add = trace[[op.name for op in im.ops].index("layer2.0.add")]
    assert add.output.min() >= -4 and add.output.max() <= 3


def test_16_bit_activations_run_as_int16(folded_and_calibration):
    f, cal, x = folded_and_calibration
    qp = choose_qparams(f, cal, "tflite", QuantConfig(act_bits=16))
    im = convert(f, qp, "tflite", input_shape=SHAPE)
    q = im.run(x[:4])
    assert q.dtype == np.int16


def test_bad_overrides_and_bits(folded_and_calibration):
    f, cal, _ = folded_and_calibration
    with pytest.raises(ValueError, match=r"do not exist: \['layer1.0.conv9'\]"):
        choose_qparams(f, cal, "tflite", QuantConfig(overrides={"layer1.0.conv9": {"act_bits": 4}}))
    for bad in (1, 17):
        with pytest.raises(ValueError, match=f"act_bits must be an int in 2..16, got {bad}"):
            QuantConfig(act_bits=bad)
    with pytest.raises(ValueError, match="weight_observer must be one of"):
        QuantConfig(weight_observer="kl")


def test_nan_in_calibration_data_names_the_dataset_index():
    x = _data(64)
    x[37, 0, 3, 3] = np.nan
    f = fold_batch_norm(_model(), x[:2])
    with pytest.raises(ValueError, match=r"images\[37\] has NaN"):
        calibrate(f, x, num_batches=2, batch_size=32, seed=0)  # 37 sits elsewhere in a batch


def test_bias_correction_removes_the_mean_output_shift(folded_and_calibration):
    """3-bit weights shift conv1's mean output; the corrected bias cancels it (up to the
    padding taps, which see zeros rather than the channel mean)."""
    f, cal, x = folded_and_calibration
    qp = choose_qparams(f, cal, "tflite", QuantConfig(weight_bits=3))
    fixed = correct_bias(f, cal, qp, "tflite")
    conv, conv_fixed = f.get_submodule("conv1"), fixed.get_submodule("conv1")
    w_hat = FakeQuantModel(f, qp, "tflite", input_shape=SHAPE).model.get_submodule("conv1")
    np.testing.assert_allclose(conv.bias.data - conv_fixed.bias.data,
                               bias_shift(conv.weight.data, w_hat.weight.data,
                                          cal.channel_means["input"]), rtol=1e-5, atol=1e-6)

    def mean_out(weight, bias):
        c = copy.deepcopy(conv)
        c.weight.data, c.bias.data = weight.astype(np.float32), bias.astype(np.float32)
        with nn.no_grad():
            return c(nn.Tensor(x)).data.astype(np.float64).mean(axis=(0, 2, 3))

    ref = mean_out(conv.weight.data, conv.bias.data)
    before = np.abs(mean_out(w_hat.weight.data, conv.bias.data) - ref).sum()
    after = np.abs(mean_out(w_hat.weight.data, conv_fixed.bias.data) - ref).sum()
    assert after < 0.3 * before, (before, after)


def test_convertibility_is_checked_before_training():
    check_convertible(resnet_small(), (1, 28, 28))

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.relu = nn.ReLU()
            self.add = nn.Add()

        def forward(self, x):
            y = self.conv(x)
            return self.add(self.relu(y), y)  # the conv output is read twice

    with pytest.raises(ValueError, match="'relu' \\(ReLU\\) does not follow"):
        check_convertible(Bad(), (1, 8, 8))


def test_resnet20_runs_integer_only_and_equals_its_simulation():
    """ResNet20 (option B, 9 blocks, two projection shortcuts) on 16x16 single-channel images:
    every stored tensor equals the float64 simulation under single rounding."""
    from npquant.models import resnet20

    m = resnet20(in_channels=1, seed=3).eval()
    x = _data(48, seed=4)
    f = fold_batch_norm(m, x[:2])
    cal = calibrate(f, x, num_batches=2, batch_size=24)
    qp = choose_qparams(f, cal, "tflite-single-rounding")
    assert len(qp.adds) == 9 and len(qp.layers) == 1 + 18 + 2 + 1
    im = convert(f, qp, "tflite-single-rounding", input_shape=SHAPE)
    codes: dict[str, np.ndarray] = {}
    FakeQuantModel(f, qp, "tflite-single-rounding", input_shape=SHAPE).forward(x[:8], codes)
    _, trace = im.run(x[:8], return_trace=True)
    for e in trace:
        op = im.ops[e.index]
        lq = qp.layers.get(op.name) or qp.adds.get(op.name)
        key = (lq.activation_layer or op.name) if lq is not None else op.name
        if key in codes:
            assert np.array_equal(e.output.astype(np.int64), codes[key].reshape(e.output.shape)), \
                op.name
