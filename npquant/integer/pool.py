"""Integer pooling over NCHW: max pool, average pool (rounded integer division, or ONNX Runtime's
float32 sequence: ``AveragePoolScheme``), global average.

Pools keep the input's quantization (TFLite requires output scale and zero point equal to the
input's), so they work on the stored integers directly: the max of ``q`` is the ``q`` of the max,
and the average pool rounds ``sum q / count`` with the profile's ``average_pool`` tie rule —
TFLite's reference ``(sum ± count/2) / count`` in C (truncating) division is round-half-away.
NOTE: averaging the stored ``q`` (not ``q - Z``) is what TFLite does; with ties away from zero the
two differ on exact ties whenever Z != 0, so the choice is part of the profile's arithmetic.

Padding taps are skipped: the maximum ignores them and ``count`` is the number of valid taps
(``count_include_pad=True`` instead counts them as the zero point, real 0, as ONNX allows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import prange

from npquant import fixedpoint as fp
from npquant.fixedpoint import Ties
from npquant.integer.conv import Padding, conv_padding
from npquant.integer.epilogue import activation_range
from npquant.integer.fast import max_pool
from npquant.integer.result import KernelResult
from npquant.profiles import AveragePoolScheme, Profile
from npquant.requant import RequantParams, prepare_requant, requantize
from npquant.validate import (
    ACTIVATION_DTYPES,
    check_int_array,
    check_profile,
    check_scale,
    check_zero_point,
    pair,
)


@numba.njit(cache=True, parallel=True)
def _pool(x, kh_len, kw_len, sh, sw, pt, pl, is_max, include_pad, zp, ties, lo, hi, acc, out):
    """Max or average pool of each window; contract: acc/out (N, C, OH, OW), windows as computed
    by the caller (every window holds at least one valid tap), lo <= hi.

    ``acc`` receives the window's max or sum (int32), ``out`` the clamped max or rounded mean.
    """
    n_len, c_len, h_len, w_len = x.shape
    oh_len, ow_len = out.shape[2], out.shape[3]
    for t in prange(n_len * c_len):
        n = t // c_len
        c = t % c_len
        for i in range(oh_len):
            for j in range(ow_len):
                best = -(1 << 40)
                total = 0
                count = 0
                for a in range(kh_len):
                    y = i * sh + a - pt
                    for b in range(kw_len):
                        z = j * sw + b - pl
                        if 0 <= y < h_len and 0 <= z < w_len:
                            v = np.int64(x[n, c, y, z])
                            total += v
                            count += 1
                            if v > best:
                                best = v
                        elif include_pad:
                            total += zp
                            count += 1
                if is_max:
                    acc[n, c, i, j] = best
                    r = best
                else:
                    acc[n, c, i, j] = total
                    r = fp.round_divide_scalar(total, count, ties)
                out[n, c, i, j] = fp.saturate_scalar(r, lo, hi)


@numba.njit(cache=True, parallel=True)
def _avg_pool_float32(x, kh_len, kw_len, sh, sw, pt, pl, include_pad, zp, scale, lo, hi, acc,
                      out):
    """ONNX Runtime's QLinearAveragePool (``AveragePoolScheme.FLOAT32``) of each window, input
    and output sharing ``scale`` and ``zp``:

        y = rne(f32(f32(m / S) + Z)),  m = f32(s / f32(count)),  s = f32 sum of f32(S (q - Z))

    the float32 sum taken one valid tap at a time, rows then columns (``count`` the valid taps,
    or the kernel area with ``include_pad``: padded taps add real 0). ``acc`` receives the
    integer window sum of ``q`` (padded taps as ``zp`` with ``include_pad``), as the integer
    scheme's. Contract as ``_pool``; ``scale`` a float32 value.
    """
    n_len, c_len, h_len, w_len = x.shape
    oh_len, ow_len = out.shape[2], out.shape[3]
    s32 = np.float32(scale)
    z32 = np.float32(zp)
    for t in prange(n_len * c_len):
        n = t // c_len
        c = t % c_len
        for i in range(oh_len):
            for j in range(ow_len):
                total = np.float32(0.0)
                isum = 0
                count = 0
                for a in range(kh_len):
                    y = i * sh + a - pt
                    for b in range(kw_len):
                        z = j * sw + b - pl
                        if 0 <= y < h_len and 0 <= z < w_len:
                            q = np.int64(x[n, c, y, z])
                            total = np.float32(total + np.float32(s32 * np.float32(q - zp)))
                            isum += q
                            count += 1
                        elif include_pad:
                            isum += zp
                if include_pad:
                    count = kh_len * kw_len
                mean = np.float32(total / np.float32(count))
                r = np.rint(np.float32(np.float32(mean / s32) + z32))
                acc[n, c, i, j] = isum
                out[n, c, i, j] = fp.saturate_scalar(np.int64(r), lo, hi)


@dataclass(frozen=True)
class PoolCall:
    """A checked pool call: the operands every pool kernel (reference or fast) computes from."""

    x: np.ndarray
    is_max: bool
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    zero_point: int
    count_include_pad: bool
    ties: Ties  # the profile's average_pool tie rule
    act_range: tuple[int, int]
    scheme: AveragePoolScheme = AveragePoolScheme.INTEGER  # the profile's, for average pools
    scale: float | None = None  # the tensor's scale (a float32 value), which FLOAT32 needs

    @property
    def whole_plane(self) -> bool:
        """True when the window is the whole unpadded plane: ONNX Runtime then runs its global
        average pool (``QLinearAveragePool`` falls back to ``ComputeQLinearGlobalAvgPool``)."""
        return self.kernel_size == tuple(self.x.shape[2:]) and not any(self.pads)


def check_pool(kind: str, x: np.ndarray, kernel_size: int | tuple[int, int], stride: Any,
               padding: Padding, *, profile: Profile | str, zero_point: int = 0,
               scale: float | None = None, activation: str | None = None,
               count_include_pad: bool = False) -> PoolCall:
    """Check the arguments of ``max_pool2d`` / ``avg_pool2d`` (``kind`` "max" / "avg")."""
    prof = check_profile(profile)
    x = check_int_array("x", x, ACTIVATION_DTYPES, 4)
    kh_len, kw_len = pair("kernel_size", kernel_size)
    sh, sw = pair("stride", stride if stride is not None else (kh_len, kw_len))
    h_len, w_len = x.shape[2], x.shape[3]
    pt, pb, pl, pr = conv_padding(padding, (h_len, w_len), (kh_len, kw_len), (sh, sw), (1, 1))
    if max(pt, pb) >= kh_len or max(pl, pr) >= kw_len:
        raise ValueError(f"padding {(pt, pb, pl, pr)} must be smaller than the kernel "
                         f"{(kh_len, kw_len)} (a window of padding only has no value)")
    oh_len = (h_len + pt + pb - kh_len) // sh + 1
    ow_len = (w_len + pl + pr - kw_len) // sw + 1
    if oh_len < 1 or ow_len < 1:
        raise ValueError(f"empty output {oh_len}x{ow_len}: x {x.shape}, kernel "
                         f"{(kh_len, kw_len)}, pads {(pt, pb, pl, pr)}")
    if kh_len * kw_len > 2**15:  # sums of |q| <= 2^15 per tap must fit the int32 accumulator
        raise ValueError(f"kernel_size {(kh_len, kw_len)} has more than 2^15 taps")
    zp = check_zero_point("zero_point", zero_point, x.dtype)
    act = activation_range(activation, scale, zp, x.dtype, prof)
    scheme = AveragePoolScheme.INTEGER if kind == "max" else prof.average_pool_scheme
    if scheme is AveragePoolScheme.FLOAT32:
        if scale is None:
            raise ValueError(f"profile {prof.name!r} averages in float32 "
                             f"({scheme.value} scheme): give scale")
        scale = float(np.float32(check_scale("scale", scale)))
    return PoolCall(x, kind == "max", (kh_len, kw_len), (sh, sw), (pt, pb, pl, pr),
                    (oh_len, ow_len), zp, bool(count_include_pad), prof.average_pool, act,
                    scheme, scale)


def _pool_common(kind: str, x, kernel_size, stride, padding, zero_point, scale, profile,
                 activation, count_include_pad, return_accumulators):
    c = check_pool(kind, x, kernel_size, stride, padding, zero_point=zero_point, scale=scale,
                   profile=profile, activation=activation, count_include_pad=count_include_pad)
    if c.is_max and max_pool.applies(c.kernel_size, c.stride, c.pads):
        out, acc = max_pool.max_pool_2x2(c.x, c.act_range, return_accumulators)
        return KernelResult(out, acc) if return_accumulators else out
    if c.scheme is AveragePoolScheme.FLOAT32 and c.whole_plane:
        return global_avg_pool2d(c.x, zero_point=c.zero_point, scale=c.scale, profile=profile,
                                 activation=activation, return_accumulators=return_accumulators)
    shape = (c.x.shape[0], c.x.shape[1]) + c.out_hw
    acc = np.empty(shape, dtype=np.int32)
    out = np.empty(shape, dtype=c.x.dtype)
    if c.scheme is AveragePoolScheme.FLOAT32:
        _avg_pool_float32(c.x, c.kernel_size[0], c.kernel_size[1], c.stride[0], c.stride[1],
                          c.pads[0], c.pads[2], c.count_include_pad, c.zero_point, c.scale,
                          c.act_range[0], c.act_range[1], acc, out)
        return KernelResult(out, acc) if return_accumulators else out
    _pool(c.x, c.kernel_size[0], c.kernel_size[1], c.stride[0], c.stride[1], c.pads[0],
          c.pads[2], c.is_max, c.count_include_pad, c.zero_point, c.ties.code, c.act_range[0],
          c.act_range[1], acc, out)
    return KernelResult(out, acc) if return_accumulators else out


def max_pool2d(x: np.ndarray, kernel_size: int | tuple[int, int], stride: Any = None,
               padding: Padding = 0, *, zero_point: int = 0, scale: float | None = None,
               profile: Profile | str, activation: str | None = None,
               return_accumulators: bool = False) -> np.ndarray | KernelResult:
    """Max pool of ``x (N, C, H, W)`` (int8/uint8/int16); padded taps are ignored.

    ``stride`` defaults to the kernel size; ``padding`` as in ``conv2d`` (TFLite "SAME"/"VALID"
    too). ``zero_point``/``scale`` are the tensor's (shared by output), used only by the
    activation clamp. Accumulators are the window maxima (int32).
    """
    return _pool_common("max", x, kernel_size, stride, padding, zero_point, scale, profile,
                        activation, False, return_accumulators)


def avg_pool2d(x: np.ndarray, kernel_size: int | tuple[int, int], stride: Any = None,
               padding: Padding = 0, *, zero_point: int = 0, scale: float | None = None,
               profile: Profile | str, activation: str | None = None,
               count_include_pad: bool = False, return_accumulators: bool = False
               ) -> np.ndarray | KernelResult:
    """Average pool: ``round(sum q / count)`` with the profile's ``average_pool`` tie rule, or
    ONNX Runtime's float32 sequence under the ``FLOAT32`` ``average_pool_scheme``
    (``_avg_pool_float32``; ``scale`` required; a window that is the whole unpadded plane is
    ``global_avg_pool2d`` there, as in ONNX Runtime).

    ``count`` is the number of valid taps of the window (TFLite), or the kernel area with
    ``count_include_pad`` (padded taps then add the zero point). Accumulators are the window sums.
    Other arguments as in ``max_pool2d``.
    """
    return _pool_common("avg", x, kernel_size, stride, padding, zero_point, scale, profile,
                        activation, count_include_pad, return_accumulators)


def global_pool_output(prof: Profile, zero_point: int, scale: float | None,
                       out_zero_point: int | None, out_scale: float | None
                       ) -> tuple[float | None, int]:
    """The output ``(scale, zero point)`` of a global average pool: the input's unless given;
    other ones only under a profile whose ``global_average_pool`` rule requantizes."""
    so = scale if out_scale is None else out_scale
    zo = zero_point if out_zero_point is None else out_zero_point
    if prof.global_average_pool is None and (so, zo) != (scale, zero_point):
        raise ValueError(f"profile {prof.name!r} averages the stored integers, so output "
                         f"qparams must be the input's; got scale {scale} -> {so}, zero "
                         f"point {zero_point} -> {zo}")
    return so, zo


def global_pool_requant(x: np.ndarray, prof: Profile, zero_point: int, scale: float | None,
                        out_scale: float | None, out_zero_point: int
                        ) -> tuple[int, int, float, RequantParams]:
    """The checked ``(Z_in, Z_out, S_out, RequantParams)`` of a requantizing global average pool
    (ONNX Runtime's QLinearGlobalAveragePool): ``acc = sum q - Z_in N`` over the ``N = H W``
    plane, ``M = f32(S_in / f32(S_out N))`` by the profile's ``global_average_pool`` rule."""
    if scale is None or out_scale is None:
        raise ValueError(f"profile {prof.name!r} requantizes the global average pool: give scale")
    zp = check_zero_point("zero_point", zero_point, x.dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, x.dtype)
    n = x.shape[2] * x.shape[3]
    if n > 2**23:  # |acc| <= 2^8 n must be exact in float32 (and in int32)
        raise ValueError(f"the plane {x.shape[2]}x{x.shape[3]} has more than 2^23 elements")
    s_in, s_out = float(np.float32(scale)), float(np.float32(out_scale))
    params = prepare_requant(prof.global_average_pool, s_in, 1.0,
                             float(np.float32(s_out) * np.float32(n)))
    return zp, zo, s_out, params


def global_avg_pool2d(x: np.ndarray, *, zero_point: int = 0, scale: float | None = None,
                      profile: Profile | str, activation: str | None = None,
                      return_accumulators: bool = False, out_scale: float | None = None,
                      out_zero_point: int | None = None) -> np.ndarray | KernelResult:
    """Average over all of ``H x W``: ``(N, C, 1, 1)``; ``avg_pool2d`` with the kernel ``(H, W)``,
    or, when the profile has a ``global_average_pool`` rule, ``sum q - Z N`` requantized by
    ``M = f32(S / f32(S N))`` (ONNX Runtime; ``scale`` is then required). Input and output share
    ``scale`` and ``zero_point`` unless ``out_scale``/``out_zero_point`` are given, which only a
    requantizing rule can honour: ``M = f32(S_in / f32(S_out N))``, ``+ Z_out``.
    """
    x = check_int_array("x", x, ACTIVATION_DTYPES, 4)
    prof = check_profile(profile)
    so, zo = global_pool_output(prof, zero_point, scale, out_zero_point, out_scale)
    if prof.global_average_pool is None:
        return _pool_common("avg", x, (x.shape[2], x.shape[3]), 1, 0, zero_point, scale, prof,
                            activation, False, return_accumulators)
    zp, zo, s_out, params = global_pool_requant(x, prof, zero_point, scale, so, zo)
    n = x.shape[2] * x.shape[3]
    acc = (x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - zp * n).astype(np.int32)
    lo, hi = activation_range(activation, s_out, zo, x.dtype, prof)
    out = requantize(acc, params, channel_axis=None, zero_point=zo, qmin=lo, qmax=hi
                     ).astype(x.dtype)
    return KernelResult(out, acc) if return_accumulators else out
