"""The portable GEMM loops of ``npquant.integer.gemm`` (any CPU, int8/uint8/int16 operands).

Each computes eq. 1 of ``npquant.integer.accumulator``, ``out[m, n] = bias[n] + sum_k
(a[m, k] - Za)(w[n, k] - Zw[n])``, for a caller that has proved (by the operand bound) that the
exact sums fit the kernel's integer type; ``npquant.integer.reference.fully_connected`` is the
same arithmetic without the speed.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

# Weight rows per cache block of the fast kernel: NB rows of K int16 stay in L2 while every
# activation row streams past them.
NB = 128
# Below this reduction length the column-vectorized kernel (gemm_i32_small_k) runs instead.
SMALL_K = 32


@numba.njit(cache=True)
def gemm_i64(a, w, za, zw, bias, out):
    """The plain loop of eq. 1 in int64: ``out[m, n] = bias[n] + sum_k (a[m,k]-za)(w[n,k]-zw[n])``.

    Contract: a (M, K), w (N, K) integer; zw, bias int64 (N,); out int64 (M, N); every sum fits
    in int64 (|a - za|, |w - zw| < 2^16 and K < 2^30).
    """
    m_rows, k_len = a.shape
    for m in range(m_rows):
        for n in range(w.shape[0]):
            acc = bias[n]
            for k in range(k_len):
                acc += (np.int64(a[m, k]) - za) * (np.int64(w[n, k]) - zw[n])
            out[m, n] = acc


@numba.njit(cache=True, parallel=True)
def gemm_i32(a, w, za, zw, bias, out):
    """Eq. 2 modulo 2^32: raw int16 products summed into wrapping int32 accumulators.

    Contract: a (M, K) int16, w (N, K) int16, C-contiguous; zw, bias int64 (N,); out int32 (M, N).
    The exact value of eq. 1 must fit int32 (the caller's bound); then the wrapped result is exact.

    Performance notes (measured, see docs/kernels.md): one dot product per (m, n), its k loop
    contiguous in both operands, is the form LLVM vectorizes into vpmaddwd / vpdpwssd (AVX-512
    VNNI) with the int32 truncation ``np.int32(s + x * y)`` letting it narrow the products to
    16 x 16 -> 32 bits. Register blocking (several dot products in one k loop) defeats that
    vectorizer, so blocking is for cache only: NB weight rows (NB K 2 bytes) stay in L2 while
    all activation rows, in parallel (prange), stream past them.
    """
    m_rows, k_len = a.shape
    n_cols = w.shape[0]
    row_sum = np.zeros(m_rows, dtype=np.int64)
    col_sum = np.zeros(n_cols, dtype=np.int64)
    for m in prange(m_rows):
        s = 0
        for k in range(k_len):
            s += a[m, k]
        row_sum[m] = s
    for n in prange(n_cols):
        s = 0
        for k in range(k_len):
            s += w[n, k]
        col_sum[n] = s
    # constant term per column of eq. 2: bias - Za sum w + K Za Zw
    const = np.empty(n_cols, dtype=np.int64)
    for n in range(n_cols):
        const[n] = bias[n] - za * col_sum[n] + k_len * za * zw[n]
    for n0 in range(0, n_cols, NB):
        n1 = min(n0 + NB, n_cols)
        for m in prange(m_rows):
            for n in range(n0, n1):
                s = np.int32(0)
                for k in range(k_len):
                    s = np.int32(s + np.int32(a[m, k]) * np.int32(w[n, k]))
                out[m, n] = np.int32(s - zw[n] * row_sum[m] + const[n])


@numba.njit(cache=True, parallel=True)
def gemm_i32_small_k(a, wt, za, zw, bias, out):
    """Eq. 1 for a short reduction (K < SMALL_K), exact in int32, vectorized over columns.

    Contract: a (M, K) int16, wt (K, N) int16 (the weights transposed), C-contiguous; zw, bias
    int64 (N,); out int32 (M, N); the exact sums fit int32. A dot product of 9 terms is too short
    for the vector units; here each a[m, k] - za is broadcast over a contiguous row of N weights
    (an axpy), so the vectorized loop is the one over n.
    """
    m_rows, k_len = a.shape
    n_cols = wt.shape[1]
    wz = np.empty((k_len, n_cols), dtype=np.int32)  # w - zw, once
    for k in range(k_len):
        for n in range(n_cols):
            wz[k, n] = np.int32(wt[k, n] - zw[n])
    b32 = np.empty(n_cols, dtype=np.int32)
    for n in range(n_cols):
        b32[n] = np.int32(bias[n])
    for m in prange(m_rows):
        for n in range(n_cols):
            out[m, n] = b32[n]
        for k in range(k_len):
            av = np.int32(a[m, k] - za)
            for n in range(n_cols):
                out[m, n] = np.int32(out[m, n] + av * wz[k, n])
