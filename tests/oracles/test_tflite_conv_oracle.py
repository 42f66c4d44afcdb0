"""TFLite int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED against the exact int64 accumulator
followed by each candidate requantization rule (docs/framework_facts.md, "TFLite")."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from oracle_cases import conv_case
from oracle_refs import clamp, effective_scale, requantize, tflite_activation_range

pytestmark = pytest.mark.oracle

OP = {"conv": "conv2d", "depthwise": "depthwise_conv2d", "fc": "fully_connected"}


def run_case(c, kind: str, kernels: str) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    p = dict(w=c.w, bias=c.bias, x_scale=c.x_scale, x_zero_point=c.x_zp,
             w_scale=c.w_scale_arg(), y_scale=c.y_scale, y_zero_point=c.y_zp,
             activation=c.activation)
    if kind != "fc":
        p.update(stride=c.stride, dilation=c.dilation, padding=c.padding)
    return run_tflite_op(OP[kind], [c.x], p, kernels=kernels).astype(np.int64)


def expected(c, rule: str, derivation: str) -> np.ndarray:
    """Candidate rule applied to the exact accumulator, + Z_out, activation clamp."""
    lo, hi = tflite_activation_range(c.activation, c.y_scale, c.y_zp)
    m = effective_scale(c.x_scale, c.w_scale, c.y_scale, derivation)
    return clamp(requantize(c.acc, m, rule) + c.y_zp, lo, hi)


def measure(kind: str, kernels: str, rule: str, derivation: str, rival: str, n: int, seed: int,
            **case_kw) -> None:
    """Every case must equal ``rule`` exactly; ``rival`` (the nearest other rule) must differ on
    at least one case, so the cases really tell the two apart."""
    require("ai_edge_litert")
    rng = np.random.default_rng(seed)
    rival_differs = 0
    for i in range(n):
        c = conv_case(rng, kind=kind, **case_kw)
        got = run_case(c, kind, kernels)
        want = expected(c, rule, derivation)
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[0]
            pytest.fail(f"{kind}/{kernels} case {i} (seed {seed}): out{tuple(bad)}="
                        f"{got[tuple(bad)]}, but {rule}/{derivation} gives {want[tuple(bad)]} "
                        f"[{c}]")
        rival_differs += not np.array_equal(got, expected(c, rival, derivation))
    assert rival_differs > 0, f"no case separated {rule} from {rival}; strengthen the cases"


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_reference_conv_is_gemmlowp_double_rounding(kind):
    measure(kind, "reference", "gemmlowp", "double", "gemmlowp_up", n=80, seed=11)


def test_optimized_conv_final_shift_rounds_ties_up():
    measure("conv", "optimized", "gemmlowp_up", "double", "gemmlowp", n=80, seed=12)


def test_xnnpack_conv_is_float32_ties_to_even():
    measure("conv", "xnnpack", "f32_rne", "f32", "single", n=80, seed=13)
