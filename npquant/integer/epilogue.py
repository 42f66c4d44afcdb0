"""The requantization epilogue of every kernel: ``q = clamp(Z_out + M acc, act_min, act_max)``.

The multiplier ``M = S_in S_w[c] / S_out`` is derived and rounded by the profile's rule for the op
(``npquant.requant.prepare_requant``); the activation (ReLU, ReLU6) is a narrower integer clamp
``[act_min, act_max]`` inside the output type's range (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numba
import numpy as np
from numba import prange

from npquant import fixedpoint as fp
from npquant.profiles import Profile, RequantRule
from npquant.qparams import QParams, quantize
from npquant.requant import (
    KIND_DOUBLE_ROUNDING,
    KIND_FLOAT32,
    KIND_FLOAT32_ONEDNN,
    RequantParams,
    check_requant_domain,
    onednn_output,
    prepare_requant,
    requant_params_from_multiplier,
    requantize_scalar,
)
from npquant.validate import check_scale, check_scales, dtype_range

ACTIVATIONS = (None, "relu", "relu6")


def activation_range(activation: str | None, out_scale: float | None, out_zero_point: int,
                     out_dtype: np.dtype, profile: Profile, out_bits: int | None = None
                     ) -> tuple[int, int]:
    """Integer clamp ``[act_min, act_max]`` of a fused activation on the output's integers.

    ``[qmin, qmax]`` is the range of ``out_bits`` bits stored in ``out_dtype`` (signed:
    ``[-2^(b-1), 2^(b-1) - 1]``, unsigned: ``[0, 2^b - 1]``; ``out_bits=None``: the whole dtype),
    so a 4-bit output stored as int8 really holds values in ``[-8, 7]``.
    ``None``: ``[qmin, qmax]``. ``"relu"``: ``act_min = max(qmin, Z_out)`` (real 0).
    ``"relu6"``: also ``act_max = min(qmax, q(6.0))``, real 6 quantized to the output by the
    profile's ``relu6_bound_rule()`` (TFLite ``CalculateActivationRangeQuantized``:
    ``Z + round_away(f32(6 / S))``; XNNPACK: ``round_even(f32(f32(6 / S) + Z))``).
    """
    qmin, qmax = bits_range(out_bits, out_dtype)
    if not qmin <= out_zero_point <= qmax:
        raise ValueError(f"out_zero_point={out_zero_point} is outside the {out_bits}-bit "
                         f"output range [{qmin}, {qmax}]")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation is None:
        return qmin, qmax
    lo = max(qmin, out_zero_point)
    hi = qmax
    if activation == "relu6":
        if out_scale is None:
            raise ValueError("activation='relu6' needs out_scale")
        out_qparams = QParams(check_scale("out_scale", out_scale), out_zero_point,
                              bits=out_bits or 8 * np.dtype(out_dtype).itemsize,
                              signed=np.issubdtype(out_dtype, np.signedinteger))
        six = quantize(np.float32(6.0), out_qparams, rule=profile.relu6_bound_rule())
        hi = min(qmax, int(six))
    return lo, max(lo, hi)


def bits_range(bits: int | None, dtype: np.dtype) -> tuple[int, int]:
    """``(qmin, qmax)`` of ``bits``-bit integers stored in ``dtype`` (its signedness); ``None``:
    the dtype's whole range. ValueError for bits outside ``2..width of dtype``."""
    lo, hi = dtype_range(dtype)
    if bits is None:
        return lo, hi
    width = 8 * np.dtype(dtype).itemsize
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or \
            not 2 <= bits <= width:
        raise ValueError(f"out_bits must be an int in 2..{width} for {np.dtype(dtype)}, "
                         f"got {bits!r}")
    return fp.int_range(int(bits), lo < 0)


def resolve_requant(rule: RequantRule, requant: RequantParams | None, x_scale: Any, w_scale: Any,
                    out_scale: Any, channels: int, *, what: str = "the op") -> RequantParams:
    """``requant`` if given (``channels`` or 1 multipliers, built for ``rule``), else
    ``prepare_requant`` from the scales. ``what`` names the profile's op in errors.

    The profile reaches a kernel once: a ``requant`` prepared under another rule (another
    profile's rounding) would silently compute that profile's arithmetic, so it is refused.
    """
    if requant is not None:
        if not isinstance(requant, RequantParams):
            raise TypeError(f"requant must be RequantParams, got {type(requant).__name__}")
        if not requant.rule.same_arithmetic(rule):
            raise ValueError(f"requant was prepared for rule {requant.rule.describe()!r}, but "
                             f"{what} requantizes by {rule.describe()!r}; prepare it with the "
                             "profile's rule (npquant.requant.prepare_requant)")
        if requant.channels not in (1, channels):
            raise ValueError(f"requant has {requant.channels} multipliers, the layer has "
                             f"{channels} output channels")
        return requant
    if x_scale is None or w_scale is None or out_scale is None:
        raise ValueError("give either requant= or all of x_scale, w_scale, out_scale")
    xs = check_scale("x_scale", x_scale)
    ws = check_scales("w_scale", w_scale, channels)
    os_ = check_scale("out_scale", out_scale)
    # a layer called again with the same scales (a model's layer, a benchmark) derives M once
    key = (rule, float(xs), ws.tobytes(), float(os_))
    params = _PREPARED.get(key)
    if params is None:
        params = prepare_requant(rule, xs, ws if ws.shape[0] > 1 else float(ws[0]), os_)
        if len(_PREPARED) >= _MAX_PREPARED:
            _PREPARED.pop(next(iter(_PREPARED)))  # the oldest
        _PREPARED[key] = params
    return params


_PREPARED: dict[tuple, RequantParams] = {}
_MAX_PREPARED = 256


def requant_for_shape(requant: RequantParams | None, base_rule: RequantRule,
                      shape_rule: RequantRule) -> RequantParams | None:
    """``requant`` prepared for an op's rule (``base_rule``, as npquant.convert prepares it),
    re-expressed for the rule the layer's shape selects (``RequantRule.for_gemm`` /
    ``for_depthwise``): the same real ``M``, in ``shape_rule``'s integer form. Any other
    ``requant`` passes through unchanged (``resolve_requant`` judges it)."""
    if requant is None or shape_rule is base_rule or not isinstance(requant, RequantParams) \
            or not requant.rule.same_arithmetic(base_rule):
        return requant
    return replace(requant_params_from_multiplier(shape_rule, requant.multiplier),
                   bias_scale=requant.bias_scale)


@numba.njit(cache=True, parallel=True)
def _epilogue(acc, kind, ties_per_channel, qm, shift, mult, zo, lo, hi, out):
    """``out[a, c, b] = clamp(zo + requantize_scalar(acc[a, c, b], rule, M[c]), lo, hi)``.

    Contract: acc (A, C, B) int32, qm/shift int64 and mult float64 of length C (or 1, broadcast),
    ties int64 codes of length C (or 1), out (A, C, B) of the output dtype (the clamped value
    ``lo <= v <= hi`` fits it); the requantization domain was checked by the caller.
    """
    a_len, c_len, b_len = acc.shape
    per_channel = qm.shape[0] > 1
    per_channel_ties = ties_per_channel.shape[0] > 1
    for t in prange(a_len * c_len):
        a = t // c_len
        c = t % c_len
        i = c if per_channel else 0
        ties = ties_per_channel[c if per_channel_ties else 0]
        if kind == KIND_FLOAT32:  # the rule hoisted out of the loop (same scalar as requantize)
            m32 = np.float32(mult[i])
            for b in range(b_len):
                v = fp.float32_multiply_scalar(acc[a, c, b], m32, ties) + zo
                out[a, c, b] = fp.saturate_scalar(v, lo, hi)
        elif kind == KIND_DOUBLE_ROUNDING:
            for b in range(b_len):
                v = fp.double_rounding_multiply_scalar(acc[a, c, b], qm[i], shift[i], ties) + zo
                out[a, c, b] = fp.saturate_scalar(v, lo, hi)
        else:
            for b in range(b_len):
                v = requantize_scalar(acc[a, c, b], kind, ties, qm[i], shift[i], mult[i]) + zo
                out[a, c, b] = fp.saturate_scalar(v, lo, hi)


@numba.njit(cache=True, inline="always")
def f32_even_out(x, m32, flo, fhi, fzo):
    """``clamp(zo + round_even(f32(f32(x) m32)), lo, hi)`` as an int32: ``float32_multiply_scalar``
    with ties to even (ORT, fbgemm), the zero point and the output clamp, in a form LLVM
    vectorizes 16 lanes wide (float32 in, int32 out; no int64 step).

    ``flo = lo - zo``, ``fhi = hi - zo``, ``fzo = zo`` as float32. NOTE: the same integer as
    ``clamp(zo + float32_multiply_scalar(x, m32, EVEN), lo, hi)``: ``rint`` of a float32 is the
    same integer in float32 and float64, clamping an integer-valued float to integer bounds
    commutes with adding ``zo``, an infinite product lands on the bound either way, and every
    value after the clamp is an integer of an 8- or 16-bit output plus ``zo``, exact in float32.
    """
    r = np.rint(np.float32(np.float32(x) * m32))
    return np.int32(min(max(r, flo), fhi) + fzo)


@numba.njit(cache=True)
def requantize_row(acc_row, kind, ties, qm, shift, mult, zo, lo, hi, out_row):
    """One channel's row of ``_epilogue``: ``out_row[j] = clamp(zo + requant(acc_row[j]), lo, hi)``.

    The fused kernels (``npquant.integer.fast.vnni_conv``) call this on a tile still in cache.
    The rule is chosen once per row, so each loop below is branch-free in ``kind`` and vectorizes.
    Contract: as ``_epilogue`` for one channel (scalars ``ties``, ``qm``, ``shift``, ``mult``);
    acc_row int32 values, out_row of the output dtype.
    """
    n = out_row.shape[0]
    if kind == KIND_FLOAT32 and ties == fp.TIES_EVEN:
        m32 = np.float32(mult)
        flo, fhi, fzo = np.float32(lo - zo), np.float32(hi - zo), np.float32(zo)
        for j in range(n):
            out_row[j] = f32_even_out(acc_row[j], m32, flo, fhi, fzo)
    elif kind == KIND_FLOAT32:
        m32 = np.float32(mult)
        for j in range(n):
            v = fp.float32_multiply_scalar(acc_row[j], m32, ties) + zo
            out_row[j] = fp.saturate_scalar(v, lo, hi)
    elif kind == KIND_DOUBLE_ROUNDING and qm != fp.INT32_MIN:
        double_rounding_row(acc_row, qm, shift, ties, zo, lo, hi, out_row)
    elif kind == KIND_DOUBLE_ROUNDING:
        for j in range(n):
            v = fp.double_rounding_multiply_scalar(acc_row[j], qm, shift, ties) + zo
            out_row[j] = fp.saturate_scalar(v, lo, hi)
    else:
        for j in range(n):
            v = requantize_scalar(acc_row[j], kind, ties, qm, shift, mult) + zo
            out_row[j] = fp.saturate_scalar(v, lo, hi)


@numba.njit(cache=True)
def double_rounding_row(acc_row, qm, shift, ties, zo, lo, hi, out_row):
    """``out_row[j] = clamp(zo + double_rounding_multiply_scalar(acc_row[j], qm, shift, ties),
    lo, hi)`` in branch-free int64 loops that LLVM vectorizes (TFLite's reference and
    optimized requantization; the scalar version branches per element and does not).

    With ``a = acc 2^left`` (``left = max(shift, 0)``, ``right = max(-shift, 0)``):

        high = trunc((a M0 + nudge) / 2^31),  nudge = 2^30 if a M0 >= 0 else 1 - 2^30   (SRDHM)
        f = floor(high / 2^right),  r = high - f 2^right,  h = 2^(right - 1)
        q = f + 1 if r > h, or r == h and the tie goes up (TIES_UP: always; TIES_AWAY:
            high > 0; TIES_EVEN: f odd), else f

    ``trunc(t / 2^31) = (t + (2^31 - 1 if t < 0 else 0)) >> 31`` (``t >> 63`` is -1 or 0).
    SRDHM saturates only for ``a = M0 = INT32_MIN``: the caller sends ``M0 = INT32_MIN`` to the
    scalar loop instead.
    Contract: as ``requantize_row``; ``qm != INT32_MIN``.
    """
    n = out_row.shape[0]
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    m0 = np.int64(np.int32(qm))  # sign-extended from 32 bits: LLVM multiplies with vpmuldq
    half = np.int64(1) << (right - 1) if right > 0 else np.int64(0)
    # NOTE: one loop per tie rule, so each loop body is free of the rule's branch
    if right == 0:
        for j in range(n):
            high = _srdhm(np.int64(acc_row[j]) << left, m0)
            out_row[j] = fp.saturate_scalar(high + zo, lo, hi)
    elif ties == fp.TIES_UP:
        for j in range(n):
            high = _srdhm(np.int64(acc_row[j]), m0)  # left = 0 here
            f = high >> right
            r = high - (f << right)
            out_row[j] = fp.saturate_scalar(f + (r >= half) + zo, lo, hi)
    elif ties == fp.TIES_AWAY:
        for j in range(n):
            high = _srdhm(np.int64(acc_row[j]), m0)  # left = 0 here
            f = high >> right
            r = high - (f << right)
            up = (r > half) | ((r == half) & (high > 0))
            out_row[j] = fp.saturate_scalar(f + up + zo, lo, hi)
    else:
        for j in range(n):
            high = _srdhm(np.int64(acc_row[j]), m0)  # left = 0 here
            f = high >> right
            r = high - (f << right)
            up = (r > half) | ((r == half) & ((f & 1) == 1))
            out_row[j] = fp.saturate_scalar(f + up + zo, lo, hi)


@numba.njit(cache=True, inline="always")
def _srdhm(a, m0):
    """SRDHM of ``a`` and ``m0`` (``double_rounding_row``), without the saturation."""
    ab = a * m0
    low31 = np.int64((1 << 31) - 1)
    total = ab + (np.int64(1 << 30) - ((ab >> 63) & low31))  # nudge 2^30 or 1 - 2^30
    return (total + ((total >> 63) & low31)) >> 31


@numba.njit(cache=True)
def requantize_row_channels(acc_row, kind, ties, qm, shift, mult, zo, lo, hi, out_row):
    """``_epilogue`` for one row of a channels-last ``(rows, C)`` array: element j is channel j.

    Contract: as ``_epilogue`` (``ties``, ``qm``, ``shift``, ``mult`` of length C or 1); acc_row
    int32 values (C,), out_row (C,) of the output dtype. The fully-connected layer's epilogue,
    fused into the fast GEMM's last pass.
    """
    n = out_row.shape[0]
    per_channel = qm.shape[0] > 1
    if kind == KIND_FLOAT32 and ties.shape[0] == 1 and ties[0] == fp.TIES_EVEN:
        flo, fhi, fzo = np.float32(lo - zo), np.float32(hi - zo), np.float32(zo)
        for j in range(n):
            m32 = np.float32(mult[j if per_channel else 0])
            out_row[j] = f32_even_out(acc_row[j], m32, flo, fhi, fzo)
    elif kind == KIND_FLOAT32 and ties.shape[0] == 1:
        t = ties[0]
        for j in range(n):
            m32 = np.float32(mult[j if per_channel else 0])
            v = fp.float32_multiply_scalar(acc_row[j], m32, t) + zo
            out_row[j] = fp.saturate_scalar(v, lo, hi)
    else:
        for j in range(n):
            i = j if per_channel else 0
            v = requantize_scalar(acc_row[j], kind, ties[j if ties.shape[0] > 1 else 0], qm[i],
                                  shift[i], mult[i]) + zo
            out_row[j] = fp.saturate_scalar(v, lo, hi)


@numba.njit(cache=True)
def requantize_row_float_bias(sum_row, ties, mult, term, zo, lo, hi, out_row):
    """``requantize_row`` of the float32 kind with a float bias term (``npquant.integer.bias``):
    ``out_row[j] = clamp(zo + round(f32(f32(f32(sum_row[j]) + term) M)), lo, hi)``.

    Contract: ``sum_row`` the int32 sums *without* the bias; scalars ``ties``, ``mult`` (a
    float32 value), ``term`` (float64); out_row of the output dtype. The fused VNNI kernels call
    it per channel row; the same integers as ``_epilogue_float_bias``.
    """
    n = out_row.shape[0]
    m32 = np.float32(mult)
    if ties == fp.TIES_EVEN:
        flo, fhi, fzo = np.float32(lo - zo), np.float32(hi - zo), np.float32(zo)
        for j in range(n):
            total = fp.float32_sum_scalar(np.float64(np.float32(sum_row[j])), term)
            r = np.rint(np.float32(total * m32))
            out_row[j] = np.int32(min(max(r, flo), fhi) + fzo)
    else:
        for j in range(n):
            v = fp.float32_bias_multiply_scalar(sum_row[j], term, m32, ties) + zo
            out_row[j] = fp.saturate_scalar(v, lo, hi)


@numba.njit(cache=True)
def requantize_row_channels_float_bias(sum_row, ties, mult, term, zo, lo, hi, out_row):
    """``requantize_row_float_bias`` for one row of a channels-last ``(rows, C)`` array:
    element j is channel j (``ties``, ``mult`` of length C or 1, ``term`` of length C)."""
    n = out_row.shape[0]
    per_channel = mult.shape[0] > 1
    for j in range(n):
        m32 = np.float32(mult[j if per_channel else 0])
        t = ties[j if ties.shape[0] > 1 else 0]
        total = fp.float32_sum_scalar(np.float64(np.float32(sum_row[j])), term[j])
        v = np.int64(fp.round_float_scalar(np.float64(np.float32(total * m32)), t)) + zo \
            if t != fp.TIES_EVEN else np.int64(np.rint(np.float32(total * m32))) + zo
        out_row[j] = fp.saturate_scalar(v, lo, hi)


@numba.njit(cache=True, parallel=True)
def _epilogue_rows(acc, kind, ties_per_channel, qm, shift, mult, zo, lo, hi, out):
    """``_epilogue`` (same contract, same values) as one ``requantize_row`` per ``(a, c)`` row.

    The plain loop above stays the reference (tests compare the two with ``np.array_equal``).
    """
    a_len, c_len, b_len = acc.shape
    per_channel = qm.shape[0] > 1
    per_channel_ties = ties_per_channel.shape[0] > 1
    for t in prange(a_len * c_len):
        a = t // c_len
        c = t % c_len
        i = c if per_channel else 0
        requantize_row(acc[a, c], kind, ties_per_channel[c if per_channel_ties else 0], qm[i],
                       shift[i], mult[i], zo, lo, hi, out[a, c])


@numba.njit(cache=True, parallel=True)
def _epilogue_float_bias(acc, bias, term, ties_per_channel, mult, zo, lo, hi, out):
    """``out[a, c, b] = clamp(zo + round(f32(f32(f32(acc - bias[c]) + term[c]) M[c])), lo, hi)``:
    the float32 requantization with a float bias term (``npquant.integer.bias``), the inner
    sum rounded once (``fp.float32_sum_scalar``).

    Contract: acc (A, C, B) int32 or int64 whose ``acc - bias[c]`` fits int32, bias int64 (C,), term
    float64 (C,), mult float64 (C or 1) holding float32 values, ties int64 codes (C or 1).
    """
    a_len, c_len, b_len = acc.shape
    per_channel = mult.shape[0] > 1
    per_channel_ties = ties_per_channel.shape[0] > 1
    flo, fhi, fzo = np.float32(lo - zo), np.float32(hi - zo), np.float32(zo)
    for t in prange(a_len * c_len):
        a = t // c_len
        c = t % c_len
        m32 = np.float32(mult[c if per_channel else 0])
        ties = ties_per_channel[c if per_channel_ties else 0]
        bc, tc = bias[c], term[c]
        if ties == fp.TIES_EVEN:  # the clamp in float32, as f32_even_out (same integers)
            for b in range(b_len):
                total = fp.float32_sum_scalar(np.float64(np.float32(acc[a, c, b] - bc)), tc)
                r = np.rint(np.float32(total * m32))
                out[a, c, b] = np.int32(min(max(r, flo), fhi) + fzo)
        else:
            for b in range(b_len):
                v = fp.float32_bias_multiply_scalar(acc[a, c, b] - bc, tc, m32, ties) + zo
                out[a, c, b] = fp.saturate_scalar(v, lo, hi)


@numba.njit(cache=True, parallel=True)
def _epilogue_onednn(acc, bias, term, src, mult, d_out, ties_per_channel, zo, lo, hi, out):
    """``out[a, c, b] = clamp(round(f32(f32(f32(f32(f32(acc - bias[c]) src) wei[c]) + term[c])
    D) + zo), lo, hi)``: oneDNN's epilogue (``npquant.requant.onednn_output``), the float bias
    ``term`` (``B``, 0 without one) added after the scales, the zero point before the rounding.

    Contract: acc (A, C, B) int32 or int64 whose ``acc - bias[c]`` fits int32, bias int64 (C,),
    term float64 (C,) holding float32 values; src, d_out, and mult (the weight scales, C or 1)
    float64 holding float32 values; ties int64 codes (C or 1).
    """
    a_len, c_len, b_len = acc.shape
    per_channel = mult.shape[0] > 1
    per_channel_ties = ties_per_channel.shape[0] > 1
    for t in prange(a_len * c_len):
        a = t // c_len
        c = t % c_len
        s = mult[c if per_channel else 0]
        ties = ties_per_channel[c if per_channel_ties else 0]
        bc, tc = bias[c], term[c]
        for b in range(b_len):
            v = np.int64(onednn_output(acc[a, c, b] - bc, src, s, tc, d_out, zo, ties))
            out[a, c, b] = fp.saturate_scalar(v, lo, hi)


def fuses_epilogue(params: RequantParams) -> bool:
    """True when the fast kernels may requantize inside their loops (``requantize_row`` and
    friends): every kind but ``float32_onednn``, whose zero point enters before the rounding
    and which runs after the sums (``requantize_accumulators``)."""
    return params.kind_code != KIND_FLOAT32_ONEDNN


def needs_domain_check(params: RequantParams) -> bool:
    """True when double rounding shifts left (``M >= 1``): the accumulators must be checked
    (``check_requant_domain``) before requantization, so a fused epilogue cannot run."""
    return params.kind_code == KIND_DOUBLE_ROUNDING and bool(np.any(params.shift > 0))


def requantize_accumulators(acc: np.ndarray, params: RequantParams, *, channel_axis: int,
                            out_zero_point: int, act_range: tuple[int, int],
                            out_dtype: np.dtype,
                            float_bias: tuple[np.ndarray, np.ndarray] | None = None
                            ) -> np.ndarray:
    """Apply ``params`` to int32/int64 accumulators and cast to ``out_dtype``.

    The same arithmetic as ``npquant.requant.requantize`` (one ``requantize_scalar`` per element),
    fused into one parallel pass over ``acc`` viewed as ``(outer, channels, inner)``.
    Requantization takes int32 accumulators (the contract of ``requantize_scalar``); an int64
    accumulator (a rule wider than 32 bits) whose value leaves int32 raises ValueError naming
    the index. ``float_bias = (bias, term)`` (``npquant.integer.bias.layer_bias``, float32 rules
    only): each channel's integer bias comes off the accumulator and its float term is added in
    float32 before the multiply (fbgemm); then ``acc - bias``, the framework's int32 sum, must
    lie in int32 (ValueError naming the index).
    """
    if params.kind_code == KIND_FLOAT32_ONEDNN or float_bias is not None:
        return _requantize_float_bias(acc, params, channel_axis, out_zero_point, act_range,
                                      out_dtype, *(float_bias or (None, None)))
    if acc.dtype != np.int32:
        bad = (acc < fp.INT32_MIN) | (acc > fp.INT32_MAX)
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"accumulator {int(acc[idx])} at index {idx} is outside int32, "
                             "which requantization takes as input")
        acc = acc.astype(np.int32)
    if params.channels > 1 and acc.shape[channel_axis] != params.channels:
        raise ValueError(f"acc has {acc.shape[channel_axis]} channels but "
                         f"{params.channels} multipliers")
    if np.any(params.shift > 0):  # double rounding shifts left first: acc 2^shift must fit int32
        shift = params.shift.reshape([-1 if i == channel_axis else 1 for i in range(acc.ndim)]) \
            if params.channels > 1 else params.shift[0]
        check_requant_domain(acc.astype(np.int64), params, shift)
    outer = int(np.prod(acc.shape[:channel_axis]))
    acc3 = np.ascontiguousarray(acc).reshape(outer, acc.shape[channel_axis], -1)
    # NOTE: the kernel writes the output dtype directly. An int64 temporary of the same shape
    # (8x the bytes, page-faulted on first touch) plus ``astype`` cost 3x the requantization itself.
    out = np.empty(acc3.shape, dtype=out_dtype)
    epilogue = _epilogue_rows if acc3.shape[2] > 1 else _epilogue
    epilogue(acc3, *params.kernel_args(acc3.shape[1]), np.int64(out_zero_point),
             np.int64(act_range[0]), np.int64(act_range[1]), out)
    return out.reshape(acc.shape)


def _requantize_float_bias(acc: np.ndarray, params: RequantParams, channel_axis: int,
                           out_zero_point: int, act_range: tuple[int, int], out_dtype: np.dtype,
                           bias: np.ndarray | None, term: np.ndarray | None) -> np.ndarray:
    """``requantize_accumulators`` with a float bias term (its docstring), or under the
    ``float32_onednn`` kind (with or without one: ``bias``, ``term`` None)."""
    onednn = params.kind_code == KIND_FLOAT32_ONEDNN
    if not onednn and params.kind_code != KIND_FLOAT32:
        raise ValueError("a float bias term needs the float32 requantization kind, got "
                         f"{params.rule.kind.value}")
    outer = int(np.prod(acc.shape[:channel_axis]))
    acc3 = np.ascontiguousarray(acc).reshape(outer, acc.shape[channel_axis], -1)
    if bias is None:  # oneDNN without a float bias: nothing comes off, nothing is added
        bias, term = np.zeros(acc3.shape[1], np.int64), np.zeros(acc3.shape[1], np.float64)
    bias = np.asarray(bias, dtype=np.int64)
    if acc3.size and (int(acc3.min()) - int(bias.max()) < fp.INT32_MIN
                      or int(acc3.max()) - int(bias.min()) > fp.INT32_MAX):
        total = acc3.astype(np.int64) - bias[None, :, None]  # the bound failed: look closer
        bad = (total < fp.INT32_MIN) | (total > fp.INT32_MAX)
        if np.any(bad):
            i3 = np.argwhere(bad)[0]
            idx = np.unravel_index(int(np.ravel_multi_index(tuple(i3), acc3.shape)), acc.shape)
            raise ValueError(f"accumulator without its bias {int(total[tuple(i3)])} at index "
                             f"{tuple(int(i) for i in idx)} is outside int32, which "
                             "requantization takes")
    out = np.empty(acc3.shape, dtype=out_dtype)
    _, ties, _, _, mult = params.kernel_args(acc3.shape[1])
    if onednn:
        src, d_out = (float(f) for f in params.onednn_factors)
        _epilogue_onednn(acc3, bias, np.asarray(term, np.float64), src, mult, d_out, ties,
                         np.int64(out_zero_point),
                         np.int64(act_range[0]), np.int64(act_range[1]), out)
        return out.reshape(acc.shape)
    _epilogue_float_bias(acc3, bias, np.asarray(term, np.float64), ties, mult,
                         np.int64(out_zero_point), np.int64(act_range[0]), np.int64(act_range[1]),
                         out)
    return out.reshape(acc.shape)
