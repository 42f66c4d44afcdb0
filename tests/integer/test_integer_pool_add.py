"""Pools, ADD, ReLU clamps and requantization of tensors against Python-int references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from int_ref import activation_ref, pool_ref, same_pads, tflite_add_ref
from strategies import ACT_DTYPES, int_arrays, zero_points

from npquant.integer import (
    add,
    avg_pool2d,
    concat,
    global_avg_pool2d,
    max_pool2d,
    relu,
    relu6,
    requantize_tensor,
)
from npquant.integer.elementwise import add_multipliers
from npquant.profiles import PROFILES, AveragePoolScheme
from npquant.requant import requant_params_from_multiplier


@st.composite
def pool_cases(draw):
    dt = draw(st.sampled_from(ACT_DTYPES))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 9))
    x = draw(int_arrays(dt, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(st.sampled_from(["SAME", "VALID"]),
                             st.tuples(st.integers(0, kh - 1), st.integers(0, kh - 1),
                                       st.integers(0, kw - 1), st.integers(0, kw - 1))))
    if padding == "SAME":
        pads = same_pads((h, w), (kh, kw), stride, (1, 1))
        if max(pads[:2]) >= kh or max(pads[2:]) >= kw:
            padding, pads = "VALID", (0, 0, 0, 0)
    else:
        pads = (0, 0, 0, 0) if padding == "VALID" else padding
    prof = PROFILES[draw(st.sampled_from(sorted(PROFILES)))]
    zp = draw(zero_points(dt))
    act = draw(st.sampled_from([None, "relu", "relu6"]))
    return x, (kh, kw), stride, padding, pads, prof, zp, act, draw(st.booleans())


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=100)
@given(data=st.data())
def test_pool_matches_reference(kind, data):
    x, kernel, stride, padding, pads, prof, zp, act, include_pad = data.draw(pool_cases())
    # the integer scheme here; ONNX Runtime's float32 one: test_reference, test_float32_average
    assume(kind == "max" or prof.average_pool_scheme is AveragePoolScheme.INTEGER)
    fn = max_pool2d if kind == "max" else avg_pool2d
    extra = {"count_include_pad": include_pad} if kind == "avg" else {}
    r = fn(x, kernel, stride, padding, zero_point=zp, scale=0.05, profile=prof, activation=act,
           return_accumulators=True, **extra)
    lo, hi = activation_ref(act, 0.05, zp, x.dtype, prof.relu6_bound_rule())
    acc, out = pool_ref(x, kernel, stride, pads, kind, prof.average_pool.value, zp,
                        include_pad and kind == "avg", lo, hi)
    assert np.array_equal(r.acc, acc), f"{kind} sums/maxima differ"
    assert r.out.dtype == x.dtype and np.array_equal(r.out, out), \
        f"{kind} x{x.shape} k{kernel} s{stride} pad={padding} {prof.name}"


@pytest.mark.parametrize("profile,expected", [("tflite", [-3, 3, -2, 2, 0]),
                                              ("pytorch-fbgemm", [-2, 2, -2, 2, 0]),
                                              ("pow2", [-2, 3, -1, 2, 0])])
def test_average_pool_tie_rules(profile, expected):
    """Sums -5, 5, -3, 3, 0 over 2 taps: -2.5, 2.5, -1.5, 1.5, 0 by each profile's tie rule."""
    pairs = [(-2, -3), (2, 3), (-1, -2), (1, 2), (0, 0)]
    x = np.array([[[list(p) for p in pairs]]], dtype=np.int8)  # (1, 1, 5, 2)
    out = avg_pool2d(x, (1, 2), profile=profile)
    assert out.ravel().tolist() == expected


def test_float32_average_pool_is_not_the_rounded_mean():
    """ONNX Runtime's QLinearAveragePool (AveragePoolScheme.FLOAT32): q = -97, -126 with Z = 43,
    S = f32(0.3): the exact mean -111.5 rounds to even, -112; the float32 sequence
    f32(S (q - Z)) summed, halved, divided by S and shifted by Z lands just above the tie."""
    x = np.array([-97, -126], np.int8).reshape(1, 1, 1, 2)
    kw = dict(zero_point=43, scale=float(np.float32(0.3)))
    assert avg_pool2d(x, (1, 2), profile="onnxruntime", **kw)[0, 0, 0, 0] == -111
    assert avg_pool2d(x, (1, 2), profile="pytorch-fbgemm", **kw)[0, 0, 0, 0] == -112
    s = np.float32(0.3)
    total = np.float32(np.float32(s * np.float32(-140)) + np.float32(s * np.float32(-169)))
    by_hand = np.rint(np.float32(np.float32(np.float32(total / np.float32(2)) / s) + 43))
    assert by_hand == -111
    with pytest.raises(ValueError, match="scale"):
        avg_pool2d(x, (1, 2), profile="onnxruntime", zero_point=43)


def test_float32_average_pool_whole_plane_is_the_global_pool():
    """A window that is the whole unpadded plane runs ONNX Runtime's global average pool."""
    x = np.arange(-60, 60, 5, dtype=np.int8).reshape(1, 2, 3, 4)
    kw = dict(zero_point=-7, scale=0.0473, profile="onnxruntime")
    assert np.array_equal(avg_pool2d(x, (3, 4), **kw), global_avg_pool2d(x, **kw))


def test_global_average_pool():
    x = np.arange(-60, 60, dtype=np.int8).reshape(2, 3, 4, 5)
    r = global_avg_pool2d(x, return_accumulators=True, profile="tflite")
    sums = x.astype(np.int64).sum(axis=(2, 3))
    assert r.out.shape == (2, 3, 1, 1) and np.array_equal(r.acc[..., 0, 0], sums)
    # TFLite: (sum +- count/2) / count truncated toward zero, count = 20
    tfl = np.where(sums > 0, (sums + 10) // 20, -((-sums + 10) // 20))
    assert np.array_equal(r.out[..., 0, 0], tfl)


@st.composite
def add_cases(draw):
    dt = draw(st.sampled_from([np.int8, np.uint8]))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    a = draw(int_arrays(dt, shape))
    b = draw(int_arrays(dt, shape))
    scales = draw(st.tuples(*[st.floats(1e-3, 1.0)] * 3))
    zs = draw(st.tuples(zero_points(dt), zero_points(dt), zero_points(dt)))
    # (onnxruntime adds by MLAS's float sequence: tests/integer/test_mlas.py; pytorch-fbgemm
    # by ATen's: tests/integer/test_aten_add.py)
    prof = PROFILES[draw(st.sampled_from(["tflite", "tflite-single-rounding"]))]
    act = draw(st.sampled_from([None, "relu", "relu6"]))
    return a, b, scales, zs, prof, act


@settings(max_examples=150)
@given(add_cases())
def test_add_matches_tflite_sequence(case):
    a, b, (sa, sb, so), (za, zb, zo), prof, act = case
    r = add(a, b, a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb, out_scale=so,
            out_zero_point=zo, profile=prof, activation=act, return_accumulators=True)
    ma, mb, mo = add_multipliers(sa, sb, so, 20)
    params = [requant_params_from_multiplier(prof.add, [m]) for m in (ma, mb, mo)]
    lo, hi = activation_ref(act, so, zo, a.dtype, prof.relu6_bound_rule())
    raw, out = tflite_add_ref(a, b, za, zb, zo, lo, hi, *params, 20)
    assert np.array_equal(r.acc, raw) and np.array_equal(r.out, out), prof.name


def test_add_multipliers_as_tflite_prepare():
    """S_a = 0.5, S_b = 0.25, S_out = 1: 2 max = 1, M_a = 0.5, M_b = 0.25, M_out = 2^-20."""
    assert add_multipliers(0.5, 0.25, 1.0, 20) == (0.5, 0.25, 2.0**-20)


def test_add_same_scale_is_exact_sum():
    """With S_a = S_b = S_out and zero points 0, every representable sum comes out exactly."""
    a = np.arange(-64, 64, dtype=np.int8)
    b = np.arange(63, -65, -1, dtype=np.int8)
    out = add(a, b, a_scale=0.1, a_zero_point=0, b_scale=0.1, b_zero_point=0, out_scale=0.1,
              out_zero_point=0, profile="tflite")
    assert np.array_equal(out, (a.astype(np.int64) + b).astype(np.int8))


def test_relu_clamps():
    x = np.array([-128, -5, 4, 5, 127], dtype=np.int8)
    assert relu(x, zero_point=4).tolist() == [4, 4, 4, 5, 127]
    # relu6 with S = 0.05: 6 / 0.05 = 120 -> [Z, Z + 120] = [-10, 110]
    assert relu6(x, scale=0.05, zero_point=-10, profile="tflite").tolist() == [-10, -5, 4, 5, 110]


def test_requantize_tensor_and_concat():
    x = np.array([-128, -3, 0, 1, 127], dtype=np.int8)
    # f32(0.1) / f32(0.2) = 0.5 exactly: M0 = 2^30, shift 0, so the whole rounding happens in
    # SRDHM (ties up), not in the final shift: (q - 2) / 2 = -65, -2.5, -1, -0.5, 62.5
    # -> -65, -2, -1, 0, 63 (ties up), then + Z_out = 1
    y = requantize_tensor(x, in_scale=0.1, in_zero_point=2, out_scale=0.2, out_zero_point=1,
                          profile="tflite")
    assert y.tolist() == [-64, -1, 0, 1, 64]
    c = concat([x, x], axis=0, scales=[0.2, 0.1], zero_points=[1, 2], out_scale=0.2,
               out_zero_point=1, profile="tflite")
    assert np.array_equal(c[:5], x) and np.array_equal(c[5:], y)
