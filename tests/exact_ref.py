"""Obviously-right references shared by every test directory (tests/ is on sys.path).

Rounding primitives are written in Python ints and Fractions (arbitrary precision) from their
real-number meaning, ``round(p / q)`` with a named tie rule, evaluated exactly; accumulators are
the direct sums ``sum (x - Zx)(w - Zw) + bias`` in int64 numpy (einsum), no expansion.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def round_fraction(value: Fraction, ties: str) -> int:
    """Round an exact rational to an integer; ties 'up' (+inf), 'away' (from 0) or 'even'."""
    floor = math.floor(value)
    rest = value - floor
    if rest > Fraction(1, 2):
        return floor + 1
    if rest < Fraction(1, 2):
        return floor
    if ties == "up":
        return floor + 1
    if ties == "away":
        return floor + 1 if value > 0 else floor
    if ties == "even":
        return floor if floor % 2 == 0 else floor + 1
    raise ValueError(ties)


def srdhm(a: int, b: int) -> int:
    """round(a*b / 2^31), ties up, saturated to int32 (only INT32_MIN^2 saturates)."""
    return min(round_fraction(Fraction(a * b, 2**31), "up"), INT32_MAX)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """round(x / 2^exponent), ties away from zero."""
    return round_fraction(Fraction(x, 2**exponent), "away")


def rounding_shift_right(x: int, exponent: int, ties: str) -> int:
    """round(x / 2^exponent) with the tie rule."""
    return round_fraction(Fraction(x) / Fraction(2) ** exponent, ties)


def double_rounding(x: int, m0: int, shift: int, final_ties: str) -> int:
    """round_final(round_up(x 2^left m0 / 2^31) / 2^right): the two roundings, written out."""
    left, right = max(shift, 0), max(-shift, 0)
    high = srdhm(x * 2**left, m0)
    return round_fraction(Fraction(high, 2**right), final_ties)


def single_rounding(x: int, m0: int, shift: int) -> int:
    """round_up(x m0 2^shift / 2^31): one rounding of the exact product."""
    return round_fraction(Fraction(x * m0 * 2**shift, 2**31) if shift >= 0
                          else Fraction(x * m0, 2 ** (31 - shift)), "up")


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(M0, shift) with M = M0 2^shift / 2^31, M0 = round_away(M 2^(31-shift)) in [2^30, 2^31]."""
    exact = Fraction(m)
    if exact == 0:
        return 0, 0
    shift = 0
    while exact / Fraction(2) ** shift >= 1:
        shift += 1
    while exact / Fraction(2) ** shift < Fraction(1, 2):
        shift -= 1
    m0 = round_fraction(exact * Fraction(2) ** (31 - shift), "away")
    if m0 == 2**31:
        m0, shift = 2**30, shift + 1
    if shift < -31:
        return 0, 0
    return m0, shift


def int32_edges() -> list[int]:
    """gemmlowp's edge set: +-2^i + d for d in -2..2, and the int32 limits +-0..2."""
    vals = set()
    for i in range(32):
        for d in range(-2, 3):
            for v in (2**i + d, -(2**i) + d):
                if INT32_MIN <= v <= INT32_MAX:
                    vals.add(v)
    for d in range(3):
        vals.update((INT32_MIN + d, INT32_MAX - d))
    vals.update((0, 1, -1))
    return sorted(vals)


def fc_acc(x, w, bias, x_zp, w_zp) -> np.ndarray:
    """``bias[o] + sum_k (x[n,k] - Zx)(w[o,k] - Zw[o])`` in int64, x (N, K), w (O, K)."""
    xd = x.astype(np.int64) - x_zp
    wd = w.astype(np.int64) - np.asarray(w_zp, dtype=np.int64).reshape(-1, 1)
    out = np.einsum("nk,ok->no", xd, wd)
    if bias is not None:
        out = out + np.asarray(bias).astype(np.int64)
    return out


def conv_acc(x, w, bias, x_zp, w_zp, stride, pads, dilation, groups) -> np.ndarray:
    """Direct grouped convolution in int64, NCHW / OIHW, ``pads`` = (top, bottom, left, right).

    The input is padded with its zero point (real 0), then each tap (kh, kw) is summed with
    einsum: ``acc[n, o] = bias[o] + sum_{c, kh, kw} (x_pad - Zx)(w[o] - Zw[o])``.
    """
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=x_zp)
    xp = xp - x_zp
    o_len, cg, kh_len, kw_len = w.shape
    wd = w.astype(np.int64) - np.asarray(w_zp, dtype=np.int64).reshape(-1, 1, 1, 1)
    n_len, _, hp, wp = xp.shape
    oh = (hp - (kh_len - 1) * dh - 1) // sh + 1
    ow = (wp - (kw_len - 1) * dw - 1) // sw + 1
    og = o_len // groups
    out = np.zeros((n_len, o_len, oh, ow), dtype=np.int64)
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = wd[g * og:(g + 1) * og]
        for a in range(kh_len):
            for b in range(kw_len):
                patch = xs[:, :, a * dh: a * dh + (oh - 1) * sh + 1: sh,
                           b * dw: b * dw + (ow - 1) * sw + 1: sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, a, b])
    if bias is not None:
        out += np.asarray(bias).astype(np.int64).reshape(1, -1, 1, 1)
    return out
