"""Requantization of int32 accumulators by a profile's rule: ``q = saturate(Z_out + M * acc)``.

``M = S_in * S_w / S_out`` (one per output channel for per-channel weights) is derived from the
float32 scales as the rule says (``effective_multiplier``), turned into the rule's integer form
once (``prepare_requant``), and applied to every accumulator (``requantize``; kernels call
``requantize_scalar`` inside their loops). docs/fixedpoint.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np

from npquant import fixedpoint as fp
from npquant.profiles import MultiplierDerivation, RequantKind, RequantRule

(KIND_DOUBLE_ROUNDING, KIND_SINGLE_ROUNDING, KIND_FLOAT32, KIND_FLOAT64, KIND_POWER_OF_TWO,
 KIND_DOUBLE_ROUNDING_LATE_SHIFT, KIND_FLOAT32_ONEDNN) = range(7)
_KIND_CODES = {
    RequantKind.DOUBLE_ROUNDING: KIND_DOUBLE_ROUNDING,
    RequantKind.SINGLE_ROUNDING: KIND_SINGLE_ROUNDING,
    RequantKind.FLOAT32: KIND_FLOAT32,
    RequantKind.FLOAT64: KIND_FLOAT64,
    RequantKind.POWER_OF_TWO: KIND_POWER_OF_TWO,
    RequantKind.DOUBLE_ROUNDING_LATE_SHIFT: KIND_DOUBLE_ROUNDING_LATE_SHIFT,
    RequantKind.FLOAT32_ONEDNN: KIND_FLOAT32_ONEDNN,
}


def effective_multiplier(input_scale: float, weight_scale, output_scale: float,
                         derivation: MultiplierDerivation | str) -> np.ndarray:
    """``M = S_in S_w / S_out`` computed the way a framework computes it (float64 array).

    All scales are float32 values (as frameworks store them). ``weight_scale`` may be an array
    (per channel). The derivations differ in the last bits of ``M``, which is enough to move an
    output by one:

    * ``double``: ``f64(S_in) f64(S_w) / f64(S_out)`` (TFLite per-channel conv);
    * ``float32_product``: ``f64(f32(S_in S_w)) / f64(S_out)`` (TFLite per-tensor);
    * ``float32_ratio``: ``f32(f32(S_in S_w) / S_out)`` (ONNX Runtime, FBGEMM);
    * ``float32_reciprocal``: ``f32(f32(S_w S_in) f32(1 / S_out))`` (QNNPACK);
    * ``onednn_reciprocals``: ``f64(src) f64(wei) f64(D)``, the product of oneDNN's three
      factors (``onednn_scales``), which its kind applies one at a time.
    """
    s_in = _positive_float32(input_scale, "input_scale")
    s_w = _positive_float32(weight_scale, "weight_scale")
    s_out = _positive_float32(output_scale, "output_scale")
    d = MultiplierDerivation(derivation)
    if d is MultiplierDerivation.DOUBLE:
        m = s_in.astype(np.float64) * s_w.astype(np.float64) / s_out.astype(np.float64)
    elif d is MultiplierDerivation.FLOAT32_PRODUCT:
        m = (s_in * s_w).astype(np.float64) / s_out.astype(np.float64)
    elif d is MultiplierDerivation.FLOAT32_RATIO:
        m = ((s_in * s_w) / s_out).astype(np.float64)
    elif d is MultiplierDerivation.ONEDNN_RECIPROCALS:
        src, wei, d_out = onednn_scales(input_scale, weight_scale, output_scale)
        m = np.float64(src) * wei.astype(np.float64) * np.float64(d_out)
    else:
        m = ((s_w * s_in) * (np.float32(1.0) / s_out)).astype(np.float64)
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"effective multiplier S_in*S_w/S_out is not finite and > 0: {m}")
    return np.atleast_1d(m)


def onednn_scales(input_scale: float, weight_scale, output_scale: float
                  ) -> tuple[np.float32, np.ndarray, np.float32]:
    """oneDNN's three float32 factors ``(src, wei[c], D)`` of PyTorch's x86-engine conv
    (``RequantKind.FLOAT32_ONEDNN``), from the scales as PyTorch holds them.

    PyTorch passes reciprocals (``PackedConvWeightsOnednn::apply_impl``, qconv.cpp:
    ``src_scales = 1.0 / input_scale``, ``inv_output_scale = 1.0 / output_scale``, double
    quotients stored as float) and the weight scales as they are (``prepack``: float); ideep
    inverts the two reciprocals in float (``op_attr.set_scales(DNNL_ARG_SRC, .., {1.0f / s})``,
    and the same for DNNL_ARG_DST); oneDNN multiplies by the inverse of its dst scale
    (``DEFINE_ARG_SCALES_BUFFER``: ``1.f / s``)::

        src = f32(1 / f32(1 / s_x)),  wei[c] = f32(s_w[c]),  D = f32(1 / f32(1 / f32(1 / s_y)))

    with ``1 / s`` of a float scale a double quotient. A reciprocal of a reciprocal is not
    always the number itself in float32: ``src`` is one unit in the last place off ``s_x`` for
    about one scale in six (measured: the x86 engine follows the chain, not ``s_x``); ``D`` came
    out as ``f32(1 / s_y)`` on every scale tried. A scale of 1 is not passed at all (ideep skips
    ``set_scales`` for 1.0f); the formulas give 1 there too.
    """
    s_in = _positive_float32(input_scale, "input_scale")[0]
    wei = _positive_float32(weight_scale, "weight_scale")
    s_out = _positive_float32(output_scale, "output_scale")[0]
    one = np.float32(1.0)
    src = one / np.float32(1.0 / np.float64(s_in))  # float(1.0 / double), then 1.0f / that
    d_out = one / (one / np.float32(1.0 / np.float64(s_out)))
    if not (np.isfinite(src) and src > 0 and np.isfinite(d_out) and d_out > 0):
        raise ValueError(f"oneDNN's scales src = {float(src)}, D = {float(d_out)} are not finite "
                         "and > 0 in float32")
    return np.float32(src), wei, np.float32(d_out)


# The shift each fixed-point kind's scalar core accepts (npquant.fixedpoint contracts).
_SHIFT_RANGE = {RequantKind.DOUBLE_ROUNDING: (-31, 31), RequantKind.SINGLE_ROUNDING: (-31, 30),
                RequantKind.POWER_OF_TWO: (-62, 31),
                RequantKind.DOUBLE_ROUNDING_LATE_SHIFT: (-31, 31)}


@dataclass(frozen=True)
class RequantParams:
    """A rule's integer form for each output channel (1-D arrays of one length).

    ``quantized_multiplier``/``shift``: ``M = M0 2^shift / 2^31`` for the fixed-point kinds;
    ``M = 2^shift`` (``shift = -n <= 0``, ``M0`` unused) for ``power_of_two``;
    ``multiplier``: ``M`` as the float kinds multiply by it (a float32 value for ``float32``).
    ``bias_scale``: the bias scale ``S_b = f32(s_x s_w)`` per channel (float32 values), which the
    rules that bring a float bias back (``BiasAdd``, PyTorch) divide by; ``prepare_requant`` sets
    it, None when built from the multipliers alone.
    ``onednn_factors``: ``(src, D)`` (float32 values) of the ``float32_onednn`` kind, whose
    ``multiplier`` holds the weight scales ``wei[c]`` (``onednn_scales``); None for every other
    kind.
    """

    rule: RequantRule
    multiplier: np.ndarray
    quantized_multiplier: np.ndarray
    shift: np.ndarray
    bias_scale: np.ndarray | None = None
    onednn_factors: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Check what the kernels' contracts assume, so a hand-built value cannot go wrong
        silently (single rounding with ``shift = 31`` would flip the sign of every output):
        one length, ``M > 0`` finite, ``M0`` in ``0..2^31 - 1``, and the shift range of the kind:
        ``-31..31`` double rounding, ``-31..30`` single rounding, ``-62..31`` power of two (a
        right shift by ``-shift``), as ``npquant.fixedpoint`` documents."""
        if not isinstance(self.rule, RequantRule):
            raise TypeError(f"rule must be a RequantRule, got {type(self.rule).__name__}")
        arrays = {"multiplier": self.multiplier, "quantized_multiplier": self.quantized_multiplier,
                  "shift": self.shift}
        shapes = {name: np.shape(v) for name, v in arrays.items()}
        if len(set(shapes.values())) != 1 or len(shapes["shift"]) != 1 or \
                shapes["shift"][0] < 1:
            raise ValueError(f"RequantParams arrays must be 1-D of one length >= 1, got {shapes}")
        for name in ("quantized_multiplier", "shift"):
            v = np.asarray(arrays[name])
            if not np.issubdtype(v.dtype, np.integer):
                raise TypeError(f"RequantParams.{name} must be integer, got dtype {v.dtype}")
        m = np.asarray(self.multiplier, dtype=np.float64)
        if not np.all(np.isfinite(m)) or np.any(m <= 0):
            raise ValueError(f"RequantParams.multiplier must be finite and > 0, got {m.tolist()}")
        qm = np.asarray(self.quantized_multiplier, dtype=np.int64)
        if np.any(qm < 0) or np.any(qm > fp.INT32_MAX):
            raise ValueError("RequantParams.quantized_multiplier must be in 0..2^31 - 1, got "
                             f"{qm.tolist()}")
        if self.bias_scale is not None:
            sb = np.asarray(self.bias_scale, dtype=np.float64)
            if sb.shape != shapes["shift"] or not np.all(np.isfinite(sb)) or np.any(sb <= 0):
                raise ValueError("RequantParams.bias_scale must be finite, > 0 and of the "
                                 f"multipliers' length, got {sb.tolist()}")
        onednn = self.rule.kind is RequantKind.FLOAT32_ONEDNN
        if onednn != (self.onednn_factors is not None):
            raise ValueError("RequantParams.onednn_factors (src, D) are given with the "
                             f"float32_onednn kind and only then (kind {self.rule.kind.value}, "
                             f"onednn_factors {self.onednn_factors!r})")
        if onednn:
            f = np.asarray(self.onednn_factors, dtype=np.float64)
            if f.shape != (2,) or not np.all(np.isfinite(f)) or np.any(f <= 0):
                raise ValueError("RequantParams.onednn_factors must hold (src, D), finite and "
                                 f"> 0, got {f.tolist()}")
        lo, hi = _SHIFT_RANGE.get(self.rule.kind, (-62, 62))
        sh = np.asarray(self.shift, dtype=np.int64)
        if np.any(sh < lo) or np.any(sh > hi):
            raise ValueError(f"RequantParams.shift must be in {lo}..{hi} for "
                             f"{self.rule.kind.value}, got {sh.tolist()}")

    @property
    def kind_code(self) -> int:
        """The integer that numba kernels receive for ``rule.kind``."""
        return _KIND_CODES[self.rule.kind]

    @property
    def ties_code(self) -> int:
        """The integer that numba kernels receive for ``rule.ties`` (see ``channel_ties``)."""
        return self.rule.ties.code

    def channel_ties(self, channels: int) -> np.ndarray:
        """Tie-rule codes per output channel (length 1 when every channel rounds alike)."""
        return self.rule.channel_ties(channels)

    def kernel_args(self, channels: int) -> tuple[np.int64, np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray]:
        """``(kind, ties, M0, shift, M)`` as the numba epilogues take them: the kind code, int64
        tie codes (``channels`` or 1), int64 ``M0`` and shifts, float64 ``M`` (per channel or 1).
        """
        return (np.int64(self.kind_code), self.channel_ties(channels),
                self.quantized_multiplier.astype(np.int64), self.shift.astype(np.int64),
                self.multiplier.astype(np.float64))

    @property
    def channels(self) -> int:
        """Number of per-channel multipliers (1 for per-tensor)."""
        return int(self.multiplier.shape[0])


def prepare_requant(rule: RequantRule, input_scale: float, weight_scale,
                    output_scale: float) -> RequantParams:
    """Derive ``M`` per ``rule.derivation`` and convert it to the integer form ``rule.kind`` needs.

    Fixed-point kinds use TFLite's ``QuantizeMultiplier`` (single rounding: its
    ``TFLITE_SINGLE_ROUNDING`` variant). ``power_of_two`` needs ``M = 2^-n`` exactly and stores the
    right shift as ``shift = -n``. More than one weight scale is per-channel and takes
    ``rule.derivation_for(per_channel=True)``.
    """
    per_channel = np.size(weight_scale) > 1
    if rule.kind is RequantKind.FLOAT32_ONEDNN:  # three factors, not one M (onednn_scales)
        src, wei, d_out = onednn_scales(input_scale, weight_scale, output_scale)
        zeros = np.zeros(wei.shape[0], dtype=np.int32)
        params = RequantParams(rule=rule, multiplier=wei.astype(np.float64),
                               quantized_multiplier=zeros, shift=zeros,
                               onednn_factors=np.array([src, d_out], dtype=np.float64))
    else:
        m = effective_multiplier(input_scale, weight_scale, output_scale,
                                 rule.derivation_for(per_channel))
        params = requant_params_from_multiplier(rule, m)
    # the bias scale as PyTorch's kernels compute it: the float32 product of the float32 scales
    s_b = (_positive_float32(input_scale, "input_scale")
           * _positive_float32(weight_scale, "weight_scale")).astype(np.float64)
    if not np.all(np.isfinite(s_b)) or np.any(s_b <= 0):  # underflows float32: no float bias
        return params
    return replace(params, bias_scale=np.broadcast_to(s_b, params.multiplier.shape).copy())


def requant_params_from_multiplier(rule: RequantRule, multiplier) -> RequantParams:
    """``prepare_requant`` from real multipliers already derived (1-D, one per channel)."""
    m = np.atleast_1d(np.asarray(multiplier, dtype=np.float64))
    if m.ndim != 1 or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"multiplier must be a 1-D array of finite values > 0, got {multiplier!r}")
    kind = rule.kind
    if kind is RequantKind.FLOAT32_ONEDNN:
        raise ValueError("the float32_onednn kind applies three factors (src, wei, D) derived "
                         "from the scales, not one multiplier: use prepare_requant with them")
    n = m.shape[0]
    qm = np.zeros(n, dtype=np.int32)
    shift = np.zeros(n, dtype=np.int32)
    if kind in (RequantKind.DOUBLE_ROUNDING, RequantKind.SINGLE_ROUNDING,
                RequantKind.DOUBLE_ROUNDING_LATE_SHIFT):
        derive = (fp.quantize_multiplier_single_rounding if kind is RequantKind.SINGLE_ROUNDING
                  else fp.quantize_multiplier)
        for i, mi in enumerate(m):
            q, s = derive(float(mi))
            if s > 31:
                raise ValueError(f"multiplier[{i}]={mi!r} is too large to requantize (>= 2^31)")
            qm[i], shift[i] = q, s
        stored = m
    elif kind is RequantKind.POWER_OF_TWO:
        for i, mi in enumerate(m):
            shift[i] = -fp.power_of_two_shift(float(mi))
        stored = m
    elif kind is RequantKind.FLOAT32:
        stored = m.astype(np.float32).astype(np.float64)
    else:
        stored = m
    return RequantParams(rule=rule, multiplier=stored, quantized_multiplier=qm, shift=shift)


@numba.njit(cache=True)
def requantize_scalar(acc: int, kind: int, ties: int, quantized_multiplier: int, shift: int,
                      multiplier: float) -> int:
    """``M * acc`` rounded by rule ``kind`` (codes ``KIND_*``), without zero point or clamp.

    Contract: ``acc`` in int32; for double rounding ``acc * 2^max(shift, 0)`` in int32
    (``check_requant_domain``); parameters come from ``prepare_requant``.
    """
    if kind == KIND_DOUBLE_ROUNDING:
        return fp.double_rounding_multiply_scalar(acc, quantized_multiplier, shift, ties)
    if kind == KIND_SINGLE_ROUNDING:
        return fp.single_rounding_multiply_scalar(acc, quantized_multiplier, shift)
    if kind == KIND_FLOAT32:
        return fp.float32_multiply_scalar(acc, np.float32(multiplier), ties)
    if kind == KIND_FLOAT64:
        return fp.float64_multiply_scalar(acc, multiplier, ties)
    if kind == KIND_DOUBLE_ROUNDING_LATE_SHIFT:
        return fp.late_shift_double_rounding_multiply_scalar(acc, quantized_multiplier, shift,
                                                             ties)
    if kind == KIND_FLOAT32_ONEDNN:  # the zero point enters before the rounding: onednn_output
        raise ValueError("the float32_onednn kind rounds with the zero point: onednn_output")
    return fp.rounding_shift_right_scalar(acc, -shift, ties)


@numba.njit(cache=True)
def onednn_output(acc: int, src: float, wei: float, bias: float, d_out: float, zero_point: int,
                  ties: int) -> float:
    """oneDNN 3.12's int8 epilogue (``RequantKind.FLOAT32_ONEDNN``), one float32 operation at a
    time::

        y = round(f32(f32(f32(f32(f32(f32(acc) src) wei) + B) D) + Z))

    ``acc``: the int32 sum ``sum (x - Zx) w`` without the bias; ``src``, ``wei`` (this channel's
    weight scale) and ``d_out`` ``D``: float32 values (``onednn_scales``); ``bias`` the float32
    bias ``B[c]`` (0.0 without one); ``zero_point`` ``Z``, added in float32 *before* the
    rounding (``ties``: oneDNN's ``vcvtps2dq``, ties to even). Returns the rounded float: the
    caller clamps it to the output range (oneDNN clamps in float32 before converting: the same
    integer, since the bounds are integers). The order is oneDNN's (``jit_brgemm_kernel_t::
    store_accumulators_apply_post_ops``: vcvtdq2ps, vmulps scales, vaddps bias, vmulps dst
    scale, vaddps zero point, saturate, vcvtps2dq); the source and weight scales as two
    multiplies, not their float32 product, is measured on 3.12 (near-tie probes, the
    source read precomputes the product: docs/framework_facts.md).
    """
    v = np.float32(np.float32(acc) * np.float32(src))  # float32 products: one rounding each
    v = np.float32(v * np.float32(wei))
    v = fp.float32_sum_scalar(np.float64(v), np.float64(np.float32(bias)))
    v = np.float32(v * np.float32(d_out))
    v = fp.float32_sum_scalar(np.float64(v), np.float64(zero_point))
    return fp.round_float_scalar(np.float64(v), ties)


@fp.lazy_vectorize("int64(int64, int64, int64, int64, int64, float64)")
def _vec_requantize(acc, kind, ties, qm, shift, mult):
    return requantize_scalar(acc, kind, ties, qm, shift, mult)


def requantize(acc: np.ndarray, params: RequantParams, *, channel_axis: int | None,
               zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """``q = clamp(Z_out + round_rule(M[c] * acc), qmin, qmax)`` for an int32 accumulator array.

    ``channel_axis`` is the axis of ``acc`` that indexes ``params``' channels (None for
    per-tensor). Activation clamps (ReLU, ReLU6) are folded into ``qmin``/``qmax``: ReLU is
    ``qmin = Z_out``. Returns int64; the caller casts to the output dtype.
    """
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise TypeError(f"acc must be int32, got {acc.dtype}")
    if qmin > qmax:
        raise ValueError(f"qmin={qmin} > qmax={qmax}")
    qm, shift, mult = _broadcast_params(acc, params, channel_axis)
    if params.rule.kind is RequantKind.FLOAT32_ONEDNN:  # zero point before rounding, no bias
        (src, d_out), tie = params.onednn_factors, params.ties_code
        flat = np.broadcast_to(mult, acc.shape).ravel()
        out = np.array([onednn_output(int(a), src, float(m), 0.0, d_out, int(zero_point), tie)
                        for a, m in zip(acc.ravel(), flat, strict=True)], dtype=np.float64)
        return np.clip(out, qmin, qmax).astype(np.int64).reshape(acc.shape)
    ties = params.channel_ties(1 if channel_axis is None else acc.shape[channel_axis])
    if ties.shape[0] > 1:
        shape = [1] * acc.ndim
        shape[channel_axis % acc.ndim] = ties.shape[0]
        ties = ties.reshape(shape)
    else:
        ties = ties[0]
    acc64 = acc.astype(np.int64)
    check_requant_domain(acc64, params, shift)
    scaled = _vec_requantize(acc64, np.int64(params.kind_code), ties, qm, shift, mult)
    return np.clip(scaled + int(zero_point), qmin, qmax)


def check_requant_domain(acc64: np.ndarray, params: RequantParams, shift=None) -> None:
    """Raise if double rounding would shift an accumulator out of int32 (``M >= 1`` only)."""
    if params.rule.kind is not RequantKind.DOUBLE_ROUNDING or np.all(params.shift <= 0):
        return
    if shift is None:
        shift = params.shift
    shifted = acc64 * (np.int64(1) << np.maximum(shift, 0))
    bad = (shifted < fp.INT32_MIN) | (shifted > fp.INT32_MAX)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"accumulator {int(acc64[idx])} at index {idx} times 2^shift leaves "
                         "int32 in double-rounding requantization (M >= 1)")


def _broadcast_params(acc: np.ndarray, params: RequantParams, channel_axis: int | None):
    qm = params.quantized_multiplier.astype(np.int64)
    shift = params.shift.astype(np.int64)
    mult = params.multiplier.astype(np.float64)
    if channel_axis is None:
        if params.channels != 1:
            raise ValueError(f"{params.channels} per-channel multipliers need a channel_axis")
        return qm[0], shift[0], mult[0]
    axis = channel_axis % acc.ndim
    if acc.shape[axis] != params.channels and params.channels != 1:
        raise ValueError(f"acc has {acc.shape[axis]} channels on axis {axis} but "
                         f"{params.channels} multipliers")
    shape = [1] * acc.ndim
    shape[axis] = params.channels
    return qm.reshape(shape), shift.reshape(shape), mult.reshape(shape)


def _positive_float32(value, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    out = arr.astype(np.float32)
    if np.any(out == 0) or not np.all(np.isfinite(out)):
        raise ValueError(f"{name}={value!r} is not representable as a positive float32")
    return out
