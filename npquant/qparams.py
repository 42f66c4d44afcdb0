"""Quantization parameters ``(S, Z)``: choosing them from a range, quantize and dequantize.

The affine map (Jacob et al. 2018, arXiv:1712.05877, eq. 1) is ``r = S (q - Z)`` with a real
scale ``S > 0`` and an integer zero point ``Z`` in ``[qmin, qmax]``, so that real 0 is exactly
``q = Z``. Ranges are widened to include 0 first. docs/fixedpoint.md (section 1) derives each
formula with numbers from this module.
"""

from __future__ import annotations

import math

import numpy as np

from npquant import fixedpoint as fp
from npquant.fixedpoint import Ties, int_range
from npquant.profiles import (
    DequantizeRule,
    QParamsMethod,
    QuantizeMethod,
    QuantizeRule,
    ZeroPointOrder,
)
from npquant.validate import check_bits

SCHEMES = ("asymmetric", "symmetric", "power_of_two")
_FLOAT32_EPS = float(np.finfo(np.float32).eps)  # PyTorch observers' floor on the scale


class QParams:
    """Scale(s) and zero point(s) of a quantized tensor of ``bits`` bits.

    Per-tensor: ``scale`` and ``zero_point`` are 0-d arrays and ``axis`` is None. Per-channel:
    1-D arrays of one length and ``axis`` is the tensor axis they index (0 for OIHW weights).
    Scales are float32 values, as every framework stores them. ``narrow_range`` records that
    ``qmin`` is ``-(2^(b-1) - 1)`` (symmetric weights whose negation cannot overflow).
    """

    __slots__ = ("scale", "zero_point", "bits", "signed", "axis", "narrow_range")

    def __init__(self, scale, zero_point, *, bits: int = 8, signed: bool = True,
                 axis: int | None = None, narrow_range: bool = False) -> None:
        check_bits("bits", bits)
        if not isinstance(signed, (bool, np.bool_)):
            raise TypeError(f"signed must be a bool, got {signed!r}")
        s = np.asarray(scale, dtype=np.float64)
        if np.isnan(s).any() or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"scale must be finite and > 0, got {scale!r}")
        s32 = s.astype(np.float32)
        if np.any(s32 < np.finfo(np.float32).tiny) or not np.all(np.isfinite(s32)):
            raise ValueError(f"scale={scale!r} is not a positive, finite, normal float32 "
                             f"(>= {np.finfo(np.float32).tiny:.3g}; a subnormal scale loses "
                             "precision and its reciprocal overflows)")
        z = np.asarray(zero_point)
        if z.dtype == np.bool_ or not (np.issubdtype(z.dtype, np.integer)
                                       or _is_integral_float(z)):
            raise TypeError(f"zero_point must be integer, got {zero_point!r} ({z.dtype})")
        z = z.astype(np.int64)
        qmin, qmax = _qrange(bits, bool(signed), narrow_range)
        if np.any(z < qmin) or np.any(z > qmax):
            raise ValueError(f"zero_point={zero_point!r} is outside [{qmin}, {qmax}] for "
                             f"{'signed' if signed else 'unsigned'} {bits}-bit")
        if axis is None:
            if s32.ndim != 0 or z.ndim != 0:
                if s32.size == 1 and z.size == 1:
                    s32, z = s32.reshape(()), z.reshape(())
                else:
                    raise ValueError("per-tensor qparams need a scalar scale and zero_point; "
                                     "pass axis= for per-channel")
        else:
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
                raise TypeError(f"axis must be an int or None, got {axis!r}")
            s32, z = np.atleast_1d(s32), np.atleast_1d(z)
            if z.size == 1 and s32.size > 1:
                z = np.full(s32.shape, int(z[0]), dtype=np.int64)
            if s32.ndim != 1 or s32.shape != z.shape:
                raise ValueError(f"per-channel scale {s32.shape} and zero_point {z.shape} must "
                                 "be 1-D of one length")
        object.__setattr__(self, "scale", s32)
        object.__setattr__(self, "zero_point", z)
        object.__setattr__(self, "bits", int(bits))
        object.__setattr__(self, "signed", bool(signed))
        object.__setattr__(self, "axis", None if axis is None else int(axis))
        object.__setattr__(self, "narrow_range", bool(narrow_range))

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("QParams is immutable; build a new one")

    @property
    def qmin(self) -> int:
        """Smallest integer code (``-(2^(b-1) - 1)`` with narrow range)."""
        return _qrange(self.bits, self.signed, self.narrow_range)[0]

    @property
    def qmax(self) -> int:
        """Largest integer code."""
        return _qrange(self.bits, self.signed, self.narrow_range)[1]

    @property
    def dtype(self) -> np.dtype:
        """The numpy storage type: int8/uint8 up to 8 bits, int16/uint16 up to 16."""
        width = 8 if self.bits <= 8 else 16
        return np.dtype(f"{'' if self.signed else 'u'}int{width}")

    @property
    def per_channel(self) -> bool:
        """True when ``scale`` has one entry per channel along ``axis``."""
        return self.axis is not None

    def __repr__(self) -> str:
        kind = "int" if self.signed else "uint"
        where = "" if self.axis is None else f", axis={self.axis}"
        nr = ", narrow_range" if self.narrow_range else ""
        return (f"QParams(scale={self.scale.tolist()}, zero_point={self.zero_point.tolist()}, "
                f"{kind}{self.bits}{where}{nr})")

    def broadcast(self, ndim: int, shape: tuple[int, ...] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` shaped to broadcast against a tensor with ``ndim`` axes; with
        the tensor's ``shape``, per-channel qparams must have one entry per channel of ``axis``
        (ValueError otherwise, instead of numpy broadcasting 3 scales over 1 channel)."""
        if self.axis is None:
            return self.scale, self.zero_point
        axis = self.axis % ndim if ndim else 0
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"axis={self.axis} is out of range for a {ndim}-d tensor")
        if shape is not None and shape[axis] != self.scale.shape[0]:
            raise ValueError(f"per-channel qparams have {self.scale.shape[0]} scales but the "
                             f"tensor of shape {tuple(shape)} has {shape[axis]} channels on "
                             f"axis {self.axis}")
        shape = [1] * ndim
        shape[axis] = self.scale.shape[0]
        return self.scale.reshape(shape), self.zero_point.reshape(shape)


def from_range(rmin, rmax, *, bits: int = 8, signed: bool = True, scheme: str = "asymmetric",
               narrow_range: bool = False, method: QParamsMethod | str = QParamsMethod.TFLITE,
               axis: int | None = None) -> QParams:
    """Choose ``(S, Z)`` for the real range ``[rmin, rmax]`` (widened to include 0).

    Schemes (``qmin, qmax`` from ``bits``, ``signed`` and ``narrow_range``):

    * ``asymmetric``: ``S = (rmax - rmin) / (qmax - qmin)`` and ``Z`` the integer that maps to
      real 0. ``method="tflite"`` (TFLite ``ChooseQuantizationParams``): float64 arithmetic,
      ``Z`` from whichever end (``qmin - rmin/S`` or ``qmax - rmax/S``) has the smaller error
      term, clamped, rounded half away. ``method="pytorch"`` (torch.ao observers): float32
      arithmetic, ``S = max(S, eps_f32)``, ``Z = qmin - round_even(rmin / S)``, clamped.
    * ``symmetric``: ``Z = 0`` (PyTorch unsigned: ``Z = 2^(b-1)``). ``tflite``:
      ``S = max|r| / qmax``; ``pytorch``: ``S = max|r| / ((qmax - qmin) / 2)``.
    * ``power_of_two``: symmetric with ``S = 2^ceil(log2(max|r| / qmax))`` (TI TIDL, Qcode);
      requantization then is a shift.

    Degenerate range ``rmin = rmax = 0``: TFLite would give ``S = 0``, which no kernel can use;
    npquant gives ``S = 1`` (and ``S = eps`` for the pytorch method, as PyTorch does), so 0 stays
    exact. ``rmin``/``rmax`` are scalars (per-tensor) or 1-D arrays with ``axis`` (per-channel).
    """
    check_bits("bits", bits)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    meth = QParamsMethod(method)
    lo = np.asarray(rmin, dtype=np.float64)
    hi = np.asarray(rmax, dtype=np.float64)
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError(f"range has NaN: rmin={rmin!r}, rmax={rmax!r}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"range must be finite: rmin={rmin!r}, rmax={rmax!r}")
    if lo.shape != hi.shape:
        raise ValueError(f"rmin shape {lo.shape} != rmax shape {hi.shape}")
    if np.any(lo > hi):
        raise ValueError(f"rmin > rmax: rmin={rmin!r}, rmax={rmax!r}")
    if axis is None and lo.ndim != 0:
        if lo.size != 1:
            raise ValueError("per-channel ranges need axis=")
        lo, hi = lo.reshape(()), hi.reshape(())
    if scheme != "asymmetric" and not signed and meth is QParamsMethod.TFLITE:
        raise ValueError(f"{scheme} qparams with method='tflite' need signed=True")
    qmin, qmax = _qrange(bits, signed, narrow_range)
    scales, zps = [], []
    for a, b in zip(np.atleast_1d(lo).ravel(), np.atleast_1d(hi).ravel(), strict=True):
        a, b = min(float(a), 0.0), max(float(b), 0.0)
        if scheme == "asymmetric":
            s, z = (_tflite_asymmetric if meth is QParamsMethod.TFLITE
                    else _pytorch_asymmetric)(a, b, qmin, qmax)
        elif scheme == "symmetric":
            s, z = _symmetric(a, b, qmin, qmax, signed, bits, meth)
        else:
            s, z = _power_of_two(a, b, qmax)
        scales.append(s)
        zps.append(z)
    if axis is None:
        return QParams(scales[0], zps[0], bits=bits, signed=signed, narrow_range=narrow_range)
    return QParams(np.array(scales), np.array(zps), bits=bits, signed=signed, axis=axis,
                   narrow_range=narrow_range)


def quantize(x, qparams: QParams, *, rule: QuantizeRule) -> np.ndarray:
    """``q = saturate(round(x / S) + Z)`` as ``rule`` computes it; returns ``qparams.dtype``.

    ``x`` is first rounded to float32 (the frameworks' input type). Variants (npquant.profiles):

    * ``divide``/``float32``/``after_rounding``: ``round(f32(x / S)) + Z`` — TFLite reference
      (ties away), ONNX Runtime QuantizeLinear (ties even);
    * ``multiply_reciprocal``/``before_rounding_fma``: ``round_even(fma(x, f32(1/S), Z))`` —
      torch.quantize_per_tensor (one rounding of the exact ``x * (1/S) + Z`` to float32);
    * ``multiply_reciprocal``/``before_rounding``: ``round_even(f32(f32(x * f32(1/S)) + Z))`` —
      torch.quantize_per_channel.

    A rule with ``block = b`` applies to the whole blocks of ``b`` elements of the flat C-order
    array and its ``tail`` rule to the last ``n mod b`` (TFLite's optimized QUANTIZE).

    NaN raises ValueError; +-inf saturate to ``qmax``/``qmin``.
    """
    if qparams.axis is None and not rule.block:
        # the same steps per element in one parallel pass (npquant.integer.fast.quantize)
        from npquant.integer.fast.quantize import quantize_per_tensor

        arr = np.asarray(x)
        if np.issubdtype(arr.dtype, np.floating):
            q = quantize_per_tensor(arr.astype(np.float32, copy=False), qparams.scale,
                                    int(qparams.zero_point), qparams.qmin, qparams.qmax,
                                    qparams.dtype, rule)
            if q is not None:
                return q
    return quantize_reference(x, qparams, rule=rule)


def quantize_reference(x, qparams: QParams, *, rule: QuantizeRule) -> np.ndarray:
    """``quantize`` as whole-array numpy steps (``quantize_unclamped``, then the clamp): the
    reference of its fast per-tensor path, and the path of per-channel and blocked rules."""
    rounded = quantize_unclamped(x, qparams, rule=rule)
    clipped = np.clip(rounded, qparams.qmin, qparams.qmax)  # +-inf saturate here
    return clipped.astype(qparams.dtype)


def quantize_unclamped(x, qparams: QParams, *, rule: QuantizeRule) -> np.ndarray:
    """``round(x / S) + Z`` exactly as ``quantize`` computes it, *before* saturation.

    Returns integral float64 values (+-inf for infinite ``x``), so that a caller can tell a
    value that lands on ``qmax`` from one that is clamped to it: fake quantization needs that
    to know where its straight-through gradient is 1 (``npquant.quant.fake_quant``).
    """
    arr = _float_input(x, "x")
    if rule.block:
        flat_pos = np.arange(arr.size).reshape(arr.shape)
        in_blocks = flat_pos < rule.block * (arr.size // rule.block)
        return np.where(in_blocks, _round_by_rule(arr, qparams, rule),
                        _round_by_rule(arr, qparams, rule.tail))
    return _round_by_rule(arr, qparams, rule)


def _round_by_rule(arr: np.ndarray, qparams: QParams, rule: QuantizeRule) -> np.ndarray:
    """``round(x / S) + Z`` of a validated float32 array by ``rule`` (ignoring ``rule.block``),
    unclamped, as float64."""
    scale, zp = qparams.broadcast(arr.ndim, arr.shape)
    zp = zp.astype(np.float64)
    wide = rule.precision == "float64"  # QuantizeRule validated the precision
    with np.errstate(over="ignore", invalid="ignore"):
        if rule.method is QuantizeMethod.DIVIDE:
            v = (arr.astype(np.float64) / scale.astype(np.float64) if wide
                 else (arr / scale).astype(np.float64))
        else:
            inv = (np.float32(1.0) / scale).astype(np.float32)
            if rule.zero_point is ZeroPointOrder.BEFORE_ROUNDING_FMA:
                v = _fma_to_float32(arr, inv, zp)
            elif wide:
                v = arr.astype(np.float64) * inv.astype(np.float64)
            else:
                v = (arr * inv).astype(np.float64)
        if rule.zero_point is ZeroPointOrder.BEFORE_ROUNDING:
            v = v + zp if wide else (v.astype(np.float32) + zp.astype(np.float32)).astype(
                np.float64)
        rounded = round_to_integer(v, rule.ties)
        if rule.zero_point is ZeroPointOrder.AFTER_ROUNDING:
            rounded = rounded + zp
    return rounded


def dequantize(q, qparams: QParams, *, rule: DequantizeRule | None = None) -> np.ndarray:
    """``r = f32(S (q - Z))``: the exact product rounded once to float32 (the default rule).

    ``q - Z`` fits 17 bits and ``S`` 24, so the product is exact in float64 and this one rounding
    is what TFLite's reference DEQUANTIZE (double), ONNX Runtime and PyTorch (float32 product of
    exact operands) all compute. ``rule`` (npquant.profiles.DequantizeRule) selects a variant:
    ``two_step`` is ``f32(f32(q S) + f32(-Z S))`` (three float32 roundings), and a blocked rule
    applies to whole blocks of the flat array and its ``tail`` to the rest (TFLite's optimized
    DEQUANTIZE on x86: two_step on blocks of 8, exact on the tail).
    """
    arr = np.asarray(q)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"q must be an integer array, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < qparams.qmin or int(arr.max()) > qparams.qmax):
        raise ValueError(f"q has values outside [{qparams.qmin}, {qparams.qmax}]")
    if rule is not None and rule.block:
        in_blocks = np.arange(arr.size).reshape(arr.shape) < rule.block * (arr.size // rule.block)
        return np.where(in_blocks, _dequantize(arr, qparams, rule),
                        _dequantize(arr, qparams, rule.tail))
    return _dequantize(arr, qparams, rule)


def _dequantize(arr: np.ndarray, qparams: QParams, rule: DequantizeRule | None) -> np.ndarray:
    scale, zp = qparams.broadcast(arr.ndim, arr.shape)
    if rule is not None and rule.two_step:
        s32 = scale.astype(np.float32)
        neg_zs = (-zp).astype(np.float32) * s32  # f32(-Z S), rounded once
        if rule.fused:
            # fma, one rounding: q S and f32(-Z S) are multiples of ulp(S) below 2^16 S, so
            # their sum has at most 40 significant bits and is exact in float64
            return (arr.astype(np.float64) * s32.astype(np.float64)
                    + neg_zs.astype(np.float64)).astype(np.float32)
        # f32(q S) and f32(-Z S) each rounded, then their float32 sum rounded
        return arr.astype(np.float32) * s32 + neg_zs
    return (scale.astype(np.float64) * (arr.astype(np.int64) - zp)).astype(np.float32)


def round_to_integer(values: np.ndarray, ties: Ties | str) -> np.ndarray:
    """Round float64 values to integral float64 with an explicit tie rule (exact, vectorized):
    ``npquant.fixedpoint.round_float``, the package's one float rounding."""
    return fp.round_float(values, ties)


def _tflite_asymmetric(rmin: float, rmax: float, qmin: int, qmax: int) -> tuple[float, int]:
    if rmin == rmax:
        return 1.0, int(min(max(0, qmin), qmax))
    scale = (rmax - rmin) / (qmax - qmin)
    # Two candidate zero points; the one whose terms are smaller carries less rounding error.
    zp_from_min = qmin - rmin / scale
    zp_from_max = qmax - rmax / scale
    err_min = abs(qmin) + abs(rmin / scale)
    err_max = abs(qmax) + abs(rmax / scale)
    zp = zp_from_min if err_min < err_max else zp_from_max
    if zp < qmin:
        return scale, qmin
    if zp > qmax:
        return scale, qmax
    return scale, int(round_to_integer(np.float64(zp), Ties.AWAY))


def _pytorch_asymmetric(rmin: float, rmax: float, qmin: int, qmax: int) -> tuple[float, int]:
    f32 = np.float32
    lo, hi = f32(rmin), f32(rmax)
    scale = f32(f32(hi - lo) / f32(qmax - qmin))
    scale = max(scale, f32(_FLOAT32_EPS))
    zp = qmin - int(np.rint(f32(lo / scale)))
    return float(scale), int(min(max(zp, qmin), qmax))


def _symmetric(rmin: float, rmax: float, qmin: int, qmax: int, signed: bool, bits: int,
               meth: QParamsMethod) -> tuple[float, int]:
    amax = max(-rmin, rmax)
    if meth is QParamsMethod.TFLITE:
        return (amax / qmax if amax > 0 else 1.0), 0
    f32 = np.float32
    scale = f32(f32(amax) / f32(f32(qmax - qmin) / f32(2)))
    scale = max(scale, f32(_FLOAT32_EPS))
    return float(scale), (0 if signed else 1 << (bits - 1))


def _power_of_two(rmin: float, rmax: float, qmax: int) -> tuple[float, int]:
    amax = max(-rmin, rmax)
    if amax == 0:
        return 1.0, 0
    # The smallest 2^k with amax / 2^k <= qmax, so that max|r| is representable.
    k = math.ceil(math.log2(amax / qmax))
    while amax / 2.0**k > qmax:
        k += 1
    while k > -126 and amax / 2.0 ** (k - 1) <= qmax:
        k -= 1
    return 2.0**k, 0


def _fma_to_float32(x: np.ndarray, inv: np.ndarray, zp: np.ndarray) -> np.ndarray:
    """``f32(x * inv + zp)`` with one rounding (C ``fmaf``), vectorized and exact.

    ``x * inv`` is exact in float64 (24 + 24 significant bits). The sum with ``zp`` is computed
    as ``s + e`` exactly (Knuth's TwoSum); rounding ``s`` to odd when ``e != 0`` keeps the
    information that decides the float32 rounding (53 >= 24 + 2 bits), so ``f32(s)`` is the
    correctly rounded float32 of the exact value.
    """
    p = x.astype(np.float64) * inv.astype(np.float64)
    zb = np.broadcast_to(zp, p.shape).astype(np.float64)
    s = p + zb
    bp = s - zb
    e = (p - bp) + (zb - (s - bp))
    bits = s.view(np.int64) if s.flags.c_contiguous else np.ascontiguousarray(s).view(np.int64)
    even = (bits & 1) == 0
    needs = (e != 0) & even & np.isfinite(s)
    if np.any(needs):
        s = s.copy()
        s[needs] = np.nextafter(s[needs], np.where(e[needs] > 0, np.inf, -np.inf))
    return s.astype(np.float32).astype(np.float64)


def _float_input(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if np.isnan(arr).any():
        idx = tuple(int(i) for i in np.argwhere(np.isnan(arr))[0])
        raise ValueError(f"{name} has NaN at index {idx}")
    return arr


def _is_integral_float(z: np.ndarray) -> bool:
    return (np.issubdtype(z.dtype, np.floating) and bool(np.all(np.isfinite(z)))
            and bool(np.all(z == np.round(z))))


def _qrange(bits: int, signed: bool, narrow_range: bool) -> tuple[int, int]:
    qmin, qmax = int_range(bits, signed)
    if narrow_range:
        if not signed:
            raise ValueError("narrow_range applies to signed types only")
        qmin += 1
    return qmin, qmax
