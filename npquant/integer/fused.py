"""Fused layer pairs: a convolution and the 2x2 max pool after it, in one pass.

``conv2d_max_pool`` computes ``max_pool2d(conv2d(x, w, bias, ...), 2)`` (2x2 window, stride 2,
no padding, floor mode; the pool keeps the conv output's qparams and adds no clamp of its own).
Where the fast VNNI conv applies, the pool runs on the accumulators before the requantization
(``npquant.integer.fast.vnni_conv.conv_exact_vnni``, ``max_pool``): every requantization rule
of a positive multiplier is a non-decreasing function ``f`` of the accumulator (a rounding of
``M acc``, plus ``Zy``, clamped to the activation range), and for such an ``f``

    max(f(a), f(b), f(c), f(d)) = f(max(a, b, c, d)),

so a quarter of the requantizations give the same integers and the full-size conv output is
never stored. PyTorch's float bias (``npquant.integer.bias``: ``f32(acc - b)`` plus the float
term, times ``M``, rounded) is non-decreasing in ``acc`` too — every step is a float32 rounding
of a non-decreasing function — so it fuses the same way. Elsewhere it is the two kernels one
after the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npquant.integer import accumulator as accm
from npquant.integer.conv import _vnni_applies, check_conv, conv2d
from npquant.integer.epilogue import fuses_epilogue, needs_domain_check
from npquant.integer.fast.vnni_conv import conv_exact_vnni
from npquant.integer.pool import max_pool2d


def conv2d_max_pool(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
                    **kwargs: Any) -> np.ndarray:
    """``max_pool2d(conv2d(x, w, bias, **kwargs), 2, profile=...)`` (module docstring).

    The keyword arguments are those of ``conv2d`` (``profile`` required), without
    ``return_accumulators`` (the conv accumulators are not kept). Returns
    ``(N, O, OH // 2, OW // 2)`` of the conv's ``out_dtype``.
    """
    if kwargs.get("return_accumulators"):
        raise ValueError("conv2d_max_pool keeps no accumulators: return_accumulators must be "
                         "False (run conv2d and max_pool2d for them)")
    kwargs.pop("return_accumulators", None)
    c = check_conv(x, w, bias, **kwargs)
    plan = accm.plan_for(c.x, c.x_zero_point, c.w, c.w_zero_point, c.w[0].size, c.bias,
                         c.accumulator)
    if _vnni_applies(c, plan) and not needs_domain_check(c.requant) \
            and fuses_epilogue(c.requant) and min(c.out_hw) >= 2:
        _, out = conv_exact_vnni(c.xp, c.w, c.x_zero_point, c.w_zero_point, c.bias, c.stride,
                                 c.dilation, c.groups, c.out_hw, requant=c.requant,
                                 out_zero_point=c.out_zero_point, act_range=c.act_range,
                                 out_dtype=c.out_dtype, want_acc=False, max_pool=True,
                                 float_bias=c.epilogue_bias())
        return out
    return max_pool2d(conv2d(x, w, bias, **kwargs), 2, profile=kwargs["profile"])
