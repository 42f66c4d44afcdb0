"""Integer GEMM and the fully-connected layer: ``q_out = requant(sum_k (a - Za)(w - Zw) + bias)``.

Layout: activations ``x (N, K)``, weights ``w (O, K)`` (PyTorch ``Linear``), output ``(N, O)``.

The accumulators are computed with the zero-point expansion of gemmlowp (doc/low-precision.md;
Jacob et al. 2018, arXiv:1712.05877, eq. 7):

    sum_k (a_k - Za)(w_k - Zw) = sum_k a_k w_k - Zw sum_k a_k - Za sum_k w_k + K Za Zw      (eq. 2)

so the inner loop multiplies the stored integers only, and the zero points enter through one row
sum per activation row and one column sum per weight row. With int8/uint8 activations on a CPU
with AVX-512 VNNI the u8 x s8 ``vpdpbusd`` kernel of ``npquant.integer.fast_gemm`` runs; the
loops below are the portable path (and int16 activations). The inner product runs on int16
operands into an int32 accumulator that wraps (``_gemm_i32``): when the operand bound of
``npquant.integer.accumulator`` proves the exact value of eq. 1 fits in int32, eq. 2 evaluated
modulo 2^32 *is* that value, however the raw sum ``sum a w`` wrapped on the way. Otherwise the
plain int64 loop of eq. 1 (``_gemm_i64``) or the sequential accumulator model runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import prange

from npquant.integer import accumulator as accm
from npquant.integer import fast_gemm
from npquant.integer._checks import (
    ACTIVATION_DTYPES,
    WEIGHT_DTYPES,
    check_bias,
    check_int_array,
    check_out_dtype,
    check_profile,
    check_zero_point,
    check_zero_points,
)
from npquant.integer.epilogue import (
    activation_range,
    needs_domain_check,
    requantize_accumulators,
    resolve_requant,
)
from npquant.integer.result import KernelResult
from npquant.profiles import AccumulatorRule, Profile
from npquant.requant import RequantParams

# Weight rows per cache block of the fast kernel: _NB rows of K int16 stay in L2 while every
# activation row streams past them.
_NB = 128
# Below this reduction length the column-vectorized kernel (_gemm_i32_small_k) runs instead.
_SMALL_K = 32


@numba.njit(cache=True)
def _gemm_i64(a, w, za, zw, bias, out):
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
def _gemm_i32(a, w, za, zw, bias, out):
    """Eq. 2 modulo 2^32: raw int16 products summed into wrapping int32 accumulators.

    Contract: a (M, K) int16, w (N, K) int16, C-contiguous; zw, bias int64 (N,); out int32 (M, N).
    The exact value of eq. 1 must fit int32 (the caller's bound); then the wrapped result is exact.

    Performance notes (measured, see docs/kernels.md): one dot product per (m, n), its k loop
    contiguous in both operands, is the form LLVM vectorizes into vpmaddwd / vpdpwssd (AVX-512
    VNNI) with the int32 truncation ``np.int32(s + x * y)`` letting it narrow the products to
    16 x 16 -> 32 bits. Register blocking (several dot products in one k loop) defeats that
    vectorizer, so blocking is for cache only: _NB weight rows (_NB K 2 bytes) stay in L2 while
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
    for n0 in range(0, n_cols, _NB):
        n1 = min(n0 + _NB, n_cols)
        for m in prange(m_rows):
            for n in range(n0, n1):
                s = np.int32(0)
                for k in range(k_len):
                    s = np.int32(s + np.int32(a[m, k]) * np.int32(w[n, k]))
                out[m, n] = np.int32(s - zw[n] * row_sum[m] + const[n])


@numba.njit(cache=True, parallel=True)
def _gemm_i32_small_k(a, wt, za, zw, bias, out):
    """Eq. 1 for a short reduction (K < _SMALL_K), exact in int32, vectorized over columns.

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


def _vnni_applies(a, w, za, zw, bias, rule) -> bool:
    """True when ``fast_gemm`` computes the exact accumulators: a VNNI CPU, int8/uint8
    activations, and the operand bound proves int32 exact (no vpmaddubsw pair saturating)."""
    if not fast_gemm.HAVE_VNNI or a.dtype == np.int16:
        return False
    bound = accm.operand_bound(a, za, w, zw, a.shape[1], bias)
    plan = accm.plan_accumulation(rule, bound, rule.pair_saturation
                                  and accm.pairs_may_saturate(a, w))
    return plan.kind == accm.PLAN_EXACT and plan.fits_int32


def accumulate(a: np.ndarray, w: np.ndarray, za: int, zw: np.ndarray, bias: np.ndarray,
               rule: AccumulatorRule, *, layer: str,
               index_of: Callable[[int, int], tuple[int, ...]]) -> np.ndarray:
    """Accumulators ``(M, N)`` of eq. 1 for ``a (M, K)`` and ``w (N, K)`` under ``rule``.

    ``a``/``w`` hold stored integers (int8/uint8/int16), ``zw``/``bias`` are int64 ``(N,)``.
    Returns int32 (``rule.bits <= 32``) or int64. Picks the fast kernel when the operand bound
    proves it exact (npquant.integer.accumulator), else the int64 loop or the step-by-step model.
    """
    k_len = a.shape[1]
    bound = accm.operand_bound(a, za, w, zw, k_len, bias)
    pairs = rule.pair_saturation and accm.pairs_may_saturate(a, w)
    plan = accm.plan_accumulation(rule, bound, pairs)
    out_dtype = accm.accumulator_dtype(rule)
    if plan.kind == accm.PLAN_EMULATE:
        acc = accm.emulate_accumulation(a, w, za, zw, bias, rule, layer=layer, index_of=index_of)
        return acc.astype(out_dtype)
    if plan.fits_int32 and fast_gemm.HAVE_VNNI and a.dtype != np.int16:
        return fast_gemm.gemm_exact_vnni(a, w, za, zw, bias).astype(out_dtype, copy=False)
    if plan.fits_int32 and k_len < _SMALL_K:
        out = np.empty((a.shape[0], w.shape[0]), dtype=np.int32)
        _gemm_i32_small_k(np.ascontiguousarray(a, dtype=np.int16),
                          np.ascontiguousarray(w.T, dtype=np.int16), np.int64(za), zw, bias, out)
        return out.astype(out_dtype, copy=False)
    if plan.fits_int32:
        out = np.empty((a.shape[0], w.shape[0]), dtype=np.int32)
        _gemm_i32(np.ascontiguousarray(a, dtype=np.int16), np.ascontiguousarray(w, dtype=np.int16),
                  np.int64(za), zw, bias, out)
        return out.astype(out_dtype, copy=False)
    out64 = np.empty((a.shape[0], w.shape[0]), dtype=np.int64)
    _gemm_i64(a, w, np.int64(za), zw, bias, out64)
    if plan.kind == accm.PLAN_WRAP:
        out64 = accm.wrap_to_bits(out64, rule.bits)
    return out64.astype(out_dtype)


def fully_connected(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
                    x_zero_point: int, out_zero_point: int, w_zero_point: Any = 0,
                    x_scale: float | None = None, w_scale: Any = None,
                    out_scale: float | None = None, requant: RequantParams | None = None,
                    profile: Profile | str = "tflite", out_dtype: Any = np.int8,
                    out_bits: int | None = None, activation: str | None = None,
                    accumulator: AccumulatorRule | None = None,
                    layer: str = "fully_connected", return_accumulators: bool = False
                    ) -> np.ndarray | KernelResult:
    """Integer fully-connected layer ``y = requant(x w^T + bias)`` (eq. 1, computed as eq. 2).

    Args:
        x: activations ``(N, K)``, int8/uint8/int16.
        w: weights ``(O, K)``, int8/uint8 (PyTorch ``Linear`` layout).
        bias: int32 ``(O,)`` with scale ``S_x S_w[o]`` and zero point 0, or None.
        x_zero_point, w_zero_point, out_zero_point: zero points (``w_zero_point`` an int or one
            per output channel).
        x_scale, w_scale, out_scale: the scales (``w_scale`` a number or ``(O,)``), from which the
            profile's ``fully_connected`` rule derives ``M``; or give ``requant`` instead.
        profile: a ``Profile`` or its name; its ``fully_connected`` rule and ``accumulator``.
        out_dtype: int8, uint8 or int16.
        out_bits: the output's bit width (2.. the dtype's): outputs clamp to its range, e.g.
            ``[-8, 7]`` for 4 bits in int8 (``activation_range``); None: the dtype's range.
        activation: None, "relu" or "relu6" as an integer clamp (``activation_range``).
        accumulator: overrides ``profile.accumulator``.
        layer: the name in overflow errors.
        return_accumulators: also return the accumulators ``(N, O)``.

    Returns the output ``(N, O)`` of ``out_dtype``, or a ``KernelResult(out, acc)``.
    """
    prof = check_profile(profile)
    x = check_int_array("x", x, ACTIVATION_DTYPES, 2)
    w = check_int_array("w", w, WEIGHT_DTYPES, 2)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has K={x.shape[1]} features but w has K={w.shape[1]} "
                         f"(x {x.shape}, w {w.shape})")
    o = w.shape[0]
    b = check_bias(bias, o)
    za = check_zero_point("x_zero_point", x_zero_point, x.dtype)
    zw = check_zero_points("w_zero_point", w_zero_point, w.dtype, o)
    odt = check_out_dtype(out_dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, odt)
    rule = accm.check_rule(accumulator if accumulator is not None else prof.accumulator)
    op_rule = prof.fully_connected.for_gemm(x.shape[0], o, x.shape[1])  # N columns, depth K
    params = resolve_requant(op_rule, requant, x_scale, w_scale, out_scale, o)
    act = activation_range(activation, out_scale, zo, odt, prof, out_bits)
    if _vnni_applies(x, w, za, zw, b, rule) and not needs_domain_check(params):
        # the same sums and the same epilogue, fused into the GEMM's last pass
        acc, out = fast_gemm.gemm_exact_vnni(x, w, za, zw, b, requant=params, out_zero_point=zo,
                                             act_range=act, out_dtype=odt,
                                             want_acc=return_accumulators)
        if acc is not None:
            acc = acc.astype(accm.accumulator_dtype(rule), copy=False)
        return KernelResult(out, acc) if return_accumulators else out
    acc = accumulate(x, w, za, zw, b, rule, layer=layer, index_of=lambda m, n: (m, n))
    out = requantize_accumulators(acc, params, channel_axis=1, out_zero_point=zo, act_range=act,
                                  out_dtype=odt)
    return KernelResult(out, acc) if return_accumulators else out
