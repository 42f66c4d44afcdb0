"""TFLite int8 ADD, AVERAGE/MAX_POOL_2D, QUANTIZE, DEQUANTIZE against plain references, on the
reference, optimized and XNNPACK paths (docs/framework_facts.md, "TFLite")."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from oracle_refs import (
    dequantize_rule,
    f32,
    max_pool,
    near_ties,
    quantize_rule,
    tflite_activation_range,
    tflite_add,
    tflite_add_optimized,
    tflite_avg_pool,
    xnnpack_add,
)

pytestmark = pytest.mark.oracle


def run(*args, **kw):
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    return run_tflite_op(*args, **kw)


def add_case(rng):
    """Half the cases with dyadic scales (frequent ties), half with random ones."""
    if rng.random() < 0.5:
        sa = 2.0 ** -rng.integers(4, 9) * rng.integers(1, 8)
        sb = 2.0 ** -rng.integers(4, 9) * rng.integers(1, 8)
        sy = 2.0 ** -rng.integers(3, 8)
    else:
        sa, sb = 10 ** rng.uniform(-3, -1, 2)
        sy = max(sa, sb) * rng.uniform(0.5, 3)
    sa, sb, sy = (float(f32(v)) for v in (sa, sb, sy))
    za, zb, zy = (int(v) for v in rng.integers(-128, 128, 3))
    a = rng.integers(-128, 128, (1, 4, 64), dtype=np.int8)
    b = rng.integers(-128, 128, (1, 4, 64), dtype=np.int8)
    return a, b, (sa, za, sb, zb, sy, zy)


ADD_RULES = {"reference": (tflite_add, tflite_add_optimized),
             "optimized": (tflite_add_optimized, tflite_add),
             "xnnpack": (xnnpack_add, tflite_add)}


@pytest.mark.parametrize("kernels", list(ADD_RULES))
def test_add(kernels, n=200):
    """reference: gemmlowp double rounding on all three rescalings (left shift 20); optimized:
    single rounding (ties up) on the two input rescalings, double rounding on the output;
    XNNPACK: one integer multiply-add with 21-bit multipliers and one shift (ties up)."""
    rule, rival = ADD_RULES[kernels]
    rng = np.random.default_rng(3000)  # the same cases for every path
    rival_differs = 0
    for i in range(n):
        a, b, (sa, za, sb, zb, sy, zy) = add_case(rng)
        got = run("add", [a, b], dict(a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb,
                                      y_scale=sy, y_zero_point=zy), kernels=kernels)
        want = rule(a, b, sa, za, sb, zb, sy, zy)
        assert np.array_equal(got, want), f"case {i}: {kernels} add != {rule.__name__}"
        rival_differs += not np.array_equal(got, rival(a, b, sa, za, sb, zb, sy, zy))
    assert rival_differs > 0


def pool_case(rng):
    c = int(rng.integers(1, 20))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    h, w = int(rng.integers(kh, 9)), int(rng.integers(kw, 9))
    x = rng.integers(-128, 128, (1, c, h, w), dtype=np.int8)
    s, z = float(f32(10 ** rng.uniform(-2, -0.5))), int(rng.integers(-100, 100))
    return x, dict(kernel_size=(kh, kw), stride=stride, padding=str(rng.choice(["SAME", "VALID"])),
                   activation=str(rng.choice(["NONE", "RELU", "RELU6"])), x_scale=s,
                   x_zero_point=z)


@pytest.mark.parametrize("kernels", ["reference", "optimized"])
@pytest.mark.parametrize("op", ["average_pool2d", "max_pool2d"])
def test_pools(op, kernels, n=100):
    """Average: in-bounds sum / in-bounds count, ties away from zero (a half-up rival must
    differ somewhere); max: max then clamp. Same on reference and optimized kernels."""
    from npquant.interop.tflite import tflite_padding

    rng = np.random.default_rng(3100 + 2 * (op == "max_pool2d") + (kernels == "optimized"))
    rival_differs = 0
    for i in range(n):
        x, p = pool_case(rng)
        k, st = p["kernel_size"], p["stride"]
        _, pads = tflite_padding(p["padding"], x.shape[2:], k, st)
        lo, hi = tflite_activation_range(p["activation"], p["x_scale"], p["x_zero_point"])
        got = run(op, [x], p, kernels=kernels)
        ref = tflite_avg_pool if op == "average_pool2d" else max_pool
        want = ref(x, k, st, pads, lo, hi)
        assert np.array_equal(got, want), f"case {i} {p}"
        if op == "average_pool2d":  # rival: the same average with ties rounded up (floor(v+1/2))
            rival = tflite_avg_pool(x.astype(np.int64) * 2 + 1, k, st, pads, -2**40, 2**40)
            rival_differs += not np.array_equal(got, np.clip(rival // 2, lo, hi))
    assert op == "max_pool2d" or rival_differs > 0


def test_xnnpack_declines_int8_average_pool():
    """The XNNPACK delegate does not take int8 AVERAGE_POOL_2D: it stays on the builtin kernel."""
    x = np.zeros((1, 2, 4, 4), np.int8)
    with pytest.raises(RuntimeError, match="declined"):
        run("average_pool2d", [x], dict(kernel_size=2, x_scale=0.1, x_zero_point=0),
            kernels="xnnpack")


QUANT_RULES = {"reference": ("away_f32div", "away_f64div"), "optimized": ("opt8", "rne_mul_inv"),
               "xnnpack": ("rne_mul_inv", "opt8")}


@pytest.mark.parametrize("kernels", list(QUANT_RULES))
def test_quantize(kernels, n=150):
    """float32 -> int8 on inputs at and one ulp around (k + 1/2) s, lengths 1..39 (so both
    whole 8-blocks and tails occur)."""
    rule, rival = QUANT_RULES[kernels]
    rng = np.random.default_rng(3200 + list(QUANT_RULES).index(kernels))
    rival_differs = 0
    for i in range(n):
        s, z = float(f32(10 ** rng.uniform(-3, 0))), int(rng.integers(-50, 50))
        x = near_ties(rng, s, int(rng.integers(1, 40))).reshape(1, -1)
        got = run("quantize", [x], dict(y_scale=s, y_zero_point=z), kernels=kernels)
        want = quantize_rule(x, s, z, rule)
        assert np.array_equal(got, want), f"case {i}: s={s!r} z={z} x={x.tolist()}"
        rival_differs += not np.array_equal(got, quantize_rule(x, s, z, rival))
    assert rival_differs > 0


DEQUANT_RULES = {"reference": ("exact_once", "two_step"), "optimized": ("opt8", "exact_once"),
                 "xnnpack": ("exact_once", "opt8")}


@pytest.mark.parametrize("kernels", list(DEQUANT_RULES))
def test_dequantize(kernels, n=150):
    """int8 -> float32 compared bit for bit (np.array_equal on float32)."""
    rule, rival = DEQUANT_RULES[kernels]
    rng = np.random.default_rng(3300 + list(DEQUANT_RULES).index(kernels))
    rival_differs = 0
    for i in range(n):
        s = float(f32(10 ** rng.uniform(-3, 0) * rng.uniform(1, 2)))
        z = int(rng.integers(-128, 128))
        q = rng.integers(-128, 128, (1, int(rng.integers(1, 40)))).astype(np.int8)
        got = run("dequantize", [q], dict(x_scale=s, x_zero_point=z), kernels=kernels)
        want = dequantize_rule(q, s, z, rule)
        assert got.dtype == np.float32 and np.array_equal(got, want), f"case {i}: s={s!r} z={z}"
        rival_differs += not np.array_equal(got, dequantize_rule(q, s, z, rival))
    assert rival_differs > 0
