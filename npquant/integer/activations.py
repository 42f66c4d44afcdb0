"""int8 SOFTMAX and LOGISTIC as TFLite computes them (LiteRT ``tflite/kernels/activations.cc``).

Both produce probabilities with the output qparams TFLite requires: ``S = 1/256``, ``Z = -128``
(``q = 256 p - 128``). docs/import_export.md derives each step.

SOFTMAX, ``scheme="reference"`` (BUILTIN_REF: ``reference_ops::Softmax``), all fixed point
(gemmlowp), per row of the last axis:

1. ``d = q - max(q) <= 0``. ``PreprocessSoftmaxScaling`` turns ``beta S_in 2^(31 - 5)``
   (capped at ``2^31 - 1``) into ``M0 2^s``; a difference below ``diff_min`` (the
   ``CalculateInputRadius(5, s)``, where ``d`` scaled would leave Q5.26) contributes 0.
2. ``x = SRDHM(d 2^s, M0)``: ``beta S_in d`` in Q5.26 (5 integer bits, 26 fractional).
3. ``e = exp_on_negative_values(x)`` in Q0.31: ``exp`` of ``x mod 1/4 - 1/4`` by a 4th-order
   Taylor polynomial around ``-1/8``, times ``exp(-2^k)`` (Q0.31 constants) for each set bit
   ``k = -2..4`` of the remainder (a barrel shifter); ``x = 0`` gives exactly ``2^31 - 1``.
4. ``sum = Σ e / 2^12`` (each rounded, ties away) in Q12.19.
5. ``1/sum`` by ``GetReciprocal``: ``sum = (1 + f) 2^n`` (``n`` from the leading zeros),
   ``1 / (1 + f)`` by three Newton-Raphson steps from ``48/17 - 32/17 (1 + f) / 2`` in Q2.29.
6. ``y = RoundingDivideByPOT(SRDHM(1/(1 + f), e), n + 31 - 8) - 128``, clamped to int8.

SOFTMAX, ``scheme="optimized"`` (the builtin optimized kernel, also what runs under the XNNPACK
delegate, which does not take int8 softmax): a float32 table ``T[k] = expf(-S_in beta k)``,
``k = 0..255``; per row ``sum = Σ T[max - q]`` (float32, in order), ``inv = 1 / (sum S_out)``,
``y = clamp(round_away(T[max - q] inv) - 128)``.

LOGISTIC (reference and optimized kernels): a 256-entry table made once in float32,
``T[q] = clamp(round_away(f32(1 / (1 + expf(-f32(S_in (q - Z_in))))) / S_out) + Z_out)``, and
``y = T[q]``.
"""

from __future__ import annotations

import numpy as np

from npquant import fixedpoint as fp
from npquant.validate import check_int_array, check_scale, check_zero_point

SOFTMAX_SCHEMES = ("reference", "optimized")
LOGISTIC_SCHEMES = ("lut",)
_INT8 = (np.dtype(np.int8),)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# -- gemmlowp fixed point on int64 arrays holding int32 values ---------------------------------

def _srdhm(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: ``round(a b / 2^31)``, ties away."""
    return fp.saturating_rounding_doubling_high_mul(np.asarray(a, np.int64),
                                                    np.asarray(b, np.int64)).astype(np.int64)


def _rdpot(x, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``round(x / 2^exponent)``, ties away from zero."""
    return fp.rounding_divide_by_pot(np.asarray(x, np.int64), exponent).astype(np.int64)


def _sat_shift_left(x, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<+e>``: ``x 2^e`` saturated to int32."""
    x = np.asarray(x, np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _wrap32(x) -> np.ndarray:
    """int32 two's-complement wrap (gemmlowp's plain ``+`` and ``-`` on raw values)."""
    return (np.asarray(x, np.int64) + 2**31) % 2**32 - 2**31


def _exp_on_interval(a: np.ndarray) -> np.ndarray:
    """``exp(a)`` for ``a`` in ``[-1/4, 0)`` in Q0.31 (gemmlowp
    ``exp_on_interval_between_negative_one_quarter_and_0_excl``): with ``x = a + 1/8``,
    ``exp(-1/8) (1 + x + x^2/2 + x^3/6 + x^4/24)``."""
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    one_third = 715827883  # 1/3 in Q0.31
    x = _wrap32(a + (1 << 28))  # + 1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdpot(x4, 2)
    poly = _rdpot(_wrap32(_srdhm(_wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(constant_term + _srdhm(constant_term, _wrap32(x + poly)))


# exp(-2^k) in Q0.31 for the barrel shifter, k = -2..4 (gemmlowp)
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values`` of Q5.26 raw values ``a <= 0``, as Q0.31 raw."""
    frac_bits = 26
    quarter = 1 << (frac_bits - 2)
    a = np.asarray(a, np.int64)
    a_mod_q_minus_q = _wrap32((a & (quarter - 1)) - quarter)
    result = _exp_on_interval(_sat_shift_left(a_mod_q_minus_q, 5))  # Rescale<0> of Q5.26
    remainder = _wrap32(a_mod_q_minus_q - a)
    for k, mult in _EXP_BARREL:
        bit = (remainder >> (frac_bits + k)) & 1
        result = np.where(bit != 0, _srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: ``1 / (1 + a)`` for Q0.31 ``a`` in [0, 1),
    by Newton-Raphson in Q2.29 from ``48/17 - 32/17 d``, ``d = (1 + a) / 2``."""
    s = a + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))  # RoundingHalfSum
    x = _wrap32(1515870810 + _srdhm(half_denominator, -1010580540))  # Q2.29
    one_q2 = 1 << 29
    for _ in range(3):
        hdx = _srdhm(half_denominator, x)  # Q2.29
        one_minus = _wrap32(one_q2 - hdx)
        x = _wrap32(x + _sat_shift_left(_srdhm(x, one_minus), 2))  # Q4.27 -> Q2.29
    return _sat_shift_left(x, 1)  # ExactMulByPot<-1> then Rescale<0>: Q1.30 raw -> Q0.31


def _reciprocal(sum_raw: np.ndarray, integer_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal``: ``1 / x`` for ``x`` in Q(integer_bits) as ``(scale raw Q0.31,
    num_bits_over_unit)`` with ``1/x = scale 2^-num_bits_over_unit``."""
    x = np.asarray(sum_raw, np.int64)
    headroom_plus_one = np.array([32 - int(v).bit_length() for v in x.ravel()],
                                 np.int64).reshape(x.shape)  # leading zeros of uint32
    bits_over_unit = integer_bits - headroom_plus_one
    shifted_minus_one = _wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x(shifted_minus_one), bits_over_unit


def softmax_params(in_scale: float, beta: float) -> tuple[int, int, int]:
    """``(M0, left_shift, diff_min)`` of TFLite's reference int8 softmax
    (``PreprocessSoftmaxScaling`` with 5 integer bits, ``CalculateInputRadius``)."""
    real = min(float(beta) * float(np.float32(in_scale)) * (1 << (31 - 5)), (1 << 31) - 1.0)
    m0, shift = fp.quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"softmax: beta * in_scale = {beta * in_scale!r} is too small for "
                         "TFLite's scaling (left shift < 0)")
    max_input_rescaled = 1.0 * ((1 << 5) - 1) * (1 << (31 - 5)) / (1 << shift)
    return m0, shift, -int(np.floor(max_input_rescaled))


def _softmax_reference(q: np.ndarray, in_scale: float, beta: float) -> np.ndarray:
    m0, shift, diff_min = softmax_params(in_scale, beta)
    d = q - q.max(axis=-1, keepdims=True)
    valid = d >= diff_min
    # d 2^shift fits int32 when d >= diff_min (that is what the radius bounds)
    x = _srdhm(np.where(valid, d, 0) << shift, m0)
    e = exp_on_negative_values(x)
    sum_raw = np.where(valid, _rdpot(e, 12), 0).sum(axis=-1, keepdims=True)  # Q12.19
    scale, bits_over_unit = _reciprocal(sum_raw, 12)
    exponent = np.broadcast_to(bits_over_unit + 31 - 8, q.shape)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("softmax: the reciprocal's exponent left 0..31 (TFLITE_CHECK)")
    y = fp.rounding_shift_right(_srdhm(scale, e), exponent, ties=fp.Ties.AWAY)
    y = np.where(valid, y - 128, -128)
    return np.clip(y, -128, 127)


def _softmax_optimized(q: np.ndarray, in_scale: float, beta: float, out_scale: float,
                       out_zero_point: int) -> np.ndarray:
    f32 = np.float32
    scale = f32(-f32(in_scale) * f32(beta))
    table = np.exp((scale * np.arange(256, dtype=f32)).astype(np.float64)).astype(f32)  # expf
    k = q.max(axis=-1, keepdims=True) - q  # T[max - q]
    t = table[k]
    total = np.zeros(q.shape[:-1] + (1,), f32)
    for j in range(q.shape[-1]):  # float32 sum in order
        total = (total + t[..., j:j + 1]).astype(f32)
    inv = (f32(1.0) / (total * f32(out_scale)).astype(f32)).astype(f32)
    p = (t * inv).astype(f32).astype(np.float64)
    y = np.sign(p) * np.floor(np.abs(p) + 0.5) + out_zero_point  # std::round: ties away
    return np.clip(y, -128, 127)


def softmax_int8(x: np.ndarray, *, in_scale: float, beta: float = 1.0, out_scale: float = 1 / 256,
                 out_zero_point: int = -128, scheme: str) -> np.ndarray:
    """int8 softmax of ``x`` over its last axis (module docstring); ``(S, Z)`` of the output
    must be ``(1/256, -128)``, as TFLite requires."""
    x = check_int_array("x", x, _INT8)
    if scheme not in SOFTMAX_SCHEMES:
        raise ValueError(f"scheme must be one of {SOFTMAX_SCHEMES}, got {scheme!r}")
    check_scale("in_scale", in_scale)
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be finite and > 0, got {beta!r}")
    zo = check_zero_point("out_zero_point", out_zero_point, x.dtype)
    if abs(float(out_scale) - 1 / 256) > 1e-3 / 256 or zo != -128:
        raise ValueError(f"int8 softmax needs output qparams (1/256, -128), got "
                         f"({out_scale!r}, {zo})")
    q = x.astype(np.int64)
    if q.size == 0:
        return x.copy()
    y = (_softmax_reference(q, in_scale, beta) if scheme == "reference"
         else _softmax_optimized(q, in_scale, beta, out_scale, zo))
    return y.astype(np.int8)


def logistic_table(in_scale: float, in_zero_point: int, out_scale: float,
                   out_zero_point: int) -> np.ndarray:
    """TFLite's int8 LOGISTIC table (``LUTPopulate``): entry ``q + 128`` is the output for
    ``q``, computed in float32 (module docstring)."""
    f32 = np.float32
    q = np.arange(-128, 128, dtype=np.int64)
    dequantized = (f32(in_scale) * (q - in_zero_point).astype(f32)).astype(f32)
    e = np.exp(-dequantized.astype(np.float64)).astype(f32)  # expf
    sig = (f32(1.0) / (f32(1.0) + e).astype(f32)).astype(f32)
    inverse_scale = f32(f32(1.0) / f32(out_scale))
    r = (sig * inverse_scale).astype(f32).astype(np.float64)
    rescaled = np.sign(r) * np.floor(np.abs(r) + 0.5)  # TfLiteRound: ties away
    return np.clip(rescaled + out_zero_point, -128, 127).astype(np.int8)


def logistic_int8(x: np.ndarray, *, in_scale: float, in_zero_point: int,
                  out_scale: float = 1 / 256, out_zero_point: int = -128,
                  scheme: str = "lut") -> np.ndarray:
    """int8 logistic ``1 / (1 + exp(-r))`` of ``x`` by TFLite's table (module docstring)."""
    x = check_int_array("x", x, _INT8)
    if scheme not in LOGISTIC_SCHEMES:
        raise ValueError(f"scheme must be one of {LOGISTIC_SCHEMES}, got {scheme!r}")
    si = check_scale("in_scale", in_scale)
    zi = check_zero_point("in_zero_point", in_zero_point, x.dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, x.dtype)
    if float(np.float32(out_scale)) != 1 / 256 or zo != -128:
        raise ValueError(f"int8 logistic needs output qparams (1/256, -128), got "
                         f"({out_scale!r}, {zo})")
    table = logistic_table(si, zi, out_scale, zo)
    return table[x.astype(np.int64) + 128]
