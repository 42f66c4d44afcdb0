"""The fast kernels (VNNI GEMM and conv, fused epilogues) equal the plain reference loops exactly.

Each fast kernel sits beside an obviously-right loop (``fast.gemm_loops.gemm_i64``: eq. 1 in
int64; ``fast.conv_loops.im2col`` + ``gemm_i64``; ``epilogue._epilogue``: one
``requantize_scalar`` per element).
Shapes are drawn small and odd (not multiples of the 6 x 64 micro-tile or of 4 in K), zero points
over the full range, int8 and uint8 on both sides; the public layers are also compared with the
fast paths switched off, for every profile.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import int_arrays, requant_cases, zero_points

from npquant import fixedpoint as fp
from npquant.integer import conv2d, depthwise_conv2d, fully_connected
from npquant.integer.epilogue import _epilogue, _epilogue_rows, double_rounding_row, fuses_epilogue
from npquant.integer.fast import vnni_gemm as fast_gemm
from npquant.integer.fast.conv_loops import depthwise_i32 as _depthwise_i32
from npquant.integer.fast.conv_loops import depthwise_i32_unit_stride as _depthwise_i32_unit_stride
from npquant.integer.fast.conv_loops import im2col as _im2col
from npquant.integer.fast.gemm_loops import gemm_i64 as _gemm_i64
from npquant.integer.fast.vnni_conv import conv_exact_vnni
from npquant.profiles import PROFILES
from npquant.requant import KIND_DOUBLE_ROUNDING

needs_vnni = pytest.mark.skipif(not fast_gemm.HAVE_VNNI, reason="CPU without AVX-512 VNNI")
BYTE_DTYPES = (np.int8, np.uint8)


def _reference_gemm(a, w, za, zw, bias):
    out = np.empty((a.shape[0], w.shape[0]), dtype=np.int64)
    _gemm_i64(a, w, np.int64(za), zw, bias, out)
    return out


@st.composite
def gemm_operands(draw, max_m=20, max_k=80, max_n=140):
    m, k, n = draw(st.integers(1, max_m)), draw(st.integers(1, max_k)), draw(st.integers(1, max_n))
    adt, wdt = draw(st.sampled_from(BYTE_DTYPES)), draw(st.sampled_from(BYTE_DTYPES))
    a = draw(int_arrays(adt, (m, k)))
    w = draw(int_arrays(wdt, (n, k)))
    za = draw(zero_points(adt))
    if draw(st.booleans()):
        zw = np.array(draw(st.lists(zero_points(wdt), min_size=n, max_size=n)), dtype=np.int64)
    else:
        zw = np.full(n, draw(zero_points(wdt)), dtype=np.int64)
    bias = draw(int_arrays(np.int32, (n,))).astype(np.int64) >> draw(st.integers(0, 31))
    return a, w, za, zw, bias


@needs_vnni
@settings(max_examples=150, deadline=None)
@given(gemm_operands())
def test_vnni_gemm_equals_int64_loop(ops):
    a, w, za, zw, bias = ops
    expected = _reference_gemm(a, w, za, zw, bias)
    if np.abs(expected).max() >= 2**31:  # outside the fast path's contract (the bound is larger)
        return
    got = fast_gemm.gemm_exact_vnni(a, w, za, zw, bias)
    assert got.dtype == np.int32
    assert np.array_equal(got, expected), f"gemm_exact_vnni {a.shape} x {w.shape}, za={za}"


@needs_vnni
@settings(max_examples=40, deadline=None)
@given(gemm_operands(max_m=40, max_k=300, max_n=200))
def test_vnni_gemm_large_shapes(ops):
    a, w, za, zw, bias = ops
    expected = _reference_gemm(a, w, za, zw, bias)
    if np.abs(expected).max() >= 2**31:
        return
    assert np.array_equal(fast_gemm.gemm_exact_vnni(a, w, za, zw, bias), expected)


@st.composite
def conv_operands(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, og = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw, dh, dw = (draw(st.integers(1, 2)) for _ in range(4))
    h = draw(st.integers((kh - 1) * dh + 1, 14))
    wd = draw(st.integers((kw - 1) * dw + 1, 14))
    n = draw(st.integers(1, 3))
    adt, wdt = draw(st.sampled_from(BYTE_DTYPES)), draw(st.sampled_from(BYTE_DTYPES))
    xp = draw(int_arrays(adt, (n, cg * groups, h, wd)))
    w = draw(int_arrays(wdt, (og * groups, cg, kh, kw)))
    zx = draw(zero_points(adt))
    zw = np.array(draw(st.lists(zero_points(wdt), min_size=og * groups, max_size=og * groups)),
                  dtype=np.int64)
    bias = draw(int_arrays(np.int32, (og * groups,))).astype(np.int64) >> 12
    oh = (h - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wd - ((kw - 1) * dw + 1)) // sw + 1
    return xp, w, zx, zw, bias, (sh, sw), (dh, dw), groups, (oh, ow)


@needs_vnni
@settings(max_examples=150, deadline=None)
@given(conv_operands())
def test_vnni_conv_equals_im2col_int64_loop(ops):
    xp, w, zx, zw, bias, stride, dilation, groups, (oh, ow) = ops
    o_len, cg, kh, kw = w.shape
    n = xp.shape[0]
    cols = np.empty((groups, n * oh * ow, cg * kh * kw), dtype=np.int16)
    _im2col(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1], oh, ow, groups, cols)
    og = o_len // groups
    expected = np.empty((n * oh * ow, o_len), dtype=np.int64)
    for g in range(groups):
        sl = slice(g * og, (g + 1) * og)
        expected[:, sl] = _reference_gemm(cols[g], w[sl].reshape(og, -1), zx, zw[sl], bias[sl])
    expected = expected.reshape(n, oh, ow, o_len).transpose(0, 3, 1, 2)
    got, _ = conv_exact_vnni(xp, w, zx, zw, bias, stride, dilation, groups, (oh, ow))
    assert np.array_equal(got, expected), f"conv_exact_vnni x {xp.shape} w {w.shape} {ops[5:]}"


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_unit_stride_depthwise_equals_plain_loop(data):
    c, mult = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    kh, kw, dh, dw = (data.draw(st.integers(1, 3)) for _ in range(4))
    h = data.draw(st.integers((kh - 1) * dh + 1, 12))
    wd = data.draw(st.integers((kw - 1) * dw + 1, 40))
    adt, wdt = data.draw(st.sampled_from(BYTE_DTYPES)), data.draw(st.sampled_from(BYTE_DTYPES))
    xp = data.draw(int_arrays(adt, (2, c, h, wd)))
    w = data.draw(int_arrays(wdt, (c * mult, kh, kw)))
    zx = data.draw(zero_points(adt))
    zw = np.array(data.draw(st.lists(zero_points(wdt), min_size=c * mult, max_size=c * mult)),
                  dtype=np.int64)
    bias = data.draw(int_arrays(np.int32, (c * mult,))).astype(np.int64) >> 8
    shape = (2, c * mult, h - (kh - 1) * dh, wd - (kw - 1) * dw)
    expected, got = np.empty(shape, np.int32), np.empty(shape, np.int32)
    _depthwise_i32(xp, w, np.int64(zx), zw, bias, np.int64(mult), 1, 1, dh, dw, expected)
    _depthwise_i32_unit_stride(xp, w, np.int64(zx), zw, bias, np.int64(mult), dh, dw, got)
    assert np.array_equal(got, expected), f"depthwise x {xp.shape} w {w.shape} dil {(dh, dw)}"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_row_epilogue_equals_plain_epilogue(data):
    """``_epilogue_rows`` (rule hoisted per row, vectorized float32 ties-even) = ``_epilogue``."""
    a_len, c_len, b_len = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 9)),
                           data.draw(st.integers(1, 40)))
    profile, params, _ = data.draw(requant_cases(
        data.draw(st.sampled_from(["conv", "depthwise_conv", "fully_connected"])), c_len))
    assume(fuses_epilogue(params))  # float32_onednn has its own epilogue (test_onednn_rule)
    acc = data.draw(int_arrays(np.int32, (a_len, c_len, b_len)))
    acc = acc >> data.draw(st.integers(0, 31))
    if np.any(params.shift > 0):
        acc = acc >> 31  # double rounding with M >= 1 needs acc 2^shift in int32
    odt = data.draw(st.sampled_from([np.int8, np.uint8, np.int16]))
    info = np.iinfo(odt)
    zo = data.draw(st.integers(int(info.min), int(info.max)))
    lo = data.draw(st.integers(int(info.min), int(info.max)))
    hi = data.draw(st.integers(lo, int(info.max)))
    args = (acc, np.int64(params.kind_code), params.channel_ties(c_len),
            params.quantized_multiplier.astype(np.int64), params.shift.astype(np.int64),
            params.multiplier.astype(np.float64), np.int64(zo), np.int64(lo), np.int64(hi))
    expected, got = np.empty(acc.shape, odt), np.empty(acc.shape, odt)
    _epilogue(*args, expected)
    _epilogue_rows(*args, got)
    assert np.array_equal(got, expected), f"epilogue rows differ, profile {profile}"


def _edge_int32() -> np.ndarray:
    """+-2^i plus -2..2 for every i, the int32 ends and 0 (gemmlowp's edge set), in int32."""
    powers = [s * (1 << i) + d for i in range(32) for s in (1, -1) for d in range(-2, 3)]
    vals = np.array(powers + [fp.INT32_MIN, fp.INT32_MIN + 1, fp.INT32_MAX, 0], np.int64)
    return np.unique(vals[(vals >= fp.INT32_MIN) & (vals <= fp.INT32_MAX)]).astype(np.int32)


@pytest.mark.parametrize("ties", [fp.TIES_UP, fp.TIES_AWAY, fp.TIES_EVEN])
def test_double_rounding_row_equals_scalar(ties):
    """``epilogue.double_rounding_row`` (branch-free, vectorized) = ``_epilogue``'s one
    ``double_rounding_multiply_scalar`` + clamp per element: every shift -31..31 (for
    ``shift > 0`` only accumulators with ``acc 2^shift`` in int32, the domain check's contract),
    multipliers at their ends (not INT32_MIN, which ``requantize_row`` keeps on the scalar
    loop), accumulators on the edge set (the ties of every rounding shift,
    ``(2 k + 1) 2^(e-1)``, are in it) and random ones."""
    rng = np.random.default_rng(5)
    acc_all = np.concatenate([_edge_int32(), rng.integers(fp.INT32_MIN, fp.INT32_MAX, 500,
                                                          dtype=np.int64).astype(np.int32)])
    multipliers = [1 << 30, (1 << 31) - 1, (1 << 30) + 1, 1518500250, 0, 1, -(1 << 30),
                   fp.INT32_MIN + 1]
    kind = np.int64(KIND_DOUBLE_ROUNDING)
    for shift in range(-31, 32):
        acc = acc_all[np.abs(acc_all.astype(np.int64)) < 2**(31 - shift)] if shift > 0 \
            else acc_all
        for qm in multipliers:
            for zo, lo, hi in ((0, -128, 127), (-37, -100, 90), (5, -32768, 32767)):
                got, want = np.empty(acc.shape, np.int16), np.empty((1, 1, acc.size), np.int16)
                double_rounding_row(acc, np.int64(qm), np.int64(shift), np.int64(ties),
                                    np.int64(zo), np.int64(lo), np.int64(hi), got)
                _epilogue(acc.reshape(1, 1, -1), kind, np.array([ties], np.int64),
                          np.array([qm], np.int64), np.array([shift], np.int64),
                          np.ones(1), np.int64(zo), np.int64(lo), np.int64(hi), want)
                if not np.array_equal(got, want[0, 0]):
                    k = int(np.argwhere(got != want[0, 0])[0][0])
                    raise AssertionError(f"acc={acc[k]} M0={qm} shift={shift} ties={ties}: "
                                         f"{got[k]}, but should be {want[0, 0, k]}")


@st.composite
def layer_cases(draw, kind):
    adt = draw(st.sampled_from(BYTE_DTYPES + (np.int16,)))
    wdt = draw(st.sampled_from(BYTE_DTYPES))
    odt = draw(st.sampled_from((np.int8, np.uint8, np.int16)))
    if kind == "fc":
        m, k, o = draw(st.integers(1, 13)), draw(st.integers(1, 70)), draw(st.integers(1, 70))
        x, w = draw(int_arrays(adt, (m, k))), draw(int_arrays(wdt, (o, k)))
        geom = {}
    elif kind == "conv":
        c, o, k = draw(st.integers(1, 6)), draw(st.integers(1, 13)), draw(st.integers(1, 3))
        hw = draw(st.integers(k, 11))
        x, w = draw(int_arrays(adt, (2, c, hw, hw + 1))), draw(int_arrays(wdt, (o, c, k, k)))
        geom = {"padding": draw(st.integers(0, 1)), "stride": draw(st.integers(1, 2))}
    else:
        c, mult, k = draw(st.integers(1, 12)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
        hw = draw(st.integers(k, 11))
        x, w = draw(int_arrays(adt, (2, c, hw, hw + 2))), draw(int_arrays(wdt, (c * mult, 1, k, k)))
        geom = {"padding": draw(st.integers(0, 1)), "stride": draw(st.integers(1, 2))}
    o = w.shape[0]
    op = {"fc": "fully_connected", "conv": "conv", "depthwise": "depthwise_conv"}[kind]
    profile, params, _ = draw(requant_cases(op, o))
    kw = {"x_zero_point": draw(zero_points(adt)), "out_zero_point": draw(zero_points(odt)),
          "w_zero_point": draw(zero_points(wdt)), "requant": params, "profile": profile,
          "out_dtype": odt, "activation": draw(st.sampled_from([None, "relu"])),
          "return_accumulators": True}
    bias = draw(int_arrays(np.int32, (o,))) >> 16
    return x, w, bias, geom, kw


def _run(kind, x, w, bias, geom, kw):
    if kind == "fc":
        return fully_connected(x, w, bias, **kw)
    if kind == "conv":
        return conv2d(x, w, bias, **geom, **kw)
    return depthwise_conv2d(x, w, bias, **geom, **kw)


@pytest.mark.parametrize("kind", ["fc", "conv", "depthwise"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_layers_fast_paths_equal_plain_paths(kind, data):
    """Outputs and accumulators of the public layers with and without the fast paths."""
    x, w, bias, geom, kw = data.draw(layer_cases(kind))
    fast = _run(kind, x, w, bias, geom, kw)
    with mock.patch.object(fast_gemm, "HAVE_VNNI", False):
        plain = _run(kind, x, w, bias, geom, kw)
    assert np.array_equal(fast.acc, plain.acc), f"{kind} accumulators, profile {kw['profile']}"
    assert np.array_equal(fast.out, plain.out), f"{kind} output, profile {kw['profile']}"
    assert fast.out.dtype == plain.out.dtype
    out_only = _run(kind, x, w, bias, geom, {**kw, "return_accumulators": False})
    assert np.array_equal(out_only, plain.out), f"{kind} output without accumulators"


def test_one_channel_conv_uses_the_conv_rule():
    """``conv2d`` with C = groups = 1 is a CONV_2D (the ``conv`` rule); ``depthwise_conv2d`` on
    the same data is a DEPTHWISE_CONV_2D (the ``depthwise_conv`` rule): the op, not the shape."""
    x = np.arange(-20, 0, dtype=np.int8).reshape(1, 1, 4, 5)
    w = np.ones((1, 1, 1, 1), dtype=np.int8)
    kw = {"x_zero_point": 0, "out_zero_point": 0, "x_scale": 1.0, "w_scale": 1.0,
          "out_scale": 4.0, "profile": "tflite-optimized", "return_accumulators": True}
    prof = PROFILES["tflite-optimized"]
    assert prof.conv.channel_ties(1)[0] != prof.depthwise_conv.channel_ties(1)[0]
    conv = conv2d(x, w, **kw)
    dw = depthwise_conv2d(x, w, **kw)
    assert np.array_equal(conv.acc, dw.acc)
    # acc / 4 ties at odd multiples of 2: up (conv rule) and away (depthwise tail) differ below 0
    acc = conv.acc.astype(np.int64)
    ties = (acc % 4 == 2) & (acc < 0)
    assert ties.sum() == 5
    assert np.array_equal(conv.out[ties], (acc[ties] + 2) // 4)
    assert np.array_equal(dw.out[ties], (acc[ties] - 2) // 4)

