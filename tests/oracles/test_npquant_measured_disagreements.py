"""Kernel paths no npquant profile reproduces exactly (yet): each test pins the measured rate and
size of the disagreement on a fixed hypothesis seed (never fresh draws: a rate is a measurement of
one case set). None of these loosens a bit-exact test: they are measurements, and a change in any
of them (better or worse) fails here and must be looked at. docs/fidelity.md lists them with the
same explanations; the x86 engine's conv under other oneDNN kernel families (pair-saturated sums
without VNNI) is pinned, on a fixed case set, in test_torch_oracle.py."""

from __future__ import annotations

import pytest
from conftest import ONEDNN_ISA, ONEDNN_ISA_ID
from npq_testing import require_framework

from npquant.testing.oracles import COMPARISONS, measure

pytestmark = [pytest.mark.oracle,
              pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")]

MEASURED = {c.id: c for c in COMPARISONS if not c.exact}
# id -> (cases, least agreeing cases, max |diff| bound): measured on an AMD EPYC (Zen 4, AVX-512
# VNNI), hypothesis seed 0 (docs/fidelity.md). A bound of 1 means every disagreement is a tie
# rounded the other way. The PyTorch x86 rows run oneDNN, whose kernels depend on the CPU: their
# pins are keyed by the oneDNN int8 family (conftest.ONEDNN_ISA).
PINS = {
    # the shapes oneDNN misreads (oracles.onednn_misreads): 98 of 100 agreed in each of three
    # processes, the other two off by up to 255 (input the case does not set: the count may move)
    "pytorch-x86-conv2d (depthwise, misread shapes)": {"avx512_core_vnni": (100, 90, 255)},
}


def _pin(row_id: str) -> tuple[int, int, int]:
    pin = PINS[row_id]
    if not isinstance(pin, dict):
        return pin
    if ONEDNN_ISA not in pin:
        pytest.skip(f"{row_id}: oneDNN runs its {ONEDNN_ISA} int8 kernels here, not measured yet "
                    f"(set ONEDNN_MAX_CPU_ISA to one of {sorted(k.upper() for k in pin)})")
    return pin[ONEDNN_ISA]


@pytest.mark.parametrize("row_id", list(PINS), ids=[
    f"{r}[{ONEDNN_ISA_ID}]" if isinstance(PINS[r], dict) else r for r in PINS])
def test_pinned_disagreement(row_id):
    cmp = MEASURED[row_id]
    require_framework(cmp)
    n, least, max_diff = _pin(row_id)
    t = measure(cmp, n, seed=0)
    assert t.cases == n
    assert least <= t.agree < t.cases, f"{row_id}: {t.agree}/{t.cases} cases agree"
    assert 1 <= t.max_abs_diff <= max_diff, f"{row_id}: max |diff| {t.max_abs_diff}"
