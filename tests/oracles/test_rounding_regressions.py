"""Regression cases from public rounding discussions, with the exact inputs that show each rule
and the framework run on them (each cites its thread)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from npquant.integer import avg_pool2d, conv2d, fully_connected
from npquant.profiles import get_profile
from npquant.qparams import QParams, quantize

pytestmark = pytest.mark.oracle


@pytest.mark.parametrize("kernels,profile,want", [("reference", "tflite", -2),
                                                  ("optimized", "tflite-optimized", -1)])
def test_conv_reference_vs_optimized_negative_tie(kernels, profile, want):
    """tensorflow/tensorflow#99072 (and tflite-micro#3130): INT8 CONV differs by 1 between the
    reference kernel (TFLM's default) and the optimized one. Minimal case: acc = -6, M = 1/4
    (M0 = 2^30, shift -1): SRDHM gives -3 exactly, the final shift sees -1.5 — reference
    RoundingDivideByPOT rounds away to -2, the optimized vrshl-style shift rounds up to -1."""
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    # two input channels (0 and -6); the one-channel CONV_2D is the next test
    x = np.array([0, -6], np.int8).reshape(1, 2, 1, 1)
    w = np.ones((1, 2, 1, 1), np.int8)
    q = dict(x_scale=1.0, w_scale=0.25, y_scale=1.0)
    got = run_tflite_op("conv2d", [x], dict(w=w, x_zero_point=0, y_zero_point=0, **q),
                        kernels=kernels)
    mine = conv2d(x, w, x_zero_point=0, out_zero_point=0, x_scale=1.0, w_scale=0.25,
                  out_scale=1.0, profile=profile)
    assert int(got[0, 0, 0, 0]) == want and int(mine[0, 0, 0, 0]) == want


def test_single_input_channel_conv_uses_the_conv_rule():
    """The same negative tie through a CONV_2D with one input channel: TFLite's optimized conv
    gives -1 (ties up); npquant under tflite-optimized must too (a one-channel conv2d is a
    CONV_2D, not a depthwise conv, whatever its groups)."""
    x = np.full((1, 1, 1, 1), -6, np.int8)
    w = np.ones((1, 1, 1, 1), np.int8)
    mine = conv2d(x, w, x_zero_point=0, out_zero_point=0, x_scale=1.0, w_scale=0.25,
                  out_scale=1.0, profile="tflite-optimized")
    assert int(mine[0, 0, 0, 0]) == -1


@pytest.mark.parametrize("kernels", ["reference", "optimized"])
def test_average_pool_rounds_half_away(kernels):
    """apache/tvm#20298 (TFLite's quantized AveragePool rounds the window average half away from
    zero, a truncating lowering is off on about half of inputs) and tensorflow/tensorflow#23598
    (optimized vs reference AveragePool): windows summing to -3 and +3 over 2 taps give -2 and
    +2 (half away), where truncation gives -1/+1 and ties-up gives -1/+2."""
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    x = np.array([[[[-1, -2, 1, 2]]]], np.int8)  # NCHW (1, 1, 1, 4), 1x2 windows, stride 2
    got = run_tflite_op("average_pool2d", [x], dict(kernel_size=(1, 2), stride=(1, 2),
                                                    x_scale=0.5, x_zero_point=0),
                        kernels=kernels)
    mine = avg_pool2d(x, (1, 2), (1, 2), zero_point=0, scale=0.5, profile="tflite")
    assert got.ravel().tolist() == [-2, 2] == mine.ravel().tolist()


def test_quantize_linear_ties_to_even():
    """onnx/onnx#4225 and microsoft/onnxruntime#11759: QuantizeLinear rounds x / y_scale to
    nearest, ties to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 (TFLite's reference QUANTIZE rounds
    half away: 3, 4, -3)."""
    require("onnxruntime")
    require("onnx")
    from npquant.interop.onnx import run_onnx_op

    x = np.array([2.5, 3.5, -2.5, 0.5], np.float32)
    got = run_onnx_op("quantize_linear", [x], dict(y_scale=1.0, y_zero_point=0, axis=0))
    assert got.tolist() == [2, 4, -2, 0]
    assert quantize(x, QParams(1.0, 0), rule=get_profile("onnxruntime").quantize).tolist() == \
        [2, 4, -2, 0]
    assert quantize(x, QParams(1.0, 0), rule=get_profile("tflite").quantize).tolist() == \
        [3, 4, -3, 1]


@pytest.mark.parametrize("kernels,profile,want", [("xnnpack", "tflite-xnnpack", 2),
                                                  ("reference", "tflite", 3),
                                                  ("optimized", "tflite-optimized", 3)])
def test_relu6_bound_rounding(kernels, profile, want):
    """Found by this suite (FULLY_CONNECTED, RELU6, S_y = 4, Z_y = 1, so 6 / S_y = 1.5 is a tie):
    TFLite's CalculateActivationRangeQuantized clamps at Z + round_away(1.5) = 3, the XNNPACK
    delegate at lrintf(1.5 + 1) = 2 (zero point added before rounding, ties to even)."""
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    x = np.full((1, 4), 100, np.int8)  # a large positive sum: the output sits on the clamp
    w = np.ones((1, 4), np.int8)
    q = dict(x_scale=1.0, x_zero_point=0, w_scale=np.array([1.0], np.float32), y_scale=4.0,
             y_zero_point=1, activation="RELU6")
    got = run_tflite_op("fully_connected", [x], dict(w=w, bias=None, **q), kernels=kernels)
    mine = fully_connected(x, w, x_zero_point=0, out_zero_point=1, x_scale=1.0,
                           w_scale=np.array([1.0], np.float32), out_scale=4.0,
                           activation="relu6", profile=profile)
    assert int(got.ravel()[0]) == want == int(mine.ravel()[0])
