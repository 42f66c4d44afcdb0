"""ONNX Runtime and PyTorch fbgemm as they run on an x86 CPU without VNNI, by user-mode
emulation (``qemu-x86_64 -cpu Haswell``; install qemu with tools/setup_emulation.sh; the child is
tools/emulated_cpu.py's).

- The oracle table's exact rows under the profile claimed on AVX2
  (``npquant.testing.oracles.profile_on``): the ONNX Runtime rows on a few cases in the default
  run, every row on the campaign's (slow).
- The slow test: the ``-avx2`` profiles reproduce u8 x s8 linear and conv layers bit for bit,
  where the exact-sum profiles do not (tools/emulated_paths.py; docs/framework_facts.md).
- The default test: crafted depthwise QLinearConv cases on which MLAS's AVX2 kernels split by
  shape. A conv with one input and one output channel per group runs MLAS's depthwise kernels
  (``MlasConvDepthwise``, or ``MlasConvSymDepthwiseKernelAvx2`` with 16k channels), which sum
  ``(x - Zx)(w - Zw)`` exactly; a channel multiplier > 1 makes it a grouped GEMM whose u8 x s8
  kernel saturates ``vpmaddubsw`` pairs of taps. ``onnxruntime-avx2`` (its
  ``depthwise_accumulator``) reproduces both; the rule before it (pairs everywhere) and the
  exact-sum ``onnxruntime`` profile each miss one.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import emulated_child, require

from npquant.integer import conv2d
from npquant.profiles import get_profile
from npquant.testing.oracles import COMPARISONS, disagreements, on_cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from emulated_cpu import FRAMEWORKS, frameworks_on  # noqa: E402

pytestmark = pytest.mark.oracle

CPU = "avx2"
# the rows claimed exact on AVX2 (npquant.testing.oracles.CPU_UNMODELLED lists the others)
ROWS = [r for r in (on_cpu(c, CPU) for c in COMPARISONS if c.framework in FRAMEWORKS[CPU])
        if r.exact]
DEFAULT_CASES = 4  # per ONNX Runtime row in the default run (its rows are the ones MLAS splits)
CAMPAIGN_CASES = 1000


@pytest.fixture(scope="module")
def child():
    """One AVX2 child process for the module (skip, or fail in CI, without the emulation)."""
    yield from emulated_child(CPU, "onnxruntime", "onnx")


def _check_rows(child, rows, n: int) -> None:
    with frameworks_on(child):
        bad = disagreements(rows, n)
    assert not bad, "\n".join(bad)


def test_every_exact_onnxruntime_row_reproduces_on_avx2(child):
    _check_rows(child, [r for r in ROWS if r.framework == "onnxruntime"], DEFAULT_CASES)


@pytest.mark.slow
def test_every_exact_row_reproduces_on_avx2_campaign(child):
    require("ai_edge_litert")
    require("torch")
    _check_rows(child, ROWS, CAMPAIGN_CASES)


@pytest.mark.slow
def test_avx2_profiles_reproduce_the_frameworks_without_vnni():
    require("onnxruntime")
    require("torch")
    if shutil.which("qemu-x86_64") is None:
        pytest.skip("qemu-x86_64 is not installed (bash tools/setup_emulation.sh)")
    from emulated_paths import measure

    rows = measure(8, seed=1, cpu="Haswell")
    for op, (n, exact, avx2) in rows.items():
        if op == "ort-ConvInteger":  # ORT's ConvInteger sums exactly even on AVX2
            assert exact == n, rows
        else:
            assert avx2 == n, (op, rows)
    assert sum(exact for op, (n, exact, _) in rows.items() if op != "ort-ConvInteger") < \
        sum(n for op, (n, _, _) in rows.items() if op != "ort-ConvInteger"), rows


# (channels, multiplier, groups): a depthwise conv through MlasConvDepthwise, the same with 16
# channels (MlasConvSymDepthwiseKernelAvx2: int8 weights, Zw = 0, channels a multiple of 16), a
# one-channel conv (one input and one output channel: the depthwise kernel too), and two
# channel multipliers > 1 (grouped GEMMs)
DW_SHAPES = [(3, 1, 3), (16, 1, 16), (1, 1, 1), (2, 2, 2), (1, 3, 1)]
# every tap x = 255 (Zx = 0), w = 127: two taps sum to 64770 exactly, 32767 in a saturated pair;
# M = 1/1024 makes them 63 and 32
DW_PARAMS = dict(x_scale=1.0, x_zero_point=0, w_scale=1.0, y_scale=1024.0, y_zero_point=0,
                 stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0))


def _dw_case(c: int, m: int):
    return np.full((1, c, 1, 2), 255, np.uint8), np.full((c * m, 1, 1, 2), 127, np.int8)


def _ort_depthwise(run_onnx_op) -> list[np.ndarray]:
    return [run_onnx_op("qlinear_conv", [x], dict(DW_PARAMS, w=w, bias=None, groups=g))
            for x, w, g in ((*_dw_case(c, m), g) for c, m, g in DW_SHAPES)]


def _npquant_depthwise(profile) -> list[np.ndarray]:
    return [conv2d(x, w, None, groups=g, x_zero_point=0, out_zero_point=0, x_scale=1.0,
                   w_scale=1.0, out_scale=1024.0, profile=profile, out_dtype=np.uint8)
            for x, w, g in ((*_dw_case(c, m), g) for c, m, g in DW_SHAPES)]


def test_depthwise_sums_exactly_and_grouped_gemms_pair_on_avx2(child):
    """ORT's uint8 QLinearConv on the crafted cases: under Haswell emulation equal to
    ``onnxruntime-avx2`` (63 on the depthwise kernels, 32 on the grouped GEMMs) and not to the
    pair-everywhere rule nor the exact sums; natively (VNNI) equal to the exact sums."""
    avx2 = get_profile("onnxruntime-avx2")
    pairs_everywhere = replace(avx2, depthwise_accumulator=None)
    want = _npquant_depthwise(avx2)
    assert [int(y.max()) for y in want] == [63, 63, 63, 32, 32]
    assert [int(y.max()) for y in _npquant_depthwise(pairs_everywhere)] == [32] * 5
    assert [int(y.max()) for y in _npquant_depthwise("onnxruntime")] == [63] * 5
    from npquant.interop import onnx as ionnx

    with frameworks_on(child):
        on_avx2 = _ort_depthwise(ionnx.run_onnx_op)
    assert all(np.array_equal(g, w) for g, w in zip(on_avx2, want, strict=True)), \
        [g.ravel().tolist() for g in on_avx2]
    from npquant.testing.cpu import has_vnni

    if has_vnni():  # natively on a VNNI CPU every path sums exactly
        native = _ort_depthwise(ionnx.run_onnx_op)
        assert all(np.array_equal(g, w) for g, w in
                   zip(native, _npquant_depthwise("onnxruntime"), strict=True))
