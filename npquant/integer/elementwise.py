"""Elementwise integer ops: ADD of two differently quantized tensors, ReLU clamps, requantization
of a tensor to other quantization parameters, and concatenation.

ADD follows TFLite's int8 reference kernel (lite/kernels/add.cc Prepare, internal/reference/
integer_ops/add.h). With ``S_max2 = 2 max(S_a, S_b)`` and ``ls = 20`` (15 for int16):

    M_a = S_a / S_max2,   M_b = S_b / S_max2,   M_out = S_max2 / (2^ls S_out)     (float64)
    s_a = M_a ((a - Za) 2^ls),   s_b = M_b ((b - Zb) 2^ls)         (each rounded by the rule)
    y   = clamp(Z_out + M_out (s_a + s_b), act_min, act_max)

The left shift keeps ~20 fractional bits through the input rescaling, and ``M_a, M_b <= 1/2``
keep ``s_a + s_b`` inside int32. The two input products are rounded by the profile's
``add_input_rule()`` and the output product by its ``add`` rule (``tflite``: gemmlowp double
rounding, ties away, everywhere — ``MultiplyByQuantizedMultiplierSmallerThanOneExp``;
``tflite-optimized``: single rounding, ties up, on the inputs).

Profiles with ``add_scheme`` XNNPACK or QNNPACK use the one-shift sequence of those libraries
(XNNPACK ``xnn_init_qs8_add_minmax_params``, QNNPACK
``pytorch_qnnp_compute_add_quantization_params``):

    r_a = f32(S_a / S_out),  r_b = f32(S_b / S_out),  e = floor(log2 max(r_a, r_b))
    n = b - e  (b = 20 for XNNPACK, 21 for QNNPACK),  m_a = rne(r_a 2^n),  m_b = rne(r_b 2^n)
    y = clamp(Z_out + round((a - Za) m_a + (b - Zb) m_b) / 2^n), act_min, act_max)

one rounding, with the ``add`` rule's tie rule (XNNPACK ties up, QNNPACK ties away). The
multipliers have ``b + 1`` bits, so ``|(a - Za) m_a + (b - Zb) m_b| < 2 * 2^8 * 2^(b+1) <= 2^31``.

Add scheme MLAS is ONNX Runtime's QLinearAdd on x86-64, a float32 sequence
(``npquant.integer.mlas``); MLAS_NEON is the one on ARM, QNNPACK's sequence with a float32
fallback (``npquant.integer.mlas_neon``). Add scheme ATEN is PyTorch's quantized add on CPU, a
float32 sequence in blocks of 64 with a scalar tail (``npquant.integer.aten_add``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from npquant import fixedpoint as fp
from npquant.fixedpoint import Ties
from npquant.integer.aten_add import aten_add, check_aten_shapes
from npquant.integer.epilogue import activation_range, needs_domain_check
from npquant.integer.fast import add as fast_add
from npquant.integer.mlas import mlas_add
from npquant.integer.mlas_neon import neon_add
from npquant.integer.result import KernelResult
from npquant.profiles import AddScheme, MultiplierDerivation, Profile, RequantRule
from npquant.requant import (
    RequantParams,
    requant_params_from_multiplier,
    requantize,
    requantize_scalar,
)
from npquant.validate import (
    ACTIVATION_DTYPES,
    check_int_array,
    check_out_dtype,
    check_profile,
    check_scale,
    check_zero_point,
    dtype_range,
)


def add_multipliers(a_scale: float, b_scale: float, out_scale: float, left_shift: int
                    ) -> tuple[float, float, float]:
    """``(M_a, M_b, M_out)`` of TFLite's ADD Prepare, in float64 from the float32 scales."""
    sa, sb, so = (float(np.float32(s)) for s in (a_scale, b_scale, out_scale))
    twice_max = 2.0 * max(sa, sb)
    return sa / twice_max, sb / twice_max, twice_max / (float(1 << left_shift) * so)


@numba.njit(cache=True)
def _add_inputs(a, b, za, zb, left_shift, kind, ties, qa, sha, ma, qb, shb, mb, raw):
    """``raw[i] = M_a((a[i]-za) 2^ls) + M_b((b[i]-zb) 2^ls)``, each product rounded by the rule.

    Contract: a, b, raw 1-D of one length; ``(x - z) 2^ls`` fits int32 (|x - z| < 2^16, ls <= 15
    for int16 and <= 20 for 8-bit); M_a, M_b <= 1/2 (shift <= 0).
    """
    for i in range(a.shape[0]):
        va = (np.int64(a[i]) - za) << left_shift
        vb = (np.int64(b[i]) - zb) << left_shift
        raw[i] = (requantize_scalar(va, kind, ties, qa, sha, ma)
                  + requantize_scalar(vb, kind, ties, qb, shb, mb))


@dataclass(frozen=True)
class AddCall:
    """A checked ``add`` call: the operands every ADD kernel (reference or fast) computes from.

    ``a``, ``b``: the checked inputs, which broadcast to ``shape``; ``scales``: ``(S_a, S_b,
    S_out)``. MLAS scheme: nothing more (``npquant.integer.mlas``). TFLite scheme:
    ``left_shift`` and the requantization of each input (``input_a``, ``input_b``) and of the
    sum (``output``).
    One-shift schemes (XNNPACK, QNNPACK): ``multipliers = (m_a, m_b)`` and the shift ``n``, rounded
    with ``ties``.
    """

    a: np.ndarray
    b: np.ndarray
    shape: tuple[int, ...]
    a_zero_point: int
    b_zero_point: int
    out_zero_point: int
    scales: tuple[float, float, float]
    scheme: AddScheme
    act_range: tuple[int, int]
    out_dtype: np.dtype
    left_shift: int = 0
    input_a: RequantParams | None = None
    input_b: RequantParams | None = None
    output: RequantParams | None = None
    multipliers: tuple[int, int] = (0, 0)
    shift: int = 0
    ties: Ties = Ties.UP


def check_add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int,
              b_scale: float, b_zero_point: int, out_scale: float, out_zero_point: int,
              profile: Profile | str, out_dtype: Any = None,
              activation: str | None = None) -> AddCall:
    """Check the arguments of ``add`` (its docstring) and derive the profile's multipliers."""
    prof = check_profile(profile)
    a = check_int_array("a", a, ACTIVATION_DTYPES)
    b = check_int_array("b", b, ACTIVATION_DTYPES)
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have one dtype, got {a.dtype} and {b.dtype}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"a and b do not broadcast: a {a.shape}, b {b.shape}") from None
    odt = check_out_dtype(out_dtype if out_dtype is not None else a.dtype)
    za = check_zero_point("a_zero_point", a_zero_point, a.dtype)
    zb = check_zero_point("b_zero_point", b_zero_point, b.dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, odt)
    sa = check_scale("a_scale", a_scale)
    sb = check_scale("b_scale", b_scale)
    so = check_scale("out_scale", out_scale)
    common = dict(a=a, b=b, shape=shape, a_zero_point=za, b_zero_point=zb, out_zero_point=zo,
                  scales=(sa, sb, so), scheme=prof.add_scheme,
                  act_range=activation_range(activation, so, zo, odt, prof), out_dtype=odt)
    if prof.add_scheme is not AddScheme.TFLITE and a.dtype == np.int16:
        # MLAS, XNNPACK and QNNPACK have 8-bit ADD kernels only (QLinearAdd, qs8/qu8 vadd); the
        # int32 bound |acc| < 2^31 of the module docstring holds for 8-bit inputs only
        raise ValueError(f"profile {prof.name!r}: the {prof.add_scheme.value} ADD takes "
                         "int8/uint8 inputs, got int16")
    if prof.add_scheme in (AddScheme.MLAS, AddScheme.MLAS_NEON):  # ONNX Runtime (integer/mlas*)
        return AddCall(**common)
    if prof.add_scheme is AddScheme.ATEN:  # PyTorch (integer/aten_add)
        check_aten_shapes(a.shape, b.shape)
        return AddCall(**common)
    if prof.add_scheme is not AddScheme.TFLITE:
        m_a, m_b, n = one_shift_multipliers(sa, sb, so, prof.add_scheme)
        return AddCall(**common, multipliers=(m_a, m_b), shift=n, ties=prof.add.ties)
    left_shift = prof.add_scheme.left_shift(8 * a.dtype.itemsize)
    m_a, m_b, m_out = add_multipliers(sa, sb, so, left_shift)
    rule = prof.add_input_rule()
    return AddCall(**common, left_shift=left_shift,
                   input_a=requant_params_from_multiplier(rule, [m_a]),
                   input_b=requant_params_from_multiplier(rule, [m_b]),
                   output=requant_params_from_multiplier(prof.add, [m_out]))


def add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
        b_zero_point: int, out_scale: float, out_zero_point: int,
        profile: Profile | str, out_dtype: Any = None,
        activation: str | None = None, return_accumulators: bool = False
        ) -> np.ndarray | KernelResult:
    """Quantized ``a + b`` with different scales (module docstring); numpy broadcasting.

    ``a``, ``b`` of one dtype (int8/uint8/int16); ``out_dtype`` defaults to it. ``profile`` (a
    ``Profile`` or its name, required) fixes the scheme and roundings. Accumulators are the int32
    sums ``s_a + s_b`` before the output multiplier. The plain loop of the same arithmetic is
    ``npquant.integer.reference.add``.
    """
    c = check_add(a, b, a_scale=a_scale, a_zero_point=a_zero_point, b_scale=b_scale,
                  b_zero_point=b_zero_point, out_scale=out_scale, out_zero_point=out_zero_point,
                  profile=profile, out_dtype=out_dtype, activation=activation)
    lo, hi = c.act_range
    if c.scheme in (AddScheme.MLAS, AddScheme.MLAS_NEON):
        return _mlas(c, return_accumulators)
    if c.scheme is AddScheme.ATEN:
        (sa, sb, so) = c.scales
        y, acc = aten_add(c.a, c.b, a_scale=sa, a_zero_point=c.a_zero_point, b_scale=sb,
                          b_zero_point=c.b_zero_point, out_scale=so,
                          out_zero_point=c.out_zero_point, qmin=lo, qmax=hi)
        out = y.astype(c.out_dtype)
        return KernelResult(out, acc) if return_accumulators else out
    af = np.ascontiguousarray(np.broadcast_to(c.a, c.shape)).ravel()
    bf = np.ascontiguousarray(np.broadcast_to(c.b, c.shape)).ravel()
    if c.scheme is not AddScheme.TFLITE:
        m_a, m_b = c.multipliers
        acc64 = (af.astype(np.int64) - c.a_zero_point) * m_a + \
            (bf.astype(np.int64) - c.b_zero_point) * m_b
        # |acc64| < 2^31 (module docstring): an int32 accumulator, one rounding shift
        acc = acc64.astype(np.int32).reshape(c.shape)
        y = fp.rounding_shift_right(acc64, c.shift, ties=c.ties) + c.out_zero_point
        out = np.clip(y, lo, hi).astype(c.out_dtype).reshape(c.shape)
        return KernelResult(out, acc) if return_accumulators else out
    pa, pb = c.input_a, c.input_b
    if not needs_domain_check(c.output):  # one fused loop (npquant.integer.fast.add)
        out, acc = fast_add.add_tflite(af, bf, c.a_zero_point, c.b_zero_point, c.left_shift, pa,
                                       pb, c.output, c.out_zero_point, (lo, hi), c.out_dtype,
                                       return_accumulators)
        out = out.reshape(c.shape)
        return KernelResult(out, acc.reshape(c.shape)) if return_accumulators else out
    raw = np.empty(af.shape[0], dtype=np.int64)
    _add_inputs(af, bf, np.int64(c.a_zero_point), np.int64(c.b_zero_point),
                np.int64(c.left_shift), pa.kind_code, pa.ties_code,
                int(pa.quantized_multiplier[0]), int(pa.shift[0]), float(pa.multiplier[0]),
                int(pb.quantized_multiplier[0]), int(pb.shift[0]), float(pb.multiplier[0]), raw)
    acc = raw.astype(np.int32).reshape(c.shape)  # |raw| <= 2^16 2^20 / 2 * 2 < 2^31
    out = requantize(acc, c.output, channel_axis=None, zero_point=c.out_zero_point, qmin=lo,
                     qmax=hi).astype(c.out_dtype)
    return KernelResult(out, acc) if return_accumulators else out


def _mlas(c: AddCall, return_accumulators: bool) -> np.ndarray | KernelResult:
    """ONNX Runtime's QLinearAdd (``npquant.integer.mlas`` on x86-64, ``mlas_neon`` on ARM) on
    a checked call."""
    (sa, sb, so), (lo, hi) = c.scales, c.act_range
    # MLAS takes two tensors of one shape or one single element; other broadcasts are refused
    if c.scheme is AddScheme.MLAS:
        y, acc = mlas_add(c.a, c.b, a_scale=sa, a_zero_point=c.a_zero_point, b_scale=sb,
                          b_zero_point=c.b_zero_point, out_scale=so,
                          out_zero_point=c.out_zero_point, qmin=lo, qmax=hi)
    else:  # the kernel saturates to the type's range; a fused activation clamps after it
        tlo, thi = dtype_range(c.out_dtype)
        y, acc = neon_add(c.a, c.b, a_scale=sa, a_zero_point=c.a_zero_point, b_scale=sb,
                          b_zero_point=c.b_zero_point, out_scale=so,
                          out_zero_point=c.out_zero_point, qmin=tlo, qmax=thi)
        y = np.clip(y, lo, hi)
    out = y.astype(c.out_dtype).reshape(c.shape)
    return KernelResult(out, acc.reshape(c.shape)) if return_accumulators else out


def one_shift_multipliers(sa: float, sb: float, so: float, scheme: AddScheme
                          ) -> tuple[int, int, int]:
    """``(m_a, m_b, n)`` of the XNNPACK / QNNPACK ADD (module docstring); ValueError where the
    library declines the ratios."""
    f32 = np.float32
    ratios = (f32(sa) / f32(so), f32(sb) / f32(so))  # each a float32 quotient, rounded once
    lo_r, hi_r = scheme.ratio_range
    for name, r in zip(("a_scale / out_scale", "b_scale / out_scale"), ratios, strict=True):
        if not lo_r <= float(r) < hi_r:
            raise ValueError(f"{scheme.value} ADD needs {lo_r:g} <= {name} < {hi_r:g}, got "
                             f"{float(r)!r}")
    e = math.frexp(float(max(ratios)))[1] - 1  # max r = 1.f 2^e
    n = scheme.multiplier_bits - e
    # r 2^n is exact in float64 (a power-of-two scaling of a float32); rne as lrintf
    m_a, m_b = (int(np.rint(float(r) * 2.0**n)) for r in ratios)
    return m_a, m_b, n


def relu(x: np.ndarray, *, zero_point: int) -> np.ndarray:
    """ReLU on quantized integers: ``max(q, Z)`` (``Z`` is real 0), same dtype."""
    x = check_int_array("x", x, ACTIVATION_DTYPES)
    z = check_zero_point("zero_point", zero_point, x.dtype)
    return np.maximum(x, np.array(z, dtype=x.dtype))


def relu6(x: np.ndarray, *, scale: float, zero_point: int, profile: Profile | str
          ) -> np.ndarray:
    """ReLU6: ``clamp(q, Z, Z + round(6 / S))`` with ``activation_range``'s rounding."""
    x = check_int_array("x", x, ACTIVATION_DTYPES)
    z = check_zero_point("zero_point", zero_point, x.dtype)
    lo, hi = activation_range("relu6", scale, z, x.dtype, check_profile(profile))
    return np.clip(x, lo, hi).astype(x.dtype)


def requantize_tensor(x: np.ndarray, *, in_scale: float, in_zero_point: int, out_scale: float,
                      out_zero_point: int, out_dtype: Any = None,
                      profile: Profile | str, rule: RequantRule | None = None
                      ) -> np.ndarray:
    """``q_out = clamp(Z_out + M (q_in - Z_in))`` with ``M = f64(S_in) / f64(S_out)``.

    TFLite's int8 -> int8 QUANTIZE (``Requantize``). The rounding is ``rule``, by default the
    profile's ``conv`` rule with the double-precision ratio as the multiplier.
    """
    prof = check_profile(profile)
    x = check_int_array("x", x, ACTIVATION_DTYPES)
    zi = check_zero_point("in_zero_point", in_zero_point, x.dtype)
    odt = check_out_dtype(out_dtype if out_dtype is not None else x.dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, odt)
    si = float(np.float32(check_scale("in_scale", in_scale)))
    so = float(np.float32(check_scale("out_scale", out_scale)))
    if rule is None:
        rule = RequantRule(prof.conv.kind, MultiplierDerivation.DOUBLE, prof.conv.ties)
    params: RequantParams = requant_params_from_multiplier(rule, [si / so])
    lo, hi = dtype_range(odt)
    acc = (x.astype(np.int64) - zi).astype(np.int32)
    return requantize(acc, params, channel_axis=None, zero_point=zo, qmin=lo, qmax=hi).astype(odt)


def concat(tensors: Sequence[np.ndarray], *, axis: int, scales: Sequence[float],
           zero_points: Sequence[int], out_scale: float, out_zero_point: int,
           profile: Profile | str) -> np.ndarray:
    """Concatenate quantized tensors along ``axis`` after requantizing each to the output's
    ``(out_scale, out_zero_point)`` (``requantize_tensor``; a tensor already on them is copied).

    NOTE: TFLite's int8 CONCATENATION requires every input to share the output's qparams (then
    this is a plain concatenation); its uint8 kernel rescales in float32 (``round(q s + bias)``),
    which can differ by one from this fixed-point requantization.
    """
    if not (len(tensors) == len(scales) == len(zero_points)) or not tensors:
        raise ValueError(f"tensors, scales, zero_points must be non-empty and of one length, got "
                         f"{len(tensors)}, {len(scales)}, {len(zero_points)}")
    parts = []
    for i, (t, s, z) in enumerate(zip(tensors, scales, zero_points, strict=True)):
        t = check_int_array(f"tensors[{i}]", t, ACTIVATION_DTYPES)
        if float(np.float32(s)) == float(np.float32(out_scale)) and int(z) == int(out_zero_point):
            parts.append(t)
        else:
            parts.append(requantize_tensor(t, in_scale=s, in_zero_point=z, out_scale=out_scale,
                                           out_zero_point=out_zero_point, out_dtype=t.dtype,
                                           profile=profile))
    dtypes = {p.dtype for p in parts}
    if len(dtypes) != 1:
        raise TypeError(f"tensors must share one dtype, got {sorted(str(d) for d in dtypes)}")
    try:
        return np.concatenate(parts, axis=axis)
    except ValueError as exc:
        shapes = [p.shape for p in parts]
        raise ValueError(f"cannot concatenate shapes {shapes} on axis {axis}: {exc}") from None
