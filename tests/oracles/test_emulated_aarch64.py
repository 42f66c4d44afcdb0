"""TFLite and ONNX Runtime as they run on an aarch64 CPU (Neoverse N1), by user-mode emulation
(``qemu-aarch64``, sysroot from tools/setup_emulation.sh; tools/emulated_cpu.py): every exact
row of the oracle table reproduces bit for bit under the profile claimed on aarch64
(``npquant.testing.oracles.profile_on``: ``tflite-optimized-aarch64`` for TFLite's optimized
kernels, ``onnxruntime-aarch64`` for ORT's QLinearAdd), and fixed cases on which the aarch64 and
x86-64 builds give different integers show it.

The emulation is skipped when it is not set up, except in CI (NPQUANT_REQUIRE_ORACLES=1, where
.ci/run sets it up first). The default run checks a few cases per row (the child starts in a few
seconds, a call takes ~10-50 ms); ``-m slow`` runs the campaign.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import emulated_child

from npquant.profiles import get_profile
from npquant.qparams import QParams, dequantize
from npquant.testing.oracles import COMPARISONS, disagreements, on_cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from emulated_cpu import FRAMEWORKS, frameworks_on  # noqa: E402

pytestmark = pytest.mark.oracle

CPU = "aarch64"
# the rows claimed exact on aarch64 (npquant.testing.oracles.CPU_UNMODELLED lists the others)
ROWS = [r for r in (on_cpu(c, CPU) for c in COMPARISONS if c.framework in FRAMEWORKS[CPU])
        if r.exact]
DEFAULT_CASES = 6  # per row: ~40 rows, about a minute in all on 2 shared cores
CAMPAIGN_CASES = 1000


@pytest.fixture(scope="module")
def child():
    """One aarch64 child process for the module (skip, or fail in CI, without the emulation)."""
    yield from emulated_child(CPU, "ai_edge_litert", "onnxruntime", "onnx")


def _check_rows(child, n: int) -> None:
    with frameworks_on(child):
        bad = disagreements(ROWS, n)
    assert not bad, "\n".join(bad)


def test_every_exact_row_reproduces_on_aarch64(child):
    _check_rows(child, DEFAULT_CASES)


@pytest.mark.slow
def test_every_exact_row_reproduces_on_aarch64_campaign(child):
    _check_rows(child, CAMPAIGN_CASES)


# ----------------------------------------------------------------------------- discriminating
def _fc(n: int, o: int, k: int):
    """FULLY_CONNECTED whose accumulators are all 1 with M = 1/4: rounded twice (SRDHM 1/2 -> 1,
    then the shift 1/2 -> 1, ties up) it gives 1, rounded once (1/4) 0."""
    x = np.zeros((n, k), np.int8)
    x[:, 0] = 1
    w = np.zeros((o, k), np.int8)
    w[:, 0] = 1
    return [x], dict(w=w, x_scale=1.0, x_zero_point=0, w_scale=1.0, y_scale=4.0,
                     y_zero_point=0)


def _fc_npquant(inputs, p, profile):
    from npquant.integer import fully_connected

    return fully_connected(inputs[0], p["w"], None, x_zero_point=0, out_zero_point=0,
                           x_scale=1.0, w_scale=1.0, out_scale=4.0, profile=profile,
                           out_dtype=np.int8)


# (n, o, k): the GEMV shape (one column, 4 rows, depth 8) and three shapes ruy takes
FC_SHAPES = [(1, 4, 8), (2, 4, 8), (1, 3, 8), (1, 4, 7)]
# q in [-128, 127] with S = f32(0.1), Z = 3: f32(q S) + f32(-Z S) and the fused
# f32(q S + f32(-Z S)) differ on some of them (the unit test checks that npquant's two rules do)
DEQ = (np.arange(-128, 128, dtype=np.int8), float(np.float32(0.1)), 3)


def _dw(width: int):
    """A 3x3 depthwise conv, 8 channels, accumulators all 3, M = 3/2: the left shift first
    gives round(4.5) = 5, the left shift last (the aarch64 3x3 kernel) 2 round(2.25) = 4. Width
    3 is a shape of that kernel; width 4 with stride (1, 2) is not."""
    x = np.ones((1, 8, 3, width), np.int8)
    w = np.zeros((8, 1, 3, 3), np.int8)
    w[:, 0, 1, 1] = 3
    return x, w, (1, 1) if width == 3 else (1, 2)


def _dw_params(w, stride):
    return dict(w=w, x_scale=1.0, x_zero_point=0, w_scale=1.5, y_scale=1.0, y_zero_point=0,
                stride=stride, padding="VALID")


def _conv(width: int):
    """CONV_2D, 8 input and 4 output channels, 1x1 filter, accumulators all 1, M = 1/4, on a
    1 x ``width`` image: one output pixel is a GEMV shape (rounded twice: 1), two are not (0)."""
    x = np.zeros((1, 8, 1, width), np.int8)
    x[:, 0] = 1
    w = np.zeros((4, 8, 1, 1), np.int8)
    w[:, 0] = 1
    return x, w


CONV_PARAMS = dict(x_scale=1.0, x_zero_point=0, w_scale=1.0, y_scale=4.0, y_zero_point=0,
                   padding="VALID")


def _run_discriminating(run_tflite_op):
    fc = [run_tflite_op("fully_connected", *_fc(*s), kernels="optimized") for s in FC_SHAPES]
    fc += [run_tflite_op("conv2d", [x], dict(CONV_PARAMS, w=w), kernels="optimized")
           for x, w in (_conv(1), _conv(2))]
    fc += [run_tflite_op("depthwise_conv2d", [x], _dw_params(w, st), kernels="optimized")
           for x, w, st in (_dw(3), _dw(4))]
    q, s, z = DEQ
    deq = run_tflite_op("dequantize", [q.reshape(1, -1)], dict(x_scale=s, x_zero_point=z),
                        kernels="optimized").reshape(-1)
    return fc, deq


def _npquant_discriminating(profile):
    from npquant.integer import conv2d, depthwise_conv2d

    fc = [_fc_npquant(*_fc(*s), profile) for s in FC_SHAPES]
    fc += [conv2d(x, w, None, padding="VALID", x_zero_point=0, out_zero_point=0, x_scale=1.0,
                  w_scale=1.0, out_scale=4.0, profile=profile, out_dtype=np.int8)
           for x, w in (_conv(1), _conv(2))]
    fc += [depthwise_conv2d(x, w, None, stride=st, padding="VALID", x_zero_point=0,
                            out_zero_point=0, x_scale=1.0, w_scale=1.5, out_scale=1.0,
                            profile=profile, out_dtype=np.int8)
           for x, w, st in (_dw(3), _dw(4))]
    q, s, z = DEQ
    deq = dequantize(q, QParams(s, z, signed=True), rule=get_profile(profile).dequantize)
    return fc, deq


def _same(a, b) -> bool:
    fa, da = a
    fb, db = b
    return all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True)) and \
        np.array_equal(da.view(np.uint32), db.view(np.uint32))


def test_cases_on_which_the_aarch64_build_differs_from_x86(child):
    """The same TFLite optimized FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D and DEQUANTIZE
    calls: on aarch64 they equal ``tflite-optimized-aarch64`` and not ``tflite-optimized``;
    natively on x86-64 the reverse."""
    arm_profile = _npquant_discriminating("tflite-optimized-aarch64")
    x86_profile = _npquant_discriminating("tflite-optimized")
    assert not _same(arm_profile, x86_profile)
    from npquant.interop import tflite as itfl

    with frameworks_on(child):
        on_arm = _run_discriminating(itfl.run_tflite_op)
    assert _same(on_arm, arm_profile)
    # FC and conv: the GEMV shapes round twice, ruy once; depthwise: the 3x3 kernel shifts
    # left last
    assert [int(y.max()) for y in on_arm[0]] == [1, 0, 0, 0, 1, 0, 4, 5]
    if os.uname().machine == "x86_64":
        native = _run_discriminating(itfl.run_tflite_op)
        assert _same(native, x86_profile)


# ----------------------------------------------------------------------------- QLinearAdd
GRID = np.arange(-128, 128)
ADD_A = np.repeat(GRID, 256).astype(np.int8).reshape(256, 256)  # every pair of int8 inputs
ADD_B = np.tile(GRID, 256).astype(np.int8).reshape(256, 256)
# (S_a, Z_a, S_b, Z_b, S_y, Z_y): ratios 1/2 and 3/8, on MLAS's NEON integer path (n = 22),
# where every half is a tie (away from zero there, to even on the x86 float sequence); and
# S_a / S_y = 1 - 2^-24, whose multiplier rounds up to 2^22, so that MLAS falls back to floats
# (QNNPACK's sequence, the same integers without that check, differs there)
ADD_CASES = [(1.0, 3, 0.75, -5, 2.0, 7), (float(np.float32(1 - 2**-24)), 3, 0.3, -5, 1.0, 7)]


def _add_params(case):
    sa, za, sb, zb, sy, zy = case
    return dict(a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb, y_scale=sy,
                y_zero_point=zy)


def _npquant_add(case, profile):
    from npquant.integer import add

    sa, za, sb, zb, sy, zy = case
    return add(ADD_A, ADD_B, a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb,
               out_scale=sy, out_zero_point=zy, profile=profile)


def test_qlinear_add_on_aarch64_is_mlas_neon_fixed_point(child):
    """ORT's QLinearAdd on every pair of int8 inputs: on aarch64 equal to
    ``onnxruntime-aarch64`` (the NEON integer path, and its float fallback), not to the x86
    float sequence on the first case nor to QNNPACK's integers on the second; natively on x86-64
    equal to ``onnxruntime``."""
    from npquant.integer.mlas_neon import neon_add_parameters
    from npquant.interop import onnx as ionnx

    assert neon_add_parameters(*ADD_CASES[0][0::2]) is not None
    assert neon_add_parameters(*ADD_CASES[1][0::2]) is None
    with frameworks_on(child):
        on_arm = [ionnx.run_onnx_op("qlinear_add", [ADD_A, ADD_B], _add_params(c))
                  for c in ADD_CASES]
    for c, y in zip(ADD_CASES, on_arm, strict=True):
        assert np.array_equal(y, _npquant_add(c, "onnxruntime-aarch64")), c
    assert not np.array_equal(on_arm[0], _npquant_add(ADD_CASES[0], "onnxruntime"))
    assert not np.array_equal(on_arm[1], _npquant_add(ADD_CASES[1], "pytorch-qnnpack"))
    if os.uname().machine == "x86_64":
        native = ionnx.run_onnx_op("qlinear_add", [ADD_A, ADD_B], _add_params(ADD_CASES[0]))
        assert np.array_equal(native, _npquant_add(ADD_CASES[0], "onnxruntime"))
