"""Obviously-right reference arithmetic for the framework oracle tests (int64 numpy, float64).

Every function here is a direct transcription of one rounding or accumulation rule, written
element-wise with int64 numpy (all intermediate values are bounded well inside int64; the bound is
stated) or Python ints. The oracle tests compute the exact accumulator here, apply each candidate
requantization rule, and measure which one a framework kernel follows.
"""

from __future__ import annotations

import math

import numpy as np
from exact_ref import conv_acc, fc_acc

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
f32 = np.float32


# --------------------------------------------------------------------------- rounding of reals
def round_half_away(x: np.ndarray) -> np.ndarray:
    """C ``round()``: nearest integer, ties away from zero (float64 in, int64 out).

    Written as trunc + compare of the exact fraction: ``floor(|x| + 0.5)`` would be wrong at
    0.49999999999999994, where ``|x| + 0.5`` rounds up to 1.0 in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.trunc(x)
    frac = x - t  # exact in binary floating point
    return (t + np.where(np.abs(frac) >= 0.5, np.sign(x), 0.0)).astype(np.int64)


def round_half_even(x: np.ndarray) -> np.ndarray:
    """``nearbyint`` in the default mode: nearest integer, ties to even (int64 out)."""
    return np.rint(np.asarray(x)).astype(np.int64)


# --------------------------------------------------------------------------- gemmlowp fixed point
def tflite_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``real = q * 2^(shift - 31)``, q in [2^30, 2^31).

    ``frexp`` gives ``real = f * 2^shift`` with f in [0.5, 1); ``q = round_half_away(f * 2^31)``;
    if that rounds up to 2^31 the significand is halved and the exponent bumped (the carry).
    Shifts below -31 flush to zero.
    """
    if real == 0.0:
        return 0, 0
    f, shift = math.frexp(real)
    q = int(round_half_away(np.float64(f * 2.0**31)))
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: ``round(a * b / 2^31)`` with ties up
    (toward +inf), computed as (a*b + nudge) / 2^31 truncated toward zero, where
    nudge = 2^30 for a*b >= 0 and 1 - 2^30 otherwise. The one overflow, a = b = INT32_MIN,
    saturates to INT32_MAX. |a*b| <= 2^62 fits int64.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    t = ab + np.where(ab >= 0, 2**30, 1 - 2**30)
    res = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, res)


def rounding_divide_by_pot(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: ``x / 2^e`` rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def shift_ties_up(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``x / 2^e`` rounded to nearest, ties toward +inf: ``(x + 2^(e-1)) >> e`` (e >= 0)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    half = np.where(e > 0, np.int64(1) << np.maximum(e - 1, 0), 0)
    return (x + half) >> e


def mbqm_double_rounding(acc: np.ndarray, q: np.ndarray, shift: np.ndarray,
                         final: str = "away") -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding):
    ``RDBPOT(SRDHM(acc * 2^max(shift,0), q), max(-shift,0))``.

    ``final="away"`` is gemmlowp's RoundingDivideByPOT (ties away from zero); ``final="up"`` is
    the same with the last shift rounding ties toward +inf (``(v + 2^(e-1)) >> e``).
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(acc, dtype=np.int64) << left
    v = srdhm(x, q)
    return rounding_divide_by_pot(v, right) if final == "away" else shift_ties_up(v, right)


def mbqm_single_rounding(acc: np.ndarray, q: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Single rounding (TFLITE_SINGLE_ROUNDING, ruy): ``(acc*q + 2^(30-shift)) >> (31-shift)``,
    i.e. ``round(acc * q * 2^(shift-31))`` with ties toward +inf. |acc*q| < 2^62."""
    acc = np.asarray(acc, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    return (acc * q + (np.int64(1) << (total - 1))) >> total


# --------------------------------------------------------------------------- accumulators
def conv2d_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, x_zp: int,
               stride: tuple[int, int], pads: tuple[int, int, int, int],
               dilation: tuple[int, int] = (1, 1), groups: int = 1,
               w_zp: int = 0) -> np.ndarray:
    """Exact int64 ``sum (x - Zx)(w - Zw) + bias`` of a grouped conv, NCHW / OIHW, padded with
    the zero point (tests/exact_ref.py)."""
    zw = np.broadcast_to(np.asarray(w_zp, dtype=np.int64), (w.shape[0],))
    return conv_acc(x, w, bias, x_zp, zw, stride, pads, dilation, groups)


def conv2d_acc_pair_saturated(x: np.ndarray, w: np.ndarray, x_zp: int,
                              stride: tuple[int, int], pads: tuple[int, int, int, int],
                              dilation: tuple[int, int] = (1, 1), groups: int = 1) -> np.ndarray:
    """oneDNN's u8 x s8 conv sums without VNNI (``vpmaddubsw``), as measured (no bias, Zw = 0):

        acc = sum_taps sum_pairs sat16(x[2i] w[2i] + x[2i+1] w[2i+1]) - Zx sum_valid_taps w

    Products of the *raw* uint8 inputs are paired along adjacent input channels of one tap (the
    channel count padded to even with zeros), each pair saturated to int16, then summed exactly;
    the input zero point comes off afterwards as ``Zx`` times the sum of the weights over the taps
    that fall inside the image. Padded taps contribute nothing (raw 0, not Zx, and no
    compensation). Without saturation this equals ``conv2d_acc``.
    """
    xi, wi = x.astype(np.int64), w.astype(np.int64)
    n, _, h, wd = xi.shape
    o, cg, kh, kw = wi.shape
    pt, pb, pl, pr = pads
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(xi, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    inside = np.pad(np.ones((h, wd), np.int64), ((pt, pb), (pl, pr)))
    oh = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    c_even, og = cg + cg % 2, o // groups
    acc = np.zeros((n, o, oh, ow), np.int64)
    for g in range(groups):
        wg = wi[g * og:(g + 1) * og]
        w_even = np.zeros((og, c_even, kh, kw), np.int64)
        w_even[:, :cg] = wg
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * sh, i * sh + (kh - 1) * dh + 1, dh)
                cols = slice(j * sw, j * sw + (kw - 1) * dw + 1, dw)
                patch = np.zeros((n, c_even, kh, kw), np.int64)
                patch[:, :cg] = xp[:, g * cg:(g + 1) * cg, rows, cols]
                prod = patch[:, None] * w_even[None]
                pairs = np.clip(prod[:, :, 0::2] + prod[:, :, 1::2], -32768, 32767)
                comp = x_zp * (wg * inside[rows, cols]).sum(axis=(1, 2, 3))
                acc[:, g * og:(g + 1) * og, i, j] = pairs.sum(axis=(2, 3, 4)) - comp[None]
    return acc


def matmul_acc(x: np.ndarray, w_ok: np.ndarray, bias: np.ndarray | None, x_zp: int,
               w_zp: int | np.ndarray = 0) -> np.ndarray:
    """Exact int64 ``sum_k (x[n,k] - Zx)(w[o,k] - Zw[o]) + bias[o]`` -> (N, O)."""
    zw = np.broadcast_to(np.asarray(w_zp, dtype=np.int64), (w_ok.shape[0],))
    return fc_acc(x, w_ok, bias, x_zp, zw)


def clamp(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Saturate to [lo, hi]."""
    return np.clip(v, lo, hi)


def tflite_activation_range(act: str, scale: float, zp: int, qmin: int = -128,
                            qmax: int = 127) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized: RELU clamps below at Z; RELU6 also above at
    Z + round_half_away(f32(6 / S)), all inside [qmin, qmax]."""
    if act == "NONE":
        return qmin, qmax
    lo = max(qmin, zp)
    if act == "RELU":
        return lo, qmax
    six = int(round_half_away(np.float64(f32(6.0) / f32(scale))))
    return lo, min(qmax, zp + six)


# --------------------------------------------------------------------------- requantization rules
def effective_scale(sx: float, sw: np.ndarray, sy: float, derivation: str) -> np.ndarray:
    """The real multiplier M = s_x s_w / s_y as a framework derives it from float32 scales.

    - ``"double"``: ``double(s_x) * double(s_w) / double(s_y)`` (TFLite per-channel / reference);
    - ``"f32prod"``: ``double(f32(s_x * s_w)) / double(s_y)`` (TFLite per-tensor
      GetQuantizedConvolutionMultipler, which multiplies the float scales first);
    - ``"f32"``: ``f32(f32(s_x * s_w) / s_y)`` (ONNX Runtime, FBGEMM, XNNPACK);
    - ``"qnnpack"``: ``f32(f32(s_w * s_x) * f32(1 / s_y))`` (PyTorch QNNPACK);
    - ``"f32_of_double"``: ``f32(double(s_x) double(s_w) / double(s_y))`` (a rival: the exact
      quotient rounded once to float32).
    Returns float64 values (exactly representing the float32 ones where the result is float32).
    """
    sx, sy = f32(sx), f32(sy)
    sw = np.asarray(sw, dtype=np.float32)
    if derivation == "double":
        return np.float64(sx) * sw.astype(np.float64) / np.float64(sy)
    if derivation == "f32prod":
        return (sx * sw).astype(np.float64) / np.float64(sy)
    if derivation == "f32":
        return ((sx * sw) / sy).astype(np.float64)
    if derivation == "f32_of_double":
        return (np.float64(sx) * sw.astype(np.float64) / np.float64(sy)).astype(np.float32
                                                                               ).astype(np.float64)
    if derivation == "qnnpack":
        return ((sw * sx) * (f32(1.0) / sy)).astype(np.float64)
    raise ValueError(derivation)


def requantize(acc: np.ndarray, m: np.ndarray, rule: str, ch_axis: int = 1) -> np.ndarray:
    """Scale an exact int64 accumulator by M (one value, or one per channel on ``ch_axis``),
    before the zero point is added. Rules:

    - ``"gemmlowp"``: TFLite double rounding, M -> (q, shift) by QuantizeMultiplier;
    - ``"gemmlowp_up"``: same, the final shift rounds ties toward +inf;
    - ``"gemmlowp_up8"``: ``gemmlowp_up`` on the channels of whole groups of 8 (channels
      ``< 8 * (C // 8)``), ``gemmlowp`` on the remaining ``C % 8`` (TFLite optimized depthwise);
    - ``"single"``: single rounding ``(acc q + 2^(30-shift)) >> (31-shift)``;
    - ``"f32_rne"``: ``nearbyint(f32(f32(acc) * f32(M)))``, ties to even;
    - ``"f64_away"``: ``round(double(acc) * double(M))``, ties away from zero.
    """
    acc = np.asarray(acc, dtype=np.int64)
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    shape = [1] * acc.ndim
    if m.size > 1:
        shape[ch_axis] = m.size
    if rule == "gemmlowp_up8":
        up = requantize(acc, m, "gemmlowp_up", ch_axis)
        away = requantize(acc, m, "gemmlowp", ch_axis)
        full = (acc.shape[ch_axis] // 8) * 8
        return np.where((np.arange(acc.shape[ch_axis]) < full).reshape(
            [-1 if a == ch_axis else 1 for a in range(acc.ndim)]), up, away)
    if rule in ("gemmlowp", "gemmlowp_up", "single"):
        qs = np.array([tflite_quantize_multiplier(float(v)) for v in m], dtype=np.int64)
        q, sh = qs[:, 0].reshape(shape), qs[:, 1].reshape(shape)
        if rule == "single":
            return mbqm_single_rounding(acc, q, sh)
        return mbqm_double_rounding(acc, q, sh, "away" if rule == "gemmlowp" else "up")
    if rule == "f32_rne":
        return round_half_even(acc.astype(np.float32) * m.astype(np.float32).reshape(shape))
    if rule == "f64_away":
        return round_half_away(acc.astype(np.float64) * m.reshape(shape))
    raise ValueError(rule)


# --------------------------------------------------------------------------- elementwise add
def tflite_add_multipliers(sa: float, sb: float, sy: float, left_shift: int = 20):
    """TFLite int8 ADD Prepare: both inputs are rescaled to twice the larger input scale, with
    ``left_shift`` = 20 bits of headroom, then the sum to the output scale (double arithmetic on
    the float32 scales; ``2 * max(sa, sb)`` is a float32 product, exact)."""
    sa, sb, sy = f32(sa), f32(sb), f32(sy)
    twice_max = np.float64(f32(2) * max(sa, sb))
    real_a = np.float64(sa) / twice_max
    real_b = np.float64(sb) / twice_max
    real_y = twice_max / (np.float64(1 << left_shift) * np.float64(sy))
    return [tflite_quantize_multiplier(float(r)) for r in (real_a, real_b, real_y)]


def tflite_add(a: np.ndarray, b: np.ndarray, sa: float, za: int, sb: float, zb: int, sy: float,
               zy: int, lo: int = -128, hi: int = 127, final: str = "away",
               left_shift: int = 20) -> np.ndarray:
    """TFLite int8 ADD (reference kernel): each ``(q - Z) * 2^20`` is scaled by its multiplier
    (double rounding), the two are summed, the sum scaled to the output (double rounding), then
    ``+ Z_y`` and clamped. ``final`` is the tie rule of the three final shifts ("away"/"up")."""
    (qa, sha), (qb, shb), (qy, shy) = tflite_add_multipliers(sa, sb, sy, left_shift)
    xa = (a.astype(np.int64) - za) << left_shift
    xb = (b.astype(np.int64) - zb) << left_shift
    s = mbqm_double_rounding(xa, qa, sha, final) + mbqm_double_rounding(xb, qb, shb, final)
    return clamp(mbqm_double_rounding(s, qy, shy, final) + zy, lo, hi)


def tflite_add_optimized(a: np.ndarray, b: np.ndarray, sa: float, za: int, sb: float, zb: int,
                         sy: float, zy: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """TFLite int8 ADD, optimized x86 kernel, as measured (docs/framework_facts.md): the same
    multipliers as :func:`tflite_add`, but each input is rescaled with *single* rounding
    (``(x q + 2^(30-shift)) >> (31-shift)``, ties up) and only the output step uses gemmlowp
    double rounding (ties away)."""
    (qa, sha), (qb, shb), (qy, shy) = tflite_add_multipliers(sa, sb, sy)
    xa = (a.astype(np.int64) - za) << 20
    xb = (b.astype(np.int64) - zb) << 20
    s = mbqm_single_rounding(xa, qa, sha) + mbqm_single_rounding(xb, qb, shb)
    return clamp(mbqm_double_rounding(s, qy, shy, "away") + zy, lo, hi)


def xnnpack_add(a: np.ndarray, b: np.ndarray, sa: float, za: int, sb: float, zb: int, sy: float,
                zy: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """XNNPACK qs8 vadd: ``r_a = f32(s_a / s_y)``, ``r_b = f32(s_b / s_y)``; with e the binary
    exponent of max(r_a, r_b), ``shift = 20 - e`` and integer multipliers
    ``m = nearbyint(r * 2^shift)`` (ties to even, < 2^21); then
    ``((q_a - Z_a) m_a + (q_b - Z_b) m_b + 2^(shift-1)) >> shift`` (one rounding, ties up),
    clamped, + Z_y. Requires 2^-10 <= r < 2^8 (else XNNPACK declines the op)."""
    ra, rb = f32(sa) / f32(sy), f32(sb) / f32(sy)
    e = math.frexp(float(max(ra, rb)))[1] - 1  # r = 1.f * 2^e
    shift = 20 - e
    ma = int(np.rint(np.float64(ra) * 2.0**shift))
    mb = int(np.rint(np.float64(rb) * 2.0**shift))
    acc = (a.astype(np.int64) - za) * ma + (b.astype(np.int64) - zb) * mb + (1 << (shift - 1))
    return clamp((acc >> shift) + zy, lo, hi)


# --------------------------------------------------------------------------- pools
def pool_windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                 pads: tuple[int, int, int, int]):
    """Yield (oh, ow, window values int64 (N, C, k), count) for NCHW x; padded cells excluded."""
    n, c, h, w = x.shape
    kh, kw = kernel
    oh_n = (h + pads[0] + pads[1] - kh) // stride[0] + 1
    ow_n = (w + pads[2] + pads[3] - kw) // stride[1] + 1
    for oh in range(oh_n):
        for ow in range(ow_n):
            h0, w0 = oh * stride[0] - pads[0], ow * stride[1] - pads[2]
            hs, ws = slice(max(h0, 0), min(h0 + kh, h)), slice(max(w0, 0), min(w0 + kw, w))
            win = x[:, :, hs, ws].astype(np.int64).reshape(n, c, -1)
            yield oh, ow, win, win.shape[2]


def tflite_avg_pool(x: np.ndarray, kernel, stride, pads, lo: int = -128,
                    hi: int = 127) -> np.ndarray:
    """TFLite int8 AVERAGE_POOL_2D (reference): sum of the in-bounds q values (no zero point:
    input and output share qparams), divided by the in-bounds count rounding half away from
    zero, ``(sum ± count/2) / count`` with C truncating division; then clamped."""
    outs = {}
    for oh, ow, win, cnt in pool_windows(x, kernel, stride, pads):
        s = win.sum(axis=2)
        num = np.where(s > 0, s + cnt // 2, s - cnt // 2)
        outs[oh, ow] = np.where(num >= 0, num // cnt, -((-num) // cnt))
    return _assemble(outs, x, lo, hi)


def max_pool(x: np.ndarray, kernel, stride, pads, lo: int = -128, hi: int = 127) -> np.ndarray:
    """Max over the in-bounds window, then clamped."""
    outs = {(oh, ow): win.max(axis=2) for oh, ow, win, _ in pool_windows(x, kernel, stride, pads)}
    return _assemble(outs, x, lo, hi)


def _assemble(outs: dict, x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    oh_n = 1 + max(k[0] for k in outs)
    ow_n = 1 + max(k[1] for k in outs)
    y = np.zeros(x.shape[:2] + (oh_n, ow_n), dtype=np.int64)
    for (oh, ow), v in outs.items():
        y[:, :, oh, ow] = v
    return clamp(y, lo, hi)


# --------------------------------------------------------------------------- quantize / dequantize
def quantize_rule(x: np.ndarray, s: float, z: int, rule: str, lo: int = -128,
                  hi: int = 127) -> np.ndarray:
    """float32 -> int by one named rule, + Z, clamped (``x`` float32, ``s`` as float32):

    - ``"away_f32div"``: ``round_half_away(f32(x / s))`` (TFLite reference);
    - ``"away_f64div"``: ``round_half_away(double(x) / double(s))``;
    - ``"rne_f32div"``: ``nearbyint(f32(x / s))`` (ONNX Runtime QuantizeLinear);
    - ``"rne_mul_inv"``: ``nearbyint(f32(x * f32(1 / s)))`` (XNNPACK);
    - ``"opt8"``: ``rne_mul_inv`` on whole blocks of 8 elements of the flat array,
      ``away_f64div`` on the tail (TFLite optimized QUANTIZE).
    """
    x = np.asarray(x, dtype=np.float32)
    s32 = f32(s)
    if rule == "away_f32div":
        r = round_half_away((x / s32).astype(np.float64))
    elif rule == "away_f64div":
        r = round_half_away(x.astype(np.float64) / np.float64(s32))
    elif rule == "rne_f32div":
        r = round_half_even(x / s32)
    elif rule == "rne_mul_inv":
        r = round_half_even(x * (f32(1.0) / s32))
    elif rule == "opt8":
        full = (x.size // 8) * 8
        flat = np.concatenate([quantize_rule(x.ravel()[:full], s, 0, "rne_mul_inv", -2**40, 2**40),
                               quantize_rule(x.ravel()[full:], s, 0, "away_f64div", -2**40, 2**40)])
        r = flat.reshape(x.shape)
    else:
        raise ValueError(rule)
    return clamp(r + z, lo, hi)


def dequantize_rule(q: np.ndarray, s: float, z: int, rule: str) -> np.ndarray:
    """int -> float32 by one named rule (``s`` as float32):

    - ``"exact_once"``: ``f32(s * (q - Z))``, the exact product rounded once (TFLite reference,
      XNNPACK);
    - ``"two_step"``: ``f32(f32(q * s) + f32(-Z * s))``, two roundings;
    - ``"opt8"``: ``two_step`` on whole blocks of 8 of the flat array, ``exact_once`` on the tail
      (TFLite optimized DEQUANTIZE).
    """
    s32 = f32(s)
    qi = np.asarray(q).astype(np.int64)
    if rule == "exact_once":
        return (np.float64(s32) * (qi - z)).astype(np.float32)
    if rule == "two_step":
        return qi.astype(np.float32) * s32 + f32(-z) * s32
    if rule == "opt8":
        full = (qi.size // 8) * 8
        flat = np.concatenate([dequantize_rule(qi.ravel()[:full], s, z, "two_step"),
                               dequantize_rule(qi.ravel()[full:], s, z, "exact_once")])
        return flat.reshape(qi.shape)
    raise ValueError(rule)


def near_ties(rng: np.random.Generator, s: float, n: int) -> np.ndarray:
    """float32 inputs at f32((k + 1/2) s) and one ulp either side: where quantize rules differ."""
    k = rng.integers(-120, 120, n)
    x = ((k + 0.5) * np.float64(f32(s))).astype(np.float32)
    step = rng.integers(-1, 2, n)
    up, down = np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))
    return np.where(step > 0, up, np.where(step < 0, down, x)).astype(np.float32)
