"""Fixed-point primitives of integer requantization, bit-exact with gemmlowp, TFLite, ORT and TIDL.

Every primitive exists twice, from one definition:

* a scalar ``*_scalar`` function compiled by numba (``@njit``), which integer kernels call inside
  their loops. It computes in int64 and assumes validated arguments (the contract is stated in its
  docstring);
* a public numpy function of the same name without the suffix, which validates its arguments
  (dtype, int32 range, shift range), broadcasts, and runs the scalar function over the arrays.

Notation (docs/fixedpoint.md derives each formula): an int32 multiplier ``M0`` stands for the
real number ``M0 / 2^31`` (Q0.31), and a requantization multiplier ``M = M0 * 2^shift / 2^31``
with ``M0`` in ``[2^30, 2^31)`` for ``M > 0``. "Ties up" rounds x.5 to x + 1 (toward +inf),
"ties away" rounds x.5 away from zero, "ties to even" rounds x.5 to the even neighbour.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from enum import Enum
from typing import Any

import numba
import numpy as np

from npquant.validate import check_bits

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


class Ties(str, Enum):
    """How a rounding step resolves an exact tie (x.5)."""

    UP = "up"  # x.5 -> x + 1 (toward +inf): gemmlowp SRDHM, ARM VRSHL, (x + 2^(n-1)) >> n
    AWAY = "away"  # x.5 -> away from zero: C round(), gemmlowp RoundingDivideByPOT
    EVEN = "even"  # x.5 -> even neighbour: IEEE default, nearbyint(), numpy.rint()

    @property
    def code(self) -> int:
        """The small integer that numba kernels receive for this rule."""
        return _TIES_CODES[self]


TIES_UP, TIES_AWAY, TIES_EVEN = 0, 1, 2
_TIES_CODES = {Ties.UP: TIES_UP, Ties.AWAY: TIES_AWAY, Ties.EVEN: TIES_EVEN}


class FloatPrecision(str, Enum):
    """The float type in which a float requantization multiplies."""

    FLOAT32 = "float32"
    FLOAT64 = "float64"


# --------------------------------------------------------------------------------------------
# Integer ranges and saturation
# --------------------------------------------------------------------------------------------


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """``(qmin, qmax)`` of a ``bits``-wide integer: ``[-2^(b-1), 2^(b-1)-1]`` or ``[0, 2^b-1]``.

    ``bits`` must be in 2..32 (an int with fewer than 2 bits cannot hold an affine range).
    """
    check_bits("bits", bits, 2, 32)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def saturate(x: np.ndarray | int, bits: int, signed: bool) -> np.ndarray:
    """Clamp integers to the range of a ``bits``-wide signed/unsigned integer, returning int64.

    ``saturate(x) = min(max(x, qmin), qmax)`` with ``(qmin, qmax) = int_range(bits, signed)``.
    """
    qmin, qmax = int_range(bits, signed)
    arr = _as_int64(x, "x")
    return np.clip(arr, qmin, qmax)


@numba.njit(cache=True, inline="always")
def saturate_scalar(x: int, qmin: int, qmax: int) -> int:
    """``min(max(x, qmin), qmax)``; contract: ``qmin <= qmax``."""
    if x < qmin:
        return qmin
    if x > qmax:
        return qmax
    return x


# --------------------------------------------------------------------------------------------
# Scalar cores (numba). Contracts are checked by the public wrappers below, not here.
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def round_from_floor(floor, above_half: int, positive: bool, ties: int):
    """The one rounding decision of npquant: ``floor`` or ``floor + 1`` for a value ``v``.

    ``floor = floor(v)``; ``above_half`` is the sign of ``(v - floor) - 1/2`` (-1, 0 or +1);
    ``positive`` is ``v > 0``. Round up when the fraction is above one half, down when below,
    and on an exact tie as ``ties`` says: TIES_UP ``floor + 1`` (toward +inf), TIES_AWAY
    ``floor + 1`` for positive ``v`` and ``floor`` for negative ``v`` (away from zero),
    TIES_EVEN the even one of the two. Every rounding in the package (rounding shifts, the
    rounded division of pools, float-to-integer rounding) computes its exact ``floor`` and
    ``above_half`` and calls this; works on ints and on integral floats.
    """
    if above_half > 0:
        return floor + 1
    if above_half < 0:
        return floor
    if ties == TIES_UP:
        return floor + 1
    if ties == TIES_AWAY:
        return floor + 1 if positive else floor
    return floor + (floor % 2)  # ties to even: an odd floor goes up to the even floor + 1


@numba.njit(cache=True)
def round_divide_scalar(num: int, den: int, ties: int) -> int:
    """``round(num / den)`` exactly, with ``ties``; contract: ``den > 0``.

    ``q = floor(num / den)``, remainder ``r = num - q den`` in ``[0, den)``; the fraction
    ``r / den`` is compared with 1/2 as ``2 r`` with ``den`` (no float anywhere).
    """
    q = num // den
    r = num - q * den
    twice = 2 * r
    return round_from_floor(q, (twice > den) - (twice < den), num > 0, ties)


@numba.njit(cache=True)
def saturating_rounding_doubling_high_mul_scalar(a: int, b: int) -> int:
    """SRDHM: ``round(a * b / 2^31)`` with ties up; the one overflow saturates to INT32_MAX.

    Contract: ``a``, ``b`` in int32. ``a * b`` is exact in int64 (|a*b| <= 2^62). gemmlowp adds a
    nudge of ``2^30`` (or ``1 - 2^30`` for negative products) and divides by ``2^31`` truncating
    toward zero, which rounds ties toward +inf. ``INT32_MIN * INT32_MIN / 2^31 = 2^31`` does not
    fit in int32 and saturates. This is ARM's ``SQRDMULH`` (gemmlowp fixedpoint.h).
    """
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else (1 - (1 << 30))
    total = ab + nudge
    # C division truncates toward zero; Python's // floors, so divide the magnitude.
    if total >= 0:
        return total >> 31
    return -((-total) >> 31)


@numba.njit(cache=True)
def rounding_shift_right_scalar(x: int, exponent: int, ties: int) -> int:
    """``round(x / 2^exponent)`` with the given tie rule (TIES_UP, TIES_AWAY or TIES_EVEN).

    Contract: ``exponent`` in -31..62, ``x`` any int64 (no step can overflow: ``floor * 2^e <= x``);
    a negative exponent is an exact left shift of an int32 ``x``.
    ``>>`` is an arithmetic shift (floor division by ``2^exponent``); the remainder
    ``r = x - (floor(x / 2^e) * 2^e)`` in ``[0, 2^e)`` decides the rounding against the half
    ``h = 2^(e-1)``: round up when ``r > h``, and when ``r == h`` as the tie rule says.
    """
    if exponent <= 0:
        return x << -exponent  # a power-of-two multiplier >= 1 is an exact left shift
    floor = x >> exponent
    remainder = x - (floor << exponent)
    half = 1 << (exponent - 1)
    return round_from_floor(floor, (remainder > half) - (remainder < half), x > 0, ties)


@numba.njit(cache=True)
def rounding_divide_by_pot_scalar(x: int, exponent: int) -> int:
    """gemmlowp ``RoundingDivideByPOT``: ``round(x / 2^exponent)``, ties away from zero.

    Contract: ``x`` in int32, ``exponent`` in 0..31. gemmlowp compares the low bits
    ``x & (2^e - 1)`` with a threshold ``(2^e - 1) >> 1`` raised by one for negative ``x``; this
    is ties-away rounding of the exact quotient, which is how it is written here.
    """
    return rounding_shift_right_scalar(x, exponent, TIES_AWAY)


@numba.njit(cache=True)
def double_rounding_multiply_scalar(x: int, quantized_multiplier: int, shift: int,
                                    final_ties: int) -> int:
    """Two-step fixed-point requantization: ``round(round(x * 2^left * M0 / 2^31) / 2^right)``.

    ``left = max(shift, 0)``, ``right = max(-shift, 0)``. The first rounding is SRDHM (ties up),
    the second a rounding shift with ``final_ties``: TIES_AWAY is TFLite's reference
    ``MultiplyByQuantizedMultiplier`` (gemmlowp RoundingDivideByPOT); TIES_UP is the ARM NEON
    ``vrshlq_s32`` rounding shift that TFLite's optimized kernels use.
    Contract: ``x`` and ``x * 2^left`` in int32, ``quantized_multiplier`` in int32, ``shift`` in
    -31..31.
    """
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    high = saturating_rounding_doubling_high_mul_scalar(x << left, quantized_multiplier)
    return rounding_shift_right_scalar(high, right, final_ties)


@numba.njit(cache=True)
def late_shift_double_rounding_multiply_scalar(x: int, quantized_multiplier: int, shift: int,
                                               final_ties: int) -> int:
    """``double_rounding_multiply_scalar`` with the left shift last: for ``shift > 0``,
    ``round(x M0 / 2^31) 2^shift`` (the rounded product shifted, so the result is a multiple of
    ``2^shift``); for ``shift <= 0`` the same as double rounding. TFLite's aarch64 dot-product
    3x3 depthwise kernel applies ``M >= 1`` this way.
    Contract: ``x`` in int32, ``quantized_multiplier`` in int32, ``shift`` in -31..31; the
    result is int64 (it leaves int32 only for ``M >= 1``; the output clamp follows).
    """
    high = saturating_rounding_doubling_high_mul_scalar(x, quantized_multiplier)
    if shift > 0:
        return np.int64(high) << shift
    return rounding_shift_right_scalar(high, -shift, final_ties)


@numba.njit(cache=True)
def single_rounding_multiply_scalar(x: int, quantized_multiplier: int, shift: int) -> int:
    """One-step fixed-point requantization: ``(x * M0 + 2^(30 - shift)) >> (31 - shift)``.

    The exact product ``x * M0 / 2^(31 - shift)`` rounded once with ties up, in int64: TFLite
    built with ``TFLITE_SINGLE_ROUNDING``, ruy, TOSA ``double_round=false``, XNNPACK ``rndnu``.
    Contract: ``x`` in int32, ``quantized_multiplier`` in 0..INT32_MAX, ``shift`` in -31..30.
    The result is returned in int64 (it can leave int32 only for ``M >= 1``).
    """
    total_shift = 31 - shift
    return (x * quantized_multiplier + (1 << (total_shift - 1))) >> total_shift


@numba.njit(cache=True)
def round_float_scalar(value: float, ties: int) -> float:
    """Round a float to an integral float: ties to even (``nearbyint``), away (``round``) or up.

    The fraction is compared with 1/2 exactly: ``t = trunc(v)`` and ``f = v - t`` are exact in
    IEEE arithmetic, and so are ``f - 1/2`` and ``f + 1/2`` wherever their sign is in doubt
    (Sterbenz). ``v - floor(v)`` is not: for ``v = -0.49999999999999994`` it rounds to 0.5
    and fakes a tie, and ``floor(|v| + 0.5)`` is wrong at 0.49999999999999994 too.
    """
    if not math.isfinite(value):
        return value
    t = np.trunc(value)
    f = value - t
    if f >= 0.0:  # floor = t, fraction f
        return round_from_floor(t, (f > 0.5) - (f < 0.5), value > 0.0, ties)
    # floor = t - 1, fraction 1 + f: above one half when f > -1/2
    return round_from_floor(t - 1.0, (f > -0.5) - (f < -0.5), False, ties)


# Float results are clamped to +-2^62 before the conversion to int64, which is undefined in C
# and platform-dependent in numba outside the int64 range; every caller saturates to <= 32 bits.
_FLOAT_TO_INT_LIMIT = float(2**62)


@numba.njit(cache=True)
def float32_multiply_scalar(x: int, multiplier: np.float32, ties: int) -> int:
    """``round(f32(f32(x) * f32(M)))``: ORT's MLAS/FBGEMM requantization (with TIES_EVEN).

    ``f32(x)`` rounds the int32 accumulator to float32 (exact for ``|x| <= 2^24``), the product is
    rounded to float32, and the result to an integer with ``ties``.
    """
    product = np.float32(np.float32(x) * multiplier)
    rounded = round_float_scalar(np.float64(product), ties)
    return int(min(max(rounded, -_FLOAT_TO_INT_LIMIT), _FLOAT_TO_INT_LIMIT))


@numba.njit(cache=True, inline="always")
def float32_sum_scalar(a: float, b: float) -> np.float32:
    """``f32(a + b)``, the exact sum of two float64 values rounded once to float32 (ties to
    even): a float32 addition when both are float32 values, a fused multiply-add
    ``fma(p, q, a)`` when ``b = p q`` is the (exact) float64 product of two float32.

    The float64 sum ``s`` can itself round when the exponents of ``a`` and ``b`` lie far apart;
    TwoSum (Knuth) gives its exact error ``e = (a + b) - s``, which matters in one case only:
    ``s`` exactly halfway between two float32 ``r`` (its rounding, to even) and ``r2``, where the
    exact sum lies on the side of ``e``. With ``d = s - r`` (exact), ``s`` is such a midpoint
    exactly when ``r2 = s + d`` is a float32 too (otherwise ``s + d`` falls strictly between two).
    """
    s = a + b
    bv = s - a
    e = (a - (s - bv)) + (b - bv)
    r = np.float32(s)
    d = s - np.float64(r)
    r2 = s + d
    r2_32 = np.float32(r2)
    # both candidates computed, one selected: the loop stays branch-free (it vectorizes)
    beyond = (e != 0.0) & (d != 0.0) & ((e > 0.0) == (d > 0.0)) & (np.float64(r2_32) == r2)
    return r2_32 if beyond else r


@numba.njit(cache=True, inline="always")
def float32_bias_multiply_scalar(x: int, term: float, multiplier: np.float32,
                                 ties: int) -> int:
    """``round(f32(f32(f32(x) + term) * f32(M)))``: fbgemm's requantization with a float bias
    term added to the int32 sum in float32 (``npquant.integer.bias``); the sum is rounded once
    (``float32_sum_scalar``), ``term = 0`` is ``float32_multiply_scalar``."""
    total = float32_sum_scalar(np.float64(np.float32(x)), term)
    rounded = round_float_scalar(np.float64(np.float32(total * multiplier)), ties)
    return int(min(max(rounded, -_FLOAT_TO_INT_LIMIT), _FLOAT_TO_INT_LIMIT))


@numba.njit(cache=True)
def float64_multiply_scalar(x: int, multiplier: float, ties: int) -> int:
    """``round(f64(x) * f64(M))``: TFLite's reference FULLY_CONNECTED int8 path (TIES_AWAY)."""
    rounded = round_float_scalar(np.float64(x) * multiplier, ties)
    return int(min(max(rounded, -_FLOAT_TO_INT_LIMIT), _FLOAT_TO_INT_LIMIT))


# --------------------------------------------------------------------------------------------
# Multiplier derivation
# --------------------------------------------------------------------------------------------


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``M = M0 * 2^shift / 2^31`` with ``M0`` in ``[2^30, 2^31)``.

    ``frexp(M) = (q, shift)`` gives ``q`` in ``[0.5, 1)``; ``M0 = round(q * 2^31)`` with ties away
    (C ``round``). Edge cases, each as in TFLite (quantization_util.cc):

    * ``M == 0`` gives ``(0, 0)``;
    * ``q * 2^31`` rounding up to ``2^31`` carries: ``M0 = 2^30`` and ``shift + 1``;
    * ``shift < -31`` (roughly ``M < 2^-32``) flushes to ``(0, 0)``: every result would be 0.

    ``real_multiplier`` must be finite and >= 0. Returns Python ints ``(M0, shift)``.
    Examples: ``quantize_multiplier(0.5) == (2**30, 0)``,
    ``quantize_multiplier(1.0) == (2**30, 1)``.
    """
    m = _check_real_multiplier(real_multiplier)
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = _round_half_away(q * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_single_rounding(real_multiplier: float) -> tuple[int, int]:
    """``quantize_multiplier`` as TFLite builds it with ``TFLITE_SINGLE_ROUNDING``.

    Identical, except that ``shift > 30`` (``M >= 2^30``), which single rounding cannot shift,
    saturates to ``(2^31 - 1, 30)``.
    """
    q_fixed, shift = quantize_multiplier(real_multiplier)
    if shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def quantize_multiplier_array(real_multipliers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_multiplier`` of each element (per-channel multipliers): int32 and int32 arrays."""
    flat = np.asarray(real_multipliers, dtype=np.float64).ravel()
    pairs = [quantize_multiplier(float(m)) for m in flat]
    shape = np.shape(real_multipliers)
    m0 = np.array([p[0] for p in pairs], dtype=np.int64).reshape(shape).astype(np.int32)
    shifts = np.array([p[1] for p in pairs], dtype=np.int64).reshape(shape).astype(np.int32)
    return m0, shifts


def power_of_two_shift(real_multiplier: float) -> int:
    """The right shift ``n`` of a power-of-two multiplier ``M = 2^-n`` (TIDL, Qcode).

    ``M`` must be an exact power of two with ``n`` in -31..62, as power-of-two scales give
    (``S_in S_w / S_out = 2^(a + b - c)``); ``n < 0`` (``M > 1``) is an exact left shift.
    """
    m = _check_real_multiplier(real_multiplier)
    q, e = math.frexp(m)
    if q != 0.5:
        raise ValueError(f"real_multiplier={m!r} is not a power of two")
    n = 1 - e
    if not -31 <= n <= 62:
        raise ValueError(f"real_multiplier={m!r} = 2^{-n}: the shift must be in -31..62")
    return n


# --------------------------------------------------------------------------------------------
# Public, validated, numpy-vectorized versions
# --------------------------------------------------------------------------------------------


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """SRDHM of int32 arrays: ``round(a * b / 2^31)``, ties up; ``INT32_MIN^2`` -> INT32_MAX.

    Reproduces gemmlowp ``SaturatingRoundingDoublingHighMul`` and ARM ``SQRDMULH``. Returns int32.
    """
    a64 = _as_int32_values(a, "a")
    b64 = _as_int32_values(b, "b")
    return _vec_srdhm(a64, b64).astype(np.int32)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``round(x / 2^exponent)`` with ties away from zero.

    ``x`` int32, ``exponent`` in 0..31. Example: ``rounding_divide_by_pot(-5, 1) == -3``.
    Returns int32.
    """
    x64 = _as_int32_values(x, "x")
    e64 = _as_shift(exponent, "exponent", 0, 31)
    return _vec_shift(x64, e64, np.int64(TIES_AWAY)).astype(np.int32)


def rounding_shift_right(x, exponent, *, ties: Ties | str) -> np.ndarray:
    """Power-of-two requantization ``round(x / 2^exponent)`` of int64 values, with ``ties``.

    ``Ties.UP`` is ``(x + 2^(n-1)) >> n`` (TIDL, Qcode, most accelerators, ARM ``VRSHR``);
    ``Ties.AWAY`` is gemmlowp's ``RoundingDivideByPOT``; ``Ties.EVEN`` is convergent rounding.
    ``exponent`` in 0..62; ``x`` any int64. Returns int64.
    """
    x64 = _as_int64(x, "x")
    e64 = _as_shift(exponent, "exponent", 0, 62)
    return _vec_shift(x64, e64, np.int64(Ties(ties).code))


def round_float(values, ties: Ties | str) -> np.ndarray:
    """Round float64 values to integral float64 with an explicit tie rule, exactly
    (``round_float_scalar`` over an array; NaN stays NaN, infinities stay)."""
    return _vec_round_float(np.asarray(values, dtype=np.float64), np.int64(Ties(ties).code))


def multiply_by_quantized_multiplier(x, quantized_multiplier, shift) -> np.ndarray:
    """TFLite reference ``MultiplyByQuantizedMultiplier`` (double rounding), returning int32.

    ``round_away(SRDHM(x * 2^left, M0) / 2^right)`` with ``left = max(shift, 0)``,
    ``right = max(-shift, 0)``: TFLite reference kernels, TFLM, CMSIS-NN default, TOSA
    ``double_round``. ``x * 2^left`` must fit in int32 (it is undefined behaviour in C).
    """
    return double_rounding_multiply(x, quantized_multiplier, shift, final_ties=Ties.AWAY)


def double_rounding_multiply(x, quantized_multiplier, shift, *, final_ties: Ties | str
                             ) -> np.ndarray:
    """Double-rounding requantization with an explicit tie rule for the final shift (int32 out).

    ``final_ties=Ties.AWAY``: TFLite reference. ``final_ties=Ties.UP``: TFLite's optimized
    kernels (NEON ``vrshlq_s32``, emulated with SSE on x86).
    See ``multiply_by_quantized_multiplier``.
    """
    x64 = _as_int32_values(x, "x")
    m64 = _as_int32_values(quantized_multiplier, "quantized_multiplier")
    s64 = _as_shift(shift, "shift", -31, 31)
    left = np.maximum(s64, 0)
    shifted = x64 * (np.int64(1) << left)
    bad = (shifted < INT32_MIN) | (shifted > INT32_MAX)
    if np.any(bad):
        idx = _first_index(bad)
        raise ValueError(f"x * 2^shift leaves int32 at index {idx} "
                         f"(x={int(np.broadcast_to(x64, bad.shape)[idx])}, "
                         f"shift={int(np.broadcast_to(s64, bad.shape)[idx])})")
    out = _vec_double_rounding(x64, m64, s64, np.int64(Ties(final_ties).code))
    return out.astype(np.int32)


def single_rounding_multiply(x, quantized_multiplier, shift) -> np.ndarray:
    """Single-rounding requantization ``(x * M0 + 2^(30 - shift)) >> (31 - shift)`` (int32 out).

    TFLite with ``TFLITE_SINGLE_ROUNDING``, ruy, TOSA ``single_round``, XNNPACK ``rndnu``: one
    rounding of the exact product, ties up. ``M0`` in 0..INT32_MAX, ``shift`` in -31..30. A
    result outside int32 (possible only for ``M >= 1``) raises ValueError.
    """
    x64 = _as_int32_values(x, "x")
    m64 = _as_int32_values(quantized_multiplier, "quantized_multiplier")
    if np.any(m64 < 0):
        raise ValueError("quantized_multiplier must be >= 0 for single rounding")
    s64 = _as_shift(shift, "shift", -31, 30)
    out = _vec_single_rounding(x64, m64, s64)
    return _checked_int32(out, "single_rounding_multiply result")


def float_multiply(x, multiplier, *, precision: FloatPrecision | str, ties: Ties | str
                   ) -> np.ndarray:
    """Float requantization ``round(x * M)`` of int32 accumulators, returning int64.

    ``precision="float32"``: ``f32(f32(x) * f32(M))`` — ONNX Runtime MLAS, FBGEMM, XNNPACK fp32
    requantization (with ``ties="even"``). ``precision="float64"``: ``f64(x) * f64(M)`` — TFLite's
    reference int8 FULLY_CONNECTED (``ties="away"``). ``M`` must be finite and > 0. The caller
    adds the zero point and saturates.
    """
    x64 = _as_int32_values(x, "x")
    prec = FloatPrecision(precision)
    mult = np.asarray(multiplier, dtype=np.float64)
    if not np.all(np.isfinite(mult)) or np.any(mult <= 0):
        raise ValueError(f"multiplier must be finite and > 0, got {multiplier!r}")
    code = np.int64(Ties(ties).code)
    if prec is FloatPrecision.FLOAT32:
        return _vec_f32_multiply(x64, mult.astype(np.float32), code)
    return _vec_f64_multiply(x64, mult, code)


# --------------------------------------------------------------------------------------------
# numba ufuncs over the scalar cores (compiled on first use)
# --------------------------------------------------------------------------------------------


def lazy_vectorize(signature: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``numba.vectorize([signature], cache=True)``, built on the first call. With a signature
    numba builds the ufunc at import (from its cache: ~0.1 s each, 0.7-1.1 s for the eight of
    this module and ``npquant.requant`` on the development VM), a cost every command paid for
    ufuncs most never call (``npquant golden`` calls none). The ufunc is the same."""
    def wrap(core: Callable[..., Any]) -> Callable[..., Any]:
        built: list[Any] = []

        @functools.wraps(core)
        def call(*args: Any) -> Any:
            if not built:
                built.append(numba.vectorize([signature], cache=True)(core))
            return built[0](*args)
        return call
    return wrap


@lazy_vectorize("float32(float64, float64)")
def float32_sum(a, b):
    """``float32_sum_scalar`` element-wise over arrays (float64 in, float32 out)."""
    return float32_sum_scalar(a, b)


@lazy_vectorize("int64(int64, int64)")
def _vec_srdhm(a, b):
    return saturating_rounding_doubling_high_mul_scalar(a, b)


@lazy_vectorize("int64(int64, int64, int64)")
def _vec_shift(x, exponent, ties):
    return rounding_shift_right_scalar(x, exponent, ties)


@lazy_vectorize("int64(int64, int64, int64, int64)")
def _vec_double_rounding(x, m, shift, ties):
    return double_rounding_multiply_scalar(x, m, shift, ties)


@lazy_vectorize("int64(int64, int64, int64)")
def _vec_single_rounding(x, m, shift):
    return single_rounding_multiply_scalar(x, m, shift)


@lazy_vectorize("float64(float64, int64)")
def _vec_round_float(v, ties):
    return round_float_scalar(v, ties)


@lazy_vectorize("int64(int64, float32, int64)")
def _vec_f32_multiply(x, m, ties):
    return float32_multiply_scalar(x, m, ties)


@lazy_vectorize("int64(int64, float64, int64)")
def _vec_f64_multiply(x, m, ties):
    return float64_multiply_scalar(x, m, ties)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _round_half_away(value: float) -> int:
    """C ``round()`` of a double to a Python int (ties away from zero), exactly."""
    return int(round_float_scalar(value, TIES_AWAY))


def _check_real_multiplier(real_multiplier: float) -> float:
    try:
        m = float(real_multiplier)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"real_multiplier must be a real number, got {real_multiplier!r}") from exc
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"real_multiplier must be finite and >= 0, got {real_multiplier!r}")
    return m


def _as_int64(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values beyond int64")
    return arr.astype(np.int64)


def _as_int32_values(x, name: str) -> np.ndarray:
    arr = _as_int64(x, name)
    bad = (arr < INT32_MIN) | (arr > INT32_MAX)
    if np.any(bad):
        idx = _first_index(bad)
        raise ValueError(f"{name} must hold int32 values; {name}[{idx}]={int(arr[idx])}")
    return arr


def _as_shift(shift, name: str, lo: int, hi: int) -> np.ndarray:
    arr = _as_int64(shift, name)
    bad = (arr < lo) | (arr > hi)
    if np.any(bad):
        idx = _first_index(bad)
        raise ValueError(f"{name} must be in {lo}..{hi}; {name}[{idx}]={int(arr[idx])}")
    return arr


def _checked_int32(arr: np.ndarray, what: str) -> np.ndarray:
    bad = (arr < INT32_MIN) | (arr > INT32_MAX)
    if np.any(bad):
        idx = _first_index(bad)
        raise ValueError(f"{what} leaves int32 at index {idx}: {int(arr[idx])}")
    return arr.astype(np.int32)


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()
