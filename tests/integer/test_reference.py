"""Every fast kernel equals the reference kernel (npquant.integer.reference) bit for bit.

The public kernels dispatch on their operands: the VNNI kernels (int8/uint8 activations, a VNNI
CPU, an operand bound that proves int32 exact), the fused epilogue (not when double rounding must
first check ``acc 2^shift`` in int32), the direct depthwise loops (unit stride or not), the
im2col GEMMs (small K, int32, int64), the wrap-once and step-by-step accumulator models. Each
``regime`` below draws cases on one side of those conditions, and the test asserts the side it
is on (``_plan``), so both directions of every condition are taken; the outcome (array or the
exception type) must be identical.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import int_arrays, zero_points

from npquant import integer
from npquant.integer import accumulator as accm
from npquant.integer import reference
from npquant.integer.fast import depthwise3x3, depthwise3x3_avx512
from npquant.integer.fast import vnni_gemm as fast_gemm
from npquant.profiles import PROFILES, AccumulatorRule, Overflow

PROFILE_NAMES = sorted(PROFILES)
SCALES = (0.5, 0.02, 0.1, 1 / 64, 0.0473, 0.0031)


def _outcome(fn, *args, **kwargs):
    """``("ok", out, acc)`` or ``("raises", exception type)``."""
    try:
        r = fn(*args, **kwargs, **({"return_accumulators": True} if fn.__module__ !=
                                   reference.__name__ else {}))
    except (ValueError, OverflowError) as exc:
        return ("raises", type(exc).__name__)
    return ("ok", r.out, r.acc)


def _same(fast, ref, what: str) -> None:
    assert fast[0] == ref[0], f"fast {fast[:1] + fast[1:2] if fast[0] == 'raises' else 'ok'} " \
        f"vs reference {ref if ref[0] == 'raises' else 'ok'} [{what}]"
    if fast[0] == "raises":
        assert fast[1] == ref[1], what
        return
    for name, a, b in (("out", fast[1], ref[1]), ("acc", fast[2], ref[2])):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{name} {a.dtype}{a.shape} vs " \
            f"{b.dtype}{b.shape} [{what}]"
        if not np.array_equal(a, b):
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            raise AssertionError(f"{name}{idx}: fast {a[idx]} != reference {b[idx]} [{what}]")


# The regimes: what the drawn operands and rule are, and the dispatch side they must land on.
#   exact   - int8/uint8 activations, the profile's accumulator: the bound proves int32 exact
#             (VNNI kernels on a VNNI CPU, else the int32 GEMMs / depthwise loops)
#   int16   - int16 activations: never VNNI; int32 GEMMs
#   wide    - a 64-bit accumulator and a bias at the int32 edge: the int64 loop (then the
#             requantization refuses accumulators outside int32, in both kernels)
#   narrow  - a 16..24-bit accumulator that wraps / saturates / raises: wrap-once or step by step
#   pairs   - vpmaddubsw pair saturation (chw or hwc order) with full-range operands: step by step
#   m_ge_1  - double rounding with M >= 1: the unfused epilogue with its int32 domain check
REGIMES = ("exact", "int16", "wide", "narrow", "pairs", "m_ge_1")


@st.composite
def _operands(draw, regime: str, x_shape, w_shape, channels: int):
    """x, w, bias, zero points, profile, accumulator override and scales of one case."""
    xdt = np.int16 if regime == "int16" else draw(st.sampled_from([np.int8, np.uint8]))
    wdt = draw(st.sampled_from([np.int8, np.uint8]))
    if regime == "pairs":
        xdt, wdt = np.uint8, np.int8
    x = draw(int_arrays(xdt, x_shape, edge_bias=0.6))
    w = draw(int_arrays(wdt, w_shape, edge_bias=0.6))
    zx = draw(zero_points(xdt)) if regime != "int16" else draw(st.integers(-100, 100))
    zw = draw(st.one_of(zero_points(wdt), st.lists(zero_points(wdt), min_size=channels,
                                                   max_size=channels)
                        .map(lambda v: np.array(v, dtype=np.int64))))
    if regime == "wide":
        bias = np.full(channels, 2**31 - 1, np.int32) - draw(
            int_arrays(np.uint8, (channels,))).astype(np.int32)
    else:
        bias = draw(st.none() | int_arrays(np.int32, (channels,)).map(
            lambda b: (b >> 4).astype(np.int32)))
    names = ["tflite", "tflite-optimized"] if regime == "m_ge_1" else PROFILE_NAMES
    profile = draw(st.sampled_from(names))
    accumulator = None
    if regime == "wide":
        accumulator = AccumulatorRule(64, Overflow.RAISE)
    elif regime == "narrow":
        accumulator = AccumulatorRule(draw(st.integers(16, 24)),
                                      draw(st.sampled_from(list(Overflow))),
                                      conv_order=draw(st.sampled_from(["chw", "hwc"])))
    elif regime == "pairs":
        accumulator = AccumulatorRule(32, Overflow.RAISE, pair_saturation=True,
                                      conv_order=draw(st.sampled_from(["chw", "hwc"])))
    x_scale, w_scale = draw(st.sampled_from(SCALES)), draw(st.sampled_from(SCALES))
    if draw(st.booleans()):
        w_scale = np.array(draw(st.lists(st.sampled_from(SCALES), min_size=channels,
                                         max_size=channels)))
    out_scale = draw(st.sampled_from((1e-5, 1e-4)) if regime == "m_ge_1" else
                     st.sampled_from((0.5, 2.0, 8.0, 40.0)))
    out_dtype = draw(st.sampled_from([np.int8, np.uint8, np.int16]))
    kw = dict(x_zero_point=zx, w_zero_point=zw, profile=profile, accumulator=accumulator,
              x_scale=x_scale, w_scale=w_scale, out_scale=out_scale, out_dtype=out_dtype,
              out_zero_point=draw(zero_points(out_dtype)),
              activation=draw(st.sampled_from([None, "relu", "relu6"])))
    return x, w, bias, kw


def _plan(x: np.ndarray, w: np.ndarray, bias, kw, k_len: int) -> accm.Plan:
    """The accumulation plan the fast kernels choose for these operands (their dispatch)."""
    rule = kw["accumulator"] or PROFILES[kw["profile"]].accumulator
    zw = np.broadcast_to(np.asarray(kw["w_zero_point"], np.int64), (w.shape[0],))
    b = np.zeros(w.shape[0], np.int64) if bias is None else bias.astype(np.int64)
    return accm.plan_for(x, kw["x_zero_point"], w, zw, k_len, b, rule)


def _assert_regime(regime: str, plan: accm.Plan, x: np.ndarray) -> None:
    """Keep only the cases on the regime's side of the dispatch conditions."""
    if regime in ("exact", "int16", "m_ge_1"):
        assume(plan.kind == accm.PLAN_EXACT and plan.fits_int32)
    elif regime == "wide":
        assume(plan.kind == accm.PLAN_EXACT and not plan.fits_int32)
    else:
        assume(plan.kind != accm.PLAN_EXACT)
    if regime == "exact":
        # the VNNI kernels' own condition (npquant.integer.conv._vnni_applies)
        assert not fast_gemm.HAVE_VNNI or x.dtype != np.int16


@pytest.mark.parametrize("regime", REGIMES)
@settings(max_examples=25)
@given(data=st.data())
def test_fully_connected_equals_reference(regime, data):
    n, o = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7))
    # K on both sides of the small-K GEMM (gemm._SMALL_K = 32) and of the 4-wide VNNI steps
    k = data.draw(st.sampled_from([1, 3, 5, 31, 33, 70]))
    x, w, bias, kw = data.draw(_operands(regime, (n, k), (o, k), o))
    plan = _plan(x, w, bias, kw, k)
    _assert_regime(regime, plan, x)
    what = f"{regime} {plan} x{x.shape} {x.dtype} w {w.dtype} {kw['profile']}"
    _same(_outcome(integer.fully_connected, x, w, bias, **kw),
          _outcome(reference.fully_connected, x, w, bias, **kw), what)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("kind", ["conv", "grouped", "depthwise"])
@settings(max_examples=15)
@given(data=st.data())
def test_conv_equals_reference(kind, regime, data):
    n = data.draw(st.integers(1, 2))
    if kind == "depthwise":
        c = data.draw(st.integers(1, 4))
        groups, cg, o = c, 1, c * data.draw(st.integers(1, 2))
    else:
        groups = 1 if kind == "conv" else data.draw(st.integers(2, 3))
        cg, og = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
        c, o = groups * cg, groups * og
    kh, kw_ = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    # stride 1 and 2: the depthwise loops have a unit-stride kernel and a general one
    stride = data.draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
    dilation = data.draw(st.sampled_from([(1, 1), (2, 1)]))
    padding = data.draw(st.sampled_from(["SAME", "VALID", (1, 0, 0, 1), 1]))
    h, wd = data.draw(st.integers(3, 6)), data.draw(st.integers(3, 6))
    x, w, bias, kw = data.draw(_operands(regime, (n, c, h, wd), (o, cg, kh, kw_), o))
    plan = _plan(x, w, bias, kw, cg * kh * kw_)
    _assert_regime(regime, plan, x)
    call = dict(kw, stride=stride, dilation=dilation, padding=padding)
    what = f"{kind} {regime} {plan} x{x.shape} w{w.shape} s{stride} {padding} {kw['profile']}"
    if kind == "depthwise":
        _same(_outcome(integer.depthwise_conv2d, x, w, bias, **call),
              _outcome(reference.depthwise_conv2d, x, w, bias, **call), what)
    else:
        _same(_outcome(integer.conv2d, x, w, bias, groups=groups, **call),
              _outcome(reference.conv2d, x, w, bias, groups=groups, **call), what)


@pytest.mark.parametrize("kernel", ["avx512", "portable"])
@pytest.mark.parametrize("regime", ["exact", "int16", "m_ge_1", "narrow"])
@settings(max_examples=12)
@given(data=st.data())
def test_depthwise_3x3_equals_reference(kernel, regime, data):
    """The stride-1 3x3 depthwise kernels (``fast.depthwise3x3``, taken in the exact and int16
    regimes: the AVX-512 one for int8/uint8 inputs with column dilation 1 on a CPU that has
    it, else the portable loop) and their neighbours: output rows shorter than, as long as and
    longer than the 16-column steps and the 64-byte row loads (the last step of a row is
    masked or overlaps the one before), heights below, at and above the 4-row steps (the last
    group overlaps the one before), one-row and one-column images, depth multipliers, dilation,
    every padding form, with and without the accumulators."""
    if kernel == "avx512" and not depthwise3x3_avx512.HAVE_AVX512:
        pytest.skip("the AVX-512 depthwise kernel needs AVX-512 BW and VBMI")
    n, c, m = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(
        st.integers(1, 2))
    h = data.draw(st.sampled_from([1, 2, 3, 5, 6, 9]))
    wd = data.draw(st.sampled_from([1, 2, 5, 15, 16, 17, 18, 33, 64, 70]))
    dilation = data.draw(st.sampled_from([(1, 1), (2, 1), (1, 2)]))
    padding = data.draw(st.sampled_from(["SAME", "VALID", (1, 0, 0, 2), 1, 2, (3, 2, 4, 1)]))
    x, w, bias, kw = data.draw(_operands(regime, (n, c, h, wd), (c * m, 1, 3, 3), c * m))
    plan = _plan(x, w, bias, kw, 9)
    _assert_regime(regime, plan, x)
    call = dict(kw, dilation=dilation, padding=padding)
    what = f"{kernel} {regime} {plan} x{x.shape} {x.dtype} w{w.shape} d{dilation} {padding} " \
        f"{kw['profile']}"
    ref = _outcome(reference.depthwise_conv2d, x, w, bias, **call)
    applies = depthwise3x3.avx512_applies if kernel == "avx512" else lambda *_: False
    with mock.patch.object(depthwise3x3, "avx512_applies", applies):
        _same(_outcome(integer.depthwise_conv2d, x, w, bias, **call), ref, what)
        if ref[0] == "ok":  # without return_accumulators: the requantization fused in the loop
            assert np.array_equal(integer.depthwise_conv2d(x, w, bias, **call), ref[1]), what


@pytest.mark.parametrize("x_dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("out_dtype", [np.int8, np.uint8, np.int16])
def test_depthwise_3x3_avx512_every_dtype(x_dtype, out_dtype):
    """The AVX-512 depthwise kernel for each input and output dtype (its loads flip int8 to
    unsigned bytes, its stores narrow to the output's width), fused (``onnxruntime``: float32
    ties-to-even in registers) and not (``tflite``: int32 sums, then the row epilogue), with a
    depth multiplier of 2, per-channel weight zero points and a 37-column row (a masked step)."""
    if not depthwise3x3_avx512.HAVE_AVX512:
        pytest.skip("the AVX-512 depthwise kernel needs AVX-512 BW and VBMI")
    rng = np.random.default_rng(11)
    info, oinfo = np.iinfo(x_dtype), np.iinfo(out_dtype)
    x = rng.integers(int(info.min), int(info.max) + 1, (2, 3, 9, 37)).astype(x_dtype)
    w = rng.integers(-128, 128, (6, 1, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 6).astype(np.int32)
    assert depthwise3x3.avx512_applies(x.dtype, (1, 1))
    for profile in ("onnxruntime", "tflite"):
        kw = dict(x_zero_point=int(info.min) + 77, w_zero_point=rng.integers(-3, 4, 6),
                  out_zero_point=int(oinfo.min) + 9, x_scale=0.05, w_scale=0.01,
                  out_scale=0.3, out_dtype=out_dtype, profile=profile, padding=1)
        what = f"x {x.dtype} out {np.dtype(out_dtype)} {profile}"
        ref = _outcome(reference.depthwise_conv2d, x, w, bias, **kw)
        _same(_outcome(integer.depthwise_conv2d, x, w, bias, **kw), ref, what)
        assert np.array_equal(integer.depthwise_conv2d(x, w, bias, **kw), ref[1]), what


@pytest.mark.parametrize("regime", ["exact", "int16", "narrow", "m_ge_1"])
@settings(max_examples=12)
@given(data=st.data())
def test_conv_max_pool_equals_reference(regime, data):
    """``conv2d_max_pool`` (fused on a VNNI CPU in the exact regime: the pool of the
    accumulators, then the requantization) equals the reference conv followed by the reference
    2x2 max pool: odd output sizes (floor mode), groups, padding, every profile."""
    n, groups = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    cg, og = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    kh, kw_ = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    h, wd = data.draw(st.integers(4, 9)), data.draw(st.integers(4, 9))
    x, w, bias, kw = data.draw(_operands(regime, (n, groups * cg, h, wd),
                                         (groups * og, cg, kh, kw_), groups * og))
    plan = _plan(x, w, bias, kw, cg * kh * kw_)
    _assert_regime(regime, plan, x)
    call = dict(kw, groups=groups, padding=data.draw(st.sampled_from([0, 1, "SAME"])))
    what = f"{regime} {plan} x{x.shape} {x.dtype} w{w.shape} {call['padding']} {kw['profile']}"
    try:
        want = ("ok", reference.max_pool2d(reference.conv2d(x, w, bias, **call).out, 2,
                                           profile=kw["profile"]).out)
    except (ValueError, OverflowError) as exc:
        want = ("raises", type(exc).__name__)
    try:
        got = ("ok", integer.conv2d_max_pool(x, w, bias, **call))
    except (ValueError, OverflowError) as exc:
        got = ("raises", type(exc).__name__)
    assert got[0] == want[0] and (got[0] == "raises" or got[1].dtype == want[1].dtype), what
    assert got[1] == want[1] if got[0] == "raises" else np.array_equal(got[1], want[1]), what


@settings(max_examples=25)
@given(data=st.data())
def test_conv_max_pool_with_a_float_bias_equals_reference(data):
    """PyTorch's fbgemm profiles add the bias in float32 (``npquant.integer.bias``); the fused
    conv + pool requantizes the pooled sums with that epilogue: the same integers as the
    reference conv (float-bias epilogue) followed by the reference pool."""
    n, cin, og = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 6)), data.draw(
        st.integers(1, 5))
    h, wd = data.draw(st.integers(4, 9)), data.draw(st.integers(4, 9))
    x, w, _, kw = data.draw(_operands("exact", (n, cin, h, wd), (og, cin, 3, 3), og))
    # fbgemm's operands: uint8 activations, int8 weights with zero points 0
    if x.dtype == np.int8:
        x = (x.astype(np.int16) + 128).astype(np.uint8)
    if w.dtype == np.uint8:
        w = (w.astype(np.int16) - 128).astype(np.int8)
    kw = dict(kw, x_zero_point=data.draw(st.integers(0, 255)),
              w_zero_point=0 if np.ndim(kw["w_zero_point"]) == 0 else np.zeros(og, np.int64),
              profile=data.draw(st.sampled_from(["pytorch-fbgemm", "pytorch-fbgemm-avx2"])))
    bias = (data.draw(int_arrays(np.int32, (og,))) >> 12).astype(np.int32)
    assume(np.any(bias != 0))
    call = dict(kw, padding=data.draw(st.sampled_from([0, 1])))
    want = reference.max_pool2d(reference.conv2d(x, w, bias, **call).out, 2,
                                profile=call["profile"]).out
    got = integer.conv2d_max_pool(x, w, bias, **call)
    assert np.array_equal(got, want), f"{call['profile']} x{x.shape} bias {bias}"


@pytest.mark.parametrize("kind", ["max", "avg", "avg_include_pad"])
@settings(max_examples=30)
@given(data=st.data())
def test_pools_equal_reference(kind, data):
    dt = data.draw(st.sampled_from([np.int8, np.uint8, np.int16]))
    x = data.draw(int_arrays(dt, (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)),
                                  data.draw(st.integers(2, 7)), data.draw(st.integers(2, 7)))))
    k = data.draw(st.sampled_from([2, 3, (2, 3)]))
    kw = dict(zero_point=data.draw(zero_points(dt)), scale=data.draw(st.sampled_from(SCALES)),
              profile=data.draw(st.sampled_from(PROFILE_NAMES)),
              activation=data.draw(st.sampled_from([None, "relu", "relu6"])))
    stride = data.draw(st.sampled_from([None, 1, 2]))
    padding = data.draw(st.sampled_from([0, 1, "SAME", "VALID"]))
    if kind == "max":
        fast, ref = integer.max_pool2d, reference.max_pool2d
    else:
        fast, ref = integer.avg_pool2d, reference.avg_pool2d
        kw["count_include_pad"] = kind == "avg_include_pad"
    _same(_outcome(fast, x, k, stride, padding, **kw), _outcome(ref, x, k, stride, padding, **kw),
          f"{kind} x{x.shape} {x.dtype} k={k} s={stride} p={padding} {kw}")


@settings(max_examples=40)
@given(data=st.data())
def test_global_average_pool_equals_reference(data):
    dt = data.draw(st.sampled_from([np.int8, np.uint8]))
    x = data.draw(int_arrays(dt, (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)),
                                  data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))))
    prof = PROFILES[data.draw(st.sampled_from(PROFILE_NAMES))]
    kw = dict(zero_point=data.draw(zero_points(dt)), scale=data.draw(st.sampled_from(SCALES)),
              profile=prof, activation=data.draw(st.sampled_from([None, "relu", "relu6"])))
    if prof.global_average_pool is not None and data.draw(st.booleans()):
        kw.update(out_scale=data.draw(st.sampled_from(SCALES)),
                  out_zero_point=data.draw(zero_points(dt)))
    _same(_outcome(integer.global_avg_pool2d, x, **kw),
          _outcome(reference.global_avg_pool2d, x, **kw), f"global pool x{x.shape} {dt} {kw}")


@settings(max_examples=60)
@given(data=st.data())
def test_add_equals_reference(data):
    dt = data.draw(st.sampled_from([np.int8, np.uint8, np.int16]))
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)))
    a = data.draw(int_arrays(dt, shape, edge_bias=0.6))
    b = data.draw(int_arrays(dt, data.draw(st.sampled_from([shape, (1, shape[1]), (1,)]))))
    odt = data.draw(st.sampled_from([dt, np.int8]))
    kw = dict(a_scale=data.draw(st.sampled_from(SCALES)), a_zero_point=data.draw(zero_points(dt)),
              b_scale=data.draw(st.sampled_from(SCALES)), b_zero_point=data.draw(zero_points(dt)),
              out_scale=data.draw(st.sampled_from(SCALES)), out_dtype=odt,
              out_zero_point=data.draw(zero_points(odt)),
              profile=data.draw(st.sampled_from(PROFILE_NAMES)),
              activation=data.draw(st.sampled_from([None, "relu", "relu6"])))
    _same(_outcome(integer.add, a, b, **kw), _outcome(reference.add, a, b, **kw),
          f"add a{a.shape} b{b.shape} {dt} {kw}")


def test_reference_conv_by_hand():
    """A 1x1-channel 2x2 image, a 2x2 kernel, no padding: acc = bias + sum (x - Zx) w, by hand;
    M = 0.1 * 0.5 / 0.25 = 0.2 under TFLite's double rounding (ties away)."""
    x = np.array([[[[3, -1], [4, 10]]]], np.int8)
    w = np.array([[[[1, 2], [-3, 1]]]], np.int8)
    r = reference.conv2d(x, w, np.array([7], np.int32), x_zero_point=1, out_zero_point=-5,
                         x_scale=0.1, w_scale=0.5, out_scale=0.25, profile="tflite")
    acc = 7 + (3 - 1) * 1 + (-1 - 1) * 2 + (4 - 1) * -3 + (10 - 1) * 1  # = 5
    assert r.acc.tolist() == [[[[acc]]]] and r.out.tolist() == [[[[-5 + 1]]]]


def test_reference_names_the_overflow_like_the_fast_kernel():
    x = np.array([[127, 127, 127]], np.int8)
    w = np.array([[127, 127, 127]], np.int8)
    kw = dict(x_zero_point=0, out_zero_point=0, x_scale=1.0, w_scale=1.0, out_scale=1.0,
              profile="tflite", accumulator=AccumulatorRule(16, Overflow.RAISE), layer="fc9")
    with pytest.raises(accm.AccumulatorOverflowError) as ref_err:
        reference.fully_connected(x, w, None, **kw)
    with pytest.raises(accm.AccumulatorOverflowError) as fast_err:
        integer.fully_connected(x, w, None, **kw)
    assert str(ref_err.value) == str(fast_err.value)
    assert ref_err.value.step == 2 and ref_err.value.partial_sum == 3 * 127 * 127
