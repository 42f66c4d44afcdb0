"""npquant under the ``pytorch-fbgemm`` and ``pytorch-qnnpack`` profiles against PyTorch's
quantized CPU ops, bit for bit: conv2d (groups, depthwise, per-channel), linear, quantized add
(qnnpack), quantize_per_tensor / quantize_per_channel (quint8 and qint8)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from npq_testing import CAMPAIGN, check_bit_exact, check_rival_differs, default_cases

from npquant.testing.oracles import COMPARISONS, npq_add, npq_quantize

pytestmark = [pytest.mark.oracle,
              pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")]

ROWS = [c for c in COMPARISONS if c.framework == "pytorch" and c.exact]
BY_ID = {c.id: c for c in ROWS}


@pytest.mark.parametrize("cmp", ROWS, ids=[c.id for c in ROWS])
def test_bit_exact(cmp):
    check_bit_exact(cmp, default_cases(cmp))


@pytest.mark.slow
@pytest.mark.parametrize("cmp", ROWS, ids=[c.id for c in ROWS])
def test_bit_exact_campaign(cmp):
    check_bit_exact(cmp, CAMPAIGN)


RIVALS = [
    ("pytorch-qnnpack-add", lambda c: npq_add(c, "tflite-xnnpack")),
    ("pytorch-cpu-quantize_per_tensor quint8", lambda c: npq_quantize(c, "onnxruntime",
                                                                       np.uint8)),
    ("pytorch-cpu-quantize_per_channel qint8", lambda c: npq_quantize(c, "onnxruntime",
                                                                       np.int8)),
]


@pytest.mark.parametrize("row_id,rival", RIVALS, ids=[r for r, _ in RIVALS])
def test_rival_profile_disagrees(row_id, rival):
    cmp = BY_ID[row_id]
    check_rival_differs(cmp, replace(cmp, run_npquant=rival, profile="rival"), 100)
