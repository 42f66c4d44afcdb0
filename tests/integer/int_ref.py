"""Obviously-right references for the integer kernel tests: int64 numpy and Python ints.

Nothing here calls npquant's kernels or its fixed-point code; each function transcribes one
definition (eq. 1 of npquant.integer.accumulator, the requantization rules of
docs/fixedpoint.md) with explicit loops or einsum over int64, bounded far inside int64.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from npquant.profiles import RequantKind
from npquant.requant import RequantParams


def fc_ref(x, w, bias, zx, zw):
    """``bias[o] + sum_k (x[n,k] - zx)(w[o,k] - zw[o])`` in int64 (direct form, eq. 1)."""
    xd = x.astype(np.int64) - zx
    wd = w.astype(np.int64) - np.asarray(zw, dtype=np.int64).reshape(-1, 1)
    out = np.einsum("nk,ok->no", xd, wd)
    if bias is not None:
        out = out + bias.astype(np.int64)
    return out


def conv_ref(x, w, bias, zx, zw, stride, pads, dilation, groups):
    """Direct convolution in int64: pad with zx, then sum each tap (kh, kw) with einsum."""
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=zx) - zx
    o_len, cg, kh_len, kw_len = w.shape
    wd = w.astype(np.int64) - np.asarray(zw, dtype=np.int64).reshape(-1, 1, 1, 1)
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
        out += bias.astype(np.int64).reshape(1, -1, 1, 1)
    return out


def round_fraction(q: Fraction, ties: str) -> int:
    """Round an exact rational to an int: ties 'up' (+inf), 'away' (from 0) or 'even'."""
    fl = q.numerator // q.denominator
    rem = q - fl
    if rem > Fraction(1, 2):
        return fl + 1
    if rem < Fraction(1, 2):
        return fl
    if ties == "up":
        return fl + 1
    if ties == "away":
        return fl + 1 if q > 0 else fl
    return fl + (fl & 1)


def requant_value(acc: int, kind: RequantKind, ties: str, m0: int, shift: int, mult: float) -> int:
    """``M * acc`` rounded by one rule, from its definition, in Python ints/fractions."""
    if kind is RequantKind.DOUBLE_ROUNDING:
        left, right = max(shift, 0), max(-shift, 0)
        a = acc << left
        if a == -(2**31) and m0 == -(2**31):
            high = 2**31 - 1
        else:  # SRDHM: round(a m0 / 2^31), ties up
            high = round_fraction(Fraction(a * m0, 2**31), "up")
        return round_fraction(Fraction(high, 2**right), ties)
    if kind is RequantKind.SINGLE_ROUNDING:
        return round_fraction(Fraction(acc * m0, 2 ** (31 - shift)), "up")
    if kind is RequantKind.FLOAT32:
        prod = np.float32(np.float32(acc) * np.float32(mult))
        return round_fraction(Fraction(float(prod)), ties)
    if kind is RequantKind.FLOAT64:
        return round_fraction(Fraction(float(acc) * float(mult)), ties)
    return round_fraction(Fraction(acc, 2 ** (-shift)), ties)


def requant_ref(acc, params: RequantParams, channel_axis, zo, lo, hi):
    """Elementwise ``clamp(zo + M[c] acc, lo, hi)`` with ``requant_value`` (int64 array)."""
    acc = np.asarray(acc, dtype=np.int64)
    out = np.empty(acc.shape, dtype=np.int64)
    kind, rule = params.rule.kind, params.rule
    # whole SIMD groups of channels round with rule.ties, the C mod g tail with rule.tail_ties
    grouped = rule.channel_group * (acc.shape[channel_axis] // rule.channel_group
                                    ) if rule.channel_group else None
    for idx in np.ndindex(acc.shape):
        c = idx[channel_axis] if params.channels > 1 else 0
        ties = (rule.ties if grouped is None or idx[channel_axis] < grouped
                else rule.tail_ties).value
        v = requant_value(int(acc[idx]), kind, ties, int(params.quantized_multiplier[c]),
                          int(params.shift[c]), float(params.multiplier[c]))
        out[idx] = min(max(v + zo, lo), hi)
    return out


def sequential_acc(terms, bias: int, bits: int, overflow: str):
    """Accumulate Python ints one by one under wrap/saturate; None under raise on overflow."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    acc = bias
    for t in [0, *terms]:
        acc += t
        if lo <= acc <= hi:
            continue
        if overflow == "raise":
            return None
        if overflow == "wrap":
            acc = ((acc - lo) % (1 << bits)) + lo
        else:
            acc = min(max(acc, lo), hi)
    return acc


def same_pads(in_hw, kernel_hw, stride, dilation):
    """TFLite SAME pads ``(top, bottom, left, right)``: out = ceil(in / s), odd pad at the end."""
    pads = []
    for n, k, s, d in zip(in_hw, kernel_hw, stride, dilation, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def activation_ref(activation, out_scale, zo, dtype, quantize_ties: str):
    """The clamp of a fused activation: (qmin, qmax), relu -> (Z, qmax), relu6 -> (Z, Z + q(6))."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    if activation is None:
        return lo, hi
    lo = max(lo, zo)
    if activation == "relu6":
        q6 = round_fraction(Fraction(float(np.float32(6.0) / np.float32(out_scale))),
                            quantize_ties)
        hi = min(hi, zo + q6)
    return lo, max(lo, hi)


def pool_ref(x, kernel, stride, pads, kind, ties, zp, include_pad, lo, hi):
    """Max / average pool by explicit loops over Python ints (padded taps skipped or = zp)."""
    n_len, c_len, h_len, w_len = x.shape
    kh, kw = kernel
    sh, sw = stride
    pt, pb, pl, pr = pads
    oh = (h_len + pt + pb - kh) // sh + 1
    ow = (w_len + pl + pr - kw) // sw + 1
    acc = np.zeros((n_len, c_len, oh, ow), dtype=np.int64)
    out = np.zeros_like(acc)
    for n, c, i, j in np.ndindex(acc.shape):
        vals, count = [], 0
        for a in range(kh):
            for b in range(kw):
                y, z = i * sh + a - pt, j * sw + b - pl
                if 0 <= y < h_len and 0 <= z < w_len:
                    vals.append(int(x[n, c, y, z]))
                    count += 1
                elif include_pad:
                    vals.append(zp) if kind == "avg" else None
                    count += 1
        if kind == "max":
            acc[n, c, i, j] = r = max(vals)
        else:
            acc[n, c, i, j] = sum(vals)
            r = round_fraction(Fraction(sum(vals), count), ties)
        out[n, c, i, j] = min(max(r, lo), hi)
    return acc, out


def tflite_add_ref(a, b, za, zb, zo, lo, hi, params_a, params_b, params_o, left_shift):
    """TFLite ADD sequence by Python ints: rescale each input (<< ls, then M), sum, requantize."""
    rule = params_a.rule
    out = np.empty(a.shape, dtype=np.int64)
    raw = np.empty(a.shape, dtype=np.int64)

    def mul(v, p):
        return requant_value(v, rule.kind, rule.ties.value, int(p.quantized_multiplier[0]),
                             int(p.shift[0]), float(p.multiplier[0]))

    for idx in np.ndindex(a.shape):
        s = mul((int(a[idx]) - za) << left_shift, params_a) + \
            mul((int(b[idx]) - zb) << left_shift, params_b)
        raw[idx] = s
        out[idx] = min(max(mul(s, params_o) + zo, lo), hi)
    return raw, out


def pair_acc_ref(a_row, w_row, za, zw, bias):
    """vpmaddubsw model by Python ints: bias + sum_j sat16(a_2j w_2j + a_2j+1 w_2j+1) + zp terms.
    """
    a_row = [int(v) for v in a_row]
    w_row = [int(v) for v in w_row]
    k = len(a_row)
    acc = bias
    for j in range(0, k, 2):
        p = a_row[j] * w_row[j] + (a_row[j + 1] * w_row[j + 1] if j + 1 < k else 0)
        acc += min(max(p, -32768), 32767)
    return acc - zw * sum(a_row) - za * sum(w_row) + k * za * zw
