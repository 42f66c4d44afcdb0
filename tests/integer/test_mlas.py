"""npquant.integer.mlas (ONNX Runtime's QLinearAdd float sequence) against an exact reference:
every float32 operation written in Python Fractions and rounded to float32 by exact comparison,
so no step of the reference relies on the float64 shortcuts the module takes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npquant import integer
from npquant.integer import reference
from npquant.integer.mlas import fma_f32, mlas_add, round_f32

F32 = np.float32


def _ref_round_f32(v: Fraction) -> Fraction:
    """Nearest float32 by brute force over the float32 around float(v), ties to even bits."""
    y = np.float32(float(v))
    cands = [y]
    for _ in range(2):
        cands = sorted({c2 for c in cands for c2 in (np.nextafter(c, F32(-np.inf)), c,
                                                     np.nextafter(c, F32(np.inf)))})
    best = min(abs(Fraction(float(c)) - v) for c in cands)
    near = [c for c in cands if abs(Fraction(float(c)) - v) == best]
    near.sort(key=lambda c: int(np.array(c).view(np.uint32)) % 2)
    return Fraction(float(near[0]))


def _ref_add(qa: int, qb: int, sa, sb, sc, za, zb, zc, lo, hi, scalar_a: bool = False) -> int:
    """One output element; ``scalar_a``: ``a`` is a single element (ORT's IsScalarA path:
    ``F' = f32(F + f32(q_a r_a))``, then ``u = fma(q_b, r_b, F')``)."""
    fr = Fraction
    ra = _ref_round_f32(fr(float(F32(sa))) / fr(float(F32(sc))))
    rb = _ref_round_f32(fr(float(F32(sb))) / fr(float(F32(sc))))
    fixed = _ref_round_f32(zc - _ref_round_f32(ra * za + _ref_round_f32(rb * zb)))
    if scalar_a:
        u = _ref_round_f32(qb * rb + _ref_round_f32(fixed + _ref_round_f32(qa * ra)))
    else:
        u = _ref_round_f32(qa * ra + _ref_round_f32(qb * rb + fixed))
    fl = u.numerator // u.denominator
    rem = u - fl
    r = fl + 1 if rem > fr(1, 2) or (rem == fr(1, 2) and fl % 2) else fl
    return min(max(r, lo), hi)


@given(st.integers(-(2**24), 2**24), st.integers(1, 2**20), st.integers(-60, 10))
def test_round_f32_is_nearest_even(num, den, e):
    v = Fraction(num, den) * Fraction(2) ** e
    assert Fraction(float(round_f32(v))) == _ref_round_f32(v)


def test_round_f32_breaks_a_float64_double_rounding():
    # 1 + 2^-24 + 2^-60: float64 rounds it to 1 + 2^-24, a float32 tie that goes to even (1.0);
    # the exact value is above the tie, so the float32 answer is 1 + 2^-23
    v = 1 + Fraction(1, 2**24) + Fraction(1, 2**60)
    assert float(np.float32(float(v))) == 1.0
    assert float(round_f32(v)) == 1 + 2.0**-23


@given(st.lists(st.integers(-255, 255), min_size=1, max_size=20),
       st.floats(2.0**-30, 2.0**8, width=32), st.floats(-(2.0**17), 2.0**17, width=32))
def test_fma_f32_rounds_once(xs, r, c):
    got = fma_f32(np.array(xs, np.float64), F32(r), F32(c))
    want = [_ref_round_f32(x * Fraction(float(F32(r))) + Fraction(float(F32(c)))) for x in xs]
    assert [Fraction(float(g)) for g in got] == want


@given(st.data())
def test_mlas_add_equals_exact_reference(data):
    signed = data.draw(st.booleans())
    lo, hi = (-128, 127) if signed else (0, 255)
    n = data.draw(st.integers(1, 12))
    qa = data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    qb = data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    za, zb, zc = (data.draw(st.integers(lo, hi)) for _ in range(3))
    sa, sb, sc = (float(F32(2.0 ** data.draw(st.floats(-20, 4)))) for _ in range(3))
    y, _ = mlas_add(np.array(qa), np.array(qb), a_scale=sa, a_zero_point=za, b_scale=sb,
                    b_zero_point=zb, out_scale=sc, out_zero_point=zc, qmin=lo, qmax=hi)
    # one element each: ORT takes the scalar-a path
    want = [_ref_add(a, b, sa, sb, sc, za, zb, zc, lo, hi, scalar_a=n == 1)
            for a, b in zip(qa, qb, strict=True)]
    assert y.tolist() == want, f"a={qa} b={qb} scales={(sa, sb, sc)} zps={(za, zb, zc)}"


def test_the_onnxruntime_profile_adds_by_mlas_and_relu_clamps():
    a = np.array([-128, -5, 0, 7, 127], np.int8)
    b = np.array([3, -128, 0, 100, 127], np.int8)
    kw = dict(a_scale=0.05, a_zero_point=-3, b_scale=0.02, b_zero_point=4, out_scale=0.07,
              out_zero_point=-10)
    y = integer.add(a, b, profile="onnxruntime", **kw)
    ref, _ = mlas_add(a, b, **kw, qmin=-128, qmax=127)
    assert np.array_equal(y, ref.astype(np.int8))
    relu = integer.add(a, b, profile="onnxruntime", activation="relu", **kw)
    assert np.array_equal(relu, np.maximum(ref, -10).astype(np.int8))


def test_mlas_add_refuses_a_broadcast_it_does_not_model():
    with pytest.raises(ValueError, match="one shape or a single element"):
        integer.add(np.zeros((2, 3), np.int8), np.zeros((1, 3), np.int8), a_scale=1.0,
                    a_zero_point=0, b_scale=1.0, b_zero_point=0, out_scale=1.0,
                    out_zero_point=0, profile="onnxruntime")


def test_global_average_pool_of_the_onnxruntime_profile():
    """sum q - Z N requantized by f32(S / f32(S N)): a plane of 6 where the exact mean is a tie
    (3 / 6 = 1/2 above Z) that the float multiplier moves off the tie."""
    x = np.full((1, 1, 2, 3), 5, np.int8)
    x[0, 0, 0, :3] = (6, 6, 6)  # sum q - Z N = 3 with Z = 5
    s = 0.1
    m = F32(F32(s) / F32(F32(s) * F32(6)))
    want = 5 + int(np.rint(F32(F32(3) * m)))
    got = integer.global_avg_pool2d(x, zero_point=5, scale=s, profile="onnxruntime")
    assert got.shape == (1, 1, 1, 1) and int(got[0, 0, 0, 0]) == want
    with pytest.raises(ValueError, match="give scale"):
        integer.global_avg_pool2d(x, zero_point=5, profile="onnxruntime")


@pytest.mark.parametrize("profile", ["onnxruntime", "tflite-xnnpack", "pytorch-qnnpack"])
def test_one_shift_and_mlas_adds_refuse_int16(profile):
    """MLAS, XNNPACK and QNNPACK have 8-bit ADD kernels only; an int16 ADD under their profiles
    is refused by the fast and the reference kernel alike (a fresh hypothesis draw found the
    reference overflowing its int32 accumulator on int16 inputs under onnxruntime)."""
    a = np.array([[2873]], np.int16)
    kw = dict(a_scale=0.02, a_zero_point=0, b_scale=0.02, b_zero_point=-4992, out_scale=1e-7,
              out_zero_point=0, profile=profile)
    for add in (integer.add, reference.add):
        with pytest.raises(ValueError, match="ADD takes int8/uint8 inputs, got int16"):
            add(a, a, **kw)
