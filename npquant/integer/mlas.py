"""ONNX Runtime's float sequence for QLinearAdd (MLAS, x86-64 with AVX2/FMA), element for element.

ONNX Runtime's ``com.microsoft`` QLinearAdd runs MLAS ``MlasQLinearAddS8KernelAvx2`` /
``...U8KernelAvx2`` on any x86-64 CPU with AVX2 (``mlas/lib/intrinsics/avx2/qladd_avx2.cpp``).
It is not an integer rescaling like TFLite's: the two input zero points and the output zero
point are folded into one float32 constant, and each output is two float32 fused multiply-adds
and one conversion with ties to even:

    r_a = f32(S_a / S_c),   r_b = f32(S_b / S_c)                          (float32 quotients)
    F   = f32(Z_c - fma(r_a, Z_a, f32(r_b Z_b)))                            (once per op)
    t   = fma(q_b, r_b, F)                                                  (rounded to float32)
    u   = fma(q_a, r_a, t)                                                  (rounded to float32)
    y   = clamp(rne(u), qmin, qmax)         (vcvtps2dq, then saturating packs to 16 and 8 bits)

``fma`` rounds once (the exact ``x y + z`` to float32). When one input is a single element
(``IsScalarA``, tested first, or ``IsScalarB``), its term is added to ``F`` first with a separate
multiply and add, ``F' = f32(F + f32(q r))``, and the other input takes one fma:
``u = fma(q, r, F')``. Other broadcasts ORT splits into spans; they are refused here.

Measured on onnxruntime 1.32 (AVX-512 VNNI CPU, which runs the AVX2 kernel): equal on 400 of 400
random cases (int8 and uint8, dyadic and random scales); without the fused multiply-adds (two
roundings each) 397 of 400, and TFLite's integer sequence (npquant's earlier rule) 88% of cases.
SSE2-only and ARM builds run other kernels (a float sequence without fma; NEON fixed point,
``npquant.integer.mlas_neon``).

The float32 arithmetic is done exactly here: each ``fma`` is computed in float64 with an error
term (TwoSum, Knuth), and where the float64 sum is not exact the element is recomputed in exact
rational arithmetic, so every result is the correctly rounded float32 of the exact value.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

F32 = np.float32


def round_f32(value: Fraction) -> np.float32:
    """The float32 nearest to the exact rational ``value``, ties to even (IEEE round to nearest).

    ``float(value)`` is correctly rounded to float64; rounding that again to float32 can miss
    by a double rounding, so the answer is chosen among the float32 next to it by exact distance.
    """
    y = np.float32(float(value))
    cands = (np.nextafter(y, np.float32(-np.inf)), y, np.nextafter(y, np.float32(np.inf)))
    dist = [abs(Fraction(float(c)) - value) for c in cands]
    best = min(dist)
    near = [c for c, d in zip(cands, dist, strict=True) if d == best]
    if len(near) == 1:
        return near[0]
    return next(c for c in near if int(np.array(c).view(np.uint32)) % 2 == 0)  # tie: even


def fma_f32(x: np.ndarray, r: np.float32, c: np.ndarray | np.float32) -> np.ndarray:
    """float32 ``fma(x, r, c)``: ``x r + c`` computed exactly, rounded once to float32.

    ``x``: integer-valued float64 array (|x| < 2^16, so ``x r`` is exact in float64); ``r``, ``c``
    float32. The float64 sum ``s = x r + c`` and its error ``e`` (TwoSum) give the exact value
    ``s + e``; where ``e = 0`` the float32 rounding of ``s`` is the correct one, elsewhere the
    element is rounded from the exact rational value.
    """
    p = np.asarray(x, dtype=np.float64) * np.float64(r)  # exact: 16 + 24 bits
    cc = np.broadcast_to(np.asarray(c, dtype=np.float32).astype(np.float64), p.shape)
    s = p + cc
    bb = s - p
    e = (p - (s - bb)) + (cc - bb)  # TwoSum: s + e == p + c exactly
    out = s.astype(np.float32)
    for i in zip(*np.nonzero(e), strict=True):
        exact = Fraction(float(p[i])) + Fraction(float(cc[i]))
        out[i] = round_f32(exact)
    return out


def check_mlas_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    """ValueError unless the inputs have one shape or one of them is a single element: the
    broadcasts ORT's kernel runs in one call (others it splits into spans, not modelled)."""
    if tuple(a_shape) != tuple(b_shape) and np.prod(a_shape) != 1 and np.prod(b_shape) != 1:
        raise ValueError(f"the MLAS QLinearAdd takes inputs of one shape or a single element, "
                         f"got a {tuple(a_shape)} and b {tuple(b_shape)}")


def mlas_add_one(qa: int, qb: int, *, a_scale: float, a_zero_point: int, b_scale: float,
                 b_zero_point: int, out_scale: float, out_zero_point: int,
                 scalar: str | None = None) -> int:
    """One output of the sequence (module docstring) before the clamp, every float32 step an
    exact rational rounded by ``round_f32``: the plain definition ``mlas_add`` is tested
    against. ``scalar``: ``"a"``/``"b"`` when that input is a single element."""
    fr = Fraction
    sa, sb, sc = (fr(float(F32(s))) for s in (a_scale, b_scale, out_scale))
    ra, rb = fr(float(round_f32(sa / sc))), fr(float(round_f32(sb / sc)))
    rb_zb = fr(float(round_f32(rb * b_zero_point)))
    fixed = fr(float(round_f32(out_zero_point - fr(float(round_f32(ra * a_zero_point + rb_zb))))))
    if scalar == "a":
        f2 = fr(float(round_f32(fixed + fr(float(round_f32(qa * ra))))))
        u = round_f32(qb * rb + f2)
    elif scalar == "b":
        f2 = fr(float(round_f32(fixed + fr(float(round_f32(qb * rb))))))
        u = round_f32(qa * ra + f2)
    else:
        u = round_f32(qa * ra + fr(float(round_f32(qb * rb + fixed))))
    return int(np.rint(u))


def mlas_add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
             b_zero_point: int, out_scale: float, out_zero_point: int, qmin: int, qmax: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(y, acc)`` of ONNX Runtime's QLinearAdd (module docstring) for validated inputs.

    ``a``, ``b``: integer arrays of one shape, or one of them a single element; ``qmin``/``qmax``:
    the output clamp (the output type's range, or narrower with a fused activation).
    ``acc`` is ``rne(u)`` before the clamp (int32). Returns int64 ``y`` of the broadcast shape.
    """
    sa, sb, sc = F32(a_scale), F32(b_scale), F32(out_scale)
    ra, rb = F32(sa / sc), F32(sb / sc)
    # F = f32(Z_c - fma(r_a, Z_a, f32(r_b Z_b))): the compiler fuses r_a Z_a + (r_b Z_b)
    rb_zb = F32(rb * F32(b_zero_point))
    inner = round_f32(Fraction(float(ra)) * a_zero_point + Fraction(float(rb_zb)))
    fixed = F32(F32(out_zero_point) - inner)
    af = np.asarray(a, dtype=np.float64)
    bf = np.asarray(b, dtype=np.float64)
    check_mlas_shapes(af.shape, bf.shape)
    if af.size == 1:  # IsScalarA (ORT tests it first): F' = f32(F + f32(q_a r_a)), one fma
        u = fma_f32(bf, rb, F32(fixed + F32(F32(af.item()) * ra)))
    elif bf.size == 1:  # IsScalarB
        u = fma_f32(af, ra, F32(fixed + F32(F32(bf.item()) * rb)))
    else:
        u = fma_f32(af, ra, fma_f32(bf, rb, fixed))
    rounded = np.rint(u).astype(np.int64)  # vcvtps2dq: ties to even
    return np.clip(rounded, qmin, qmax), rounded.astype(np.int32)
