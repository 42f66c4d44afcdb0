"""The ``tflite-optimized-aarch64`` profile's two new rules, natively: a GEMM's rounding chosen by
its shape (``RequantRule.for_gemm``: TFLite's custom GEMV kernel vs ruy) and DEQUANTIZE as one
fused multiply-add. The profile against the real aarch64 build: tests/oracles/
test_emulated_aarch64.py."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from npquant.integer import conv2d, fully_connected
from npquant.profiles import (
    GEMV_MIN_DEPTH,
    GEMV_MIN_ROWS,
    DequantizeRule,
    RequantKind,
    get_profile,
)
from npquant.qparams import QParams, dequantize

ARM = "tflite-optimized-aarch64"


def _fc_one_step(n: int, o: int, k: int, profile: str) -> np.ndarray:
    """A fully-connected layer whose accumulators are all 1 and M = 1/4 exactly: double rounding
    gives 1 (SRDHM: 1/2 -> 1, then the shift: 1/2 -> 1, ties up) and single rounding 0 (1/4)."""
    x = np.zeros((n, k), np.int8)
    x[:, 0] = 1
    w = np.zeros((o, k), np.int8)
    w[:, 0] = 1
    return fully_connected(x, w, None, x_zero_point=0, out_zero_point=0, x_scale=1.0,
                           w_scale=1.0, out_scale=4.0, profile=profile, out_dtype=np.int8)


def test_for_gemm_picks_the_gemv_rule_on_gemv_shapes_only():
    fc = get_profile(ARM).fully_connected
    assert fc.kind is RequantKind.SINGLE_ROUNDING
    assert fc.for_gemm(1, GEMV_MIN_ROWS, GEMV_MIN_DEPTH) is fc.gemv
    assert fc.gemv.kind is RequantKind.DOUBLE_ROUNDING
    for shape in ((2, 4, 8), (1, GEMV_MIN_ROWS - 1, 8), (1, 4, GEMV_MIN_DEPTH - 1)):
        assert fc.for_gemm(*shape) is fc
    x86 = get_profile("tflite-optimized").fully_connected
    assert x86.gemv is None and x86.for_gemm(1, 4, 8) is x86


@pytest.mark.parametrize("n, o, k, want", [
    (1, 4, 8, 1),    # GEMV: double rounding
    (1, 9, 30, 1),
    (2, 4, 8, 0),    # two columns: ruy, single rounding
    (1, 3, 8, 0),    # too few rows for the GEMV kernel
    (1, 4, 7, 0),    # too shallow for it
])
def test_fully_connected_rounding_follows_the_kernel_tflite_picks(n, o, k, want):
    assert np.all(_fc_one_step(n, o, k, ARM) == want)
    assert np.all(_fc_one_step(n, o, k, "tflite-optimized") == 1)  # x86: always twice


def test_conv_gemm_columns_are_output_pixels():
    """A conv whose output is one pixel (N OH OW = 1) takes the GEMV rule; two pixels do not."""
    def run(width: int) -> np.ndarray:
        x = np.zeros((1, 8, 1, width), np.int8)
        x[:, 0] = 1
        w = np.zeros((4, 8, 1, 1), np.int8)
        w[:, 0] = 1
        return conv2d(x, w, None, x_zero_point=0, out_zero_point=0, x_scale=1.0, w_scale=1.0,
                      out_scale=4.0, profile=ARM, out_dtype=np.int8)

    assert np.all(run(1) == 1) and np.all(run(2) == 0)


def _nearest_float32(v: Fraction) -> np.float32:
    """The float32 nearest to ``v`` (ties to even), by exact comparison of the two candidates."""
    lo = np.float32(float(v))
    if Fraction(float(lo)) > v:
        lo = np.nextafter(lo, np.float32(-np.inf))
    hi = np.nextafter(lo, np.float32(np.inf))
    d_lo, d_hi = v - Fraction(float(lo)), Fraction(float(hi)) - v
    if d_lo != d_hi:
        return lo if d_lo < d_hi else hi
    return lo if int(lo.view(np.int32)) % 2 == 0 else hi


def test_fused_dequantize_is_one_rounding_of_q_s_plus_f32_of_minus_z_s():
    scale, zp = float(np.float32(0.1)), 3
    q = np.arange(-128, 128, dtype=np.int8)
    qp = QParams(scale, zp, signed=True)
    fused = dequantize(q, qp, rule=DequantizeRule(two_step=True, fused=True))
    two_step = dequantize(q, qp, rule=DequantizeRule(two_step=True))
    s = Fraction(float(np.float32(scale)))
    neg_zs = Fraction(float(np.float32(-zp) * np.float32(scale)))
    want = np.array([_nearest_float32(int(v) * s + neg_zs) for v in q], np.float32)
    assert np.array_equal(fused.view(np.uint32), want.view(np.uint32))
    assert not np.array_equal(fused, two_step)  # the values discriminate the two forms


def test_fused_needs_the_two_step_form():
    with pytest.raises(ValueError, match="fused"):
        DequantizeRule(fused=True)


def test_aarch64_profile_dequantizes_blocks_of_8_fused_and_the_tail_exactly():
    rule = get_profile(ARM).dequantize
    assert rule.fused and rule.two_step and rule.block == 8 and not rule.tail.two_step


def _depthwise_3x3(profile: str, width: int = 3, stride: int = 1) -> np.ndarray:
    """A 3x3 depthwise conv over 8 channels whose accumulators are all 3, with M = 3/2: the left
    shift first gives round(4.5) = 5 (ties up); the left shift last 2 round(3/4 3) = 4."""
    from npquant.integer import depthwise_conv2d

    x = np.ones((1, 8, 3, width), np.int8)
    w = np.zeros((8, 1, 3, 3), np.int8)
    w[:, 0, 1, 1] = 3
    return depthwise_conv2d(x, w, None, stride=stride, padding="VALID", x_zero_point=0,
                            out_zero_point=0, x_scale=1.0, w_scale=1.5, out_scale=1.0,
                            profile=profile, out_dtype=np.int8)


def test_depthwise_3x3_kernel_shapes_shift_left_after_rounding():
    assert np.all(_depthwise_3x3(ARM) == 4)
    assert np.all(_depthwise_3x3("tflite-optimized") == 5)
    rule = get_profile(ARM).depthwise_conv
    assert rule.for_depthwise(True).kind is RequantKind.DOUBLE_ROUNDING_LATE_SHIFT
    assert rule.for_depthwise(False) is rule


def test_late_shift_equals_double_rounding_below_one():
    from npquant.fixedpoint import (
        TIES_UP,
        double_rounding_multiply_scalar,
        late_shift_double_rounding_multiply_scalar,
    )

    rng = np.random.default_rng(0)
    for acc in rng.integers(-(2**20), 2**20, 200):
        for qm, sh in ((1518500250, -3), (1073741824, 0), (1932735283, 2)):
            late = late_shift_double_rounding_multiply_scalar(int(acc), qm, sh, TIES_UP)
            early = double_rounding_multiply_scalar(int(acc), qm, sh, TIES_UP)
            if sh <= 0:
                assert late == early
            else:  # the rounded product, shifted: a multiple of 2^sh within 2^sh of the other
                assert late % (1 << sh) == 0 and abs(late - early) <= 1 << sh


@pytest.mark.parametrize("args, want", [
    ((8, 1, (3, 3), (1, 1), (1, 1), (0, 0), (5, 5), (3, 3)), True),
    ((16, 1, (3, 3), (2, 2), (1, 1), (1, 1), (6, 6), (3, 3)), True),   # SAME: 1 padded column
    ((12, 1, (3, 3), (1, 1), (1, 1), (0, 0), (5, 5), (3, 3)), False),  # channels not 8k
    ((8, 2, (3, 3), (1, 1), (1, 1), (0, 0), (5, 5), (3, 3)), False),   # depth multiplier
    ((8, 1, (3, 3), (1, 2), (1, 1), (0, 0), (5, 5), (3, 2)), False),   # unequal strides
    ((8, 1, (3, 3), (1, 1), (2, 2), (0, 0), (5, 5), (1, 1)), False),   # dilation
    ((8, 1, (2, 2), (1, 1), (1, 1), (0, 0), (5, 5), (4, 4)), False),   # not 3x3
    ((8, 1, (3, 3), (1, 1), (1, 1), (1, 0), (5, 5), (5, 3)), False),   # unequal pads
    ((8, 1, (3, 3), (2, 2), (1, 1), (1, 1), (6, 6), (4, 4)), False),   # window 2 past the end
    ((8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 4), (1, 4)), False),   # 1 row, 4 columns
])
def test_tflite_fast_3x3_shape_predicate(args, want):
    from npquant.profiles import tflite_fast_3x3

    assert tflite_fast_3x3(*args) is want


def test_requant_prepared_for_the_op_rule_follows_the_shape_rule():
    """npquant.convert prepares one RequantParams per layer from the op's rule; on a GEMV shape
    the kernel re-expresses the same M in the GEMV rule's form (not a refusal)."""
    from npquant.requant import prepare_requant

    rq = prepare_requant(get_profile(ARM).fully_connected, 1.0, 1.0, 4.0)
    x = np.zeros((1, 8), np.int8)
    x[:, 0] = 1
    w = np.zeros((4, 8), np.int8)
    w[:, 0] = 1
    y = fully_connected(x, w, None, x_zero_point=0, out_zero_point=0, requant=rq, profile=ARM,
                        out_dtype=np.int8)
    assert np.all(y == 1)  # rounded twice, as the GEMV kernel does
