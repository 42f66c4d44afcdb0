"""Obviously-right references for the integer kernel tests: int64 numpy and Python ints.

Nothing here calls npquant's kernels or its fixed-point code; each function transcribes one
definition (eq. 1 of npquant.integer.accumulator, the requantization rules of
docs/fixedpoint.md) with explicit loops or einsum over int64, bounded far inside int64.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from exact_ref import conv_acc, double_rounding, fc_acc, round_fraction, single_rounding

from npquant.profiles import RequantKind, ZeroPointOrder
from npquant.requant import RequantParams

fc_ref = fc_acc  # (x, w, bias, zx, zw): the direct form, eq. 1
conv_ref = conv_acc  # (x, w, bias, zx, zw, stride, pads, dilation, groups)


def requant_value(acc: int, kind: RequantKind, ties: str, m0: int, shift: int, mult: float) -> int:
    """``M * acc`` rounded by one rule, from its definition, in Python ints/fractions."""
    if kind is RequantKind.DOUBLE_ROUNDING:
        return double_rounding(acc, m0, shift, ties)
    if kind is RequantKind.SINGLE_ROUNDING:
        return single_rounding(acc, m0, shift)
    if kind is RequantKind.FLOAT32:
        prod = np.float32(np.float32(acc) * np.float32(mult))
        return round_fraction(Fraction(float(prod)), ties)
    if kind is RequantKind.FLOAT64:
        return round_fraction(Fraction(float(acc) * float(mult)), ties)
    return round_fraction(Fraction(acc) / Fraction(2) ** (-shift), ties)


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
        if kind is RequantKind.FLOAT32_ONEDNN:  # the zero point before the rounding (oneDNN)
            src, d = (np.float32(f) for f in params.onednn_factors)
            y = np.float32(np.float32(np.float32(acc[idx]) * src)
                           * np.float32(params.multiplier[c])) * d
            r = round_fraction(Fraction(float(np.float32(y + np.float32(zo)))), ties)
            out[idx] = min(max(r, lo), hi)
            continue
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


def activation_ref(activation, out_scale, zo, dtype, relu6_rule):
    """The clamp of a fused activation: (qmin, qmax), relu -> (Z, qmax), relu6 -> (Z, q(6)),
    with q(6) from the rule's definition: ``Z + round(f32(6 / S))`` (zero point after rounding)
    or ``round(f32(f32(6 / S) + Z))`` (before)."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    if activation is None:
        return lo, hi
    lo = max(lo, zo)
    if activation == "relu6":
        ratio = np.float32(6.0) / np.float32(out_scale)
        if relu6_rule.zero_point is ZeroPointOrder.AFTER_ROUNDING:
            q6 = zo + round_fraction(Fraction(float(ratio)), relu6_rule.ties.value)
        else:
            q6 = round_fraction(Fraction(float(np.float32(ratio + np.float32(zo)))),
                                relu6_rule.ties.value)
        hi = min(hi, q6)
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


def fc_ref_for(rule, x, w, bias, zx, zw) -> np.ndarray:
    """The accumulators a fully-connected kernel under accumulator ``rule`` must give: eq. 1
    exactly, or with ``rule.pair_saturation`` the vpmaddubsw model of ``pair_acc_ref``."""
    if not rule.pair_saturation:
        return fc_ref(x, w, bias, zx, zw)
    zwv = np.broadcast_to(np.asarray(zw, dtype=np.int64), (w.shape[0],))
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.int64)
    for n, o in np.ndindex(out.shape):
        out[n, o] = pair_acc_ref(x[n], w[o], zx, int(zwv[o]), int(b[o]))
    return out


def conv_ref_for(rule, x, w, bias, zx, zw, stride, pads, dilation, groups) -> np.ndarray:
    """``conv_ref``, or with ``rule.pair_saturation`` the pair model on each patch of the input
    padded with ``Zx``, flattened in ``rule.conv_order`` (``chw``: ci, kh, kw; ``hwc``: kh, kw,
    ci)."""
    if not rule.pair_saturation:
        return conv_ref(x, w, bias, zx, zw, stride, pads, dilation, groups)
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=zx)
    o_len, cg, kh, kw = w.shape
    oh = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    og = o_len // groups
    zwv = np.broadcast_to(np.asarray(zw, dtype=np.int64), (o_len,))
    b = np.zeros(o_len, np.int64) if bias is None else np.asarray(bias, np.int64)
    perm = (0, 1, 2) if rule.conv_order == "chw" else (1, 2, 0)
    out = np.empty((x.shape[0], o_len, oh, ow), dtype=np.int64)
    for n, o, i, j in np.ndindex(out.shape):
        g = o // og
        patch = xp[n, g * cg:(g + 1) * cg, i * sh:i * sh + (kh - 1) * dh + 1:dh,
                   j * sw:j * sw + (kw - 1) * dw + 1:dw]
        out[n, o, i, j] = pair_acc_ref(patch.transpose(perm).ravel(),
                                       w[o].transpose(perm).ravel(), zx, int(zwv[o]), int(b[o]))
    return out
