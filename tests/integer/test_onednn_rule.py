"""oneDNN's requantization (profile ``pytorch-x86``: ``RequantKind.FLOAT32_ONEDNN``,
``MultiplierDerivation.ONEDNN_RECIPROCALS``, ``BiasAdd.FLOAT32_AFTER_SCALE``) against a plain
reference in exact rational arithmetic: every float32 / float64 step written as the exact value
rounded once to the nearest float of that width, ties to even."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npquant.integer import conv2d, depthwise_conv2d
from npquant.integer import reference as ref
from npquant.integer.bias import float_bias
from npquant.profiles import (
    BiasAdd,
    MultiplierDerivation,
    RequantKind,
    RequantRule,
    get_profile,
)
from npquant.requant import onednn_output, onednn_scales, prepare_requant

RULE = get_profile("pytorch-x86").conv


def round_float(q: Fraction, bits: int) -> Fraction:
    """``q`` rounded to the nearest float with a ``bits``-bit significand (24: float32, 53:
    float64), ties to even, normal range only (the tests stay there)."""
    if q == 0:
        return Fraction(0)
    sign, a = (-1 if q < 0 else 1), abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2^e <= a < 2^(e+2)
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    unit = Fraction(2) ** (e - bits + 1)  # the spacing of floats in [2^e, 2^(e+1))
    m, r = divmod(a / unit, 1)
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and m % 2 == 1):
        m += 1
    return sign * m * unit


def f32(q: Fraction) -> Fraction:
    return round_float(q, 24)


def f64(q: Fraction) -> Fraction:
    return round_float(q, 53)


def rne(q: Fraction) -> int:
    """Nearest integer, ties to even."""
    f = q.numerator // q.denominator
    r = q - f
    return f + (1 if r > Fraction(1, 2) or (r == Fraction(1, 2) and f % 2 == 1) else 0)


def scales_reference(s_x: float, s_y: float) -> tuple[Fraction, Fraction]:
    """``(src, D)``. PyTorch: float(1.0 / s_x) (a double quotient stored as float); ideep: 1.0f /
    that; oneDNN: 1.f / its dst scale, which ideep set to 1.0f / float(1.0 / s_y)."""
    one = Fraction(1)
    src = f32(one / f32(f64(one / Fraction(s_x))))
    d = f32(one / f32(one / f32(f64(one / Fraction(s_y)))))
    return src, d


def output_reference(acc: int, src: Fraction, wei: Fraction, b: Fraction, d: Fraction,
                     z: int) -> int:
    """``rne(f32(f32(f32(f32(f32(f32(acc) src) wei) + B) D) + Z))``."""
    v = f32(f32(f32(Fraction(acc)) * src) * wei)
    v = f32(v + b)
    v = f32(v * d)
    return rne(f32(v + z))


float32_scales = st.floats(2.0**-20, 2.0**4, width=32)


@settings(max_examples=300, deadline=None)
@given(s_x=float32_scales, s_w=float32_scales, s_y=float32_scales)
def test_scales_follow_the_reciprocal_chain(s_x, s_w, s_y):
    src, wei, d = onednn_scales(s_x, s_w, s_y)
    want_src, want_d = scales_reference(s_x, s_y)
    assert (Fraction(float(src)), Fraction(float(d))) == (want_src, want_d), (s_x, s_y)
    assert float(wei[0]) == s_w


def test_a_reciprocal_of_a_reciprocal_can_move_the_scale():
    """The chain is not the identity in float32: s_x = f32(0.93513733) comes back one unit in the
    last place away (and about one scale in six of a seeded draw), so the rule must spell it
    out; the dst chain D = f32(1/f32(1/a)), a = f32(1/s_y), returned a on every draw here."""
    s_x = float(np.float32(0.93513733))
    src = float(onednn_scales(s_x, 1.0, 1.0)[0])
    assert abs(src - s_x) == float(np.spacing(np.float32(s_x)))
    v = np.random.default_rng(0).uniform(2.0**-10, 1.0, 2000).astype(np.float32)
    moved = sum(float(onednn_scales(float(x), 1.0, 1.0)[0]) != float(x) for x in v)
    assert 200 < moved < 600, moved


@settings(max_examples=500, deadline=None)
@given(acc=st.integers(-(2**31), 2**31 - 1) | st.integers(-3000, 3000),
       s_x=float32_scales, s_w=float32_scales, s_y=float32_scales,
       b=st.floats(-2.0**20, 2.0**20, width=32), z=st.integers(0, 255))
def test_output_is_one_float32_step_at_a_time(acc, s_x, s_w, s_y, b, z):
    src, wei, d = onednn_scales(s_x, s_w, s_y)
    got = onednn_output(acc, float(src), float(wei[0]), b, float(d), z, RULE.ties.code)
    want = output_reference(acc, Fraction(float(src)), Fraction(s_w), Fraction(b),
                            Fraction(float(d)), z)
    assert got == want, (acc, s_x, s_w, s_y, b, z)


def test_zero_point_enters_before_the_rounding():
    """acc src wei D = 2.5 exactly: rne(2.5) + 1 = 3, but rne(2.5 + 1) = 4 (Z comes first)."""
    assert onednn_output(5, 0.5, 1.0, 0.0, 1.0, 1, RULE.ties.code) == 4.0
    assert onednn_output(5, 0.5, 1.0, 0.0, 1.0, 0, RULE.ties.code) == 2.0


def test_scales_multiply_one_at_a_time():
    """The near-tie case measured on the x86 engine (docs/framework_facts.md): 7045 src wei D is
    128.5000136 exactly; f32(src wei) first gives 128.50002 -> 129, the two multiplies one at
    a time give 128.5 -> 128, which PyTorch's x86 engine returned."""
    src, wei, d = onednn_scales(1.9424973726272583, 0.375, 39.936458587646484)
    assert onednn_output(7045, float(src), float(wei[0]), 0.0, float(d), 0, RULE.ties.code) == 128
    combined = np.float32(src * wei[0])
    assert np.rint(np.float32(np.float32(np.float32(7045) * combined) * d)) == 129


def test_rule_parts_go_together():
    with pytest.raises(ValueError, match="float32_onednn"):
        RequantRule(RequantKind.FLOAT32, MultiplierDerivation.ONEDNN_RECIPROCALS, RULE.ties)
    with pytest.raises(ValueError, match="float32_onednn"):
        RequantRule(RequantKind.FLOAT32_ONEDNN, MultiplierDerivation.FLOAT32_RATIO, RULE.ties)
    with pytest.raises(ValueError, match="float32_after_scale"):
        RequantRule(RequantKind.FLOAT32, MultiplierDerivation.FLOAT32_RATIO, RULE.ties,
                    bias=BiasAdd.FLOAT32_AFTER_SCALE)


@st.composite
def onednn_convs(draw):
    """A small conv or depthwise conv with uint8 input, a float bias on half, per-tensor or
    per-channel scales of many octaves."""
    depthwise = draw(st.booleans())
    c = draw(st.integers(1, 4))
    groups = c if depthwise else draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
    o = c * draw(st.integers(1, 3)) if depthwise else groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # at least 5 rows and columns: a 3-tap window dilated by 2 spans 5
    x = rng.integers(0, 256, (draw(st.integers(1, 2)), c, draw(st.integers(5, 7)),
                              draw(st.integers(5, 7)))).astype(np.uint8)
    w = rng.integers(-127, 128, (o, 1 if depthwise else c // groups, kh, kw)).astype(np.int8)
    per_channel = draw(st.booleans())
    s_w = (rng.uniform(2.0**-12, 2.0**-6, o) if per_channel
           else np.array([rng.uniform(2.0**-12, 2.0**-6)])).astype(np.float32)
    bias = rng.integers(-(2**16), 2**16, o).astype(np.int32) if draw(st.booleans()) else None
    kw_args = dict(x_zero_point=int(rng.integers(0, 256)),
                   out_zero_point=int(rng.integers(0, 256)),
                   x_scale=float(np.float32(rng.uniform(2.0**-8, 2.0**-2))),
                   w_scale=s_w.astype(np.float64) if per_channel else float(s_w[0]),
                   out_scale=float(np.float32(rng.uniform(2.0**-4, 2.0**2))),
                   profile="pytorch-x86", out_dtype=np.uint8,
                   padding=(draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))),
                   stride=draw(st.integers(1, 2)), dilation=draw(st.integers(1, 2)))
    if not depthwise:
        kw_args["groups"] = groups
    return depthwise, x, w, bias, kw_args


@settings(max_examples=60, deadline=None)
@given(onednn_convs())
def test_kernels_equal_the_reference_and_the_rational_rule(case):
    """The fast conv / depthwise under pytorch-x86 equals ``reference`` (np.array_equal), and
    both equal the rule evaluated on the exact sums in rational arithmetic."""
    depthwise, x, w, bias, kw = case
    fast, slow = (depthwise_conv2d, ref.depthwise_conv2d) if depthwise else (conv2d, ref.conv2d)
    got = fast(x, w, bias, return_accumulators=True, **kw)
    want = slow(x, w, bias, **kw)
    assert np.array_equal(got.out, want.out) and np.array_equal(got.acc, want.acc)
    o = w.shape[0]
    s_w = np.broadcast_to(np.atleast_1d(kw["w_scale"]), (o,))
    params = prepare_requant(RULE, kw["x_scale"], kw["w_scale"], kw["out_scale"])
    b_float = (float_bias(bias, params.bias_scale) if bias is not None
               else np.zeros(o, np.float32))
    b_int = bias if bias is not None else np.zeros(o, np.int32)
    src, d = scales_reference(kw["x_scale"], kw["out_scale"])
    for idx in np.ndindex(got.out.shape):
        c = idx[1]
        total = int(got.acc[idx]) - int(b_int[c])  # the sum without the bias, as oneDNN has it
        y = output_reference(total, src, Fraction(float(np.float32(s_w[c]))),
                             Fraction(float(b_float[c])), d, kw["out_zero_point"])
        assert int(got.out[idx]) == min(max(y, 0), 255), idx
