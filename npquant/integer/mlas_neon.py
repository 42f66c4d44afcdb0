"""ONNX Runtime's QLinearAdd on ARM (MLAS, NEON): fixed point, with a float32 fallback.

On aarch64 ONNX Runtime's ``com.microsoft`` QLinearAdd runs ``MlasQLinearAddKernelHelper`` of
``mlas/lib/qladd.cpp`` (the ``MLAS_NEON_INTRINSICS`` branch), not the float32 fma sequence of
x86-64 (``npquant.integer.mlas``). It is QNNPACK's integer scheme
(``MlasCalcQLinearAddParameters``):

    r_a = f32(S_a / S_c),  r_b = f32(S_b / S_c)                       (float32 quotients)
    e = exponent of max(r_a, r_b)   (max r = 1.f 2^e),   n = 21 - e
    m_a = rne(r_a 2^n),  m_b = rne(r_b 2^n)                            (lrintf)
    acc = (q_a - Z_a) m_a + (q_b - Z_b) m_b                            (int32, vmulq / vmlaq)
    y   = clamp(round(acc / 2^n) + Z_c, qmin, qmax)

with one rounding shift, ties away from zero (``vsraq_n_s32(acc, acc, 31)`` subtracts 1 from a
negative ``acc``, then ``vrshlq_s32`` adds ``2^(n-1)`` and shifts), then saturating narrows to
int16 (``vqmovn_s32``), the zero point added with int16 saturation (``vqaddq_s16``) and a
saturating narrow to 8 bits: the same as one clamp of ``round(acc / 2^n) + Z_c``. The
multipliers have 22 bits, so ``|acc| <= 2 * 255 * (2^22 - 1) < 2^31``.

MLAS takes this path only when ``2^-14 <= r < 2^8`` for both ratios, ``13 <= n <= 31``, both
multipliers ``< 2^22`` and the greater one ``>= 2^21`` (rounding can carry it to ``2^22``).
Elsewhere it falls back to ``MlasQLinearAddKernelRawHelper``, plain float32 per element, which
the aarch64 build compiles with the product of ``a`` fused into the sum (as the x86-64 build
fuses its sequence):

    v_b = f32(S_b (q_b - Z_b)),   v = f32(fma(S_a, q_a - Z_a, v_b) / S_c)
    y   = rne(f32(clamp(v, qmin - Z_c, qmax - Z_c) + Z_c))

(equal on every element of five crafted fallback cases of 65,536 elements each, where the
unfused helper differs on up to 186, the one fused on ``b``'s product on up to 231 and the x86
sequence on up to 632). When one input is a single element ORT passes it as ``B``: the integer
sum is the same, and on the fallback the other input's product is the fused one (the
single-element case is not measured on ARM).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from npquant import fixedpoint as fp
from npquant.integer.mlas import check_mlas_shapes, fma_f32, round_f32

F32 = np.float32
RATIO_RANGE = (2.0**-14, 2.0**8)  # MinScaleRatio, MaxScaleRatio
MULTIPLIER_BITS = 21  # n = 21 - e: the greater multiplier in [2^21, 2^22)


def neon_add_parameters(a_scale: float, b_scale: float, out_scale: float
                        ) -> tuple[int, int, int] | None:
    """``(m_a, m_b, n)`` of ``MlasCalcQLinearAddParameters`` (module docstring), or None where
    MLAS falls back to its float32 helper."""
    sa, sb, sc = F32(a_scale), F32(b_scale), F32(out_scale)
    ra, rb = F32(sa / sc), F32(sb / sc)
    lo, hi = RATIO_RANGE
    if not (lo <= ra < hi and lo <= rb < hi):
        return None
    e = int(np.array(max(ra, rb), dtype=np.float32).view(np.uint32) >> 23) - 127
    n = MULTIPLIER_BITS - e
    if not 13 <= n <= 31:
        return None
    # r 2^n is exact in float32 (a power-of-two scaling); lrintf rounds it ties to even
    m_a, m_b = int(np.rint(float(ra) * 2.0**n)), int(np.rint(float(rb) * 2.0**n))
    top = 1 << (MULTIPLIER_BITS + 1)
    if m_a >= top or m_b >= top or max(m_a, m_b) < top // 2:
        return None
    return m_a, m_b, n


def neon_add_one(qa: int, qb: int, *, a_scale: float, a_zero_point: int, b_scale: float,
                 b_zero_point: int, out_scale: float, out_zero_point: int, qmin: int, qmax: int,
                 scalar: str | None = None) -> tuple[int, int]:
    """``(acc, y)`` of one element (module docstring; ``y`` clamped to ``[qmin, qmax]``), in
    exact arithmetic: the plain definition ``neon_add`` is tested against. ``acc``: the int32 sum,
    or on the float fallback ``y`` before the clamp. ``scalar``: ``"a"``/``"b"`` when that input
    is a single element."""
    params = neon_add_parameters(a_scale, b_scale, out_scale)
    if params is not None:
        m_a, m_b, n = params
        acc = (qa - a_zero_point) * m_a + (qb - b_zero_point) * m_b
        rounded = fp.rounding_shift_right_scalar(acc, n, fp.Ties.AWAY.code)
        return acc, fp.saturate_scalar(rounded + out_zero_point, qmin, qmax)
    if scalar == "a":  # ORT passes the single element as B
        qa, qb, a_scale, b_scale = qb, qa, b_scale, a_scale
        a_zero_point, b_zero_point = b_zero_point, a_zero_point
    fr = Fraction
    sa, sb, sc = (fr(float(F32(s))) for s in (a_scale, b_scale, out_scale))
    vb = fr(float(round_f32(sb * (qb - b_zero_point))))
    vsum = fr(float(round_f32(sa * (qa - a_zero_point) + vb)))  # the fused multiply-add
    v = fr(float(round_f32(vsum / sc)))
    v = min(max(v, fr(qmin - out_zero_point)), fr(qmax - out_zero_point))
    rounded = int(np.rint(round_f32(v + out_zero_point)))
    return rounded, fp.saturate_scalar(rounded, qmin, qmax)


def neon_add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
             b_zero_point: int, out_scale: float, out_zero_point: int, qmin: int, qmax: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(y, acc)`` of ONNX Runtime's QLinearAdd on ARM (module docstring) for validated inputs.

    ``a``, ``b``: integer arrays of one shape, or one of them a single element; ``qmin``/``qmax``:
    the output type's range. ``acc``: the int32 sum ``(q_a - Z_a) m_a + (q_b - Z_b) m_b``, or on
    the float fallback the rounded output before the clamp. Returns int64 ``y`` of the broadcast
    shape (clamped to the type's range).
    """
    check_mlas_shapes(np.shape(a), np.shape(b))
    da = np.asarray(a, dtype=np.int64) - a_zero_point
    db = np.asarray(b, dtype=np.int64) - b_zero_point
    params = neon_add_parameters(a_scale, b_scale, out_scale)
    if params is not None:
        m_a, m_b, n = params
        acc = da * m_a + db * m_b  # |acc| < 2^31 (module docstring)
        y = fp.rounding_shift_right(acc, n, ties=fp.Ties.AWAY) + out_zero_point
        return np.clip(y, qmin, qmax), acc.astype(np.int32)
    if np.size(a) == 1 and np.size(b) != 1:  # ORT passes the single element as B
        a_scale, b_scale, da, db = b_scale, a_scale, db, da
    sa, sb, sc = F32(a_scale), F32(b_scale), F32(out_scale)
    shape = np.broadcast_shapes(da.shape, db.shape)
    vb = (sb * db.astype(np.float32)).astype(np.float32)  # |q - Z| <= 255: exact in float32
    vsum = fma_f32(np.broadcast_to(da, shape).astype(np.float64), sa, vb)
    v = np.clip((vsum / sc).astype(np.float32), F32(qmin - out_zero_point),
                F32(qmax - out_zero_point))
    rounded = np.rint((v + F32(out_zero_point)).astype(np.float32)).astype(np.int64)
    return np.clip(rounded, qmin, qmax), rounded.astype(np.int32)
