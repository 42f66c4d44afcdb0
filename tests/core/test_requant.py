"""Requantization by profile rule: multiplier derivations and the epilogue against references."""

from __future__ import annotations

from fractions import Fraction

import exact_ref as ref
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npquant.fixedpoint import Ties
from npquant.profiles import PROFILES, MultiplierDerivation, RequantKind, RequantRule
from npquant.requant import RequantParams, effective_multiplier, prepare_requant, requantize

f32 = np.float32
scales = st.floats(2.0**-20, 4.0, width=32)


def test_derivations_follow_their_formulas():
    sx, sw, sy = f32(0.1), f32(0.3), f32(0.7)
    assert effective_multiplier(sx, sw, sy, "double")[0] == float(sx) * float(sw) / float(sy)
    assert effective_multiplier(sx, sw, sy, "float32_product")[0] == float(sx * sw) / float(sy)
    assert effective_multiplier(sx, sw, sy, "float32_ratio")[0] == float((sx * sw) / sy)
    assert effective_multiplier(sx, sw, sy, "float32_reciprocal")[0] == float(
        (sw * sx) * (f32(1) / sy))


@given(sx=scales, sw=scales, sy=scales)
def test_derivations_agree_to_float32_precision(sx, sw, sy):
    exact = Fraction(float(sx)) * Fraction(float(sw)) / Fraction(float(sy))
    for d in MultiplierDerivation:
        m = Fraction(float(effective_multiplier(sx, sw, sy, d)[0]))
        # <= 3 float32 roundings; oneDNN's src 2 and D 3 (npquant.requant.onednn_scales)
        roundings = 5 if d is MultiplierDerivation.ONEDNN_RECIPROCALS else 3
        assert abs(m - exact) <= exact * Fraction(roundings, 2**24), d


def test_derivations_really_differ_somewhere():
    rng = np.random.default_rng(1)
    s = rng.uniform(1e-4, 1.0, size=(3, 2000)).astype(np.float32)
    found = {d: 0 for d in MultiplierDerivation}
    for sx, sw, sy in s.T:
        base = effective_multiplier(sx, sw, sy, "double")[0]
        for d in MultiplierDerivation:
            found[d] += effective_multiplier(sx, sw, sy, d)[0] != base
    assert found[MultiplierDerivation.FLOAT32_PRODUCT] > 0
    assert found[MultiplierDerivation.FLOAT32_RATIO] > 0


def _expected(acc: int, params, c: int, zp: int) -> int:
    """``M acc`` rounded by the rule (the zero point ``zp`` is added by the caller; the oneDNN
    kind adds it before its rounding, so its value comes back with ``zp`` taken off again)."""
    rule = params.rule
    qm, sh, m = int(params.quantized_multiplier[c]), int(params.shift[c]), params.multiplier[c]
    if rule.kind is RequantKind.FLOAT32_ONEDNN:  # f32 steps: src, wei[c], D, then + zp
        src, d = (f32(v) for v in params.onednn_factors)
        v = f32(f32(f32(f32(acc) * src) * f32(m)) * d)
        return ref.round_fraction(Fraction(float(f32(v + f32(zp)))), rule.ties.value) - zp
    if rule.kind is RequantKind.DOUBLE_ROUNDING:
        return ref.double_rounding(acc, qm, sh, rule.ties.value)
    if rule.kind is RequantKind.SINGLE_ROUNDING:
        return ref.single_rounding(acc, qm, sh)
    if rule.kind is RequantKind.FLOAT32:
        return ref.round_fraction(Fraction(float(f32(acc) * f32(m))), rule.ties.value)
    if rule.kind is RequantKind.FLOAT64:
        return ref.round_fraction(Fraction(float(acc) * float(m)), rule.ties.value)
    return ref.rounding_shift_right(acc, -sh, rule.ties.value)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("op", ["conv", "fully_connected"])
@given(data=st.data())
def test_requantize_matches_reference(profile, op, data):
    rule = getattr(PROFILES[profile], op)
    channels = data.draw(st.integers(1, 4))
    if rule.kind is RequantKind.POWER_OF_TWO:
        sx = f32(2.0 ** -data.draw(st.integers(0, 8)))
        sw = np.array([2.0 ** -data.draw(st.integers(0, 8)) for _ in range(channels)], f32)
        sy = f32(2.0 ** data.draw(st.integers(-4, 4)))
    else:
        sx = f32(data.draw(scales))
        sw = np.array(data.draw(st.lists(scales, min_size=channels, max_size=channels)), f32)
        sy = f32(data.draw(scales))
    params = prepare_requant(rule, sx, sw, sy)
    if rule.kind is RequantKind.DOUBLE_ROUNDING and np.any(params.shift > 0):
        limit = 2 ** (31 - int(params.shift.max()))
        acc_strategy = st.integers(-limit, limit - 1)
    else:
        acc_strategy = st.integers(ref.INT32_MIN, ref.INT32_MAX)
    acc = np.array(data.draw(st.lists(acc_strategy, min_size=channels * 3,
                                      max_size=channels * 3)), np.int32).reshape(3, channels)
    zp = data.draw(st.integers(-128, 127))
    got = requantize(acc, params, channel_axis=1, zero_point=zp, qmin=-128, qmax=127)
    expected = [[min(max(zp + _expected(int(acc[i, c]), params, c, zp), -128), 127)
                 for c in range(channels)] for i in range(3)]
    assert np.array_equal(got, expected)


def test_activation_clamp_is_an_integer_clamp():
    rule = RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.AWAY)
    params = prepare_requant(rule, 0.5, 0.5, 0.25)  # M = 1
    acc = np.array([-300, -10, 0, 10, 300], np.int32)
    relu = requantize(acc, params, channel_axis=None, zero_point=-5, qmin=-5, qmax=127)
    assert relu.tolist() == [-5, -5, -5, 5, 127]


def test_double_rounding_large_multiplier_domain_error():
    rule = PROFILES["tflite"].conv
    params = prepare_requant(rule, 4.0, 4.0, 1.0)  # M = 16: shift 5
    with pytest.raises(ValueError, match="leaves int32"):
        requantize(np.array([2**27], np.int32), params, channel_axis=None, zero_point=0,
                   qmin=-128, qmax=127)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: effective_multiplier(0.0, 1.0, 1.0, "double"), ValueError, "input_scale"),
    (lambda: effective_multiplier(1.0, [1.0, -1.0], 1.0, "double"), ValueError, "weight_scale"),
    (lambda: effective_multiplier(1.0, 1.0, float("nan"), "double"), ValueError, "output_scale"),
    (lambda: effective_multiplier(1.0, 1.0, 1.0, "triple"), ValueError, "triple"),
    (lambda: prepare_requant(PROFILES["pow2"].conv, 0.3, 1.0, 1.0), ValueError, "power of two"),
    (lambda: requantize(np.zeros(2, np.int64), prepare_requant(PROFILES["tflite"].conv, 1, 1, 1),
                        channel_axis=None, zero_point=0, qmin=-128, qmax=127), TypeError, "int32"),
    (lambda: requantize(np.zeros((2, 3), np.int32),
                        prepare_requant(PROFILES["tflite"].conv, 1, [1, 1], 1),
                        channel_axis=1, zero_point=0, qmin=-128, qmax=127), ValueError,
     "3 channels"),
], ids=["input scale 0", "negative weight scale", "nan output scale", "bad derivation",
        "pow2 not a power of two", "int64 accumulators", "channel mismatch"])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_channel_group_rule_rounds_the_tail_differently():
    # M = 1/4 on every channel; acc = -2 gives -0.5 after SRDHM -1 and a final shift by 1:
    # ties up -> 0 on the 8 grouped channels, ties away -> -1 on the 2 tail channels
    rule = RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.UP,
                       channel_group=8, tail_ties=Ties.AWAY)
    params = prepare_requant(rule, 0.5, np.full(10, 0.5, np.float32), 1.0)
    acc = np.full((1, 10), -2, np.int32)
    got = requantize(acc, params, channel_axis=1, zero_point=0, qmin=-128, qmax=127)
    assert got.tolist() == [[0] * 8 + [-1] * 2]
    assert "groups of 8 channels, away on the rest" in rule.describe()
    with pytest.raises(ValueError, match="go together"):
        RequantRule(RequantKind.DOUBLE_ROUNDING, MultiplierDerivation.DOUBLE, Ties.UP,
                    channel_group=8)


def _hand_built(kind, qm, shift, multiplier=0.5):
    rule = RequantRule(RequantKind(kind), MultiplierDerivation.DOUBLE, Ties.AWAY)
    return RequantParams(rule, np.array([multiplier]), np.array([qm], np.int32),
                         np.array([shift], np.int32))


@pytest.mark.parametrize("kind, qm, shift, match", [
    ("single_rounding", 1 << 30, 31, "shift must be in -31..30"),
    ("single_rounding", 1 << 30, -40, "shift must be in -31..30"),
    ("double_rounding", 1 << 30, 32, "shift must be in -31..31"),
    ("power_of_two", 0, -70, "shift must be in -62..31"),
    ("double_rounding", -5, 0, "quantized_multiplier must be in"),
], ids=["sr-shift31-flips-sign", "sr-shift-40", "dr-shift32", "pow2-shift-70", "negative-M0"])
def test_hand_built_requant_params_out_of_range_are_refused(kind, qm, shift, match):
    """Before this check, single rounding with shift 31 turned accumulators [1000, -1000] into
    [-128, 127] and a pow2 shift of -70 gave 16: values no kernel contract allows."""
    with pytest.raises(ValueError, match=match):
        _hand_built(kind, qm, shift)


def test_hand_built_requant_params_shapes_and_multiplier():
    rule = RequantRule(RequantKind.FLOAT32, MultiplierDerivation.DOUBLE, Ties.EVEN)
    with pytest.raises(ValueError, match="1-D of one length"):
        RequantParams(rule, np.array([0.5, 0.25]), np.zeros(1, np.int32), np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="finite and > 0"):
        RequantParams(rule, np.array([np.nan]), np.zeros(1, np.int32), np.zeros(1, np.int32))
    ok = _hand_built("single_rounding", 1 << 30, 30)
    assert int(ok.shift[0]) == 30
