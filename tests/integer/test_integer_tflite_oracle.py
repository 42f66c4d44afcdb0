"""npquant's integer kernels under the ``tflite`` profile against the TFLite interpreter's
reference kernels (BUILTIN_REF), bit for bit: int8 CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
ADD, AVERAGE_POOL_2D, MAX_POOL_2D on hundreds of seeded random single-op models
(npquant.interop.tflite builds and runs them).

Half of the cases use power-of-two scales, where exact ties of the final rounding are frequent,
so a wrong tie rule fails; the others use random float32 scales, per-tensor and per-channel, so a
wrong multiplier derivation fails.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import require

from npquant.fixedpoint import Ties
from npquant.integer import add, avg_pool2d, conv2d, depthwise_conv2d, fully_connected, max_pool2d
from npquant.profiles import PROFILES, RequantKind, RequantRule
from npquant.profiles import MultiplierDerivation as MD

pytestmark = pytest.mark.oracle

ACT = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}


def _scales(rng, dyadic: bool, k: int, out_ch: int, per_channel: bool):
    n_w = out_ch if per_channel else 1
    if dyadic:
        sx = 2.0 ** -int(rng.integers(3, 8))
        sw = 2.0 ** -rng.integers(5, 9, n_w).astype(np.float64)
        sy = 2.0 ** -int(rng.integers(0, 5))
    else:
        sx = float(np.float32(rng.uniform(0.005, 0.1)))
        sw = rng.uniform(0.002, 0.03, n_w).astype(np.float32).astype(np.float64)
        sy = float(np.float32(sx * float(sw.max()) * np.sqrt(k) * rng.uniform(8, 80)))
    return sx, (sw if per_channel else float(sw[0])), sy


def _case(rng, kind: str):
    """Random int8 op and its qparams; w int8 narrow range, zero point 0 (TFLite weights)."""
    dyadic = bool(rng.integers(0, 2))
    per_channel = bool(rng.integers(0, 2))
    act = str(rng.choice(list(ACT)))
    n = int(rng.integers(1, 3))
    if kind == "fc":
        n = int(rng.integers(1, 9))
        k, o = int(rng.integers(1, 64)), int(rng.integers(1, 33))
        x = rng.integers(-128, 128, (n, k)).astype(np.int8)
        w = rng.integers(-127, 128, (o, k)).astype(np.int8)
        geom = {}
    else:
        c = int(rng.integers(1, 5))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, wd = int(rng.integers(kh + 2, 10)), int(rng.integers(kw + 2, 10))
        x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
        if kind == "conv":
            o = int(rng.integers(1, 7))
            w = rng.integers(-127, 128, (o, c, kh, kw)).astype(np.int8)
        else:
            o = c * int(rng.integers(1, 4))
            w = rng.integers(-127, 128, (o, 1, kh, kw)).astype(np.int8)
        k = w.shape[1] * kh * kw
        geom = dict(stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                    dilation=(int(rng.integers(1, 3)), 1) if rng.integers(0, 4) == 0 else (1, 1),
                    padding=str(rng.choice(["SAME", "VALID"])))
        eff = (kh - 1) * geom["dilation"][0] + 1
        if geom["padding"] == "VALID" and eff > h:
            geom["dilation"] = (1, 1)
    sx, sw, sy = _scales(rng, dyadic, k, o, per_channel)
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    bias = None
    if rng.integers(0, 4):
        bias = rng.integers(-(2**14), 2**14, o).astype(np.int32)
    return dict(x=x, w=w, bias=bias, sx=sx, sw=sw, sy=sy, zx=zx, zy=zy, act=act, geom=geom)


def _tflite(kind: str, c) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    op = {"fc": "fully_connected", "conv": "conv2d", "depthwise": "depthwise_conv2d"}[kind]
    p = dict(w=c["w"], bias=c["bias"], x_scale=c["sx"], x_zero_point=c["zx"], w_scale=c["sw"],
             y_scale=c["sy"], y_zero_point=c["zy"], activation=c["act"], **c["geom"])
    return run_tflite_op(op, [c["x"]], p, kernels="reference")


def _npquant(kind: str, c, profile="tflite") -> np.ndarray:
    kw = dict(x_zero_point=c["zx"], out_zero_point=c["zy"], x_scale=c["sx"], w_scale=c["sw"],
              out_scale=c["sy"], profile=profile, activation=ACT[c["act"]], **c["geom"])
    fn = {"fc": fully_connected, "conv": conv2d, "depthwise": depthwise_conv2d}[kind]
    return fn(c["x"], c["w"], c["bias"], **kw)


def _compare(kind: str, cases: int, seed: int) -> None:
    require("ai_edge_litert")
    rng = np.random.default_rng(seed)
    for i in range(cases):
        c = _case(rng, kind)
        got, want = _npquant(kind, c), _tflite(kind, c)
        if not np.array_equal(got, want):
            bad = tuple(int(v) for v in np.argwhere(got != want)[0])
            raise AssertionError(
                f"{kind} case {i} (seed {seed}): out{bad}={got[bad]}, but TFLite gives "
                f"{want[bad]}; x {c['x'].shape} w {c['w'].shape} {c['geom']} act={c['act']} "
                f"scales {c['sx']}, {c['sw']}, {c['sy']} zps {c['zx']}, {c['zy']}")


@pytest.mark.parametrize("kind", ["conv", "depthwise", "fc"])
def test_tflite_reference_bit_exact(kind):
    _compare(kind, 150, seed={"conv": 11, "depthwise": 12, "fc": 13}[kind])


# A rival rule per op that the same cases must tell apart: otherwise the oracle proves nothing.
_RIVALS = {
    "conv": dict(conv=RequantRule(RequantKind.DOUBLE_ROUNDING, MD.DOUBLE, Ties.UP)),
    "depthwise": dict(depthwise_conv=RequantRule(RequantKind.DOUBLE_ROUNDING, MD.DOUBLE, Ties.UP)),
    "fc": dict(fully_connected=RequantRule(RequantKind.DOUBLE_ROUNDING, MD.DOUBLE, Ties.AWAY)),
}


@pytest.mark.parametrize("kind", ["conv", "depthwise", "fc"])
def test_cases_distinguish_a_rival_rule(kind):
    """The seeded cases of ``test_tflite_reference_bit_exact`` separate the profile's rule from
    a close rival (final ties up instead of away; FC in double rounding instead of float64)."""
    require("ai_edge_litert")
    rival = replace(PROFILES["tflite"], name="rival", **_RIVALS[kind])
    rng = np.random.default_rng({"conv": 11, "depthwise": 12, "fc": 13}[kind])
    differ = 0
    for _ in range(150):
        c = _case(rng, kind)
        differ += int(np.sum(_npquant(kind, c, rival) != _tflite(kind, c)))
    assert differ > 0, f"no case tells the {kind} rule from its rival"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["conv", "depthwise", "fc"])
def test_tflite_reference_bit_exact_campaign(kind):
    for seed in range(100, 110):
        _compare(kind, 200, seed)


def test_tflite_add_and_pools_bit_exact():
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    rng = np.random.default_rng(21)
    for i in range(150):
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(2, 7)),
                 int(rng.integers(2, 7)))
        a = rng.integers(-128, 128, shape).astype(np.int8)
        b = rng.integers(-128, 128, shape).astype(np.int8)
        sa, sb, so = (float(np.float32(v)) for v in rng.uniform(0.005, 0.2, 3))
        za, zb, zo = (int(v) for v in rng.integers(-128, 128, 3))
        act = str(rng.choice(list(ACT)))
        want = run_tflite_op("add", [a, b], dict(a_scale=sa, a_zero_point=za, b_scale=sb,
                                                 b_zero_point=zb, y_scale=so, y_zero_point=zo,
                                                 activation=act), kernels="reference")
        got = add(a, b, a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb, out_scale=so,
                  out_zero_point=zo, activation=ACT[act], profile="tflite")
        assert np.array_equal(got, want), f"add case {i}: {sa}, {sb}, {so}, {za}, {zb}, {zo}"
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        k = (min(k[0], shape[2]), min(k[1], shape[3]))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = str(rng.choice(["SAME", "VALID"]))
        for op, fn in (("average_pool2d", avg_pool2d), ("max_pool2d", max_pool2d)):
            want = run_tflite_op(op, [a], dict(kernel_size=k, stride=s, padding=pad,
                                               x_scale=sa, x_zero_point=za, activation=act),
                                 kernels="reference")
            got = fn(a, k, s, pad, zero_point=za, scale=sa, activation=ACT[act],
                     profile="tflite")
            assert np.array_equal(got, want), f"{op} case {i}: k={k} s={s} {pad} {act}"
