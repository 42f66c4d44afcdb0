"""TFLite int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED against the exact int64 accumulator
followed by each candidate requantization rule (docs/framework_facts.md, "TFLite").

Two kinds of cases: random ones (half "dyadic", where ties are frequent, so they pin the tie
rule) and probes (1x1 ops whose accumulators sit where two multiplier derivations disagree,
so they pin how M is derived from the float32 scales)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from oracle_cases import conv_case, probe_case
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


def first_mismatch(got, want, what: str, c) -> str:
    bad = tuple(np.argwhere(got != want)[0])
    return f"{what}: out{bad}={got[bad]}, but should be {want[bad]} [{c}]"


# (kind, kernels, rule, derivation, rival rule that the cases must tell apart)
RULES = [
    ("conv", "reference", "gemmlowp", "double", "gemmlowp_up"),
    ("depthwise", "reference", "gemmlowp", "double", "gemmlowp_up"),
    ("fc", "reference", "f64_away", "double", "gemmlowp"),
    ("conv", "optimized", "gemmlowp_up", "double", "gemmlowp"),
    ("depthwise", "optimized", "gemmlowp_up8", "double", "gemmlowp_up"),
    ("fc", "optimized", "gemmlowp_up", "double", "gemmlowp"),
    ("conv", "xnnpack", "f32_rne", "f32", "single"),
    ("depthwise", "xnnpack", "f32_rne", "f32", "single"),
    ("fc", "xnnpack", "f32_rne", "f32", "single"),
]


@pytest.mark.parametrize("kind,kernels,rule,derivation,rival", RULES,
                         ids=[f"{k}-{p}-{r}" for k, p, r, _, _ in RULES])
def test_tie_rule(kind, kernels, rule, derivation, rival, n=60):
    """Every random case equals ``rule`` exactly; ``rival`` must differ on some case."""
    require("ai_edge_litert")
    seed = 1000 + RULES.index((kind, kernels, rule, derivation, rival))
    rng = np.random.default_rng(seed)
    rival_differs = 0
    for i in range(n):
        c = conv_case(rng, kind=kind)
        got = run_case(c, kind, kernels)
        want = expected(c, rule, derivation)
        assert np.array_equal(got, want), first_mismatch(got, want, f"{kind}/{kernels} case {i} "
                                                         f"seed {seed} {rule}", c)
        rival_differs += not np.array_equal(got, expected(c, rival, derivation))
    assert rival_differs > 0, f"no case separated {rule} from {rival}; strengthen the cases"


# (kind, kernels, per_channel, rule, derivation, rival derivation)
DERIVATIONS = [
    ("conv", "reference", False, "gemmlowp", "double", "f32prod"),
    ("conv", "reference", True, "gemmlowp", "double", "f32prod"),
    ("depthwise", "reference", True, "gemmlowp", "double", "f32prod"),
    ("fc", "reference", False, "f64_away", "double", "f32prod"),
    ("fc", "reference", True, "f64_away", "double", "f32prod"),
    ("conv", "optimized", False, "gemmlowp_up", "double", "f32prod"),
    ("depthwise", "optimized", False, "gemmlowp_up8", "double", "f32prod"),
    # NOTE: the optimized per-tensor FC multiplies the float32 scales first.
    ("fc", "optimized", False, "gemmlowp_up", "f32prod", "double"),
    ("fc", "optimized", True, "gemmlowp_up", "double", "f32prod"),
    ("conv", "xnnpack", False, "f32_rne", "f32", "f32_of_double"),
    ("conv", "xnnpack", True, "f32_rne", "f32", "f32_of_double"),
    ("depthwise", "xnnpack", True, "f32_rne", "f32", "f32_of_double"),
    ("fc", "xnnpack", False, "f32_rne", "f32", "f32_of_double"),
]


@pytest.mark.parametrize("kind,kernels,per_channel,rule,derivation,rival", DERIVATIONS,
                         ids=[f"{k}-{p}-{'pc' if c else 'pt'}-{d}"
                              for k, p, c, _, d, _ in DERIVATIONS])
def test_multiplier_derivation(kind, kernels, per_channel, rule, derivation, rival, n=10):
    """On probe accumulators (where the two derivations give different outputs) the framework
    follows ``derivation`` on every channel."""
    require("ai_edge_litert")
    seed = 2000 + DERIVATIONS.index((kind, kernels, per_channel, rule, derivation, rival))
    rng = np.random.default_rng(seed)
    search_rule = "gemmlowp_up" if rule == "gemmlowp_up8" else rule
    for i in range(n):
        c = probe_case(rng, kind=kind, rule=search_rule, derivations=(derivation, rival),
                       per_channel=per_channel)
        got = run_case(c, kind, kernels)
        want = expected(c, rule, derivation)
        assert np.array_equal(got, want), first_mismatch(got, want, f"probe {i} seed {seed}", c)
        assert not np.array_equal(got, expected(c, rule, rival))


@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_xnnpack_refuses_effective_scale_256(kind):
    """XNNPACK's qs8 conv / fully-connected accept M = f32(f32(s_x s_w) / s_y) < 256 only; at
    M = 256 creating the delegate's runtime fails (the interpreter raises, no fallback)."""
    require("ai_edge_litert")
    from npquant.interop.tflite import run_tflite_op

    x = np.zeros((1, 1, 1, 1) if kind == "conv" else (1, 1), np.int8)
    w = np.ones(x.shape, np.int8)
    for m, accepted in [(np.nextafter(np.float32(256), np.float32(0)), True),
                        (np.float32(256), False)]:
        w_scale = float(m / 256)  # exact: M = 0.5 * (m / 256) / 2^-9 = m
        assert effective_scale(0.5, [w_scale], 2.0**-9, "f32")[0] == m
        p = dict(w=w, x_scale=0.5, x_zero_point=0, w_scale=w_scale, y_scale=2.0**-9,
                 y_zero_point=0)
        if accepted:
            run_tflite_op(OP[kind], [x], p, kernels="xnnpack")
        else:
            with pytest.raises(RuntimeError):
                run_tflite_op(OP[kind], [x], p, kernels="xnnpack")
