"""npquant under the ``onnxruntime`` profile against ONNX Runtime's CPU kernels, bit for bit:
QLinearConv (per-channel, groups, depthwise), QLinearMatMul, ConvInteger / MatMulInteger
(npquant's accumulators), QuantizeLinear (per tensor and per axis), DequantizeLinear, QLinearAdd
(MLAS's float32 fma sequence, npquant.integer.mlas), QLinearGlobalAveragePool, for int8 and
uint8 activations. QLinearAveragePool (a window) is pinned as a measured disagreement in
test_npquant_measured_disagreements.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from npq_testing import CAMPAIGN, check_bit_exact, check_rival_differs, default_cases

from npquant.testing.oracles import COMPARISONS, npq_add, npq_conv, npq_quantize

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
    # the onnxruntime profile's ADD and global pool before version 2 (TFLite's integer ADD with a
    # float32 multiplier; the exact mean rounded to even), which pytorch-fbgemm still has
    ("onnxruntime-cpu-QLinearAdd int8", lambda c: npq_add(c, "pytorch-fbgemm")),
    ("onnxruntime-cpu-QLinearGlobalAveragePool int8", lambda c: _exact_mean_pool(c)),
]


def _exact_mean_pool(c):
    """The global average pool with the exact multiplier S_x / (S_y N) (float64), rne: what the
    profile did before version 2 when input and output qparams agree."""
    n = c.x.shape[2] * c.x.shape[3]
    acc = c.x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - c.x_zp * n
    y = np.rint(acc * (np.float64(np.float32(c.x_scale)) / (np.float32(c.y_scale) * n))) + c.y_zp
    return np.clip(y, np.iinfo(c.x.dtype).min, np.iinfo(c.x.dtype).max).astype(c.x.dtype)


# The global pool's exact-mean rival differs from ORT on ~2% of cases (measured 6-9 of 400), so
# 100 cases can miss: a seeded hypothesis run draws other cases when other modules are loaded
# (hypothesis mixes constants found in loaded modules' source into its draws), and after
# tests/integer/test_integer_new_ops.py the 100 cases held no discriminating one.
RIVAL_CASES = {"onnxruntime-cpu-QLinearGlobalAveragePool int8": 400}


@pytest.mark.parametrize("row_id,rival", RIVALS, ids=[r for r, _ in RIVALS])
def test_rival_profile_disagrees(row_id, rival):
    cmp = BY_ID[row_id]
    check_rival_differs(cmp, replace(cmp, run_npquant=rival, profile="rival"),
                        RIVAL_CASES.get(row_id, 100))
