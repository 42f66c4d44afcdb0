"""Bad calls to the framework bridges raise ValueError/TypeError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

X = np.zeros((1, 2, 4, 4), np.int8)
W = np.ones((3, 2, 3, 3), np.int8)
GOOD = dict(w=W, x_scale=0.1, x_zero_point=0, w_scale=0.1, y_scale=0.2, y_zero_point=0)

BAD = [
    ("float input", "conv2d", [X.astype(np.float32)], GOOD, TypeError, "inputs\\[0\\]"),
    ("3-D input", "conv2d", [X[0]], GOOD, ValueError, "4-D"),
    ("scale 0", "conv2d", [X], {**GOOD, "y_scale": 0.0}, ValueError, "y_scale"),
    ("scale nan", "conv2d", [X], {**GOOD, "x_scale": float("nan")}, ValueError, "x_scale"),
    ("zp range", "conv2d", [X], {**GOOD, "x_zero_point": 200}, ValueError, "x_zero_point"),
    ("channels", "conv2d", [X], {**GOOD, "w": np.ones((3, 5, 3, 3), np.int8)}, ValueError,
     "input channels"),
    ("w_scale len", "conv2d", [X], {**GOOD, "w_scale": [0.1, 0.2]}, ValueError, "w_scale"),
    ("typo", "conv2d", [X], {**GOOD, "strides": 2}, ValueError, "unknown params"),
    ("padding", "conv2d", [X], {**GOOD, "padding": "FULL"}, ValueError, "padding"),
    ("unknown op", "conv3d", [X], GOOD, ValueError, "op must be"),
    ("add shapes", "add", [X, X[:, :1]], dict(a_scale=1.0, a_zero_point=0, b_scale=1.0,
                                               b_zero_point=0, y_scale=1.0, y_zero_point=0),
     ValueError, "same shape"),
]


@pytest.mark.parametrize("op,inputs,params,exc,match", [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_tflite_bad_calls(op, inputs, params, exc, match):
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    with pytest.raises(exc, match=match):
        run_tflite_op(op, inputs, params)


def test_tflite_bad_kernels():
    from npquant.interop.tflite import run_tflite_op

    with pytest.raises(ValueError, match="kernels"):
        run_tflite_op("conv2d", [X], GOOD, kernels="fast")


def test_onnx_and_torch_bad_calls():
    require("onnxruntime")
    require("torch")
    from npquant.interop.onnx import run_onnx_op
    from npquant.interop.torch import run_torch_op

    with pytest.raises(TypeError, match="int8 or uint8"):
        run_onnx_op("qlinear_conv", [X.astype(np.int16)], GOOD)
    with pytest.raises(ValueError, match="pads"):
        run_onnx_op("qlinear_conv", [X], {**GOOD, "pads": (1, 1)})
    with pytest.raises(TypeError, match="uint8"):
        run_torch_op("conv2d", [X], GOOD)
    with pytest.raises(ValueError, match="engine"):
        run_torch_op("conv2d", [X.view(np.uint8)], GOOD, engine="mkl")
