"""ONNX Runtime (CPU EP) QLinearConv / QLinearMatMul / ConvInteger / MatMulInteger /
QuantizeLinear / DequantizeLinear against plain references (docs/framework_facts.md, "ORT")."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require, require_exact_u8s8_accumulation
from oracle_cases import conv_case, probe_case
from oracle_refs import (
    clamp,
    dequantize_rule,
    effective_scale,
    f32,
    near_ties,
    quantize_rule,
    requantize,
)

pytestmark = pytest.mark.oracle


def run(*args):
    require("onnxruntime")
    require("onnx")
    from npquant.interop.onnx import run_onnx_op

    return run_onnx_op(*args)


def run_conv_case(c, kind: str) -> np.ndarray:
    if kind == "fc":
        return run("qlinear_matmul", [c.x, np.ascontiguousarray(c.w.T)],
                   dict(a_scale=c.x_scale, a_zero_point=c.x_zp, b_scale=float(c.w_scale[0]),
                        b_zero_point=0, y_scale=c.y_scale, y_zero_point=c.y_zp))
    return run("qlinear_conv", [c.x],
               dict(w=c.w, bias=c.bias, x_scale=c.x_scale, x_zero_point=c.x_zp,
                    w_scale=c.w_scale_arg(), y_scale=c.y_scale, y_zero_point=c.y_zp,
                    stride=c.stride, dilation=c.dilation, pads=c.pads, groups=c.groups))


def expected(c, kind, rule, derivation):
    lo, hi = (-128, 127) if c.x.dtype == np.int8 else (0, 255)
    acc = c.acc - c.bias[None, :] if kind == "fc" else c.acc  # QLinearMatMul has no bias
    m = effective_scale(c.x_scale, c.w_scale, c.y_scale, derivation)
    return clamp(requantize(acc, m, rule) + c.y_zp, lo, hi)


CASES = [(k, t) for k in ("conv", "depthwise", "fc") for t in ("int8", "uint8")]


@pytest.mark.parametrize("kind,xtype", CASES, ids=[f"{k}-{t}" for k, t in CASES])
def test_qlinear_is_float32_ties_to_even(kind, xtype, n=50):
    """QLinearConv (per-tensor and per-channel, groups, pads, strides, dilations) and
    QLinearMatMul: rne(f32(acc) * M) + Z with M = f32(f32(s_x s_w) / s_y). uint8 inputs span
    0..255 in the non-dyadic half, so any int16 pair saturation would show here."""
    require_exact_u8s8_accumulation("ORT u8 x s8 integer sums")
    rng = np.random.default_rng(4000 + CASES.index((kind, xtype)))
    x_range = (-128, 127) if xtype == "int8" else (0, 255)
    rival_differs = 0
    for i in range(n):
        c = conv_case(rng, kind=kind, x_range=x_range, per_channel=False if kind == "fc" else None)
        got = run_conv_case(c, kind).astype(np.int64)
        want = expected(c, kind, "f32_rne", "f32")
        assert np.array_equal(got, want), f"{kind}/{xtype} case {i}: {c}"
        rival_differs += not np.array_equal(got, expected(c, kind, "single", "f32"))
    assert rival_differs > 0


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_qlinear_conv_multiplier_is_float32_quotient(kind, n=10):
    """Probe accumulators where f32(f32(s_x s_w)/s_y) and f32(exact quotient) disagree."""
    require_exact_u8s8_accumulation("ORT u8 x s8 integer sums")
    rng = np.random.default_rng(4100 + (kind == "depthwise"))
    for i in range(n):
        c = probe_case(rng, kind=kind, rule="f32_rne", derivations=("f32", "f32_of_double"),
                       per_channel=True)
        got = run_conv_case(c, kind).astype(np.int64)
        assert np.array_equal(got, expected(c, kind, "f32_rne", "f32")), f"probe {i}: {c}"
        assert not np.array_equal(got, expected(c, kind, "f32_rne", "f32_of_double"))


def test_u8s8_accumulation_is_exact_at_the_int16_pair_limit():
    """255 * 127 * 2 = 64770 overflows an int16 pair sum (x86 vpmaddubsw saturates it to 32767).
    On the machine of docs/framework_facts.md (AVX-512 VNNI) ORT accumulates exactly."""
    require_exact_u8s8_accumulation("ORT u8 x s8 integer sums")
    k = 64
    a = np.full((2, k), 255, np.uint8)
    b = np.full((k, 3), 127, np.int8)
    exact = 255 * 127 * k
    got = run("matmul_integer", [a, b], dict(a_zero_point=0, b_zero_point=0))
    assert got.dtype == np.int32 and np.all(got == exact)
    x, w = np.full((1, k, 1, 1), 255, np.uint8), np.full((3, k, 1, 1), 127, np.int8)
    assert np.all(run("conv_integer", [x], dict(w=w, x_zero_point=0)) == exact)
    y = run("qlinear_conv", [x], dict(w=w, x_scale=1.0, x_zero_point=0, w_scale=1.0,
                                      y_scale=2.0**14, y_zero_point=0))
    assert np.all(y == 127)  # rne(2072640 / 2^14 = 126.50390625); saturated pairs would give 64


@pytest.mark.parametrize("xtype", ["int8", "uint8"])
def test_integer_ops_are_exact_int32(xtype, n=40):
    """ConvInteger / MatMulInteger return the exact accumulator sum (x - Zx)(w - Zw)."""
    require_exact_u8s8_accumulation("ORT u8 x s8 integer sums")
    from oracle_refs import conv2d_acc, matmul_acc

    rng = np.random.default_rng(4200 + (xtype == "uint8"))
    lo, hi = (-128, 127) if xtype == "int8" else (0, 255)
    for i in range(n):
        c = conv_case(rng, kind=str(rng.choice(["conv", "depthwise"])), x_range=(lo, hi),
                      dyadic=False)
        w_zp = int(rng.integers(-10, 11))
        got = run("conv_integer", [c.x], dict(w=c.w, x_zero_point=c.x_zp, w_zero_point=w_zp,
                                              stride=c.stride, dilation=c.dilation, pads=c.pads,
                                              groups=c.groups))
        want = conv2d_acc(c.x, c.w, None, c.x_zp, c.stride, c.pads, c.dilation, c.groups, w_zp)
        assert got.dtype == np.int32 and np.array_equal(got, want), f"conv case {i}"
        a = rng.integers(lo, hi + 1, (3, 37)).astype(np.dtype(xtype))
        b = rng.integers(-128, 128, (37, 5)).astype(np.int8)
        za, zb = int(rng.integers(lo, hi + 1)), int(rng.integers(-128, 128))
        got = run("matmul_integer", [a, b], dict(a_zero_point=za, b_zero_point=zb))
        assert np.array_equal(got, matmul_acc(a, b.T, None, za, zb)), f"matmul case {i}"


def test_quantize_linear_divides_then_rounds_ties_to_even(n=150):
    """QuantizeLinear: rne(f32(x / s)) + Z, per-tensor and per-axis (axis 0)."""
    rng = np.random.default_rng(4300)
    differs = 0
    for i in range(n):
        c = int(rng.integers(1, 4))
        s = (10 ** rng.uniform(-3, 0, c)).astype(np.float32)
        z = rng.integers(-50, 50, c)
        x = np.stack([near_ties(rng, float(s[j]), int(rng.integers(1, 40)) if c == 1 else 9)
                      for j in range(c)]) if c > 1 else near_ties(rng, float(s[0]), 33)
        if c == 1:
            got = run("quantize_linear", [x], dict(y_scale=float(s[0]), y_zero_point=int(z[0]),
                                                   axis=0))
            want = quantize_rule(x, float(s[0]), int(z[0]), "rne_f32div")
            rival = quantize_rule(x, float(s[0]), int(z[0]), "rne_mul_inv")
        else:
            got = run("quantize_linear", [x], dict(y_scale=s.astype(np.float64),
                                                   y_zero_point=z.astype(np.int8), axis=0))
            want = np.stack([quantize_rule(x[j], float(s[j]), int(z[j]), "rne_f32div")
                             for j in range(c)])
            rival = np.stack([quantize_rule(x[j], float(s[j]), int(z[j]), "rne_mul_inv")
                              for j in range(c)])
        assert np.array_equal(got, want), f"case {i}: s={s} z={z} x={x.tolist()}"
        differs += not np.array_equal(got, rival)
    assert differs > 0


def test_dequantize_linear_rounds_once(n=100):
    """DequantizeLinear: f32(s * (q - Z)), the exact product rounded once."""
    rng = np.random.default_rng(4400)
    differs = 0
    for i in range(n):
        s = float(f32(10 ** rng.uniform(-3, 0) * rng.uniform(1, 2)))
        z = int(rng.integers(-128, 128))
        q = rng.integers(-128, 128, int(rng.integers(1, 70))).astype(np.int8)
        got = run("dequantize_linear", [q], dict(x_scale=s, x_zero_point=z, axis=0))
        assert np.array_equal(got, dequantize_rule(q, s, z, "exact_once")), f"case {i}"
        differs += not np.array_equal(got, dequantize_rule(q, s, z, "two_step"))
    assert differs > 0
