"""npquant under the ``onnxruntime`` profile against ONNX Runtime's CPU kernels, bit for bit:
QLinearConv (per-channel, groups, depthwise), QLinearMatMul, ConvInteger / MatMulInteger
(npquant's accumulators), QuantizeLinear (per tensor and per axis), DequantizeLinear, for int8
and uint8 activations. QLinearAdd and QLinearAveragePool are pinned as measured disagreements
in test_npquant_measured_disagreements.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from npq_compare import COMPARISONS, npq_conv, npq_quantize
from npq_testing import CAMPAIGN, check_bit_exact, check_rival_differs, default_cases

pytestmark = pytest.mark.oracle

ROWS = [c for c in COMPARISONS if c.framework == "onnxruntime" and c.exact]
BY_ID = {c.id: c for c in ROWS}


@pytest.mark.parametrize("cmp", ROWS, ids=[c.id for c in ROWS])
def test_bit_exact(cmp):
    check_bit_exact(cmp, default_cases(cmp))


@pytest.mark.slow
@pytest.mark.parametrize("cmp", ROWS, ids=[c.id for c in ROWS])
def test_bit_exact_campaign(cmp):
    check_bit_exact(cmp, CAMPAIGN)


RIVALS = [
    ("onnxruntime-cpu-QLinearConv int8", lambda c: npq_conv(c, "tflite-single-rounding")),
    ("onnxruntime-cpu-QLinearConv uint8", lambda c: npq_conv(c, "tflite")),
    ("onnxruntime-cpu-QuantizeLinear int8", lambda c: npq_quantize(c, "tflite")),
]


@pytest.mark.parametrize("row_id,rival", RIVALS, ids=[r for r, _ in RIVALS])
def test_rival_profile_disagrees(row_id, rival):
    cmp = BY_ID[row_id]
    check_rival_differs(cmp, replace(cmp, run_npquant=rival, profile="rival"), 100)
