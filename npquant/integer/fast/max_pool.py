"""The fast integer max pool for the common window: kernel 2x2, stride 2, no padding.

``out[n, c, i, j] = clamp(max(x[n, c, 2i, 2j], x[n, c, 2i, 2j+1], x[n, c, 2i+1, 2j],
x[n, c, 2i+1, 2j+1]), lo, hi)`` and, on request, ``acc`` = that maximum before the clamp (int32):
the numbers of ``npquant.integer.pool``'s general loop (floor mode: an odd last row or column is
dropped there too). The fixed window lets LLVM vectorize the loop over output columns, which the
general loop (a runtime window size and a bounds test per tap) does not; a call runs on one
thread below ``threads.POOL_GRAIN`` output elements.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from npquant.integer.fast.threads import POOL_GRAIN, threads_for


@numba.njit(cache=True, parallel=True)
def _max_pool_2x2(x, lo, hi, want_acc, acc, out):
    n_len, c_len, oh_len, ow_len = out.shape
    for t in prange(n_len * c_len):
        n = t // c_len
        c = t % c_len
        plane = x[n, c]
        for i in range(oh_len):
            r0 = plane[2 * i]
            r1 = plane[2 * i + 1]
            dst = out[n, c, i]
            for j in range(ow_len):
                m = max(max(r0[2 * j], r0[2 * j + 1]), max(r1[2 * j], r1[2 * j + 1]))
                dst[j] = min(max(m, lo), hi)
            if want_acc:
                a = acc[n, c, i]
                for j in range(ow_len):
                    a[j] = max(max(r0[2 * j], r0[2 * j + 1]), max(r1[2 * j], r1[2 * j + 1]))


def applies(kernel_size: tuple[int, int], stride: tuple[int, int],
            pads: tuple[int, int, int, int]) -> bool:
    """True for the window this kernel computes: 2x2, stride 2, no padding."""
    return kernel_size == (2, 2) and stride == (2, 2) and pads == (0, 0, 0, 0)


def max_pool_2x2(x: np.ndarray, act_range: tuple[int, int], want_acc: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(out, acc or None)`` of the 2x2 stride-2 max pool of ``x (N, C, H, W)`` (module doc).

    Contract: x int8/uint8/int16 with H, W >= 2; lo <= hi inside x's dtype range."""
    n_len, c_len, h_len, w_len = x.shape
    shape = (n_len, c_len, h_len // 2, w_len // 2)
    out = np.empty(shape, dtype=x.dtype)
    acc = np.empty(shape if want_acc else (0, 0, 0, 0), dtype=np.int32)
    with threads_for(out.size, POOL_GRAIN):
        _max_pool_2x2(x, np.int64(act_range[0]), np.int64(act_range[1]), want_acc, acc, out)
    return out, (acc if want_acc else None)
