"""Accumulator models of the integer kernels: exact, N-bit wrap/saturate/raise, vpmaddubsw pairs.

Every GEMM-like kernel (fully connected, conv, depthwise) computes, for each output element,

    acc = bias + sum_k (a_k - Za)(w_k - Zw)                                           (eq. 1)

in a fixed **reduction order** k = 0..K-1: for a fully-connected layer the order of the input
features; for a convolution the order of the flattened OIHW weight row of one group,
``(ci, kh, kw)`` with ``kw`` fastest (padded taps included: they read ``a = Za`` and add 0), or
``(kh, kw, ci)`` when the rule's ``conv_order`` is ``"hwc"`` (NHWC kernels).
The accumulator starts at the bias (as CMSIS-NN and most accelerators initialise it) and adds the
terms one by one. An ``AccumulatorRule(bits, overflow, pair_saturation)`` says what a partial sum
outside ``[-2^(bits-1), 2^(bits-1) - 1]`` does:

* ``raise``: stop with ``AccumulatorOverflowError`` naming the layer, the output index, the
  reduction step and the partial sum. Under ``raise`` no partial sum leaves the range, so the
  result equals the exact sum and also what ``wrap`` and ``saturate`` hardware would compute;
* ``wrap``: two's complement wrap-around of every partial sum; modular arithmetic makes this the
  exact sum wrapped once, whatever the order;
* ``saturate``: every partial sum clamped to the range (order-dependent, emulated step by step).

``pair_saturation`` models x86 ``vpmaddubsw`` (fbgemm, ONNX Runtime on AVX2): the kernel multiplies
the *stored* values (uint8 activations by int8 weights), adds adjacent products along the
reduction order in pairs ``(k, k+1)`` for even k, and saturates each pair sum to int16 before
accumulating; the zero-point terms of eq. 2 are added afterwards as one more term:

    acc = bias + sum_j sat16(a_2j w_2j + a_2j+1 w_2j+1) + (-Zw sum a - Za sum w + K Za Zw)

(with an odd K the last product is paired with 0).

Checking is cheap when it can be: ``sum_k |a_k - Za| |w_k - Zw| + |bias| <= K max|a - Za|
max|w - Zw| + max|bias|`` bounds every partial sum, so when that bound is inside the range no
step can overflow and the fast kernels' exact sums are the answer (and with pair saturation,
``2 max|a| max|w| <= 2^15 - 1`` proves no pair saturates). Only when the bound fails does
``emulate_accumulation`` run the sequential model of the rule (an exact check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from npquant.profiles import AccumulatorRule, Overflow

OVERFLOW_RAISE, OVERFLOW_WRAP, OVERFLOW_SATURATE = 0, 1, 2
_OVERFLOW_CODES = {Overflow.RAISE: OVERFLOW_RAISE, Overflow.WRAP: OVERFLOW_WRAP,
                   Overflow.SATURATE: OVERFLOW_SATURATE}
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1

# Plans: how an accumulator array is produced (see ``plan_accumulation``).
PLAN_EXACT = "exact"  # bound proves no step overflows: exact sums (int32 kernels if they fit)
PLAN_WRAP = "wrap"  # exact int64 sums, then wrapped once to `bits`
PLAN_EMULATE = "emulate"  # sequential model of the rule, step by step


class AccumulatorOverflowError(OverflowError):
    """A partial sum left the accumulator of an ``overflow=raise`` rule.

    Attributes: ``layer`` (name), ``index`` (output index in the kernel's output layout),
    ``step`` (reduction step k, -1 for the bias itself, K for the zero-point term of pair mode),
    ``partial_sum`` (the exact value that left the range) and ``bits``.
    """

    def __init__(self, layer: str, index: tuple[int, ...], step: int, partial_sum: int,
                 bits: int) -> None:
        self.layer, self.index, self.step = layer, index, step
        self.partial_sum, self.bits = partial_sum, bits
        super().__init__(
            f"{layer}: int{bits} accumulator overflow at output index {index}, reduction step "
            f"{step}: partial sum {partial_sum} is outside [{-(1 << (bits - 1))}, "
            f"{(1 << (bits - 1)) - 1}]")


def check_rule(rule: AccumulatorRule) -> AccumulatorRule:
    """Validate an ``AccumulatorRule``: bits in 16..64, a known overflow mode."""
    if not isinstance(rule, AccumulatorRule):
        raise TypeError(f"accumulator must be an AccumulatorRule, got {type(rule).__name__}")
    if isinstance(rule.bits, bool) or not isinstance(rule.bits, (int, np.integer)) \
            or not 16 <= rule.bits <= 64:
        raise ValueError(f"accumulator.bits must be an int in 16..64, got {rule.bits!r}")
    Overflow(rule.overflow)
    return rule


def operand_bound(a: np.ndarray, za: int, w: np.ndarray, zw: np.ndarray, k: int,
                  bias: np.ndarray) -> int:
    """``K max|a - Za| max|w - Zw| + max|bias|``: a bound on every partial sum of eq. 1.

    ``a``, ``w`` are the stored integers (any shape), ``zw`` the weight zero points. Computed
    from the data (two passes of min/max), as a Python int.
    """
    amax = max(abs(int(a.max()) - za), abs(int(a.min()) - za)) if a.size else 0
    wmax = 0
    if w.size:
        wmax = max(abs(int(w.max()) - int(zw.min())), abs(int(w.min()) - int(zw.max())))
    bmax = int(np.abs(bias).max()) if bias.size else 0
    return k * amax * wmax + bmax


def dtype_bound(a_dtype: np.dtype, za: int, w_dtype: np.dtype, zw: np.ndarray, k: int,
                bias: np.ndarray) -> int:
    """``operand_bound`` with every operand at its dtype's extremes: a bound on every partial
    sum of eq. 1 for any data of these dtypes (as a Python int)."""
    ai, wi = np.iinfo(a_dtype), np.iinfo(w_dtype)
    amax = max(abs(int(ai.max) - za), abs(int(ai.min) - za))
    wmax = 0
    if zw.size:
        wmax = max(abs(int(wi.max) - int(zw.min())), abs(int(wi.min) - int(zw.max())))
    bmax = int(np.abs(bias).max()) if bias.size else 0
    return k * amax * wmax + bmax


def pairs_may_saturate(a: np.ndarray, w: np.ndarray) -> bool:
    """False when ``2 max|a| max|w| <= 2^15 - 1`` proves no vpmaddubsw pair sum saturates."""
    if not a.size or not w.size:
        return False
    amax = max(abs(int(a.max())), abs(int(a.min())))
    wmax = max(abs(int(w.max())), abs(int(w.min())))
    return 2 * amax * wmax > INT16_MAX


@dataclass(frozen=True)
class Plan:
    """How to produce the accumulators of one call: ``kind`` (a PLAN_*), and whether the exact
    sums are known to fit int32 (``fits_int32``), which selects the int32 fast kernels."""

    kind: str
    fits_int32: bool


def plan_accumulation(rule: AccumulatorRule, bound: int, pairs_saturate: bool) -> Plan:
    """Choose the cheapest computation that is exact under ``rule`` (module docstring)."""
    limit = 1 << (rule.bits - 1)
    if rule.pair_saturation and pairs_saturate:
        return Plan(PLAN_EMULATE, False)
    if bound < limit:
        return Plan(PLAN_EXACT, bound < 2**31)
    if rule.overflow is Overflow.WRAP and bound < 2**62:
        return Plan(PLAN_WRAP, False)
    return Plan(PLAN_EMULATE, False)


def plan_for(a: np.ndarray, za: int, w: np.ndarray, zw: np.ndarray, k_len: int,
             bias: np.ndarray, rule: AccumulatorRule) -> Plan:
    """The plan for these operands: the operand bound of a ``k_len``-term reduction, and whether
    vpmaddubsw pairs may saturate under ``rule`` (the one dispatch condition of every kernel)."""
    if not rule.pair_saturation:
        # the bound of the dtypes' extremes bounds the data's; when it already proves int32
        # exact, the data's bound (never larger) gives the same plan: skip reading the operands
        plan = plan_accumulation(rule, dtype_bound(a.dtype, za, w.dtype, zw, k_len, bias), False)
        if plan.kind == PLAN_EXACT and plan.fits_int32:
            return plan
    bound = operand_bound(a, za, w, zw, k_len, bias)
    return plan_accumulation(rule, bound, rule.pair_saturation and pairs_may_saturate(a, w))


def wrap_to_bits(acc: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap of int64 values to ``bits`` bits.

    ``wrap(x) = ((x + 2^(b-1)) mod 2^b) - 2^(b-1)``.
    """
    if bits >= 64:
        return acc.astype(np.int64)
    half = np.int64(1) << np.int64(bits - 1)
    mask = (np.int64(1) << np.int64(bits)) - np.int64(1)
    return ((acc.astype(np.int64) + half) & mask) - half


def accumulator_dtype(rule: AccumulatorRule) -> np.dtype:
    """int32 for accumulators of at most 32 bits, int64 for wider ones."""
    return np.dtype(np.int32) if rule.bits <= 32 else np.dtype(np.int64)


@numba.njit(cache=True)
def _step(x: int, lo: int, hi: int, overflow: int, bits: int) -> tuple[int, bool]:
    """One accumulation step's range rule: ``(value, ok)``; ok is False only for raise."""
    if lo <= x <= hi:
        return x, True
    if overflow == OVERFLOW_SATURATE:
        return (lo if x < lo else hi), True
    if overflow == OVERFLOW_WRAP:
        span = hi - lo + 1
        return ((x - lo) % span) + lo, True
    return x, False


@numba.njit(cache=True)
def _emulate_kernel(a, w, za, zw, bias, bits, overflow, pair, out, err):
    """Sequential model of eq. 1 (or the pair form) for ``out[m, n]`` = row m of a, row n of w.

    Contract: a (M, K) and w (N, K) integer arrays of stored values, zw and bias int64 (N,),
    out int64 (M, N), err int64 (4,). ``bits`` in 16..64 (for 64 the int64 sums must not
    overflow: the caller's bound is < 2^62). On a raise-overflow writes ``(m, n, step, value)``
    into err and returns False.
    """
    m_rows, k_len = a.shape
    n_cols = w.shape[0]
    if bits >= 64:
        lo = -9223372036854775807 - 1
        hi = 9223372036854775807
    else:
        lo = -(1 << (bits - 1))
        hi = (1 << (bits - 1)) - 1
    for m in range(m_rows):
        for n in range(n_cols):
            acc, ok = _step(bias[n], lo, hi, overflow, bits)
            if not ok:
                err[0], err[1], err[2], err[3] = m, n, -1, acc
                return False
            if pair:
                sum_a = 0
                sum_w = 0
                for k in range(0, k_len, 2):
                    p = np.int64(a[m, k]) * np.int64(w[n, k])
                    sum_a += a[m, k]
                    sum_w += w[n, k]
                    if k + 1 < k_len:
                        p += np.int64(a[m, k + 1]) * np.int64(w[n, k + 1])
                        sum_a += a[m, k + 1]
                        sum_w += w[n, k + 1]
                    if p > 32767:
                        p = 32767
                    elif p < -32768:
                        p = -32768
                    acc, ok = _step(acc + p, lo, hi, overflow, bits)
                    if not ok:
                        err[0], err[1], err[2], err[3] = m, n, k, acc
                        return False
                corr = -zw[n] * sum_a - za * sum_w + k_len * za * zw[n]
                acc, ok = _step(acc + corr, lo, hi, overflow, bits)
                if not ok:
                    err[0], err[1], err[2], err[3] = m, n, k_len, acc
                    return False
            else:
                for k in range(k_len):
                    t = (np.int64(a[m, k]) - za) * (np.int64(w[n, k]) - zw[n])
                    acc, ok = _step(acc + t, lo, hi, overflow, bits)
                    if not ok:
                        err[0], err[1], err[2], err[3] = m, n, k, acc
                        return False
            out[m, n] = acc
    return True


def emulate_accumulation(a: np.ndarray, w: np.ndarray, za: int, zw: np.ndarray,
                         bias: np.ndarray, rule: AccumulatorRule, *, layer: str,
                         index_of: Callable[[int, int], tuple[int, ...]]) -> np.ndarray:
    """Accumulators ``(M, N)`` of ``a (M, K)`` x ``w (N, K)`` under ``rule``, step by step.

    ``index_of(m, n)`` maps a GEMM position to the kernel's output index for the error message.
    Returns int64 values inside the rule's range.
    """
    out = np.zeros((a.shape[0], w.shape[0]), dtype=np.int64)
    err = np.zeros(4, dtype=np.int64)
    ok = _emulate_kernel(a, w, np.int64(za), zw.astype(np.int64), bias.astype(np.int64),
                         np.int64(rule.bits), np.int64(_OVERFLOW_CODES[Overflow(rule.overflow)]),
                         bool(rule.pair_saturation), out, err)
    if not ok:
        raise AccumulatorOverflowError(layer, index_of(int(err[0]), int(err[1])), int(err[2]),
                                       int(err[3]), rule.bits)
    return out
