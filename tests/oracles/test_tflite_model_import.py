"""Import of int8 .tflite models: the round trip npquant -> .tflite -> npquant gives identical
integer tensors at every op, the imported model equals the interpreter per layer, and what
cannot be imported exactly is refused with an error naming the operator and its index."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from tflite_models import MODELS, PATHS, images, integer_model

pytestmark = pytest.mark.oracle


def _schema():
    require("ai_edge_litert")
    import ai_edge_litert.schema_py_generated as s

    return s


def _edit(data: bytes, change) -> bytes:
    """``data`` parsed with the schema's object API, changed by ``change(model)``, repacked."""
    import flatbuffers

    s = _schema()
    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    change(m)
    b = flatbuffers.Builder(len(data) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("kernels", sorted(PATHS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_gives_identical_integer_tensors(name, kernels):
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    model = integer_model(name, PATHS[kernels])
    data = export_tflite(model)
    back = import_tflite(data, profile=PATHS[kernels])
    assert back.profile is model.profile and back.input_shape == model.input_shape
    x = images(MODELS[name][0], 24, seed=4)
    logits, trace = model.run(x, return_trace=True)
    logits2, trace2 = back.run(x, return_trace=True)
    theirs = {e.name: e for e in trace2}
    for e in trace:  # every op of the original has its tensor in the import, equal
        assert np.array_equal(theirs[e.name].output, e.output), e.name
        if e.acc is not None and e.op in ("CONV_2D", "FULLY_CONNECTED"):
            assert np.array_equal(theirs[e.name].acc, e.acc), e.name
    assert np.array_equal(logits, logits2)
    # the export adds only layout and padding operators (FLATTEN = TRANSPOSE + RESHAPE)
    extra = {op.op for op in back.ops if op.name not in {o.name for o in model.ops}}
    assert extra <= {"TRANSPOSE", "PAD"}
    c, _ = compare_with_tflite(back, data, x, kernels=kernels)
    assert c.identical, [(d.layer_name, d.count) for d in c.diffs if d.count]
    assert len(c.diffs) == len(back.ops)


def test_default_profile_is_the_reference_one_and_paths_are_accepted(tmp_path):
    require("ai_edge_litert")
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    path = tmp_path / "cnn.tflite"
    export_tflite(integer_model("cnn", "tflite"), path)
    assert import_tflite(path).profile.name == "tflite"
    assert import_tflite(str(path), profile="tflite-xnnpack").profile.name == "tflite-xnnpack"
    with pytest.raises(TypeError, match="source"):
        import_tflite(12)
    with pytest.raises(ValueError, match="unknown profile"):
        import_tflite(path, profile="tflite-fast")


def test_int8_io_model_gets_npquant_quantize_and_dequantize():
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    data = export_tflite(integer_model("resnet_small", "tflite"))

    def strip_ends(m):
        sub = m.subgraphs[0]
        first, last = sub.operators[0], sub.operators[-1]
        sub.inputs, sub.outputs = [first.outputs[0]], [last.inputs[0]]
        sub.operators = sub.operators[1:-1]

    int8_io = _edit(data, strip_ends)
    model = import_tflite(int8_io)
    assert model.meta["tflite_int8_input"] and model.meta["tflite_int8_output"]
    assert model.ops[0].op == "QUANTIZE" and model.ops[-1].op == "DEQUANTIZE"
    x = images(MODELS["resnet_small"][0], 16, seed=5)
    c, run = compare_with_tflite(model, int8_io, x)
    assert c.identical and run.output.dtype == np.int8
    assert np.array_equal(run.output, model.run(x))


def _float_conv_model() -> bytes:
    """A float32 CONV_2D model (what a converter writes without quantization)."""
    from npquant.interop.tflite_export import ModelBuilder

    s = _schema()
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], 0)
    w = b.tensor("w", [3, 1, 1, 2], 0, None, np.ones((3, 1, 1, 2), np.float32))
    bias = b.tensor("b", [3], 0, None, np.zeros(3, np.float32))
    y = b.tensor("y", [1, 4, 4, 3], 0)
    opts = s.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = 1, 1, 1
    b.operator("CONV_2D", [x, w, bias], [y], s.BuiltinOptions.Conv2DOptions, opts)
    return b.finish([x], [y], "float")


def _conv_model(w_axis: int = 0) -> bytes:
    """One CONV_2D between QUANTIZE and DEQUANTIZE, built with the exporter's builder."""
    from npquant.interop.tflite_export import INT8, INT32, ModelBuilder

    s = _schema()
    b = ModelBuilder()

    def quant(scales, zps, axis=0):
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = list(scales), list(zps), axis
        return q

    x = b.tensor("x", [1, 4, 4, 3], 0)
    xq = b.tensor("xq", [1, 4, 4, 3], INT8, quant([0.1], [0]))
    w_shape = [3, 1, 1, 3]
    w = b.tensor("w", w_shape, INT8, quant([0.01] * w_shape[w_axis], [0] * w_shape[w_axis],
                                          w_axis), np.ones(w_shape, np.int8))
    bias = b.tensor("b", [3], INT32, quant([0.001] * 3, [0] * 3), np.zeros(3, np.int32))
    y = b.tensor("y", [1, 4, 4, 3], INT8, quant([0.05], [0]))
    out = b.tensor("out", [1, 4, 4, 3], 0)
    b.operator("QUANTIZE", [x], [xq])
    opts = s.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = 1, 1, 1
    opts.dilationHFactor = opts.dilationWFactor = 1
    b.operator("CONV_2D", [xq, w, bias], [y], s.BuiltinOptions.Conv2DOptions, opts)
    b.operator("DEQUANTIZE", [y], [out])
    return b.finish([x], [out], "test")


def test_refusals_name_the_operator_and_its_index():
    require("ai_edge_litert")
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    import_tflite(_conv_model())  # the well-formed model imports
    with pytest.raises(ValueError, match=r"op 0 \(CONV_2D\).*float32.*fully-quantized"):
        import_tflite(_float_conv_model())
    with pytest.raises(ValueError, match=r"op 1 \(CONV_2D\).*per-axis quantization on axis 3"):
        import_tflite(_conv_model(w_axis=3))

    def to_mul(m):  # the second operator's code becomes MUL (18)
        code = m.operatorCodes[m.subgraphs[0].operators[1].opcodeIndex]
        code.builtinCode = code.deprecatedBuiltinCode = 18

    with pytest.raises(ValueError, match=r"op 1 \(MUL\) is not supported"):
        import_tflite(_edit(export_tflite(integer_model("cnn", "tflite")), to_mul))

    def relu_n1(m):
        m.subgraphs[0].operators[1].builtinOptions.fusedActivationFunction = 2

    with pytest.raises(ValueError, match=r"op 1 \(CONV_2D\).*RELU_N1_TO_1"):
        import_tflite(_edit(export_tflite(integer_model("cnn", "tflite")), relu_n1))


def test_truncated_or_corrupt_files_are_refused():
    require("ai_edge_litert")
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    data = export_tflite(integer_model("cnn", "tflite"))
    for cut in (0, 7, 8, 100, len(data) // 2, len(data) - 200):
        with pytest.raises(ValueError, match="truncated|corrupt|not a .tflite"):
            import_tflite(data[:cut])
    with pytest.raises(ValueError, match="not a .tflite"):
        import_tflite(b"\x00" * 4 + b"ONNX" + data[8:])


@pytest.mark.parametrize("name", ["cnn", "resnet_small"])
def test_fully_connected_on_a_4d_input_flattens_as_tflite(name):
    """Converters drop the RESHAPE before a FULLY_CONNECTED (TFLite flattens its input itself):
    the import adds an npquant RESHAPE in NHWC order, and the model still equals the
    interpreter and the original."""
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_export import export_tflite
    from npquant.interop.tflite_import import import_tflite

    model = integer_model(name, "tflite")

    def drop_reshape(m):
        sub = m.subgraphs[0]
        codes = [m.operatorCodes[op.opcodeIndex].builtinCode for op in sub.operators]
        k = codes.index(22)  # RESHAPE
        reshape = sub.operators.pop(k)
        sub.operators[k].inputs[0] = reshape.inputs[0]  # the FC reads the 4-D tensor

    data = _edit(export_tflite(model), drop_reshape)
    back = import_tflite(data)
    assert back.meta["npquant_only"] == ["fc.flatten"]
    x = images(MODELS[name][0], 16, seed=6)
    c, _ = compare_with_tflite(back, data, x)
    assert c.identical and "fc.flatten" not in {d.layer_name for d in c.diffs}
    assert np.array_equal(back.run(x), model.run(x))
