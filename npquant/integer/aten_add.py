"""PyTorch's quantized add on CPU (fbgemm and x86 engines), element for element.

``torch.ops.quantized.add`` on quint8 runs ATen's ``qadd_kernel``
(aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp) through
``cpu_kernel_vec``, a float32 dequantize-add-quantize with two code paths:

* the vectorized loop (``vectorized_loop`` in aten/src/ATen/native/cpu/Loops.h) takes the flat
  output in whole blocks of ``BLOCK = 64`` elements (two ``Vectorized<quint8>`` of 32 lanes: the
  quantized kernels run the AVX2 vectors, also on an AVX-512 CPU). There each input is
  dequantized with one fused multiply-add against the premultiplied zero point,
  ``d = fma(S, q, f32(-Z S))`` (``Vectorized<quint8>::dequantize``), and the sum is quantized
  with the zero point added after the rounding (``QuantizeAvx2``):

      y = rne(f32(f32(d_a + d_b) f32(1 / S_y))) + Z_y

* the remaining ``n mod 64`` elements run the scalar lambda: ``d = f32(S (q - Z))``
  (``dequantize_val``) and ``quantize_val``, fbgemm's scalar ``Quantize`` with its legacy zero
  point order, ``y = rne(f32(f32(f32(d_a + d_b) f32(1 / S_y)) + Z_y))``: the zero point before
  the rounding, so a tie of the product moves by one against the blocks (``rne(2.5) + 1 = 3``
  there, ``rne(3.5) = 4`` here).

Both then clamp to ``[0, 255]`` (int8: ``[-128, 127]``). Measured with PyTorch 2.13: a tie on every
element of ``n`` elements gives the vector result on the first ``64 floor(n / 64)`` and the scalar
one on the rest, for n from 31 to 300. The blocks restart wherever ATen splits the loop: per
thread chunk of a tensor above 32768 elements (``GRAIN_SIZE``) with more than one intra-op thread,
and per row when an input is broadcast; the model here is the one-chunk loop over inputs of one
shape (others are refused).
"""

from __future__ import annotations

import numpy as np

from npquant import fixedpoint as fp

F32 = np.float32
BLOCK = 64  # two AVX2 vectors of 32 uint8: ATen's vectorized_loop steps 2 Vec::size() at a time


def check_aten_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    """ValueError unless the inputs have one shape (the loop modelled here; module docstring)."""
    if tuple(a_shape) != tuple(b_shape):
        raise ValueError("PyTorch's quantized add is modelled for inputs of one shape, got "
                         f"a {tuple(a_shape)} and b {tuple(b_shape)}")


def aten_add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
             b_zero_point: int, out_scale: float, out_zero_point: int, qmin: int, qmax: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(y, acc)`` of PyTorch's quantized add (module docstring) for validated inputs of one
    shape: ``y`` int64 clamped to ``[qmin, qmax]``, ``acc`` the rounded value with its zero point
    before the clamp (int32). Every float32 step is the exact value rounded once."""
    check_aten_shapes(np.shape(a), np.shape(b))
    qa = np.asarray(a, dtype=np.int64).ravel()
    qb = np.asarray(b, dtype=np.int64).ravel()
    n = qa.shape[0]
    vec = np.arange(n) < BLOCK * (n // BLOCK)
    inv = F32(F32(1.0) / F32(out_scale))
    zy = np.float64(out_zero_point)

    def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
        s = np.float64(F32(scale))
        premul = np.float64(F32(F32(scale) * F32(-zero_point)))
        # both exact in float64 (|q| <= 255, 24-bit S), then rounded once to float32
        fused = (s * q + premul).astype(F32)  # fma(S, q, f32(-Z S)), the blocks
        plain = (s * (q - zero_point)).astype(F32)  # f32(S (q - Z)), the scalar tail
        return np.where(vec, fused, plain)

    da, db = dequantize(qa, a_scale, a_zero_point), dequantize(qb, b_scale, b_zero_point)
    total = fp.float32_sum(da.astype(np.float64), db.astype(np.float64))
    t = (total.astype(np.float64) * np.float64(inv)).astype(F32)  # exact product, one rounding
    blocks = np.rint(t).astype(np.int64) + out_zero_point
    tail = np.rint(fp.float32_sum(t.astype(np.float64), np.full(n, zy))).astype(np.int64)
    rounded = np.where(vec, blocks, tail)
    acc = np.clip(rounded, fp.INT32_MIN, fp.INT32_MAX).astype(np.int32)
    shape = np.shape(a)
    return np.clip(rounded, qmin, qmax).reshape(shape), acc.reshape(shape)


def aten_add_one(qa: int, qb: int, *, a_scale: float, a_zero_point: int, b_scale: float,
                 b_zero_point: int, out_scale: float, out_zero_point: int,
                 vector: bool) -> int:
    """One output before the clamp, by the definition (``vector``: the element lies in a whole
    block of ``BLOCK``): every float32 step an exact rational rounded once (``mlas.round_f32``)."""
    from fractions import Fraction

    from npquant.integer.mlas import round_f32

    fr = Fraction
    sa, sb, sy = (F32(s) for s in (a_scale, b_scale, out_scale))

    def deq(q: int, s: np.float32, z: int) -> Fraction:
        if vector:
            premul = fr(float(round_f32(fr(float(s)) * -z)))
            return fr(float(round_f32(fr(float(s)) * q + premul)))
        return fr(float(round_f32(fr(float(s)) * (q - z))))

    total = fr(float(round_f32(deq(qa, sa, a_zero_point) + deq(qb, sb, b_zero_point))))
    inv = fr(float(round_f32(1 / fr(float(sy)))))
    t = round_f32(total * inv)
    if vector:
        return int(np.rint(t)) + out_zero_point
    return int(np.rint(round_f32(fr(float(t)) + out_zero_point)))
