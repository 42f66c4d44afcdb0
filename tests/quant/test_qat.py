"""QAT: BatchNorm folded in training, conversion to the integer model (whose codes equal the
fake-quant codes under every profile without double rounding), the resumable loop, the CLI and
its errors. Real training runs are in tools/experiments.py (docs/experiments.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_toy_fashion_mnist

from npquant import nn, train
from npquant.cli import main as cli_main
from npquant.models import CNN
from npquant.quant import fold_batch_norm
from npquant.quant.ptq import QuantConfig
from npquant.quant.qat import compare_layers, load_qat, run_qat, to_integer_model
from npquant.quant.qat_model import calibrate_qat, prepare_qat


def small_cnn(bn: bool, dtype=np.float32, seed=0) -> CNN:
    return CNN(1, 12, 10, batch_norm=bn, width=4, seed=seed, dtype=dtype)


def images(n=16, size=12, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, 1, size, size)).astype(dtype)


# -- BatchNorm in training -------------------------------------------------------------------
def test_bn_training_forward_is_the_float_forward_with_batch_statistics():
    """Fake quant off: conv(x, w a)/a + b then BN on batch statistics is the float conv + BN
    (output, running statistics and every gradient), in float64."""
    ref = small_cnn(True, np.float64)
    for m in (ref.bn1, ref.bn2):  # non-trivial running statistics and affine parameters
        m.running_var = np.linspace(0.5, 2.0, 4)
        m.running_mean = np.linspace(-0.3, 0.3, 4)
        m.weight.data = np.linspace(0.7, 1.3, 4)
    qat = prepare_qat(ref, "tflite").train()
    ref.train()
    x = images(8, dtype=np.float64)
    out_ref, out_qat = ref(nn.Tensor(x)), qat(nn.Tensor(x))
    np.testing.assert_allclose(out_qat.data, out_ref.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(qat.conv2.bn.running_var, ref.bn2.running_var, rtol=1e-12)
    g = np.random.default_rng(1).standard_normal(out_ref.shape)
    out_ref.backward(g)
    out_qat.backward(g)
    grads = dict(qat.named_parameters())
    for name, p in ref.named_parameters():
        layer, _, pname = name.rpartition(".")
        key = {"conv1": "conv1.layer", "bn1": "conv1.bn", "conv2": "conv2.layer",
               "bn2": "conv2.bn", "fc": "fc.layer"}[layer] + "." + pname
        np.testing.assert_allclose(grads[key].grad, p.grad, rtol=1e-9, atol=1e-12,
                                   err_msg=f"grad of {name}")


def test_frozen_bn_is_the_exported_folded_conv():
    model = small_cnn(True, np.float64)
    model.bn1.running_var = np.linspace(0.5, 2.0, 4)
    qat = prepare_qat(model, "tflite").train()
    qat.freeze_bn()
    x = images(4, dtype=np.float64)
    before = model.bn1.running_var.copy()
    y = qat(nn.Tensor(x)).data
    assert np.array_equal(qat.conv1.bn.running_var, before), "frozen statistics moved"
    folded = fold_batch_norm(model)
    np.testing.assert_allclose(y, folded(nn.Tensor(x)).data, rtol=1e-12, atol=1e-12)
    chain = qat.export_float_chain()
    with nn.no_grad():
        w, b = qat.conv1.folded()
    assert np.array_equal(chain.conv1.weight.data, w.data)
    assert np.array_equal(chain.conv1.bias.data, b.data)
    assert isinstance(chain.bn1, nn.Identity)


# -- conversion: integer codes == fake-quant codes ---------------------------------------------
def calibrated(profile, config, bn=True, **kw):
    qat = prepare_qat(small_cnn(bn), profile, config, **kw)
    calibrate_qat(qat, images(64, seed=3), num_batches=2, batch_size=32)
    qat.freeze_observers()
    qat.freeze_bn()
    return qat.eval()


@pytest.mark.parametrize("profile", ["tflite-single-rounding", "onnxruntime", "pytorch-fbgemm",
                                     "pytorch-qnnpack", "pow2"])
@pytest.mark.parametrize("wbits,abits", [(8, 8), (4, 4), (2, 2), (4, 8), (6, 6)])
def test_integer_codes_equal_fake_quant_codes(profile, wbits, abits):
    """Every layer: the integer model's int tensors are the fake-quant outputs y as codes
    rint(y/S) + Z, exactly, for profiles whose requantization is one rounding of acc * M."""
    qat = calibrated(profile, QuantConfig(wbits, abits))
    im = to_integer_model(qat, (1, 12, 12))
    x = images(8, seed=5)
    rows = compare_layers(qat, im, x)
    assert [r["name"] for r in rows] == ["input", "conv1", "pool1", "conv2", "pool2", "flatten",
                                         "fc"]
    bad = [(r["name"], r["equal"]) for r in rows if r["equal"] != 1.0]
    assert not bad, f"{profile} W{wbits}A{abits}: codes differ in {bad}"


def test_sixteen_bit_activations_differ_by_one_code_at_most():
    """A16: the fake-quant forward is float32 (24-bit significands) and a 16-bit code needs 17
    bits before the rounding decision, so a value within ~2^-7 of a half may round the other
    way than the exact integer requantization; W8A16 is within one code, almost always equal."""
    qat = calibrated("tflite-single-rounding", QuantConfig(8, 16))
    rows = compare_layers(qat, to_integer_model(qat, (1, 12, 12)), images(8, seed=5))
    assert all(r["max_abs_diff"] <= 1 and r["equal"] >= 0.999 for r in rows), rows


def test_double_rounding_differs_by_one_code_at_most():
    """TFLite's reference conv rounds twice (SRDHM, then a rounding shift by 2^-shift): near a
    half the two roundings can give one more than round(acc * M), which the float fake-quant
    forward cannot know. The model input (QUANTIZE, same rule) stays exact."""
    qat = calibrated("tflite", QuantConfig(4, 4))
    im = to_integer_model(qat, (1, 12, 12))
    rows = {r["name"]: r for r in compare_layers(qat, im, images(8, seed=5))}
    assert rows["input"]["equal"] == 1.0
    assert all(r["max_abs_diff"] <= 1 for r in rows.values())


def test_four_bit_model_holds_four_bit_codes():
    qat = calibrated("tflite-single-rounding", QuantConfig(4, 4))
    im = to_integer_model(qat, (1, 12, 12))
    _, trace = im.run(images(8, seed=6), return_trace=True)
    for e in trace:
        if e.op != "QUANTIZE":
            assert e.output.min() >= -8 and e.output.max() <= 7, e.name
    assert len({int(v) for e in trace[1:] for v in np.unique(e.output)}) <= 16
    for op in im.ops:
        w = getattr(op, "weight", None)
        if w is not None:
            assert w.min() >= -7 and w.max() <= 7, f"{op.name}: narrow-range 4-bit weights"


@pytest.mark.parametrize("wq,aq", [("lsq", "lsq"), ("minmax", "pact"), ("lsq", "minmax")])
def test_learned_quantizers_convert_exactly(wq, aq):
    qat = calibrated("onnxruntime", QuantConfig(4, 4), weight_quant=wq, act_quant=aq)
    rows = compare_layers(qat, to_integer_model(qat, (1, 12, 12)), images(8, seed=5))
    assert all(r["equal"] == 1.0 for r in rows), rows


# -- the loop ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy FashionMNIST (600/200 images) and a 1-epoch float CNN_BN trained on it."""
    root = tmp_path_factory.mktemp("qat")
    (root / "data").mkdir()
    data = write_toy_fashion_mnist(root / "data", 600, 200)
    train.train("cnn_bn", "fashion-mnist", 1, 0, root / "float", data_dir=data, progress=False,
                log=lambda m: None)
    return root, data


class Interrupt(Exception):
    pass


def test_run_qat_converts_and_resumes_after_an_interruption(toy):
    root, data = toy
    kw = dict(data_dir=data, epochs=2, profile="tflite-single-rounding", weight_bits=4,
              act_bits=4, weight_quant="lsq", act_quant="lsq", calib_batches=2,
              freeze_bn_after=1.5, freeze_observers_after=0.5, progress=False,
              compare_images=20)
    full = run_qat(root / "float", root / "qat_full", log=lambda m: None, **kw)

    def stop_after_epoch_1(msg):
        if msg.startswith("qat epoch 1/2"):
            raise Interrupt

    with pytest.raises(Interrupt):
        run_qat(root / "float", root / "qat_cut", log=stop_after_epoch_1, **kw)
    assert json.loads((root / "qat_cut" / "checkpoint.json").read_text())["epoch"] == 1
    logs = []
    resumed = run_qat(root / "float", root / "qat_cut", log=logs.append, **kw)
    assert any("resuming" in m for m in logs)
    a = train.load_npz(root / "qat_full" / "checkpoint.npz")
    b = train.load_npz(root / "qat_cut" / "checkpoint.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    for s in (full, resumed):
        assert s["integer_accuracy"] == full["integer_accuracy"]
        assert s["integer_accuracy"] >= 0.9 and s["prediction_agreement"] == 1.0
        assert all(r["equal"] == 1.0 for r in s["layers"])
    # the saved model converts again, and under tflite's double rounding within one code
    again = load_qat(root / "float", root / "qat_cut")
    x_test, _ = train.prepare("fashion-mnist", "test", data, 20)
    rows = compare_layers(again, to_integer_model(again, (1, 28, 28)), x_test)
    assert all(r["equal"] == 1.0 for r in rows)
    tfl = load_qat(root / "float", root / "qat_cut", profile="tflite")
    rows = compare_layers(tfl, to_integer_model(tfl, (1, 28, 28)), x_test)
    assert rows[0]["equal"] == 1.0 and all(r["max_abs_diff"] <= 1 for r in rows)
    with pytest.raises(ValueError, match="qparams differently"):
        load_qat(root / "float", root / "qat_cut", profile="pytorch-fbgemm")
    with pytest.raises(ValueError, match="other settings"):
        run_qat(root / "float", root / "qat_cut", log=lambda m: None, **dict(kw, act_bits=8))


BAD = {
    "other model": (dict(model="cnn"), ValueError, "'cnn_bn'"),
    "profile": (dict(profile="nope"), ValueError, "unknown profile 'nope'"),
    "weight bits 9": (dict(weight_bits=9), ValueError, "int8"),
    "act bits 17": (dict(act_bits=17), ValueError, "act_bits"),
    "act_quant": (dict(act_quant="kl"), ValueError, "act_quant"),
    "weight_quant": (dict(weight_quant="adaround"), ValueError, "weight_quant"),
    "pow2 lsq": (dict(profile="pow2", act_quant="lsq"), ValueError, "power-of-two"),
    "epochs": (dict(epochs=0), ValueError, "epochs"),
    "optimizer": (dict(optimizer="lion"), ValueError, "optimizer"),
    "freeze": (dict(freeze_bn_after=-1), ValueError, "freeze_bn_after"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_arguments_are_named(toy, case):
    root, data = toy
    kwargs, exc, words = case
    with pytest.raises(exc, match=words):
        run_qat(root / "float", root / "never", data_dir=data, progress=False, **kwargs)


def test_missing_checkpoint_and_unsupported_layer_are_named(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint.json"):
        run_qat(tmp_path / "nothing", tmp_path / "out")
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU6(), nn.Flatten())
    with pytest.raises(ValueError, match=r"layer '1' \(ReLU6\) is not supported"):
        prepare_qat(model, "tflite")


def test_cli_qat(toy, tmp_path, capsys):
    root, data = toy
    with pytest.raises(SystemExit) as e:
        cli_main(["qat", "--help"])
    assert e.value.code == 0 and "--weight-bits" in capsys.readouterr().out
    assert cli_main(["qat", "--float", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "npquant qat: error:" in capsys.readouterr().err
    assert cli_main(["qat", "--float", str(root / "float"), "--out", str(tmp_path / "q"),
                     "--data-dir", str(data), "--weight-bits", "8", "--act-bits", "6",
                     "--calib-batches", "1", "--limit-test", "50", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert summary["config"]["act_bits"] == 6 and summary["n_test"] == 50
