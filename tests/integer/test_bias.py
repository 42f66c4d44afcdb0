"""The bias as the framework holds it (npquant.integer.bias, profiles.BiasAdd): PyTorch's float
bias, brought back by qnnpack as an int32 and by fbgemm in float32 after the integer sum."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import int_arrays, zero_points

from npquant import fixedpoint as fp
from npquant import integer
from npquant.integer import reference
from npquant.integer.bias import float_bias, layer_bias
from npquant.profiles import BiasAdd, RequantKind, RequantRule, get_profile
from npquant.requant import prepare_requant, requant_params_from_multiplier

f32 = np.float32


def _nearest_float32(q: Fraction) -> float:
    """The float32 nearest to the rational ``q``, ties to even, by exact comparison."""
    guess = f32(float(q))
    cands = [guess, np.nextafter(guess, f32(np.inf)), np.nextafter(guess, f32(-np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - q),
                                     int(np.array(c, f32).view(np.int32)) & 1))
    return float(best)


# products stay inside float32's normal range (|p q| <= 2^120, the sum's rounding not subnormal)
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     min_value=-2.0**60, max_value=2.0**60).filter(
    lambda v: v == 0 or abs(v) >= 2.0**-30)


@settings(max_examples=300, deadline=None)
@given(a=finite32, p=finite32, q=finite32)
def test_float32_sum_rounds_the_exact_sum_once(a, p, q):
    """``f32(a + p q)`` (a fused multiply-add) and ``f32(a + p)`` equal the exact rational sum
    rounded once to float32, however far apart the exponents are."""
    prod = float(np.float64(p) * np.float64(q))  # exact: 24 + 24 bits
    want = _nearest_float32(Fraction(a) + Fraction(p) * Fraction(q))
    assert float(fp.float32_sum_scalar(float(a), prod)) == want
    assert float(fp.float32_sum_scalar(float(a), float(p))) == _nearest_float32(
        Fraction(a) + Fraction(p))


def test_float32_sum_breaks_a_float64_tie_by_the_lost_bits():
    """A float64 sum exactly halfway between two float32 whose exact value is not: rounding the
    float64 sum again would go to even, the exact sum goes up."""
    a, b = 1.0, 2.0**-24 + 2.0**-76  # 1 + 2^-24 is the midpoint of 1 and 1 + 2^-23
    assert np.float64(a) + b == 1.0 + 2.0**-24  # the float64 sum lost 2^-76
    assert float(fp.float32_sum_scalar(a, b)) == 1.0 + 2.0**-23
    assert float(fp.float32_sum_scalar(a, 2.0**-24)) == 1.0  # a true tie: to even


def test_float_bias_is_the_exact_product_rounded_once():
    """``B = f32(b S_b)`` for biases whose product needs more than float64's 53 bits."""
    s_b = np.array([f32(0.1234567), f32(3.0517578e-05)], f32)
    b = np.array([2**31 - 1, -(2**31) + 7], np.int64)
    want = [_nearest_float32(Fraction(int(bi)) * Fraction(float(si)))
            for bi, si in zip(b, s_b, strict=True)]
    assert float_bias(b, s_b).tolist() == want


def test_issue_case_fbgemm_linear_with_bias():
    """x = 0, w = 0, b = -144, S_b = 0.12451171875, M = 2^-5 (docs/framework_facts.md): the exact
    sum gives the tie -4.5 (124 with Z = 128, ties to even); PyTorch's fbgemm adds
    fma(B, r, 0) = -144.0000x, so 123."""
    x, w = np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int8)
    kw = dict(x_zero_point=0, out_zero_point=128, x_scale=0.0625, w_scale=1.9921875,
              out_scale=3.984375, out_dtype=np.uint8)
    b = np.array([-144], np.int32)
    assert integer.fully_connected(x, w, b, profile="pytorch-fbgemm", **kw)[0, 0] == 123
    assert reference.fully_connected(x, w, b, profile="pytorch-fbgemm", **kw).out[0, 0] == 123
    assert integer.fully_connected(x, w, b, profile="onnxruntime", **kw)[0, 0] == 124
    assert integer.fully_connected(x, w, b, profile="pytorch-qnnpack", **kw)[0, 0] == 124


def test_qnnpack_requantizes_a_large_bias():
    """qnnpack brings B back as rne(f32(B f32(1/S_b))): equal to b for small biases, not always
    near 2^24, where B has lost b's low bits."""
    rule = get_profile("pytorch-qnnpack").fully_connected
    params = prepare_requant(rule, 0.0473, 0.0031, 0.5)
    small = np.arange(-1000, 1000, dtype=np.int64)
    assert np.array_equal(layer_bias(small, params, rule)[0], small)
    big = np.arange(2**24 + 1, 2**24 + 400, 2, dtype=np.int64)  # odd: not a float32
    back, term = layer_bias(big, params, rule)
    assert term is None and not np.array_equal(back, big)
    assert np.max(np.abs(back - big)) <= 2


def test_float_bias_needs_the_bias_scale():
    """A requant built from multipliers alone has no S_b: a nonzero bias under fbgemm's rule is
    refused, a zero bias is not."""
    rule = get_profile("pytorch-fbgemm").fully_connected
    params = requant_params_from_multiplier(rule, [0.01])
    x, w = np.full((1, 4), 3, np.uint8), np.ones((2, 4), np.int8)
    with pytest.raises(ValueError, match="bias scale"):
        integer.fully_connected(x, w, np.array([5, 0], np.int32), x_zero_point=0,
                                out_zero_point=0, requant=params, profile="pytorch-fbgemm",
                                out_dtype=np.uint8)
    integer.fully_connected(x, w, np.zeros(2, np.int32), x_zero_point=0, out_zero_point=0,
                            requant=params, profile="pytorch-fbgemm", out_dtype=np.uint8)


def test_float_bias_rule_needs_float32_requantization():
    with pytest.raises(ValueError, match="float32"):
        RequantRule(RequantKind.DOUBLE_ROUNDING, get_profile("tflite").conv.derivation,
                    get_profile("tflite").conv.ties, bias=BiasAdd.FLOAT32_DIVIDE)


SCALES = (0.5, 0.02, 0.1, 1 / 64, 0.0473, 0.0031, 1.9921875)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["fc", "conv", "depthwise"]),
       profile=st.sampled_from(["pytorch-fbgemm", "pytorch-fbgemm-avx2", "pytorch-qnnpack"]))
def test_framework_bias_fast_equals_reference(data, kind, profile):
    """The kernels under the PyTorch profiles with a nonzero bias (float32 per-tensor and
    per-channel terms, the unfused epilogue) equal the reference kernels bit for bit."""
    o = data.draw(st.integers(1, 9))
    if kind == "fc":
        x_shape, w_shape = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 40))), None
        w_shape = (o, x_shape[1])
    else:
        c = data.draw(st.integers(1, 4))
        if kind == "depthwise":
            o = c * data.draw(st.integers(1, 2))
        x_shape = (1, c, data.draw(st.integers(3, 7)), data.draw(st.integers(3, 7)))
        w_shape = (o, 1 if kind == "depthwise" else c, 3, 3)
    x = data.draw(int_arrays(np.uint8, x_shape, edge_bias=0.6))
    w = data.draw(int_arrays(np.int8, w_shape, edge_bias=0.6))
    bias = data.draw(int_arrays(np.int32, (o,))).astype(np.int64) >> data.draw(
        st.integers(4, 20))
    w_scale = (data.draw(st.sampled_from(SCALES)) if data.draw(st.booleans()) else
               np.array(data.draw(st.lists(st.sampled_from(SCALES), min_size=o, max_size=o))))
    kw = dict(x_zero_point=data.draw(zero_points(np.uint8)), x_scale=data.draw(
        st.sampled_from(SCALES)), w_scale=w_scale, out_scale=data.draw(
        st.sampled_from((0.5, 2.0, 8.0, 40.0))), out_dtype=np.uint8,
        out_zero_point=data.draw(zero_points(np.uint8)), profile=profile)
    b = bias.astype(np.int32)
    if kind == "fc":
        got, want = (integer.fully_connected(x, w, b, **kw),
                     reference.fully_connected(x, w, b, **kw).out)
    elif kind == "conv":
        got, want = (integer.conv2d(x, w, b, padding=1, **kw),
                     reference.conv2d(x, w, b, padding=1, **kw).out)
    else:
        got, want = (integer.depthwise_conv2d(x, w, b, padding=1, **kw),
                     reference.depthwise_conv2d(x, w, b, padding=1, **kw).out)
    assert np.array_equal(got, want)
