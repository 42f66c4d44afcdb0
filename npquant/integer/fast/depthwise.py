"""The fast depthwise convolution for stride 1: ``conv_loops.depthwise_i32_unit_stride``'s
sums with the requantization fused in, one plane at a time while it is in cache.

The plain path writes the int32 accumulators of the whole batch and requantizes them in a
second pass (``epilogue.requantize_accumulators``); here each (image, channel) plane is summed
"wide" exactly as in ``depthwise_i32_unit_stride`` (eq. 2 with the zero point folded into the
start value, modulo 2^32, exact because the caller's bound proves the sums fit int32) and each
output row goes straight through ``epilogue.requantize_row``, the same per-element arithmetic
as the plain epilogue. The accumulators are stored only on request.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from npquant.integer.epilogue import requantize_row
from npquant.integer.fast.conv_loops import depthwise_wide_plane
from npquant.integer.fast.threads import GEMM_GRAIN, threads_for
from npquant.requant import RequantParams


@numba.njit(cache=True, parallel=True)
def _depthwise_fused(xp, w, zx, zw, bias, mult, dh, dw, oh_len, ow_len, want_acc, acc, kind,
                     ties, qm, shift, mscale, zo, lo, hi, out):
    n_len, o_len = out.shape[0], out.shape[1]
    wp_len = xp.shape[3]
    for t in prange(n_len * o_len):
        n = t // o_len
        o = t % o_len
        wide = depthwise_wide_plane(xp, w, zx, zw, bias, n, o, o // mult, dh, dw, oh_len, ow_len)
        k = o if qm.shape[0] > 1 else 0
        tie = ties[o] if ties.shape[0] > 1 else ties[0]
        for i in range(oh_len):
            row = wide[i * wp_len:i * wp_len + ow_len]
            requantize_row(row, kind, tie, qm[k], shift[k], mscale[k], zo, lo, hi, out[n, o, i])
            if want_acc:
                acc[n, o, i, :] = row


def depthwise_unit_stride(xp: np.ndarray, w: np.ndarray, zx: int, zw: np.ndarray,
                          bias: np.ndarray, dilation: tuple[int, int], out_hw: tuple[int, int],
                          requant: RequantParams, out_zero_point: int,
                          act_range: tuple[int, int], out_dtype: np.dtype, want_acc: bool
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(out, acc or None)`` of a stride-1 depthwise conv of the padded ``xp (N, C, Hp, Wp)``
    with ``w (C m, 1, KH, KW)``.

    Contract: as ``depthwise_i32_unit_stride`` (the exact sums fit int32; zw, bias int64) and
    ``requant`` needs no domain check (``epilogue.needs_domain_check`` is False)."""
    xp = np.ascontiguousarray(xp)
    o_len, _, kh_len, kw_len = w.shape
    n_len = xp.shape[0]
    oh_len, ow_len = out_hw
    out = np.empty((n_len, o_len, oh_len, ow_len), dtype=out_dtype)
    acc = np.empty(out.shape if want_acc else (0, 0, 0, 0), dtype=np.int32)
    kind, ties, qm, shift, mscale = requant.kernel_args(o_len)
    with threads_for(out.size * kh_len * kw_len, GEMM_GRAIN):
        _depthwise_fused(xp, w.reshape(o_len, kh_len, kw_len), np.int64(zx), zw, bias,
                         np.int64(o_len // xp.shape[1]), np.int64(dilation[0]),
                         np.int64(dilation[1]), np.int64(oh_len), np.int64(ow_len), want_acc,
                         acc, kind, ties, qm, shift, mscale, np.int64(out_zero_point),
                         np.int64(act_range[0]), np.int64(act_range[1]), out)
    return out, (acc if want_acc else None)
