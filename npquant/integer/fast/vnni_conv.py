"""The fast convolution: per image and group, ``acc (O, OH OW) = W (O, K) cols (K, OH OW)`` on
the VNNI micro-kernel of ``npquant.integer.fast.vnni_gemm``, written straight into NCHW.

The plain path (``npquant.integer.conv``) builds one im2col matrix for the whole batch, runs the
GEMM with one row per output pixel and transposes ``(N OH OW, O)`` back to NCHW. Here each image
(and group) packs its own im2col columns directly into the panel layout of ``vnni_gemm`` (u8, 4
reduction steps per 4 bytes, ``OH OW`` in the vector lanes, L2-sized), the weights are the
broadcast operand (s8 rows), and the output rows are NCHW rows: no batch-sized temporaries and no
transpose. The arithmetic is eq. 2 modulo 2^32, exact under the callers' operand bound, as in
``vnni_gemm``; the reduction order is the same ``(ci, kh, kw)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from npquant.integer.epilogue import requantize_row, requantize_row_float_bias
from npquant.integer.fast.threads import GEMM_GRAIN, threads_for
from npquant.integer.fast.vnni_gemm import (
    MR,
    NR,
    padded,
    to_s8,
    to_u8,
    vnni_tile_b_unsigned_set,
)
from npquant.requant import RequantParams


@numba.njit(cache=True, parallel=True)
def _conv_u8s8(xflat, img, wp, wsum, koff, poff, wide, dw, oh_len, ow_len, pstride, za, zw, bias,
               k_len, out, want_acc, q, want_q, pool, kind, ties, qm, shift, mult, term, zo, lo,
               hi):
    """``out[n, o, p] = bias[o] + sum_k (cols[k, p] - za)(w[o, k] - zw[o])`` for each image n,
    and (``want_q``) the fused epilogue ``q[n, o] = requantize_row(out[n, o], ...)``.

    Reduction layout: each 4-byte group ``kk`` is the 4 input bytes ``x[o0 + t dw]``, t = 0..3,
    packed as one word per (group, pixel column); ``conv_exact_vnni`` chooses what they are:
    4 input channels at one tap (``dw`` = the channel plane, when C/groups % 4 == 0), or 4
    horizontal taps of one kernel row (``dw`` = the dilation, KW padded to a multiple of 4 with
    zero weights). The bytes of padded taps are whatever the input holds there: their weights
    are 0. The weight row
    ``O/groups`` of ``wp`` holds 1 at every real tap, so the GEMM also returns
    ``col_sum = sum_k cols[k, .]`` (eq. 2's Zw term).

    Pixel columns: column c of the GEMM reads the input at ``poff[c]``. With ``wide`` (stride 1)
    ``poff[c] = c`` and output pixel ``(i, j)`` is column ``i pstride + j`` (``pstride`` = the
    padded input width): the columns ``j >= OW`` are junk that is computed and never stored, and
    packing a panel is a contiguous, vectorized copy. Otherwise pixel ``(i, j)`` is column
    ``i OW + j`` (``pstride = OW``) and each word is gathered.

    Contract: xflat the padded uint8 batch (images ``img`` bytes apart, padded with za, with >= 4
    (KW4 - KW) dw more columns on the right and enough trailing bytes for every read); wp
    (groups, Opad, Kpad) int8 (row O/groups the ones row, zeros at padded taps, Opad % MR == 0);
    koff (groups, Kpad / 4) uint64 byte offsets of each group's first tap in an image; poff
    (Ppad,) uint64 (Ppad % NR == 0); dw uint64; wsum, zw, bias int64 (O,); out int32 (N, O, P)
    when ``want_acc``; q (N, O, P) of the output dtype; ties/qm/shift/mult of length O or 1 (as
    ``_epilogue``); every exact sum fits int32 (the caller's bound). With ``pool`` (and
    ``want_q``, not ``want_acc``), q is (N, O, (OH // 2) (OW // 2)): the requantized 2x2 maxima
    of each channel's accumulator plane (``conv_exact_vnni``'s ``max_pool``).
    """
    n_len, o_len = (out.shape[0], out.shape[1]) if want_acc else (q.shape[0], q.shape[1])
    p_len = oh_len * ow_len
    ph_len, pw_len = oh_len // 2, ow_len // 2
    groups, o_pad, kpad = wp.shape
    og = o_len // groups
    k4 = kpad // 4
    p_pad = poff.shape[0]
    wf = wp.reshape(wp.size)
    u1, u2, u3 = np.uint64(1), np.uint64(2), np.uint64(3)
    for t in prange(n_len * groups):
        n = t // groups
        g = t % groups
        bp = np.empty(p_pad * k4, dtype=np.uint32)  # im2col words in panel layout
        for pn in range(p_pad // NR):
            for kk in range(k4):
                base = (pn * k4 + kk) * NR
                # NOTE: unsigned offsets and slices: numba adds no negative-index wrap-around
                o_img = np.uint64(n * img) + koff[g, kk]
                if wide:
                    s0 = o_img + np.uint64(pn * NR)
                    xs = xflat[s0:s0 + np.uint64(NR) + u3 * dw + u1]
                    dst = bp[base:base + NR]
                    if dw == u1:
                        for col in range(NR):
                            dst[col] = (np.uint32(xs[col]) | (np.uint32(xs[col + 1]) << 8)
                                        | (np.uint32(xs[col + 2]) << 16)
                                        | (np.uint32(xs[col + 3]) << 24))
                    else:
                        for col in range(NR):
                            o0 = np.uint64(col)
                            dst[col] = (np.uint32(xs[o0]) | (np.uint32(xs[o0 + dw]) << 8)
                                        | (np.uint32(xs[o0 + u2 * dw]) << 16)
                                        | (np.uint32(xs[o0 + u3 * dw]) << 24))
                else:
                    for col in range(NR):
                        o0 = o_img + poff[pn * NR + col]
                        bp[base + col] = (np.uint32(xflat[o0]) | (np.uint32(xflat[o0 + dw]) << 8)
                                          | (np.uint32(xflat[o0 + u2 * dw]) << 16)
                                          | (np.uint32(xflat[o0 + u3 * dw]) << 24))
        acc = np.empty((o_pad, p_pad), dtype=np.int32)  # every tile overwrites its part
        af = acc.reshape(acc.size)
        for pn in range(p_pad // NR):
            for mt in range(o_pad // MR):
                vnni_tile_b_unsigned_set(wf, (g * o_pad + mt * MR) * kpad, kpad, bp,
                                         pn * k4 * NR * 4, k4, af, mt * MR * p_pad + pn * NR,
                                         p_pad)
        col_sum = acc[og]
        row = np.empty(p_len, dtype=np.int32)
        pooled = np.empty(ph_len * pw_len if pool else 0, dtype=np.int32)
        for o in range(og):
            oo = g * og + o
            const = np.int32(bias[oo] - za * wsum[oo] + k_len * za * zw[oo])
            zwo = np.int32(zw[oo])
            acc_o = acc[o]
            for i in range(oh_len):
                src = acc_o[i * pstride:i * pstride + ow_len]
                cs = col_sum[i * pstride:i * pstride + ow_len]
                dst = row[i * ow_len:(i + 1) * ow_len]
                for j in range(ow_len):
                    dst[j] = np.int32(src[j] - zwo * cs[j] + const)
            if want_acc:
                out[n, oo, :] = row
            if want_q:
                i = oo if qm.shape[0] > 1 else 0
                src = row
                if pool:  # the 2x2 maxima of the accumulators (conv_max_pool_vnni)
                    for a in range(ph_len):
                        r0 = row[2 * a * ow_len:(2 * a + 1) * ow_len]
                        r1 = row[(2 * a + 1) * ow_len:(2 * a + 2) * ow_len]
                        dst = pooled[a * pw_len:(a + 1) * pw_len]
                        for b in range(pw_len):
                            dst[b] = max(max(r0[2 * b], r0[2 * b + 1]),
                                         max(r1[2 * b], r1[2 * b + 1]))
                    src = pooled
                if term.shape[0] > 0:  # a float bias term, ``bias`` zero (conv_exact_vnni)
                    requantize_row_float_bias(src, ties[oo if ties.shape[0] > 1 else 0],
                                              mult[i], term[oo], zo, lo, hi, q[n, oo])
                else:
                    requantize_row(src, kind, ties[oo if ties.shape[0] > 1 else 0], qm[i],
                                   shift[i], mult[i], zo, lo, hi, q[n, oo])


class _ConvPlan(NamedTuple):
    """Everything ``_conv_u8s8`` needs that depends on the weights and the input's shape only."""

    wp: np.ndarray  # packed s8 weights (groups, Opad, Kpad) with the ones row
    wsum: np.ndarray  # int64 (O,): sum_k w[o, k] of the s8 weights
    zw: np.ndarray  # int64 (O,): the s8 weights' zero points
    koff: np.ndarray  # uint64 (groups, Kpad / 4): byte offsets of each 4-byte tap group
    poff: np.ndarray  # uint64 (Ppad,): byte offset of each GEMM column
    extra: int  # zero columns appended on the right of the input (KW padded to KW4)
    img: int  # bytes of one (widened) padded image
    wide: bool
    pstride: int
    tstep: int
    slack: int  # trailing bytes after the last image that reads may touch


_PLANS: dict[tuple, _ConvPlan] = {}
_MAX_PLANS = 64


def _conv_plan(w: np.ndarray, zw: np.ndarray, x_chw: tuple[int, int, int],
               stride: tuple[int, int], dilation: tuple[int, int], groups: int,
               out_hw: tuple[int, int]) -> _ConvPlan:
    """The packed weights and offsets of a conv, built once per (weights, input shape) and
    reused: a model's layer packs its weights on its first call only. The key holds the weight
    bytes themselves, so changed weights never meet a stale pack."""
    key = (w.tobytes(), w.shape, w.dtype.str, zw.tobytes(), x_chw, stride, dilation, groups,
           out_hw)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _build_conv_plan(w, zw, x_chw, stride, dilation, groups, out_hw)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.pop(next(iter(_PLANS)))  # the oldest
        _PLANS[key] = plan
    return plan


def _build_conv_plan(w, zw, x_chw, stride, dilation, groups, out_hw) -> _ConvPlan:
    ws, zw_s = to_s8(w, zw)
    o_len, cg, kh_len, kw_len = w.shape
    k_len = cg * kh_len * kw_len
    og = o_len // groups
    _, hp, wpl = x_chw
    extra = 0
    wsum = ws.reshape(o_len, k_len).sum(axis=1, dtype=np.int64)
    wg = ws.reshape(groups, og, cg, kh_len, kw_len)
    if cg % 4 == 0:
        # a word holds 4 channels at one tap: reduction order (kh, kw, ci), K = Kpad
        kpad, tstep = k_len, hp * wpl
        wp = np.zeros((groups, padded(og + 1, MR), kh_len, kw_len, cg), dtype=np.int8)
        wp[:, :og] = wg.transpose(0, 1, 3, 4, 2)
        wp[:, og] = 1
        a, b, cq = np.meshgrid(np.arange(kh_len), np.arange(kw_len), np.arange(cg // 4),
                               indexing="ij")
        koff = (4 * cq * hp + a * dilation[0]) * wpl + b * dilation[1]
    else:
        # a word holds 4 horizontal taps of one kernel row, KW padded to KW4 with zero weights;
        # the input gets (KW4 - KW) dw more columns on the right for the padded taps' reads
        kw4 = padded(kw_len, 4)
        kpad, tstep = cg * kh_len * kw4, dilation[1]
        extra = (kw4 - kw_len) * dilation[1]
        wpl += extra
        wp = np.zeros((groups, padded(og + 1, MR), cg, kh_len, kw4), dtype=np.int8)
        wp[:, :og, :, :, :kw_len] = wg
        wp[:, og, :, :, :kw_len] = 1
        ci, a, bq = np.meshgrid(np.arange(cg), np.arange(kh_len), np.arange(kw4 // 4),
                                indexing="ij")
        koff = (ci * hp + a * dilation[0]) * wpl + 4 * bq * dilation[1]
    wp = wp.reshape(groups, -1, kpad)
    img = cg * groups * hp * wpl
    oh_len, ow_len = out_hw
    koff = (koff.reshape(1, -1) + (np.arange(groups) * cg * hp * wpl)[:, None]).astype(np.uint64)
    # wide columns cost GEMM work on junk but make packing a vectorized copy: measured on the
    # 13x13 conv2, 256 wide columns instead of 192 still win; take them up to 1.5x the panels
    wide = stride[0] == 1 and stride[1] == 1 and \
        2 * padded(oh_len * wpl, NR) <= 3 * padded(oh_len * ow_len, NR)
    if wide:  # pixel (i, j) at column i Wp' + j; columns j >= OW are junk
        pstride = wpl
        poff = np.arange(padded(oh_len * wpl, NR), dtype=np.uint64)
    else:
        pstride = ow_len
        i, j = np.meshgrid(np.arange(oh_len), np.arange(ow_len), indexing="ij")
        poff = np.zeros(padded(oh_len * ow_len, NR), dtype=np.uint64)
        poff[:oh_len * ow_len] = (i * stride[0] * wpl + j * stride[1]).ravel()
    # every read is below n_len img + max(koff) + max(poff) + 3 dw + NR: trailing slack
    slack = int(koff.max()) + int(poff.max()) + 3 * tstep + NR + 1
    return _ConvPlan(wp, wsum, zw_s.astype(np.int64), koff, poff, extra, img, wide, pstride,
                     tstep, slack)


def conv_exact_vnni(xp: np.ndarray, w: np.ndarray, zx: int, zw: np.ndarray, bias: np.ndarray,
                    stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    out_hw: tuple[int, int], *, requant: RequantParams | None = None,
                    out_zero_point: int = 0, act_range: tuple[int, int] = (0, 0),
                    out_dtype: np.dtype | None = None, want_acc: bool = True,
                    max_pool: bool = False,
                    float_bias: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(acc, out)``: accumulators ``(N, O, OH, OW)`` int32 of the padded int8/uint8 input
    ``xp`` (None unless ``want_acc``) and, with ``requant``, the requantized output of
    ``out_dtype`` (``requantize_accumulators`` fused per channel row; None without ``requant``).

    The weights are packed once per (weights, input shape) (``_conv_plan``); a call copies the
    input into the flat u8 buffer the kernel reads and runs on one thread below
    ``threads.GEMM_GRAIN`` multiply-accumulates per thread.

    ``max_pool`` (with ``requant``, without ``want_acc``): the output is the 2x2 stride-2 max
    pool of the requantized conv output, ``(N, O, OH // 2, OW // 2)``, computed as the
    requantization of the 2x2 maxima of the accumulators: the same integers, because every
    requantization rule of a positive multiplier (a rounding of ``M acc``, plus ``Zy``, clamped)
    is a non-decreasing function of ``acc``, and ``max(f(a), f(b)) = f(max(a, b))`` for such an
    ``f``. A quarter of the requantizations, and the conv output is never stored.

    ``float_bias = (bias, term)`` (with ``requant``, the float32 kind; ``npquant.integer.bias``):
    the epilogue adds each channel's float term to the sum without the bias (the kernel runs
    with a zero bias; the accumulators returned still hold ``bias``).

    Contract: vnni_gemm.HAVE_VNNI; the operand bound proves eq. 1 fits int32; ``requant`` needs
    no domain check (``epilogue.needs_domain_check`` is False) and has 1 or O multipliers.
    """
    xu, za = to_u8(xp, zx)
    o_len, cg, kh_len, kw_len = w.shape
    k_len = cg * kh_len * kw_len
    plan = _conv_plan(w, np.asarray(zw), tuple(xu.shape[1:]), tuple(stride), tuple(dilation),
                      groups, tuple(out_hw))
    n_len = xu.shape[0]
    img = plan.img
    oh_len, ow_len = out_hw
    xflat = np.empty(n_len * img + plan.slack, dtype=np.uint8)
    if plan.extra:
        xflat[:n_len * img].reshape(xu.shape[:3] + (-1,))[..., :xu.shape[3]] = xu
        xflat[:n_len * img].reshape(xu.shape[:3] + (-1,))[..., xu.shape[3]:] = 0
    else:
        xflat[:n_len * img] = xu.reshape(-1)
    xflat[n_len * img:] = 0
    shape = (n_len, o_len, oh_len * ow_len)
    acc = np.empty(shape if want_acc else (1, 1, 1), dtype=np.int32)
    want_q = requant is not None
    q_hw = (oh_len // 2, ow_len // 2) if max_pool else (oh_len, ow_len)
    q = np.empty((n_len, o_len, q_hw[0] * q_hw[1]) if want_q else (1, 1, 1),
                 dtype=out_dtype if want_q else np.int8)
    if want_q:
        params = requant.kernel_args(o_len)
    else:
        one = np.zeros(1, dtype=np.int64)
        params = (np.int64(0), one, one, one, np.zeros(1, dtype=np.float64))
    term = np.zeros(0, dtype=np.float64)
    if float_bias is not None and want_q:
        term = np.asarray(float_bias[1], dtype=np.float64)
        bias = np.zeros_like(bias)  # the sums without it; its float term comes in the epilogue
    with threads_for(n_len * o_len * oh_len * ow_len * k_len, GEMM_GRAIN):
        _conv_u8s8(xflat, np.int64(img), plan.wp, plan.wsum, plan.koff, plan.poff, plan.wide,
                   np.uint64(plan.tstep), np.int64(oh_len), np.int64(ow_len),
                   np.int64(plan.pstride), np.int64(za), plan.zw, bias, np.int64(k_len), acc,
                   want_acc, q, want_q, max_pool, *params, term,
                   np.int64(out_zero_point), np.int64(act_range[0]), np.int64(act_range[1]))
    if term.shape[0] and want_acc:  # the accumulators' contract: bias + sum
        acc += np.asarray(float_bias[0], dtype=np.int64).astype(np.int32)[None, :, None]
    return (acc.reshape(n_len, o_len, oh_len, ow_len) if want_acc else None,
            q.reshape((n_len, o_len) + q_hw) if want_q else None)
