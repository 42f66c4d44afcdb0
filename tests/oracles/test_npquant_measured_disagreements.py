"""Kernel paths no npquant profile reproduces exactly (yet): each test pins the measured rate and
size of the disagreement on a fixed hypothesis seed, and, where it is known, checks that the rule
explaining it reproduces the framework exactly. None of these loosens a bit-exact test: they are
measurements, and a change in any of them (better or worse) fails here and must be looked at.
docs/fidelity.md lists them with the same explanations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from npq_compare import ACT, COMPARISONS, measure, torch_op
from npq_testing import require_framework

from npquant.integer import conv2d
from npquant.testing import assert_bit_exact

pytestmark = [pytest.mark.oracle,
              pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")]

MEASURED = {c.id: c for c in COMPARISONS if not c.exact}
# id -> (cases, least agreeing cases, max |diff| bound): measured on this machine
# (docs/fidelity.md), seed 0. A bound of 1 means every disagreement is a tie rounded the other way.
PINS = {
    "pytorch-x86-conv2d": (100, 80, 1),
    "pytorch-x86-conv2d (depthwise)": (100, 70, 255),
    "pytorch-fbgemm-add": (200, 160, 1),
    "onnxruntime-cpu-QLinearAdd int8": (200, 160, 1),
    "onnxruntime-cpu-QLinearAveragePool int8": (200, 100, 1),
}


@pytest.mark.parametrize("row_id", list(PINS))
def test_pinned_disagreement(row_id):
    cmp = MEASURED[row_id]
    require_framework(cmp)
    n, least, max_diff = PINS[row_id]
    t = measure(cmp, n, seed=0)
    assert t.cases == n
    assert least <= t.agree < t.cases, f"{row_id}: {t.agree}/{t.cases} cases agree"
    assert 1 <= t.max_abs_diff <= max_diff, f"{row_id}: max |diff| {t.max_abs_diff}"


def test_x86_conv_is_zero_point_in_float():
    """The rule that explains PyTorch's x86 (oneDNN) conv: the output zero point is added in
    float32 before rounding, rne(f32(f32(f32(acc) f32(s_x s_w[o])) / s_y) + f32(Z_y)), applied
    to npquant's exact accumulators — equal on every one of these 100 cases (npquant's
    pytorch-fbgemm rounds acc M first and adds Z_y after, which differs by 1 on ties: pinned
    above). NOTE: tools/fidelity.py saw one larger outlier (|diff| 7) in 200 cases on another
    draw, the x86 depthwise kind of outlier, which this rule does not explain."""
    cmp = MEASURED["pytorch-x86-conv2d"]
    require_framework(cmp)
    f32 = np.float32

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cmp.cases())
    def check(c):
        acc = conv2d(c.x, c.w, None, x_zero_point=c.x_zp, out_zero_point=c.y_zp,
                     x_scale=c.x_scale, w_scale=c.w_scale_arg(), out_scale=c.y_scale,
                     stride=c.stride, dilation=c.dilation, padding=c.padding, groups=c.groups,
                     profile="pytorch-fbgemm", out_dtype=np.uint8, activation=ACT[c.activation],
                     return_accumulators=True).acc
        sxw = (f32(c.x_scale) * c.w_scale.astype(f32)).reshape(1, -1, 1, 1)
        v = (acc.astype(f32) * sxw) / f32(c.y_scale) + f32(c.y_zp)
        want = np.clip(np.rint(v), 0, 255).astype(np.uint8)
        assert_bit_exact(torch_op(c, "x86"), want, context=repr(c))

    check()
