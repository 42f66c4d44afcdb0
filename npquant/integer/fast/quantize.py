"""The fast QUANTIZE of per-tensor qparams: ``npquant.qparams.quantize`` in one parallel pass.

``qparams.quantize`` computes ``q = saturate(round(x / S) + Z)`` with whole-array numpy steps
(a float64 temporary per step: ten passes over the data for torch's fused multiply-add rule);
here each element goes through the same steps as scalars, in the same order with the same
roundings, and leaves as the stored integer:

* the scaling: ``f32(x / S)`` or ``x / S`` in float64 (divide), ``f32(x f32(1/S))`` or in float64
  (multiply by the reciprocal), or ``f32(x f32(1/S) + Z)`` with one rounding (C ``fmaf``,
  ``_fma_f32``);
* the zero point before the rounding (``f32(f32(v) + f32(Z))`` or in float64) or after it;
* ``fixedpoint.round_float_scalar`` with the rule's ties, the same function as the array
  rounding of ``qparams.round_to_integer``; then the clamp to ``[qmin, qmax]`` (infinities
  land on the bounds).

NaN is not handled here: the caller falls back to ``qparams.quantize``, which names it.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from npquant import fixedpoint as fp
from npquant.integer.fast.threads import QUANTIZE_GRAIN, threads_for
from npquant.profiles import QuantizeMethod, QuantizeRule, ZeroPointOrder

ZP_AFTER, ZP_BEFORE, ZP_FMA = 0, 1, 2
_ZP_CODES = {ZeroPointOrder.AFTER_ROUNDING: ZP_AFTER, ZeroPointOrder.BEFORE_ROUNDING: ZP_BEFORE,
             ZeroPointOrder.BEFORE_ROUNDING_FMA: ZP_FMA}


@numba.njit(cache=True, inline="always")
def _round_clamp(v, ties, lo, hi, zf, after):
    """``clamp(round(v) (+ Z when after), lo, hi)`` as an int64, ``round`` as
    ``fixedpoint.round_float_scalar``: ties to even is ``np.rint``; ties away compares the exact
    fraction ``v - trunc(v)`` with 1/2 (branch-free, so the loop vectorizes)."""
    if ties == fp.TIES_EVEN:
        r = np.rint(v)
    elif ties == fp.TIES_AWAY:
        t = np.trunc(v)
        f = v - t  # exact; inf: NaN, which keeps t
        r = t + (1.0 if v > 0.0 else -1.0) if abs(f) >= 0.5 else t
    else:
        r = fp.round_float_scalar(v, ties)
    if after:
        r += zf
    return np.int64(min(max(r, lo), hi))


@numba.njit(cache=True, parallel=True)
def _quantize(x, divide, wide, zorder, ties, s32, inv32, zp, qmin, qmax, out, nan):
    """``out[i] = clamp(round(scale(x[i])) + Z)`` for the rules without fma (module docstring);
    ``nan[0] = 1`` if some ``x[i]`` is NaN (its ``out`` is then meaningless).

    Contract: x, out flat of one length; x float32; s32, inv32 float32; zp, qmin, qmax int64.
    """
    zf = np.float64(zp)
    z32 = np.float32(zp)
    lo, hi = np.float64(qmin), np.float64(qmax)
    for i in prange(x.shape[0]):
        xv = x[i]
        if xv != xv:
            nan[0] = 1
        if divide:
            v = np.float64(xv) / np.float64(s32) if wide else np.float64(np.float32(xv / s32))
        else:
            v = np.float64(xv) * np.float64(inv32) if wide else np.float64(np.float32(xv * inv32))
        if zorder == ZP_BEFORE:
            v = v + zf if wide else np.float64(np.float32(np.float32(v) + z32))
        out[i] = _round_clamp(v, ties, lo, hi, zf, zorder == ZP_AFTER)


_BLOCK = 4096  # elements per block of the fma kernel (its float64 scratch stays in L1/L2)


@numba.njit(cache=True, parallel=True)
def _quantize_fma(x, ties, inv32, zp, qmin, qmax, out, nan):
    """``out[i] = clamp(round(f32(x[i] f32(1/S) + Z)))`` with one rounding of the fma (C
    ``fmaf``): ``qparams._fma_to_float32`` per element, block by block.

    ``p = x inv`` is exact in float64; ``s = p + Z`` with its error ``e`` (TwoSum); when
    ``e != 0`` and ``s`` has an even significand, ``s`` moves one float64 step toward ``e``
    (rounding to odd: the float64 bits as an int64, +-1 away from / toward zero), which keeps
    the bit that decides the float32 rounding. Same contract as ``_quantize``.
    """
    zb = np.float64(zp)
    lo, hi = np.float64(qmin), np.float64(qmax)
    n = x.shape[0]
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        i0 = blk * _BLOCK
        m = min(_BLOCK, n - i0)
        s = np.empty(m, dtype=np.float64)
        e = np.empty(m, dtype=np.float64)
        for k in range(m):
            p = np.float64(x[i0 + k]) * np.float64(inv32)
            sk = p + zb
            bp = sk - zb
            s[k] = sk
            e[k] = (p - bp) + (zb - (sk - bp))
        bits = s.view(np.int64)
        for k in range(m):
            if x[i0 + k] != x[i0 + k]:
                nan[0] = 1
            elif e[k] != 0.0 and math.isfinite(s[k]) and bits[k] % 2 == 0:
                bits[k] += 1 if (e[k] > 0.0) == (s[k] > 0.0) else -1
        for k in range(m):
            out[i0 + k] = _round_clamp(np.float64(np.float32(s[k])), ties, lo, hi, zb, False)


def quantize_per_tensor(arr: np.ndarray, scale: np.float32, zero_point: int, qmin: int,
                        qmax: int, dtype: np.dtype, rule: QuantizeRule) -> np.ndarray | None:
    """``qparams.quantize`` of the float32 ``arr`` with a per-tensor ``(scale, zero_point)`` and a
    rule without blocks, or None when ``arr`` holds NaN (the caller's path raises).

    Contract: ``rule.block == 0``; ``scale`` a positive float32.
    """
    flat = np.ascontiguousarray(arr).reshape(-1)
    out = np.empty(flat.shape, dtype=dtype)
    nan = np.zeros(1, dtype=np.int64)
    s32 = np.float32(scale)
    inv32 = np.float32(np.float32(1.0) / s32)
    ties = np.int64(fp.Ties(rule.ties).code)
    with threads_for(flat.size, QUANTIZE_GRAIN):
        if rule.zero_point is ZeroPointOrder.BEFORE_ROUNDING_FMA:
            _quantize_fma(flat, ties, inv32, np.int64(zero_point), np.int64(qmin),
                          np.int64(qmax), out, nan)
        else:
            _quantize(flat, rule.method is QuantizeMethod.DIVIDE, rule.precision == "float64",
                      np.int64(_ZP_CODES[rule.zero_point]), ties, s32, inv32,
                      np.int64(zero_point), np.int64(qmin), np.int64(qmax), out, nan)
    return None if nan[0] else out.reshape(arr.shape)
