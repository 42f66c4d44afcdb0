"""Hypothesis strategies for the integer kernel tests: valid by construction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

from npquant.profiles import PROFILES, BiasAdd, RequantKind
from npquant.requant import prepare_requant, requant_params_from_multiplier

ACT_DTYPES = (np.int8, np.uint8, np.int16)
W_DTYPES = (np.int8, np.uint8)
# int16 activations are drawn in +-4096 so that the int32 operand bound holds for K <= 160;
# the full int16 range is exercised by the overflow tests.
INT16_SPAN = 4096


def value_range(dtype) -> tuple[int, int]:
    """Drawn value range of a dtype (int16 restricted to +-INT16_SPAN)."""
    if np.dtype(dtype) == np.int16:
        return -INT16_SPAN, INT16_SPAN
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


@st.composite
def int_arrays(draw, dtype, shape, edge_bias: float = 0.3):
    """Seeded random integers of ``dtype``; with probability ``edge_bias`` mostly extremes."""
    lo, hi = value_range(dtype)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()) and draw(st.floats(0, 1)) < edge_bias:
        vals = rng.choice(np.array([lo, lo + 1, hi - 1, hi, 0], dtype=np.int64), size=shape)
        vals = np.clip(vals, lo, hi)
    else:
        vals = rng.integers(lo, hi + 1, size=shape)
    return vals.astype(dtype)


def zero_points(dtype):
    """Zero points over the full range of the dtype."""
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def requant_cases(draw, op: str, channels: int, *, integer_bias: bool = False):
    """``(profile, params, out_scale)`` for op in conv/depthwise_conv/fully_connected: a profile
    from PROFILES and random per-tensor or per-channel multipliers in [2^-24, 1).
    ``integer_bias``: only profiles that add the int32 bias to the accumulator (the int64
    references of test_integer_gemm_conv; PyTorch's float bias: test_bias.py)."""
    names = sorted(n for n in PROFILES if not integer_bias or all(
        b in (None, BiasAdd.INTEGER) for b in (getattr(PROFILES[n], op).bias,
                                               getattr(PROFILES[n], op).per_channel_bias)))
    profile = draw(st.sampled_from(names))
    prof = PROFILES[profile]
    rule = getattr(prof, op)
    per_channel = draw(st.booleans())
    count = channels if per_channel else 1
    if rule.kind is RequantKind.POWER_OF_TWO:
        exps = draw(st.lists(st.integers(1, 24), min_size=count, max_size=count))
        mult = np.array([2.0 ** -e for e in exps])
    else:
        mant = draw(st.lists(st.floats(0.5, 1.0, exclude_max=True), min_size=count,
                             max_size=count))
        exps = draw(st.lists(st.integers(0, 23), min_size=count, max_size=count))
        mult = np.array([m * 2.0 ** -e for m, e in zip(mant, exps, strict=True)])
    out_scale = draw(st.sampled_from([0.5, 0.02, 0.1, 1 / 64, 0.0473]))
    # the bias scale S_b = S_in S_w = M S_out, which the profiles that add a float bias need
    # oneDNN's kind takes the scales, not M: M as the weight scales (src = D = 1)
    base = (prepare_requant(rule, 1.0, mult.astype(np.float32), 1.0)
            if rule.kind is RequantKind.FLOAT32_ONEDNN
            else requant_params_from_multiplier(rule, mult))
    params = replace(base, bias_scale=(mult * out_scale).astype(np.float32).astype(np.float64))
    return prof, params, out_scale
