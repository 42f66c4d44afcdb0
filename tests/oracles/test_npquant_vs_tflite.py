"""npquant's integer kernels and quantize/dequantize under the ``tflite`` (reference kernels),
``tflite-optimized`` and ``tflite-xnnpack`` profiles against the LiteRT interpreter's matching
kernel path, bit for bit, on hypothesis cases (npquant/testing/oracles.py builds them)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from npq_testing import CAMPAIGN, check_bit_exact, check_rival_differs, default_cases

from npquant.fixedpoint import Ties
from npquant.profiles import MultiplierDerivation as MD
from npquant.profiles import RequantKind, RequantRule, get_profile
from npquant.testing.oracles import (
    COMPARISONS,
    npq_add,
    npq_conv,
    npq_dequantize,
    npq_quantize,
)

pytestmark = pytest.mark.oracle

ROWS = [c for c in COMPARISONS if c.framework == "tflite" and c.exact]
BY_ID = {c.id: c for c in ROWS}


@pytest.mark.parametrize("cmp", ROWS, ids=[c.id for c in ROWS])
def test_bit_exact(cmp):
    check_bit_exact(cmp, default_cases(cmp))


@pytest.mark.slow
@pytest.mark.parametrize("cmp", ROWS, ids=[c.id for c in ROWS])
def test_bit_exact_campaign(cmp):
    check_bit_exact(cmp, CAMPAIGN)


OPT = get_profile("tflite-optimized")
# Each path against its nearest rival: the profile of the neighbouring path, or the profile with
# one rule changed (depthwise without its groups of 8 channels).
RIVALS = [
    ("tflite-reference-CONV_2D", lambda c: npq_conv(c, "tflite-optimized")),
    ("tflite-optimized-CONV_2D", lambda c: npq_conv(c, "tflite")),
    ("tflite-optimized-DEPTHWISE_CONV_2D", lambda c: npq_conv(c, replace(
        OPT, depthwise_conv=RequantRule(RequantKind.DOUBLE_ROUNDING, MD.DOUBLE, Ties.UP)))),
    ("tflite-reference-FULLY_CONNECTED", lambda c: npq_conv(c, "tflite-optimized")),
    ("tflite-xnnpack-CONV_2D", lambda c: npq_conv(c, "tflite-optimized")),
    # (reference vs optimized ADD differ on ~2% of cases: test_tflite_elementwise_oracle.py
    # shows those rules apart on 200 larger cases)
    ("tflite-xnnpack-ADD", lambda c: npq_add(c, "pytorch-qnnpack")),
    ("tflite-optimized-QUANTIZE", lambda c: npq_quantize(c, "tflite")),
    ("tflite-xnnpack-QUANTIZE", lambda c: npq_quantize(c, "tflite-optimized")),
    ("tflite-optimized-DEQUANTIZE", lambda c: npq_dequantize(c, "tflite")),
]


@pytest.mark.parametrize("row_id,rival", RIVALS, ids=[r for r, _ in RIVALS])
def test_rival_profile_disagrees(row_id, rival):
    cmp = BY_ID[row_id]
    check_rival_differs(cmp, replace(cmp, run_npquant=rival, profile="rival"), 100)
