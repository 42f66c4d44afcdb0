"""PyTorch quantized conv2d / linear on the x86, fbgemm and qnnpack engines against the exact
accumulator and candidate requantization rules (docs/framework_facts.md, "PyTorch")."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import require, require_exact_u8s8_accumulation
from oracle_cases import conv_case
from oracle_refs import clamp, effective_scale, f32, requantize, round_half_even

pytestmark = [pytest.mark.oracle,
              pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")]


def torch_case(rng, kind):
    """A uint8-activation case with symmetric padding (PyTorch pads both sides equally)."""
    while True:
        c = conv_case(rng, kind=kind, x_range=(0, 255), per_channel=False if kind == "fc" else None)
        if kind == "fc" or (c.pads[0] == c.pads[1] and c.pads[2] == c.pads[3]):
            return c


def run_case(c, kind, engine):
    require("torch")
    from npquant.interop.torch import run_torch_op

    p = dict(w=c.w, x_scale=c.x_scale, x_zero_point=c.x_zp, w_scale=c.w_scale_arg(),
             y_scale=c.y_scale, y_zero_point=c.y_zp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if kind == "fc":
            return run_torch_op("linear", [c.x], p, engine=engine).astype(np.int64)
        p.update(stride=c.stride, dilation=c.dilation, padding=(c.pads[0], c.pads[2]),
                 groups=c.groups)
        return run_torch_op("conv2d", [c.x], p, engine=engine).astype(np.int64)


def acc_without_bias(c, kind):
    return c.acc - (c.bias[None, :] if kind == "fc" else c.bias[None, :, None, None])


def f32_rne(c, kind, derivation="f32"):
    """rne(f32(acc) * M) + Z, M from the float32 scales (fbgemm, qnnpack, x86 linear)."""
    m = effective_scale(c.x_scale, c.w_scale, c.y_scale, derivation)
    return clamp(requantize(acc_without_bias(c, kind), m, "f32_rne") + c.y_zp, 0, 255)


def zp_in_float(c, kind):
    """rne(f32(f32(acc) * f32(s_x s_w)) / s_y + Z): the zero point is added in float32 before
    rounding (x86 engine conv, oneDNN)."""
    acc = acc_without_bias(c, kind).astype(np.float32)
    sxw = (f32(c.x_scale) * c.w_scale.astype(np.float32)).reshape(1, -1, 1, 1)
    return clamp(round_half_even((acc * sxw) / f32(c.y_scale) + f32(c.y_zp)), 0, 255)


RULES = [("conv", "fbgemm", f32_rne, zp_in_float), ("depthwise", "fbgemm", f32_rne, zp_in_float),
         ("fc", "fbgemm", f32_rne, zp_in_float), ("conv", "qnnpack", f32_rne, zp_in_float),
         ("depthwise", "qnnpack", f32_rne, zp_in_float), ("fc", "qnnpack", f32_rne, zp_in_float),
         ("conv", "x86", zp_in_float, f32_rne),
         ("fc", "x86", f32_rne, zp_in_float)]


@pytest.mark.parametrize("kind,engine,rule,rival", RULES,
                         ids=[f"{k}-{e}-{r.__name__}" for k, e, r, _ in RULES])
def test_requantization(kind, engine, rule, rival, n=40):
    """uint8 activations over 0..255 (non-dyadic half) times int8 weights: every case equals
    ``rule`` exactly (so the accumulation is exact, no int16 pair saturation), and ``rival``
    differs somewhere."""
    if engine != "qnnpack":
        require_exact_u8s8_accumulation(f"PyTorch {engine} {kind} u8 x s8 sums")
    rng = np.random.default_rng(5000 + RULES.index((kind, engine, rule, rival)))
    rival_differs = 0
    for i in range(n):
        c = torch_case(rng, kind)
        got = run_case(c, kind, engine)
        want = rule(c, kind)
        assert np.array_equal(got, want), f"{kind}/{engine} case {i}: {c}"
        rival_differs += not np.array_equal(got, rival(c, kind))
    assert rival_differs > 0


def test_x86_depthwise_mostly_zp_in_float(n=60):
    """x86 engine depthwise (oneDNN): measured, NOT yet explained. With this seed 57/60 cases
    follow ``zp_in_float`` exactly; one (depth multiplier 2, 8 channels) is off by up to 193 on
    15 outputs (an accumulation effect, not a tie rule) and two dyadic cases are off by 1 on
    ties. Pinned as a rate: at least 90% of the cases are exact, and not all of them."""
    require_exact_u8s8_accumulation("PyTorch x86 depthwise u8 x s8 sums")
    rng = np.random.default_rng(5007)
    exact = 0
    for _ in range(n):
        c = torch_case(rng, "depthwise")
        exact += np.array_equal(run_case(c, "depthwise", "x86"), zp_in_float(c, "depthwise"))
    assert 0.9 * n <= exact < n, f"{exact}/{n} exact"
