"""Whole models exported to ONNX (npquant.interop.onnx_model) and run by ONNX Runtime equal
``IntegerModel.run`` under the ``onnxruntime`` profile on every integer tensor of every layer, bit
for bit, on 100 seeded random inputs: the seed CNN, CNN_BN (folded) and a ResNet (residual
QLinearAdd, QLinearGlobalAveragePool on a 6x6 plane), per-channel and per-tensor weights, with
ORT's graph optimizations off (the nodes as written) and on (as deployed)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require, require_exact_u8s8_accumulation
from onnx_models import MODELS, SLOW_MODELS, images, integer_model

pytestmark = pytest.mark.oracle

N_INPUTS = 100


@pytest.fixture(autouse=True)
def _frameworks():
    require("onnx")
    require("onnxruntime")
    # MLAS sums int8 products exactly with VNNI; without it (vpmaddubsw) not measured for int8
    require_exact_u8s8_accumulation("whole-model ONNX export")


def _layers_equal(im, data: bytes, x: np.ndarray, optimize: bool) -> None:
    from npquant.interop.onnx_model import run_onnx_model, tensor_names

    names = tensor_names(im)
    q, trace = im.run(x, return_trace=True)
    got = run_onnx_model(data, x, tensors=names[:-1], optimize=optimize)
    for e in trace:
        ort_t = got[names[e.index]]
        assert ort_t.dtype == e.output.dtype and ort_t.shape == e.output.shape, \
            f"op {e.index} {e.name}: ORT {ort_t.dtype}{ort_t.shape} vs {e.output.dtype}" \
            f"{e.output.shape}"
        diff = np.flatnonzero(ort_t != e.output)
        assert diff.size == 0, (f"op {e.index} ({e.op} {e.name}): {diff.size} of {ort_t.size} "
                                f"differ, first at {diff[0]}: ORT {ort_t.flat[diff[0]]}, "
                                f"npquant {e.output.flat[diff[0]]}")
    assert np.array_equal(got["output"].view(np.uint32),
                          im.dequantize_logits(q).view(np.uint32))


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("name", list(MODELS))
def test_exported_model_equals_npquant_layer_by_layer(name, per_channel):
    from npquant.interop.onnx_model import export_onnx

    im = integer_model(name, per_channel=per_channel)
    data = export_onnx(im)
    x = images(MODELS[name][1], N_INPUTS, seed=100)
    for optimize in (False, True):
        _layers_equal(im, data, x, optimize)


@pytest.mark.slow
def test_resnet20_exported_equals_npquant_layer_by_layer():
    from npquant.interop.onnx_model import export_onnx

    im = integer_model("resnet20")
    data = export_onnx(im)
    x = images(SLOW_MODELS["resnet20"][1], N_INPUTS, seed=100)
    for optimize in (False, True):
        _layers_equal(im, data, x, optimize)


def test_a_relu_above_the_type_minimum_is_an_integer_clip():
    """Symmetric activations (Z = 0): a fused ReLU clamps at 0, which the int8 saturation does
    not, so the export writes Clip(0, 127) on the integers; ORT still equals npquant."""
    import onnx

    from npquant.interop.onnx_model import export_onnx

    im = integer_model("resnet", scheme="symmetric")
    data = export_onnx(im)
    graph = onnx.load_model_from_string(data).graph
    clips = [n for n in graph.node if n.op_type == "Clip"]
    relus = [op for op in im.ops if getattr(op, "activation", None) == "relu"]
    assert relus and len(clips) == len(relus)
    _layers_equal(im, data, images(MODELS["resnet"][1], 20, seed=5), optimize=False)


def test_export_writes_the_file_whole_or_not_at_all(tmp_path):
    from npquant.interop.onnx_model import export_onnx

    im = integer_model("cnn")
    out = tmp_path / "cnn.onnx"
    data = export_onnx(im, out)
    assert out.read_bytes() == data
    im16 = integer_model("cnn")
    im16.ops[1].output_qparams = type(im16.ops[1].output_qparams)(
        scale=0.1, zero_point=0, bits=16, signed=True)
    bad = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match=r"op 1 \(CONV_2D 'conv1'\): its output is 16-bit"):
        export_onnx(im16, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.onnx"]
