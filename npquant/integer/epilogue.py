"""The requantization epilogue of every kernel: ``q = clamp(Z_out + M acc, act_min, act_max)``.

The multiplier ``M = S_in S_w[c] / S_out`` is derived and rounded by the profile's rule for the op
(``npquant.requant.prepare_requant``); the activation (ReLU, ReLU6) is a narrower integer clamp
``[act_min, act_max]`` inside the output type's range (DESIGN.md section 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npquant import fixedpoint as fp
from npquant.integer._checks import check_scale, check_scales, dtype_range
from npquant.profiles import Profile, RequantRule
from npquant.requant import RequantParams, prepare_requant, requantize

ACTIVATIONS = (None, "relu", "relu6")


def activation_range(activation: str | None, out_scale: float | None, out_zero_point: int,
                     out_dtype: np.dtype, profile: Profile) -> tuple[int, int]:
    """Integer clamp ``[act_min, act_max]`` of a fused activation on the output's integers.

    ``None``: the output type's range. ``"relu"``: ``act_min = max(qmin, Z_out)`` (real 0).
    ``"relu6"``: also ``act_max = min(qmax, Z_out + round(f32(6) / f32(S_out)))``, with the
    profile's quantize tie rule (TFLite ``CalculateActivationRangeQuantized``: ``Z +
    TfLiteRound(6.0f / scale)``, float32 division, ties away).
    """
    qmin, qmax = dtype_range(out_dtype)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation is None:
        return qmin, qmax
    lo = max(qmin, out_zero_point)
    hi = qmax
    if activation == "relu6":
        if out_scale is None:
            raise ValueError("activation='relu6' needs out_scale")
        q6 = np.float32(6.0) / np.float32(check_scale("out_scale", out_scale))
        six = int(fp.round_float_scalar(float(q6), profile.quantize.ties.code))
        hi = min(qmax, out_zero_point + six)
    return lo, max(lo, hi)


def resolve_requant(rule: RequantRule, requant: RequantParams | None, x_scale: Any, w_scale: Any,
                    out_scale: Any, channels: int) -> RequantParams:
    """``requant`` if given (``channels`` or 1 multipliers), else ``prepare_requant`` from scales.
    """
    if requant is not None:
        if not isinstance(requant, RequantParams):
            raise TypeError(f"requant must be RequantParams, got {type(requant).__name__}")
        if requant.channels not in (1, channels):
            raise ValueError(f"requant has {requant.channels} multipliers, the layer has "
                             f"{channels} output channels")
        return requant
    if x_scale is None or w_scale is None or out_scale is None:
        raise ValueError("give either requant= or all of x_scale, w_scale, out_scale")
    xs = check_scale("x_scale", x_scale)
    ws = check_scales("w_scale", w_scale, channels)
    os_ = check_scale("out_scale", out_scale)
    return prepare_requant(rule, xs, ws if ws.shape[0] > 1 else float(ws[0]), os_)


def requantize_accumulators(acc: np.ndarray, params: RequantParams, *, channel_axis: int,
                            out_zero_point: int, act_range: tuple[int, int],
                            out_dtype: np.dtype) -> np.ndarray:
    """Apply ``params`` to int32/int64 accumulators and cast to ``out_dtype``.

    Requantization takes int32 accumulators (the contract of ``requantize_scalar``); an int64
    accumulator (a rule wider than 32 bits) whose value leaves int32 raises ValueError naming
    the index.
    """
    if acc.dtype != np.int32:
        bad = (acc < fp.INT32_MIN) | (acc > fp.INT32_MAX)
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"accumulator {int(acc[idx])} at index {idx} is outside int32, "
                             "which requantization takes as input")
        acc = acc.astype(np.int32)
    axis = channel_axis if params.channels > 1 else None
    q = requantize(acc, params, channel_axis=axis, zero_point=out_zero_point,
                   qmin=act_range[0], qmax=act_range[1])
    return q.astype(out_dtype)
