"""Accumulator policies (raise / wrap / saturate, N bits, int64, vpmaddubsw pairs), the int32
limits, output clamps and argument validation of the integer kernels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from int_ref import conv_ref, fc_ref, pair_acc_ref, requant_ref, sequential_acc

from npquant.fixedpoint import Ties
from npquant.integer import AccumulatorOverflowError, conv2d, fully_connected
from npquant.integer import accumulator as accm
from npquant.profiles import AccumulatorRule, Overflow, RequantKind, RequantRule, get_profile
from npquant.profiles import MultiplierDerivation as MD
from npquant.requant import requant_params_from_multiplier

I32_MAX, I32_MIN = 2**31 - 1, -(2**31)
DR = RequantRule(RequantKind.DOUBLE_ROUNDING, MD.DOUBLE, Ties.AWAY)
F32 = RequantRule(RequantKind.FLOAT32, MD.FLOAT32_RATIO, Ties.EVEN)


def _profile(rule):
    """The tflite profile with every GEMM-like op requantizing by ``rule`` (the tests below choose
    the rounding; kernels refuse RequantParams of another rule than the profile's)."""
    return dataclasses.replace(get_profile("tflite"), name=f"tflite-{rule.kind.value}", conv=rule,
                               depthwise_conv=rule, fully_connected=rule)


def _fc(x, w, bias, rule, *, zx=0, zw=0, m=2.0**-8, kind=DR, zo=0, act=None, out_scale=None):
    return fully_connected(x, w, bias, x_zero_point=zx, w_zero_point=zw, out_zero_point=zo,
                           requant=requant_params_from_multiplier(kind, [m]), accumulator=rule,
                           activation=act, out_scale=out_scale, layer="fc7",
                           return_accumulators=True, profile=_profile(kind))


def test_raise_names_layer_index_step_and_partial_sum():
    """bias = INT32_MAX - 100 at output 1; the first product 127 * 127 = 16129 overflows."""
    x = np.array([[0, 0], [127, 1]], dtype=np.int8)
    w = np.array([[1, 1], [127, 1], [0, 0]], dtype=np.int8)
    bias = np.array([0, I32_MAX - 100, 0], dtype=np.int32)
    with pytest.raises(AccumulatorOverflowError) as err:
        _fc(x, w, bias, AccumulatorRule(32, Overflow.RAISE))
    e = err.value
    assert (e.layer, e.index, e.step, e.partial_sum, e.bits) == \
        ("fc7", (1, 1), 0, I32_MAX - 100 + 16129, 32)
    assert "fc7" in str(e) and "(1, 1)" in str(e)


def test_raise_on_partial_sum_even_if_final_fits_and_int64_accepts_it():
    """+16129 then -16129 from INT32_MAX - 100: the exact final value fits, a partial sum does not.
    int32/raise refuses; int32/wrap and int64 give the exact value; saturate is order-dependent."""
    x = np.array([[127, 127]], dtype=np.int8)
    w = np.array([[127, -127]], dtype=np.int8)
    bias = np.array([I32_MAX - 100], dtype=np.int32)
    with pytest.raises(AccumulatorOverflowError):
        _fc(x, w, bias, AccumulatorRule(32, Overflow.RAISE))
    for rule in (AccumulatorRule(32, Overflow.WRAP), AccumulatorRule(64, Overflow.RAISE)):
        r = _fc(x, w, bias, rule)
        assert int(r.acc[0, 0]) == I32_MAX - 100, rule
    r = _fc(x, w, bias, AccumulatorRule(32, Overflow.SATURATE))
    assert int(r.acc[0, 0]) == I32_MAX - 16129  # clamped to INT32_MAX, then -16129


def test_wrap_two_complement_and_saturate_limits():
    """K = 2^17 products (-128)(-128) = 2^14: the exact sum 2^31 wraps to INT32_MIN, saturates
    to INT32_MAX, raises at step 2^17 - 1; int64 keeps 2^31 (requantization then refuses it)."""
    k = 2**17
    x = np.full((1, k), -128, np.int8)
    w = np.full((1, k), -128, np.int8)
    assert int(_fc(x, w, None, AccumulatorRule(32, Overflow.WRAP)).acc[0, 0]) == I32_MIN
    r = _fc(x, w, None, AccumulatorRule(32, Overflow.SATURATE))
    assert int(r.acc[0, 0]) == I32_MAX and int(r.out[0, 0]) == 127  # 2^31 / 2^8 saturates int8
    with pytest.raises(AccumulatorOverflowError) as err:
        _fc(x, w, None, AccumulatorRule(32, Overflow.RAISE))
    assert err.value.step == k - 1 and err.value.partial_sum == 2**31
    with pytest.raises(ValueError, match="outside int32"):
        _fc(x, w, None, AccumulatorRule(64, Overflow.RAISE))


@st.composite
def narrow_cases(draw):
    bits = draw(st.integers(16, 24))
    k = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, (3, k)).astype(np.int8)
    w = rng.integers(-128, 128, (4, k)).astype(np.int8)
    lim = 1 << (bits - 1)
    bias = rng.integers(-lim, lim, 4).astype(np.int32)
    zx, zw = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    return bits, x, w, bias, zx, zw, draw(st.sampled_from(list(Overflow)))


@settings(max_examples=120)
@given(narrow_cases())
def test_narrow_accumulators_follow_sequential_model(case):
    """N-bit accumulators (16..24 bits) against a Python model summing term by term."""
    bits, x, w, bias, zx, zw, ov = case
    rule = AccumulatorRule(bits, ov)
    expected = np.zeros((3, 4), dtype=np.int64)
    raises = False
    for m, n in np.ndindex(3, 4):
        terms = [(int(x[m, k]) - zx) * (int(w[n, k]) - zw) for k in range(x.shape[1])]
        v = sequential_acc(terms, int(bias[n]), bits, ov.value)
        raises |= v is None
        expected[m, n] = 0 if v is None else v
    if raises:
        with pytest.raises(AccumulatorOverflowError):
            _fc(x, w, bias, rule, zx=zx, zw=zw, kind=F32)
        return
    r = _fc(x, w, bias, rule, zx=zx, zw=zw, kind=F32)
    assert np.array_equal(r.acc, expected), (bits, ov)


def test_pair_saturation_vpmaddubsw():
    """255 * 127 + 255 * 127 = 64770 saturates to 32767; an odd K pairs the last product with 0."""
    x = np.array([[255, 255, 255]], dtype=np.uint8)
    w = np.array([[127, 127, 127]], dtype=np.int8)
    rule = AccumulatorRule(32, Overflow.RAISE, pair_saturation=True)
    r = _fc(x, w, None, rule)
    assert int(r.acc[0, 0]) == 32767 + 255 * 127
    exact = _fc(x, w, None, AccumulatorRule(32, Overflow.RAISE))
    assert int(exact.acc[0, 0]) == 3 * 255 * 127


@settings(max_examples=80)
@given(st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(-128, 127),
       st.integers(1, 33))
def test_pair_saturation_matches_model(seed, zx, zw, k):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (3, k)).astype(np.uint8)
    w = rng.integers(-128, 128, (2, k)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, 2).astype(np.int32)
    r = _fc(x, w, bias, AccumulatorRule(32, Overflow.RAISE, pair_saturation=True), zx=zx, zw=zw,
            kind=F32)
    for m, n in np.ndindex(3, 2):
        assert int(r.acc[m, n]) == pair_acc_ref(x[m], w[n], zx, zw, int(bias[n])), (m, n)


def test_bound_selects_fast_path_and_emulation():
    rule = AccumulatorRule(32, Overflow.RAISE)
    assert accm.plan_accumulation(rule, 2**31 - 1, False) == accm.Plan(accm.PLAN_EXACT, True)
    assert accm.plan_accumulation(rule, 2**31, False).kind == accm.PLAN_EMULATE
    wrap = AccumulatorRule(32, Overflow.WRAP)
    assert accm.plan_accumulation(wrap, 2**31, False).kind == accm.PLAN_WRAP
    wide = AccumulatorRule(48, Overflow.RAISE)
    assert accm.plan_accumulation(wide, 2**40, False) == accm.Plan(accm.PLAN_EXACT, False)
    pairs = AccumulatorRule(32, Overflow.RAISE, pair_saturation=True)
    assert accm.plan_accumulation(pairs, 10, True).kind == accm.PLAN_EMULATE
    a = np.array([[127, -128]]), np.array([[-128, 127]])
    # K max|a - Za| max|w - Zw| + max|bias| = 2 * 255 * 255 + 7
    assert accm.operand_bound(a[0], 127, a[1], np.array([127]), 2, np.array([-7])) == \
        2 * 255 * 255 + 7


def test_conv_overflow_index_in_nchw():
    """One hot pixel x[0, 0, 1, 2] = 127 under w = 127 and bias[1] near INT32_MAX."""
    x = np.zeros((2, 3, 4, 5), dtype=np.int8)
    x[0, 0, 1, 2] = 127
    w = np.full((2, 3, 1, 1), 127, dtype=np.int8)
    bias = np.array([0, I32_MAX - 16128], dtype=np.int32)
    with pytest.raises(AccumulatorOverflowError) as err:
        conv2d(x, w, bias, x_zero_point=0, out_zero_point=0,
               requant=requant_params_from_multiplier(DR, [2.0**-20]), layer="conv3",
               profile=_profile(DR))
    assert err.value.index == (0, 1, 1, 2) and err.value.step == 0 and err.value.layer == "conv3"


def test_int32_limits_and_output_clamps():
    """Accumulators at INT32_MIN / INT32_MAX exactly, M just below 1, saturation of the output
    type and the ReLU / ReLU6 clamps."""
    x = np.array([[1], [-1], [0]], dtype=np.int8)
    w = np.array([[1]], dtype=np.int8)
    bias_max = np.array([I32_MAX - 1], dtype=np.int32)
    m = 1.0 - 2.0**-30
    params = requant_params_from_multiplier(DR, [m])
    r = fully_connected(x, w, bias_max, x_zero_point=0, out_zero_point=0, requant=params,
                        out_dtype=np.int16, return_accumulators=True, profile=_profile(DR))
    assert r.acc[:, 0].tolist() == [I32_MAX, I32_MAX - 2, I32_MAX - 1]
    assert r.out[:, 0].tolist() == [32767] * 3
    assert np.array_equal(r.out, requant_ref(r.acc, params, 1, 0, -32768, 32767))
    bias_min = np.array([I32_MIN + 1], dtype=np.int32)
    r = fully_connected(x, w, bias_min, x_zero_point=0, out_zero_point=0, requant=params,
                        return_accumulators=True, profile=_profile(DR))
    assert r.acc[1, 0] == I32_MIN and r.out[:, 0].tolist() == [-128] * 3
    # clamps: acc = 4 * q with M = 1/4 gives q; ReLU clamps at Z_out, ReLU6 at Z + 6/S
    xs = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    w4 = np.array([[4]], dtype=np.int8)
    p4 = requant_params_from_multiplier(DR, [0.25])
    for act, lo, hi in [(None, -128, 127), ("relu", -20, 127), ("relu6", -20, 100)]:
        out = fully_connected(xs, w4, None, x_zero_point=0, out_zero_point=-20, requant=p4,
                              activation=act, out_scale=0.05, profile=_profile(DR))
        assert np.array_equal(out[:, 0], np.clip(np.arange(-128, 128) - 20, lo, hi)), act


def test_int64_accumulator_returns_int64():
    x = np.full((2, 8), -128, np.int8)
    w = np.full((3, 8), 127, np.int8)
    r = _fc(x, w, None, AccumulatorRule(64, Overflow.RAISE))
    assert r.acc.dtype == np.int64 and np.array_equal(r.acc, fc_ref(x, w, None, 0, 0))


def _ok_fc(**kw):
    base = dict(x=np.zeros((2, 3), np.int8), w=np.zeros((4, 3), np.int8), bias=None,
                x_zero_point=0, out_zero_point=0, x_scale=0.1, w_scale=0.1, out_scale=0.1,
                profile="tflite")
    base.update(kw)
    x, w, b = base.pop("x"), base.pop("w"), base.pop("bias")
    return lambda: fully_connected(x, w, b, **base)


def _ok_conv(**kw):
    base = dict(x=np.zeros((1, 4, 5, 5), np.int8), w=np.zeros((6, 2, 3, 3), np.int8),
                x_zero_point=0, out_zero_point=0, x_scale=0.1, w_scale=0.1, out_scale=0.1,
                groups=2, profile="tflite")
    base.update(kw)
    x, w = base.pop("x"), base.pop("w")
    return lambda: conv2d(x, w, None, **base)


BAD_CALLS = [
    ("x float", _ok_fc(x=np.zeros((2, 3))), TypeError, "x must have dtype"),
    ("w int16", _ok_fc(w=np.zeros((4, 3), np.int16)), TypeError, "w must have dtype"),
    ("K mismatch", _ok_fc(w=np.zeros((4, 5), np.int8)), ValueError, r"x \(2, 3\), w \(4, 5\)"),
    ("bias dtype", _ok_fc(bias=np.zeros(4, np.int64)), TypeError, "bias"),
    ("bias shape", _ok_fc(bias=np.zeros(3, np.int32)), ValueError, r"bias must have shape \(4,\)"),
    ("x zp range", _ok_fc(x_zero_point=128), ValueError, "x_zero_point=128"),
    ("w zp range", _ok_fc(w=np.zeros((4, 3), np.uint8), w_zero_point=-1), ValueError,
     "w_zero_point=-1"),
    ("out zp range", _ok_fc(out_dtype=np.uint8, out_zero_point=-1), ValueError,
     "out_zero_point=-1"),
    ("scale 0", _ok_fc(x_scale=0.0), ValueError, "x_scale"),
    ("scale nan", _ok_fc(out_scale=float("nan")), ValueError, "out_scale"),
    ("w_scale shape", _ok_fc(w_scale=np.ones(3)), ValueError, "w_scale"),
    ("no scales", _ok_fc(out_scale=None), ValueError, "requant="),
    ("out dtype", _ok_fc(out_dtype=np.int32), ValueError, "out_dtype"),
    ("activation", _ok_fc(activation="gelu"), ValueError, "activation"),
    ("profile", _ok_fc(profile="nope"), ValueError, "unknown profile"),
    ("requant of another profile",
     _ok_fc(profile="onnxruntime", requant=requant_params_from_multiplier(DR, [0.5])),
     ValueError, "requant was prepared for rule 'double_rounding.*onnxruntime fully_connected"),
    ("requant of another conv rule",
     _ok_conv(requant=requant_params_from_multiplier(F32, [0.5])),
     ValueError, "tflite conv requantizes by 'double_rounding"),
    ("acc bits", _ok_fc(accumulator=AccumulatorRule(8, Overflow.RAISE)), ValueError,
     "accumulator.bits"),
    ("groups", _ok_conv(groups=3), ValueError, r"groups=3.*x \(1, 4, 5, 5\)"),
    ("conv rank", _ok_conv(x=np.zeros((4, 5, 5), np.int8)), ValueError, "x must be 4-D"),
    ("stride 0", _ok_conv(stride=0), ValueError, "stride"),
    ("padding str", _ok_conv(padding="FULL"), ValueError, "padding"),
    ("padding neg", _ok_conv(padding=-1), ValueError, "padding"),
    ("empty out", _ok_conv(w=np.zeros((6, 2, 7, 7), np.int8)), ValueError, "empty output"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_conv_accumulators_int32_reference():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 3, 7, 6)).astype(np.uint8)
    w = rng.integers(-128, 128, (3, 1, 3, 2)).astype(np.int8)
    r = conv2d(x, w, None, x_zero_point=200, out_zero_point=0, groups=3, padding=(1, 0, 2, 1),
               stride=(2, 1), dilation=(1, 2), requant=requant_params_from_multiplier(F32, [0.01]),
               return_accumulators=True, profile=_profile(F32))
    assert np.array_equal(r.acc, conv_ref(x, w, None, 200, 0, (2, 1), (1, 0, 2, 1), (1, 2), 3))


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from(["chw", "hwc"]))
def test_conv_pair_saturation_follows_its_reduction_order(seed, c_in, order):
    """A conv under pair saturation equals the Python-int pair model on the patch flattened in
    the rule's order: ``(ci, kh, kw)`` (NCHW im2col) or ``(kh, kw, ci)`` (NHWC; with an odd
    channel count a pair spans two taps), the input padded with its zero point."""
    rng = np.random.default_rng(seed)
    zx = int(rng.integers(0, 256))
    x = rng.integers(0, 256, (1, c_in, 5, 4)).astype(np.uint8)
    w = rng.integers(-127, 128, (3, c_in, 2, 3)).astype(np.int8)
    rule = AccumulatorRule(32, Overflow.RAISE, pair_saturation=True, conv_order=order)
    r = conv2d(x, w, None, x_zero_point=zx, out_zero_point=0, x_scale=0.01, w_scale=0.01,
               out_scale=1.0, padding=(1, 0, 1, 1), out_dtype=np.uint8, accumulator=rule,
               profile="onnxruntime", return_accumulators=True)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 0), (1, 1)), constant_values=zx)
    perm = (0, 1, 2) if order == "chw" else (1, 2, 0)
    for o, i, j in np.ndindex(3, r.acc.shape[2], r.acc.shape[3]):
        patch = xp[0, :, i:i + 2, j:j + 3].transpose(perm).ravel()
        want = pair_acc_ref(patch, w[o].transpose(perm).ravel(), zx, 0, 0)
        assert int(r.acc[0, o, i, j]) == want, (order, o, i, j)


def test_conv_order_must_be_known():
    with pytest.raises(ValueError, match="conv_order must be 'chw' or 'hwc'"):
        AccumulatorRule(32, Overflow.RAISE, pair_saturation=True, conv_order="nhwc")
