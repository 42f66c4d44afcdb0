"""The one test body behind ``test_npquant_vs_*.py``: a comparison of npquant.COMPARISONS run as a
hypothesis property (``assert_bit_exact`` on every case), its rival check, and the slow campaign.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ONEDNN_ISA, require, require_exact_u8s8_accumulation
from hypothesis import HealthCheck, given, reject, settings

from npquant.testing import assert_bit_exact
from npquant.testing.oracles import REQUIRES, Comparison, Declined, measure

CAMPAIGN = 10_000  # cases per op in the slow campaign (python -m pytest -m slow tests/oracles)
# Default-run cases: a few hundred per comparison, as the oracle issue asks (convs cost ~40-90 ms
# each for hypothesis generation + both kernels, the elementwise ops ~10-30 ms: the exact
# comparisons take about 6 minutes on 2 cores). tools/fidelity.py and the slow campaign run more.
HEAVY_OPS = ("CONV", "FULLY", "QLinearConv", "QLinearMatMul", "Integer", "conv2d", "linear")


def default_cases(cmp: Comparison) -> int:
    return 200 if any(k in cmp.op for k in HEAVY_OPS) else 250


# Framework paths whose integer sums go through the CPU's u8 x s8 multiply-add (exact with VNNI,
# int16 pair saturation without it): ORT MLAS GEMM/conv and PyTorch fbgemm / x86 conv and linear.
U8S8_PATHS = {("onnxruntime", op) for op in ("QLinearConv", "QLinearMatMul", "ConvInteger",
                                              "MatMulInteger")}
U8S8_PATHS |= {("pytorch", op) for op in ("conv2d", "linear")}
# The oneDNN kernel families (conftest.ONEDNN_ISA) on which the x86 engine's conv rows were
# measured bit-exact under profile pytorch-x86 (AMD Zen 4, ONEDNN_MAX_CPU_ISA unset).
ONEDNN_EXACT_FAMILIES = ("avx512_core_vnni",)


def require_framework(cmp: Comparison) -> None:
    for module in REQUIRES[cmp.framework]:
        require(module)
    base_op = cmp.op.split(" ")[0]
    onednn = cmp.framework == "pytorch" and cmp.path == "x86" and base_op == "conv2d"
    if (cmp.framework, base_op) in U8S8_PATHS and cmp.path != "qnnpack" and not onednn:
        # (the x86 engine's conv is oneDNN's, whose rows are keyed by its own ISA family)
        require_exact_u8s8_accumulation(cmp.id)
    if onednn and cmp.exact and ONEDNN_ISA not in ONEDNN_EXACT_FAMILIES:
        pytest.skip(f"{cmp.id}: oneDNN runs its {ONEDNN_ISA} int8 kernels here; the pytorch-x86 "
                    f"profile was measured exact on {', '.join(ONEDNN_EXACT_FAMILIES)} only "
                    "(other families: test_torch_oracle.py)")


def check_bit_exact(cmp: Comparison, n: int) -> None:
    """Every hypothesis case: npquant under ``cmp.profile`` == the framework, bit for bit."""
    require_framework(cmp)

    @settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
    @given(cmp.cases())
    def check(case):
        try:
            want = np.asarray(cmp.run_framework(case))
        except Declined:
            reject()
        got = np.asarray(cmp.run_npquant(case))
        assert_bit_exact(got, want, context=f"{cmp.id} vs npquant profile {cmp.profile!r}: "
                                            f"{case!r}")

    check()


def check_rival_differs(cmp: Comparison, rival: Comparison, n: int) -> None:
    """The same cases under a rival profile must disagree somewhere (the cases discriminate)."""
    require_framework(cmp)
    tally = measure(rival, n, seed=1)
    assert tally.cases > 0
    assert tally.agree < tally.cases, (f"rival profile {rival.profile!r} agreed with {cmp.id} on "
                                       f"all {tally.cases} cases: the cases do not discriminate")
