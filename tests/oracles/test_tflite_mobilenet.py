"""A MobileNet-v2-style int8 model built independently with the flatbuffer builder
(tflite_mobilenet.py: conv, depthwise, RELU6, ADD, MEAN, FC, SOFTMAX), imported, and compared
per layer with the interpreter (every intermediate tensor kept) on 100 seeded inputs: every
element of every layer equal, under the reference kernels (``tflite``), XNNPACK
(``tflite-xnnpack``) and the optimized builtin kernels (``tflite-optimized``)."""

from __future__ import annotations

import pytest
from conftest import require
from tflite_mobilenet import build_mobilenet, mobilenet_images

pytestmark = pytest.mark.oracle

INPUTS = 100


@pytest.mark.parametrize("kernels,profile", [("reference", "tflite"),
                                             ("xnnpack", "tflite-xnnpack"),
                                             ("optimized", "tflite-optimized")])
def test_mobilenet_block_stack_is_bit_exact_per_layer(kernels, profile):
    require("ai_edge_litert")
    from npquant.interop.tflite_compare import compare_with_tflite
    from npquant.interop.tflite_import import import_tflite

    data = build_mobilenet(seed=0)
    model = import_tflite(data, profile=profile)
    kinds = [op.op for op in model.ops]
    assert kinds == ["QUANTIZE"] + ["CONV_2D"] * 4 + ["ADD"] + ["CONV_2D"] * 3 + \
        ["MEAN", "FULLY_CONNECTED", "SOFTMAX", "DEQUANTIZE"]
    assert sum(getattr(op, "groups", 1) > 1 for op in model.ops) == 2  # the depthwise convs
    assert sum(getattr(op, "activation", None) == "relu6" for op in model.ops) == 5
    c, run = compare_with_tflite(model, data, mobilenet_images(INPUTS, seed=1), kernels=kernels)
    assert not c.problems
    assert [d.layer_index for d in c.diffs] == list(range(len(model.ops)))
    bad = [(d.layer_name, d.count, d.size, d.first_index) for d in c.diffs if d.count]
    assert not bad
    assert all(d.size >= 10 * INPUTS for d in c.diffs)
    if kernels == "xnnpack":  # everything but the int8 SOFTMAX runs inside XNNPACK
        assert [d.split(":")[1] for d in run.not_delegated] == ["SOFTMAX"]
