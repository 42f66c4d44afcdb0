"""Whole models exported to .tflite run in the real interpreter bit for bit like
``IntegerModel.run``: every op's output tensor and the final float output, on 100 seeded
inputs, for the seed CNN, CNN_BN and the small ResNet, under the reference kernels (profile
``tflite``) and the XNNPACK delegate (``tflite-xnnpack``)."""

from __future__ import annotations

import pytest
from conftest import require
from tflite_models import MODELS, PATHS, images, integer_model

pytestmark = pytest.mark.oracle

INPUTS = 100


@pytest.mark.parametrize("kernels", sorted(PATHS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_is_bit_exact_per_layer(name, kernels):
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_export import export_tflite

    model = integer_model(name, PATHS[kernels])
    x = images(MODELS[name][0], INPUTS, seed=2)
    c, run = compare_with_tflite(model, export_tflite(model), x, kernels=kernels)
    assert not c.problems
    assert [d.layer_index for d in c.diffs] == list(range(len(model.ops)))
    bad = [(d.layer_index, d.layer_name, d.count, d.max_abs) for d in c.diffs if d.count]
    assert not bad, f"{name} under {kernels}: differing layers {bad}"
    assert all(d.size >= INPUTS for d in c.diffs)
    if kernels == "xnnpack":
        # the int8 AVERAGE_POOL_2D is not delegated: it runs the builtin kernel, as the
        # tflite-xnnpack profile says (average_pool ties away)
        assert all(op.endswith("AVERAGE_POOL_2D") for op in run.not_delegated), run.not_delegated


def test_export_writes_the_file_and_refuses_what_tflite_cannot_express(tmp_path):
    require("ai_edge_litert")
    from npquant.convert import Conv2dOp
    from npquant.interop.tflite_export import export_tflite

    model = integer_model("cnn", "tflite")
    data = export_tflite(model, tmp_path / "cnn.tflite")
    assert (tmp_path / "cnn.tflite").read_bytes() == data and data[4:8] == b"TFL3"
    with pytest.raises(TypeError, match="IntegerModel"):
        export_tflite("cnn")
    bad = integer_model("cnn", "tflite")
    conv = bad.ops[1]
    assert isinstance(conv, Conv2dOp)
    grouped = Conv2dOp(conv.name, weight=conv.weight[:, :1].repeat(2, axis=1), bias=conv.bias,
                       input_qparams=conv.input_qparams, weight_qparams=conv.weight_qparams,
                       output_qparams=conv.output_qparams, requant=conv.requant, groups=2)
    from npquant.convert import IntegerModel

    odd = IntegerModel([bad.ops[0], grouped, bad.ops[-1]], bad.profile, (4, 28, 28))
    with pytest.raises(ValueError, match=r"op 1 \(conv1\).*groups=2"):
        export_tflite(odd, tmp_path / "odd.tflite")
    assert not (tmp_path / "odd.tflite").exists()


@pytest.mark.parametrize("kernels", sorted(PATHS))
def test_qat_model_exports_bit_exact(kernels):
    """A QAT model (CNN_BN with LSQ weight and activation quantizers, calibrated, not trained:
    its scales are LSQ's, not TFLite's nudged ones) converted and exported."""
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_export import export_tflite
    from npquant.models import cnn_bn
    from npquant.quant import calibrate_qat, prepare_qat
    from npquant.quant.qat import to_integer_model

    qat = prepare_qat(cnn_bn(seed=0), PATHS[kernels], act_quant="lsq", weight_quant="lsq")
    calibrate_qat(qat, images((1, 28, 28), 64, seed=1), num_batches=2, batch_size=32)
    model = to_integer_model(qat, (1, 28, 28))
    c, _ = compare_with_tflite(model, export_tflite(model), images((1, 28, 28), INPUTS, seed=2),
                               kernels=kernels)
    assert c.identical, [(d.layer_name, d.count) for d in c.diffs if d.count]
