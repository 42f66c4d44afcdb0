"""MEAN over the spatial axes (a global average pool with requantization), as TFLite computes it.

Two sequences, chosen by ``scheme`` (``count = H W``):

``"reference"`` — LiteRT's reference int8 MEAN (``reference_ops::QuantizedMeanOrSum``, which the
BUILTIN_REF kernels run whatever ``keep_dims``): ``M = f64(S_in) / f64(S_out)`` is ``M0 2^s``
(``QuantizeMultiplier``) and the ``1 / count`` is folded into it by an integer division, with
``k = min(floor(log2 count), 32, 31 + s)``::

    M0' = floor(M0 2^k / count),   s' = s - k
    y   = clamp(Z_out + MultiplyByQuantizedMultiplier(sum_hw q - Z_in count, M0', s'))

(``MultiplyByQuantizedMultiplier``: gemmlowp double rounding, ties away; ``M0'`` is no longer
normalized to ``[2^30, 2^31)``, which costs up to ``k`` bits of the multiplier.)

``"xnnpack"`` — what the XNNPACK delegate computes for int8 MEAN over H and W, in float32 with
the zero points folded into one bias (measured against the interpreter: equal on every output of
tests/oracles/test_tflite_new_ops.py; the multiplier ``f32(S_in / (S_out count))`` taken in
double, or as ``f32(f32(S_in / S_out) / count)``, gives the same outputs there)::

    s = f32(f64(S_in) / f64(S_out) / count),   b = f32(Z_out - f32(f32(Z_in count) s))
    y = clamp(round_even(f32(f32(f32(sum_hw q) s) + b)), -128, 127)

``"optimized"`` — TFLite's optimized builtin kernel for ``keep_dims`` true
(``optimized_integer_ops::Mean``; with ``keep_dims`` false it runs ``"reference"``): the sum of the
stored ``q``, a float32 bias and multiplier, and NEON code on whole groups of 16 channels::

    t = f32(f32(Z_in S_in) / S_out),  bias = Z_out - trunc(t ± 0.5)
    M = f32(S_in / f32(count S_out)) = M0 2^s
    y = clamp(bias + MultiplyByQuantizedMultiplier(sum_hw q, M0, s))

where the multiplication's final rounding shift ties up (``vrshlq``) on the channels of the whole
groups of 16 and away from zero on the rest (the scalar loop), as the profile ``tflite-optimized``
rounds its depthwise conv.

Layout NCHW: the mean is over axes 2 and 3, the result ``(N, C)``.
"""

from __future__ import annotations

import numpy as np

from npquant import fixedpoint as fp
from npquant.integer.result import KernelResult
from npquant.validate import check_int_array, check_scale, check_zero_point

SCHEMES = ("reference", "xnnpack", "optimized")
_INT8 = (np.dtype(np.int8),)


def mean_hw(x: np.ndarray, *, in_scale: float, in_zero_point: int, out_scale: float,
            out_zero_point: int, scheme: str, return_accumulators: bool = False
            ) -> np.ndarray | KernelResult:
    """int8 mean of ``x (N, C, H, W)`` over H and W, ``(N, C)`` int8, by ``scheme`` (module
    docstring). Accumulators: the int32 sums ``sum (q - Z_in)``."""
    x = check_int_array("x", x, _INT8, 4)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    si = float(np.float32(check_scale("in_scale", in_scale)))
    so = float(np.float32(check_scale("out_scale", out_scale)))
    zi = check_zero_point("in_zero_point", in_zero_point, x.dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, x.dtype)
    count = x.shape[2] * x.shape[3]
    if count > 2**23:  # |sum (q - Z)| <= 2^8 count must fit int32
        raise ValueError(f"x has {count} elements per channel; at most 2^23 are supported")
    acc = (x.astype(np.int64) - zi).sum(axis=(2, 3))
    m0, shift = fp.quantize_multiplier(si / so)
    if scheme == "reference":
        k = min(count.bit_length() - 1, 32, 31 + shift)
        m0, shift = (m0 << k) // count, shift - k
        y = _multiply_by_quantized_multiplier(acc, m0, shift) + zo
    elif scheme == "optimized":
        f32 = np.float32
        t = f32(f32(f32(zi) * f32(si)) / f32(so))
        bias = zo - int(t + f32(0.5) if t > 0 else t - f32(0.5))  # C truncation toward zero
        m0, shift = fp.quantize_multiplier(float(f32(f32(si) / f32(f32(count) * f32(so)))))
        sums = x.astype(np.int64).sum(axis=(2, 3))
        c_len = x.shape[1]
        whole = 16 * (c_len // 16)
        y = np.empty_like(sums)
        for lo, hi, ties in ((0, whole, fp.Ties.UP), (whole, c_len, fp.Ties.AWAY)):
            if hi > lo:
                if np.any(np.abs(sums[:, lo:hi]) * 2 ** max(shift, 0) >= 2**31):
                    raise ValueError("MEAN: sum * 2^shift leaves int32")
                y[:, lo:hi] = fp.double_rounding_multiply(sums[:, lo:hi], m0, shift,
                                                          final_ties=ties) + bias
    else:
        f32 = np.float32
        s = f32(si / so / count)
        b = f32(f32(zo) - f32(f32(zi * count) * s))
        v = ((x.astype(np.int64).sum(axis=(2, 3)).astype(f32) * s).astype(f32) + b).astype(f32)
        y = np.rint(v.astype(np.float64))  # round half to even, as cvtps2dq
    out = np.clip(y, -128, 127).astype(np.int8)
    return KernelResult(out, acc.astype(np.int32)) if return_accumulators else out


def _multiply_by_quantized_multiplier(acc: np.ndarray, m0: int, shift: int) -> np.ndarray:
    """TFLite's int32 ``MultiplyByQuantizedMultiplier``: ``acc 2^max(s, 0)`` must stay in int32
    (C would overflow), then SRDHM and a rounding shift, ties away."""
    if np.any(np.abs(acc) * 2 ** max(shift, 0) >= 2**31):
        raise ValueError(f"MEAN: sum * 2^{shift} leaves int32 (S_in / S_out is too large "
                         "for TFLite's left shift)")
    return fp.double_rounding_multiply(acc, m0, shift, final_ties=fp.Ties.AWAY)
