"""The portable convolution loops of ``npquant.integer.conv``: im2col and direct depthwise.

``npquant.integer.reference.conv2d`` is the same arithmetic without the speed; the callers prove
by the operand bound that the int32 sums are exact before they run the depthwise loops.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True, parallel=True)
def im2col(xp, kh_len, kw_len, sh, sw, dh, dw, oh_len, ow_len, groups, cols):
    """im2col: ``cols[g, row, col] = xp[n, g Cg + ci, i sh + a dh, j sw + b dw]``.

    ``row = (n OH + i) OW + j`` (one per output pixel), ``col = (ci KH + a) KW + b``.

    Contract: xp (N, C, Hp, Wp) already padded with the zero point; cols int16
    (groups, N OH OW, Cg KH KW); every index in range (the caller computed OH, OW).
    """
    n_len, c_len = xp.shape[0], xp.shape[1]
    cg = c_len // groups
    for n in prange(n_len):
        for i in range(oh_len):
            for j in range(ow_len):
                row = (n * oh_len + i) * ow_len + j
                for g in range(groups):
                    col = 0
                    for ci in range(cg):
                        c = g * cg + ci
                        for a in range(kh_len):
                            for b in range(kw_len):
                                cols[g, row, col] = xp[n, c, i * sh + a * dh, j * sw + b * dw]
                                col += 1


@numba.njit(cache=True, parallel=True)
def depthwise_i32(xp, w, zx, zw, bias, mult, sh, sw, dh, dw, out):
    """Direct depthwise convolution, exact in int32: ``out[n, o, i, j]`` for ``o = c m + q``.

    Contract: xp (N, C, Hp, Wp) padded with zx; w (C m, KH, KW) int; zw, bias int64 (C m,);
    out int32 (N, C m, OH, OW); the exact sums fit int32 (the caller's bound). The innermost loop
    runs over output columns j so that, for stride 1, it reads contiguous inputs.
    """
    n_len, o_len, oh_len, ow_len = out.shape
    kh_len, kw_len = w.shape[1], w.shape[2]
    for t in prange(n_len * o_len):
        n = t // o_len
        o = t % o_len
        c = o // mult
        row = np.empty(ow_len, dtype=np.int32)
        for i in range(oh_len):
            for j in range(ow_len):
                row[j] = np.int32(bias[o])
            for a in range(kh_len):
                for b in range(kw_len):
                    wv = np.int32(w[o, a, b] - zw[o])
                    y = i * sh + a * dh
                    for j in range(ow_len):
                        xv = np.int32(xp[n, c, y, j * sw + b * dw] - zx)
                        row[j] = np.int32(row[j] + xv * wv)
            for j in range(ow_len):
                out[n, o, i, j] = row[j]


@numba.njit(cache=True, inline="always")
def depthwise_wide_plane(xp, w, zx, zw, bias, n, o, c, dh, dw, oh_len, ow_len):
    """The "wide" int32 sums of output channel ``o`` of image ``n`` (input channel ``c``), stride
    1: ``wide[i Wp + j]`` for ``j < Wp`` (``depthwise_i32_unit_stride``); the outputs are
    ``wide[i Wp + j]`` for ``j < OW``. Shared by the unfused loop below and the fused one of
    ``fast.depthwise``."""
    kh_len, kw_len = w.shape[1], w.shape[2]
    wp_len = xp.shape[3]
    flat_len = (oh_len - 1) * wp_len + ow_len
    total = 0
    for a in range(kh_len):
        for b in range(kw_len):
            total += w[o, a, b] - zw[o]
    start = np.int32(bias[o] - zx * total)
    x_flat = xp[n, c].reshape(xp.shape[2] * wp_len)
    wide = np.empty(flat_len, dtype=np.int32)
    wide[:] = start
    for a in range(kh_len):
        for b in range(kw_len):
            wv = np.int32(w[o, a, b] - zw[o])
            off = a * dh * wp_len + b * dw
            # NOTE: a slice, not x_flat[off + q]: numba cannot prove off + q >= 0 and then
            # emits the negative-index wrap-around per element, which blocks vectorization.
            xs = x_flat[off:off + flat_len]
            for q in range(flat_len):
                wide[q] = np.int32(wide[q] + wv * np.int32(xs[q]))
    return wide


@numba.njit(cache=True, parallel=True)
def depthwise_i32_unit_stride(xp, w, zx, zw, bias, mult, dh, dw, out):
    """``depthwise_i32`` for stride 1, written for the vector units (same contract, same sums).

    Eq. 2 with the activation zero point folded into the start value:
    ``acc = (bias - zx sum_t wz_t) + sum_t wz_t x_t`` with ``wz = w - zw``, evaluated modulo 2^32
    (exact: the true value fits int32). The plane is computed "wide": ``wide[i Wp + j]`` for all
    ``j < Wp`` (the padded input width), so each tap is one long axpy over the flattened input
    ``x[(i + a dh) Wp + j + b dw]`` that LLVM vectorizes (16 int32 lanes); the columns
    ``j >= OW`` mix two rows, are never stored, and the last row stops before reading past the
    input. Short rows (OW = 32) would otherwise fall into the vector loop's scalar remainder.
    """
    n_len, o_len, oh_len, ow_len = out.shape
    wp_len = xp.shape[3]
    for t in prange(n_len * o_len):
        n = t // o_len
        o = t % o_len
        wide = depthwise_wide_plane(xp, w, zx, zw, bias, n, o, o // mult, dh, dw, oh_len, ow_len)
        for i in range(oh_len):
            for j in range(ow_len):
                out[n, o, i, j] = wide[i * wp_len + j]
