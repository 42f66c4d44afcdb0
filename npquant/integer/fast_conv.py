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

from npquant.integer.fast_gemm import MR, NR, NV, padded, to_s8, to_u8, vnni_tile_b_unsigned


@numba.njit(cache=True, parallel=True)
def _conv_u8s8(xu, wp, wsum, za, zw, bias, kh_len, kw_len, sh, sw, dh, dw, k_len, ow_len, out):
    """``out[n, o, p] = bias[o] + sum_k (cols[k, p] - za)(w[o, k] - zw[o])`` for each image n.

    Contract: xu (N, C, Hp, Wp) uint8 padded with za; wp (groups, Opad, Kpad) int8 packed rows of
    the weights (Opad % MR == 0, Kpad % 4 == 0, zeros beyond O/groups and K); wsum, zw, bias int64
    (O,); out int32 (N, O, OH OW); every exact sum fits int32 (the caller's bound). Row p of the
    output is pixel ``(p // ow_len, p % ow_len)``.
    """
    n_len, o_len, p_len = out.shape
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
        for o in range(og):
            oo = g * og + o
            const = bias[oo] - za * wsum[oo] + k_len * za * zw[oo]
            for p in range(p_len):
                out[n, oo, p] = np.int32(np.int64(acc[o, p]) - zw[oo] * col_sum[p] + const)


def conv_exact_vnni(xp: np.ndarray, w: np.ndarray, zx: int, zw: np.ndarray, bias: np.ndarray,
                    stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    out_hw: tuple[int, int]) -> np.ndarray:
    """Accumulators ``(N, O, OH, OW)`` int32 of the padded int8/uint8 input ``xp``.

    Contract: fast_gemm.HAVE_VNNI; the operand bound proves eq. 1 fits int32.
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
    out = np.empty((xp.shape[0], o_len, oh_len * ow_len), dtype=np.int32)
    _conv_u8s8(np.ascontiguousarray(xu), wp, wsum, np.int64(za), zw_s.astype(np.int64), bias,
               kh_len, kw_len, stride[0], stride[1], dilation[0], dilation[1], k_len, ow_len, out)
    return out.reshape(xp.shape[0], o_len, oh_len, ow_len)
