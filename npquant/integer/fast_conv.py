"""The fast convolution: per image and group, ``acc (O, OH OW) = W (O, K) cols (K, OH OW)`` on
the VNNI micro-kernel of ``npquant.integer.fast_gemm``, written straight into NCHW.

The plain path (``npquant.integer.conv``) builds one im2col matrix for the whole batch, runs the
GEMM with one row per output pixel and transposes ``(N OH OW, O)`` back to NCHW. Here each image
(and group) packs its own im2col columns directly into the panel layout of ``fast_gemm`` (u8, 4
reduction steps per 4 bytes, ``OH OW`` in the vector lanes, L2-sized), the weights are the
broadcast operand (s8 rows), and the output rows are NCHW rows: no batch-sized temporaries and no
transpose. The arithmetic is eq. 2 modulo 2^32, exact under the callers' operand bound, as in
``fast_gemm``; the reduction order is the same ``(ci, kh, kw)``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from npquant.integer.epilogue import requantize_row
from npquant.integer.fast_gemm import MR, NR, NV, padded, to_s8, to_u8, vnni_tile_b_unsigned
from npquant.requant import RequantParams


@numba.njit(cache=True, parallel=True)
def _conv_u8s8(xu, wp, wsum, za, zw, bias, kh_len, kw_len, sh, sw, dh, dw, k_len, ow_len,
               out, want_acc, q, want_q, kind, ties, qm, shift, mult, zo, lo, hi):
    """``out[n, o, p] = bias[o] + sum_k (cols[k, p] - za)(w[o, k] - zw[o])`` for each image n,
    and (``want_q``) the fused epilogue ``q[n, o] = requantize_row(out[n, o], ...)``.

    Contract: xu (N, C, Hp, Wp) uint8 padded with za; wp (groups, Opad, Kpad) int8 packed rows of
    the weights (Opad % MR == 0, Kpad % 4 == 0, zeros beyond O/groups and K); wsum, zw, bias int64
    (O,); out int32 (N, O, OH OW), written when ``want_acc``; every exact sum fits int32 (the
    caller's bound). Row p of the output is pixel ``(p // ow_len, p % ow_len)``. q (N, O, OH OW)
    of the output dtype; ties/qm/shift/mult of length O or 1 (per tensor), as ``_epilogue``.
    """
    n_len, o_len, p_len = out.shape if want_acc else q.shape
    groups, o_pad, kpad = wp.shape
    og = o_len // groups
    cg = xu.shape[1] // groups
    k4 = kpad // 4
    p_pad = (p_len + NR - 1) // NR * NR
    taps = kh_len * kw_len
    wf = wp.reshape(wp.size)
    for t in prange(n_len * groups):
        n = t // groups
        g = t % groups
        bp = np.zeros(p_pad * kpad, dtype=np.uint8)  # im2col columns in panel layout
        col_sum = np.zeros(p_len, dtype=np.int64)
        for k in range(k_len):
            ci = k // taps
            a = (k % taps) // kw_len
            b = k % kw_len
            kk = k // 4
            tk = k % 4
            p = 0
            for i in range(p_len // ow_len):
                xrow = xu[n, g * cg + ci, i * sh + a * dh]
                for j in range(ow_len):
                    v = xrow[j * sw + b * dw]
                    col = p % NR
                    bp[(((p // NR) * k4 + kk) * NV + col // 16) * 64 + 4 * (col % 16) + tk] = v
                    col_sum[p] += v
                    p += 1
        acc = np.zeros((o_pad, p_pad), dtype=np.int32)
        af = acc.reshape(acc.size)
        for pn in range(p_pad // NR):
            for mt in range(o_pad // MR):
                vnni_tile_b_unsigned(wf, (g * o_pad + mt * MR) * kpad, kpad, bp, pn * k4 * NR * 4,
                                     k4, af, mt * MR * p_pad + pn * NR, p_pad)
        row = np.empty(p_len, dtype=np.int32)
        for o in range(og):
            oo = g * og + o
            const = bias[oo] - za * wsum[oo] + k_len * za * zw[oo]
            for p in range(p_len):
                row[p] = np.int32(np.int64(acc[o, p]) - zw[oo] * col_sum[p] + const)
            if want_acc:
                out[n, oo, :] = row
            if want_q:
                i = oo if qm.shape[0] > 1 else 0
                requantize_row(row, kind, ties[oo if ties.shape[0] > 1 else 0], qm[i], shift[i],
                               mult[i], zo, lo, hi, q[n, oo])


def conv_exact_vnni(xp: np.ndarray, w: np.ndarray, zx: int, zw: np.ndarray, bias: np.ndarray,
                    stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    out_hw: tuple[int, int], *, requant: RequantParams | None = None,
                    out_zero_point: int = 0, act_range: tuple[int, int] = (0, 0),
                    out_dtype: np.dtype | None = None, want_acc: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(acc, out)``: accumulators ``(N, O, OH, OW)`` int32 of the padded int8/uint8 input
    ``xp`` (None unless ``want_acc``) and, with ``requant``, the requantized output of
    ``out_dtype`` (``requantize_accumulators`` fused per channel row; None without ``requant``).

    Contract: fast_gemm.HAVE_VNNI; the operand bound proves eq. 1 fits int32; ``requant`` needs
    no domain check (``epilogue.needs_domain_check`` is False) and has 1 or O multipliers.
    """
    xu, za = to_u8(xp, zx)
    ws, zw_s = to_s8(w, zw)
    o_len, cg, kh_len, kw_len = w.shape
    k_len = cg * kh_len * kw_len
    og = o_len // groups
    kpad = padded(k_len, 4)
    wp = np.zeros((groups, padded(og, MR), kpad), dtype=np.int8)
    wp[:, :og, :k_len] = ws.reshape(groups, og, k_len)
    wsum = ws.reshape(o_len, k_len).sum(axis=1, dtype=np.int64)
    oh_len, ow_len = out_hw
    n_len = xp.shape[0]
    shape = (n_len, o_len, oh_len * ow_len)
    acc = np.empty(shape if want_acc else (1, 1, 1), dtype=np.int32)
    want_q = requant is not None
    q = np.empty(shape if want_q else (1, 1, 1), dtype=out_dtype if want_q else np.int8)
    if want_q:
        params = (np.int64(requant.kind_code), requant.channel_ties(o_len),
                  requant.quantized_multiplier.astype(np.int64), requant.shift.astype(np.int64),
                  requant.multiplier.astype(np.float64))
    else:
        one = np.zeros(1, dtype=np.int64)
        params = (np.int64(0), one, one, one, np.zeros(1, dtype=np.float64))
    _conv_u8s8(np.ascontiguousarray(xu), wp, wsum, np.int64(za), zw_s.astype(np.int64), bias,
               kh_len, kw_len, stride[0], stride[1], dilation[0], dilation[1], k_len, ow_len,
               acc, want_acc, q, want_q, *params, np.int64(out_zero_point),
               np.int64(act_range[0]), np.int64(act_range[1]))
    out_shape = (n_len, o_len, oh_len, ow_len)
    return (acc.reshape(out_shape) if want_acc else None,
            q.reshape(out_shape) if want_q else None)
