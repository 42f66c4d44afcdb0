"""The bias of a conv / fully-connected layer as the framework holds it (``profiles.BiasAdd``).

npquant's layers carry an int32 bias ``b`` with scale ``S_b = S_x S_w[c]``, added to the sum:
``acc = b + sum (x - Zx)(w - Zw)``. TFLite and ONNX Runtime take ``b`` as it is. PyTorch's
quantized conv and linear hold the bias as a float32 tensor; npquant hands them

    B = f32(b S_b),  S_b = f32(s_x s_w[c])         (the exact product, rounded once)

(``RequantParams.bias_scale``: the product of the float32 scales that the kernels themselves use
as the bias scale), and each engine brings ``B`` back its own way:

* qnnpack quantizes it to int32 again (``quant_utils::QuantizeBias``: ``quantize_per_tensor``
  to qint32, ``fbgemm::Quantize``): ``b' = rne(f32(B f32(1 / S_b)))``, added to the sum as ``b``
  is (``QUANTIZED_RECIPROCAL``). ``b' = b`` unless ``|b|`` is near ``2^22`` or more.
* fbgemm keeps it in float32 and adds it after the integer sum (``ReQuantizeOutput``,
  include/fbgemm/OutputProcessing-inl.h; the AVX2 code in src/QuantUtilsAvx2.cc and
  src/FbgemmI8DepthwiseAvx2-inl.h). With per-tensor weights (``FLOAT32_RECIPROCAL``) the
  bias is multiplied by ``r = f32(1.0 / f64(S_b))`` (the reciprocal computed in double and
  broadcast once) and added to the converted sum; GCC contracts that ``_mm256_mul_ps`` and
  ``_mm256_add_ps`` into one fused multiply-add, so only the sum is rounded:

      y = Z_y + round(f32(fma(B, r, f32(acc - b)) M))                     (ties to even)

  With per-channel weights (``FLOAT32_DIVIDE``) the term is a float32 division, then added:
  ``y = Z_y + round(f32(f32(f32(acc - b) + f32(B / S_b[c])) M))``.
  ``B r`` is ``b`` give or take a rounding, and an output on a tie of the integer sum moves by
  one (``linear`` with ``b = -144``, ``S_b = 0.12451171875``, ``M = 2^-5``: ``B r = -144.0000x``,
  ``y = Z - 5``, not ``Z - 4``; with ``b = 55``, ``acc - b = -31``, ``S_b = 3 2^-17``,
  ``M = 0.1875``: the product ``B r = 55.0000016`` rounded alone is 55 and gives the tie 4.5,
  fused it gives ``24.000002 M > 4.5``).
* oneDNN (the x86 engine's conv, ``FLOAT32_AFTER_SCALE``) keeps ``B`` itself and adds it after
  the sum's multiplies by the scales ``src`` and ``wei[c]`` (``npquant.requant.onednn_output``):
  ``y = round(f32(f32(f32(f32(f32(acc - b) src) wei) + B) D) + Z)``.
"""

from __future__ import annotations

import numpy as np

from npquant.profiles import BiasAdd, RequantRule
from npquant.requant import RequantParams

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def float_bias(bias: np.ndarray, bias_scale: np.ndarray) -> np.ndarray:
    """``B = f32(b S_b)`` per channel: the exact product of the integer bias and the float32
    bias scale, rounded once to float32 (``S_b`` of length 1 broadcasts).

    The product needs up to 31 + 24 bits, more than float64 holds, so it is formed exactly in
    int64 from ``S_b = m 2^e`` (``m`` a 24-bit integer) and rounded once by the int64 -> float32
    conversion; the scaling by ``2^e`` is exact for normal results.
    """
    b = np.asarray(bias, dtype=np.int64)
    frac, exp = np.frexp(np.asarray(bias_scale, dtype=np.float32).astype(np.float64))
    mant = np.ldexp(frac, 24).astype(np.int64)  # exact: a float32 has a 24-bit significand
    return np.ldexp((b * mant).astype(np.float32), (exp - 24).astype(np.int32)).astype(np.float32)


def layer_bias(bias: np.ndarray, params: RequantParams, rule: RequantRule
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(integer bias, float bias term or None)`` of a layer under ``rule`` (module docstring);
    the term is float64: the exact product ``B r`` (per tensor), the float32 ``B / S_b``, or
    ``B`` itself (oneDNN, added after the scale).

    ``bias``: npquant's int64 bias ``(O,)``; ``params``: the layer's requantization (per-channel
    when it has more than one multiplier; its ``bias_scale`` gives ``S_b``). The integer bias is
    added to the accumulator in every case (so ``acc = b + sum`` whatever the rule); with a float
    rule the epilogue subtracts it again and adds the float32 term ``beta`` instead.
    ValueError when a rule other than ``INTEGER`` meets a nonzero bias and ``params`` has no
    bias scale (built from the multipliers alone).
    """
    kind = rule.bias_for(params.channels > 1)
    if kind is BiasAdd.INTEGER or not np.any(bias):
        return bias, None
    if params.bias_scale is None:
        raise ValueError(f"the rule adds the bias as {kind.value}, which needs the bias scale "
                         "S_b = f32(s_x s_w): give x_scale and w_scale, or a requant from "
                         "npquant.requant.prepare_requant")
    s_b = np.broadcast_to(np.asarray(params.bias_scale, dtype=np.float32), bias.shape)
    b_float = float_bias(bias, s_b)
    if kind is BiasAdd.QUANTIZED_RECIPROCAL:
        inv = np.float32(1.0) / s_b  # float32 division (1.0f / scale)
        requantized = np.rint(b_float * inv)  # float32 product, nearbyint
        return np.clip(requantized.astype(np.float64), INT32_MIN, INT32_MAX).astype(np.int64), None
    if kind is BiasAdd.FLOAT32_AFTER_SCALE:
        return bias, b_float.astype(np.float64)  # B itself (oneDNN)
    if kind is BiasAdd.FLOAT32_RECIPROCAL:
        recip = (1.0 / s_b.astype(np.float64)).astype(np.float32)  # 1.0 / S_b in double
        # the exact product (two float32 multiply exactly in float64): the compiler fuses the
        # multiply with the add into one fma, which rounds only the sum
        return bias, b_float.astype(np.float64) * recip.astype(np.float64)
    return bias, (b_float / s_b).astype(np.float64)  # FLOAT32_DIVIDE: a float32 quotient
