"""GEMM, conv and depthwise kernels against int64 references, bit for bit, on hypothesis cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from int_ref import (
    activation_ref,
    conv_ref_for,
    fc_ref,
    fc_ref_for,
    requant_ref,
    same_pads,
)
from strategies import ACT_DTYPES, W_DTYPES, int_arrays, requant_cases, zero_points

from npquant.integer import conv2d, depthwise_conv2d, fully_connected
from npquant.integer.fast.gemm_loops import gemm_i32 as _gemm_i32
from npquant.integer.fast.gemm_loops import gemm_i32_small_k as _gemm_i32_small_k
from npquant.integer.fast.gemm_loops import gemm_i64 as _gemm_i64
from npquant.profiles import PROFILES

OUT_DTYPES = (np.int8, np.uint8, np.int16)


def _check(result, acc_ref, params, zo, lo, hi, out_dtype, what):
    assert result.acc.dtype == np.int32, what
    assert np.array_equal(result.acc, acc_ref), f"accumulators differ [{what}]"
    expected = requant_ref(acc_ref, params, 1, zo, lo, hi)
    assert result.out.dtype == np.dtype(out_dtype)
    if not np.array_equal(result.out.astype(np.int64), expected):
        idx = tuple(int(i) for i in np.argwhere(result.out != expected)[0])
        raise AssertionError(f"out{idx}={result.out[idx]}, but should be {expected[idx]} "
                             f"(acc {acc_ref[idx]}) [{what}]")


@st.composite
def fc_cases(draw):
    xdt = draw(st.sampled_from(ACT_DTYPES))
    wdt = draw(st.sampled_from(W_DTYPES))
    n, k, o = draw(st.integers(1, 5)), draw(st.integers(1, 70)), draw(st.integers(1, 11))
    x = draw(int_arrays(xdt, (n, k)))
    w = draw(int_arrays(wdt, (o, k)))
    zx = draw(zero_points(xdt))
    zw = draw(st.one_of(zero_points(wdt), st.lists(zero_points(wdt), min_size=o, max_size=o)
                        .map(lambda v: np.array(v, dtype=np.int64))))
    bias = draw(st.none() | int_arrays(np.int32, (o,)).map(lambda b: (b >> 2).astype(np.int32)))
    prof, params, out_scale = draw(requant_cases("fully_connected", o, integer_bias=True))
    odt = draw(st.sampled_from(OUT_DTYPES))
    zo = draw(zero_points(odt))
    act = draw(st.sampled_from([None, "relu", "relu6"]))
    return x, w, bias, zx, zw, prof, params, out_scale, odt, zo, act


@settings(max_examples=150)
@given(fc_cases())
def test_fully_connected_matches_reference(case):
    x, w, bias, zx, zw, prof, params, out_scale, odt, zo, act = case
    r = fully_connected(x, w, bias, x_zero_point=zx, w_zero_point=zw, out_zero_point=zo,
                        requant=params, out_scale=out_scale, profile=prof, out_dtype=odt,
                        activation=act, return_accumulators=True)
    lo, hi = activation_ref(act, out_scale, zo, odt, prof.relu6_bound_rule())
    _check(r, fc_ref_for(prof.accumulator, x, w, bias, zx, zw), params, zo, lo, hi, odt,
           f"fc x{x.shape} {x.dtype} w{w.shape} {w.dtype} zx={zx} {prof.name} {act}")


@st.composite
def conv_cases(draw, depthwise: bool):
    xdt = draw(st.sampled_from(ACT_DTYPES))
    wdt = draw(st.sampled_from(W_DTYPES))
    n = draw(st.integers(1, 2))
    if depthwise:
        c = draw(st.integers(1, 5))
        groups, cg, o = c, 1, c * draw(st.integers(1, 3))
    else:
        groups = draw(st.integers(1, 3))
        cg, og = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        c, o = groups * cg, groups * og
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h, wd = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    padding = draw(st.one_of(st.sampled_from(["SAME", "VALID"]),
                             st.tuples(*[st.integers(0, 3)] * 4)))
    if padding == "SAME":
        pads = same_pads((h, wd), (kh, kw), stride, dilation)
    elif padding == "VALID":
        pads = (0, 0, 0, 0)
    else:
        pads = padding
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    # make the kernel fit: grow the input when needed (kernel larger than stride is common)
    h = max(h, eff_h - pads[0] - pads[1])
    wd = max(wd, eff_w - pads[2] - pads[3])
    if padding == "SAME":
        pads = same_pads((h, wd), (kh, kw), stride, dilation)
    x = draw(int_arrays(xdt, (n, c, h, wd)))
    w = draw(int_arrays(wdt, (o, cg, kh, kw)))
    zx = draw(zero_points(xdt))
    zw = draw(st.one_of(zero_points(wdt), st.lists(zero_points(wdt), min_size=o, max_size=o)
                        .map(lambda v: np.array(v, dtype=np.int64))))
    bias = draw(st.none() | int_arrays(np.int32, (o,)).map(lambda b: (b >> 2).astype(np.int32)))
    # a grouped conv with one input channel per group is depthwise by its shape
    op = "depthwise_conv" if depthwise or (groups == c > 1 and cg == 1) else "conv"
    prof, params, out_scale = draw(requant_cases(op, o, integer_bias=True))
    odt = draw(st.sampled_from(OUT_DTYPES))
    zo = draw(zero_points(odt))
    act = draw(st.sampled_from([None, "relu", "relu6"]))
    return dict(x=x, w=w, bias=bias, zx=zx, zw=zw, stride=stride, dilation=dilation,
                padding=padding, pads=pads, groups=groups, prof=prof, params=params,
                out_scale=out_scale, odt=odt, zo=zo, act=act)


def _run_conv(cs, depthwise):
    kw = dict(x_zero_point=cs["zx"], w_zero_point=cs["zw"], out_zero_point=cs["zo"],
              stride=cs["stride"], padding=cs["padding"], dilation=cs["dilation"],
              requant=cs["params"], out_scale=cs["out_scale"], profile=cs["prof"],
              out_dtype=cs["odt"], activation=cs["act"], return_accumulators=True)
    if depthwise:
        return depthwise_conv2d(cs["x"], cs["w"], cs["bias"], **kw)
    return conv2d(cs["x"], cs["w"], cs["bias"], groups=cs["groups"], **kw)


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
@settings(max_examples=120)
@given(data=st.data())
def test_conv_matches_reference(depthwise, data):
    cs = data.draw(conv_cases(depthwise))
    r = _run_conv(cs, depthwise)
    # one input and one output channel per group: the profile's depthwise accumulator if it
    # has one (ONNX Runtime's MLAS depthwise kernels, Profile.depthwise_accumulator)
    prof, (o, cg) = cs["prof"], cs["w"].shape[:2]
    rule = prof.depthwise_accumulator if (cg == 1 and o == cs["groups"]
                                          and prof.depthwise_accumulator) else prof.accumulator
    ref = conv_ref_for(rule, cs["x"], cs["w"], cs["bias"], cs["zx"], cs["zw"],
                       cs["stride"], cs["pads"], cs["dilation"], cs["groups"])
    lo, hi = activation_ref(cs["act"], cs["out_scale"], cs["zo"], cs["odt"],
                            cs["prof"].relu6_bound_rule())
    what = (f"x{cs['x'].shape} {cs['x'].dtype} w{cs['w'].shape} groups={cs['groups']} "
            f"stride={cs['stride']} pad={cs['padding']} dil={cs['dilation']} {cs['prof'].name}")
    _check(r, ref, cs["params"], cs["zo"], lo, hi, cs["odt"], what)


def test_gemmlowp_expansion_equals_direct_form():
    """Eq. 2 (raw products + row/column sums, int32 wrapping) equals eq. 1 (int64 direct)."""
    rng = np.random.default_rng(7)
    for za, zw_val in [(0, 0), (-128, 127), (127, -128), (37, -5)]:
        a = rng.integers(-128, 128, (33, 257)).astype(np.int16)
        w = rng.integers(-128, 128, (19, 257)).astype(np.int16)
        zw = np.full(19, zw_val, dtype=np.int64)
        bias = rng.integers(-(2**20), 2**20, 19).astype(np.int64)
        fast = np.empty((33, 19), np.int32)
        direct = np.empty((33, 19), np.int64)
        _gemm_i32(a, w, np.int64(za), zw, bias, fast)
        _gemm_i64(a, w, np.int64(za), zw, bias, direct)
        assert np.array_equal(fast, direct), (za, zw_val)
        small = np.empty((33, 19), np.int32)
        _gemm_i32_small_k(a[:, :20].copy(), w[:, :20].T.copy(), np.int64(za), zw, bias, small)
        assert np.array_equal(small, fc_ref(a[:, :20], w[:, :20], bias, za, zw)), (za, zw_val)
        assert np.array_equal(direct, fc_ref(a, w, bias, za, zw))


def test_expansion_exact_although_raw_sum_wraps():
    """uint8 255 x uint8 255 over K = 40000: sum a w = 2.6e9 wraps int32, eq. 1 is 0."""
    k = 40000
    a = np.full((1, k), 255, np.int16)
    w = np.full((1, k), 255, np.int16)
    fast = np.empty((1, 1), np.int32)
    _gemm_i32(a, w, np.int64(255), np.zeros(1, np.int64), np.zeros(1, np.int64), fast)
    assert k * 255 * 255 > 2**31 and fast[0, 0] == 0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_scales_path_uses_profile_rule(name):
    """Given scales, the kernel derives M with the profile's rule (as prepare_requant does)."""
    from npquant.requant import prepare_requant
    prof = PROFILES[name]
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (3, 2, 6, 6)).astype(np.int8)
    w = rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8)
    if name == "pow2":
        sx, sw, so = 2.0**-4, np.array([2.0**-6, 2.0**-7, 2.0**-5, 2.0**-8]), 2.0**-2
    else:
        sx, sw, so = 0.0371, np.array([0.002, 0.0031, 0.0017, 0.0044]), 0.093
    r = conv2d(x, w, None, x_zero_point=5, out_zero_point=-3, x_scale=sx, w_scale=sw,
               out_scale=so, profile=name, return_accumulators=True)
    params = prepare_requant(prof.conv, sx, sw, so)
    ref = conv_ref_for(prof.accumulator, x, w, None, 5, 0, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert np.array_equal(r.out, requant_ref(ref, params, 1, -3, -128, 127))


@given(bits=st.integers(2, 8), signed=st.booleans(), relu=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_out_bits_clamp_to_the_bit_range(bits, signed, relu, seed):
    """``out_bits=b`` stores b-bit values: outputs within [-2^(b-1), 2^(b-1) - 1] (or
    [0, 2^b - 1]), equal to the full-dtype result clamped there, for conv and FC alike."""
    rng = np.random.default_rng(seed)
    odt = np.int8 if signed else np.uint8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    zo = int(rng.integers(lo, hi + 1))
    x = rng.integers(-128, 128, (2, 3, 5, 5)).astype(np.int8)
    w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    kw = dict(x_zero_point=1, out_zero_point=zo, x_scale=0.05, w_scale=0.02, out_scale=0.1,
              profile="tflite", out_dtype=odt, activation="relu" if relu else None)
    full = conv2d(x, w, **kw).astype(np.int64)
    low = conv2d(x, w, out_bits=bits, **kw)
    act_lo = max(lo, zo) if relu else lo
    assert low.dtype == np.dtype(odt)
    assert np.array_equal(low.astype(np.int64), np.clip(full, act_lo, hi))
    xf = x.reshape(2, -1)
    wf = rng.integers(-127, 128, (6, xf.shape[1])).astype(np.int8)
    full_fc = fully_connected(xf, wf, **kw).astype(np.int64)
    low_fc = fully_connected(xf, wf, out_bits=bits, **kw)
    assert np.array_equal(low_fc.astype(np.int64), np.clip(full_fc, act_lo, hi))


@pytest.mark.parametrize("bits, zo", [(1, 0), (9, 0), (17, 0), (4, 8), (4, -9)],
                         ids=["bits1", "bits9-in-int8", "bits17", "zp-above", "zp-below"])
def test_out_bits_bad_values(bits, zo):
    x = np.zeros((1, 4), np.int8)
    w = np.zeros((2, 4), np.int8)
    with pytest.raises(ValueError, match="out_bits|out_zero_point"):
        fully_connected(x, w, x_zero_point=0, out_zero_point=zo, x_scale=1.0, w_scale=1.0,
                        out_scale=1.0, out_dtype=np.int8, out_bits=bits, profile="tflite")
