"""Integer GEMM and the fully-connected layer: ``q_out = requant(sum_k (a - Za)(w - Zw) + bias)``.

Layout: activations ``x (N, K)``, weights ``w (O, K)`` (PyTorch ``Linear``), output ``(N, O)``.

The accumulators are computed with the zero-point expansion of gemmlowp (doc/low-precision.md;
Jacob et al. 2018, arXiv:1712.05877, eq. 7):

    sum_k (a_k - Za)(w_k - Zw) = sum_k a_k w_k - Zw sum_k a_k - Za sum_k w_k + K Za Zw      (eq. 2)

so the inner loop multiplies the stored integers only, and the zero points enter through one row
sum per activation row and one column sum per weight row. ``npquant.integer.reference`` computes
eq. 1 as written; the kernels here compute the same numbers fast. With int8/uint8 activations on
a CPU with AVX-512 VNNI the u8 x s8 ``vpdpbusd`` kernel of ``npquant.integer.fast.vnni_gemm``
runs; ``npquant.integer.fast.gemm_loops`` is the portable path (and int16 activations): the
inner product runs on int16 operands into an int32 accumulator that wraps; when the operand bound
of ``npquant.integer.accumulator`` proves the exact value of eq. 1 fits in int32, eq. 2
evaluated modulo 2^32 *is* that value, however the raw sum ``sum a w`` wrapped on the way.
Otherwise the plain int64 loop of eq. 1 or the sequential accumulator model runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from npquant.integer import accumulator as accm
from npquant.integer.bias import layer_bias
from npquant.integer.epilogue import (
    activation_range,
    fuses_epilogue,
    needs_domain_check,
    requant_for_shape,
    requantize_accumulators,
    resolve_requant,
)
from npquant.integer.fast import gemm_loops, vnni_gemm
from npquant.integer.result import KernelResult
from npquant.profiles import AccumulatorRule, Profile
from npquant.requant import RequantParams
from npquant.validate import (
    ACTIVATION_DTYPES,
    WEIGHT_DTYPES,
    check_bias,
    check_int_array,
    check_out_dtype,
    check_profile,
    check_zero_point,
    check_zero_points,
)


def accumulate(a: np.ndarray, w: np.ndarray, za: int, zw: np.ndarray, bias: np.ndarray,
               rule: AccumulatorRule, *, layer: str,
               index_of: Callable[[int, int], tuple[int, ...]]) -> np.ndarray:
    """Accumulators ``(M, N)`` of eq. 1 for ``a (M, K)`` and ``w (N, K)`` under ``rule``.

    ``a``/``w`` hold stored integers (int8/uint8/int16), ``zw``/``bias`` are int64 ``(N,)``.
    Returns int32 (``rule.bits <= 32``) or int64. Picks the fast kernel when the operand bound
    proves it exact (npquant.integer.accumulator), else the int64 loop or the step-by-step model.
    """
    k_len = a.shape[1]
    plan = accm.plan_for(a, za, w, zw, k_len, bias, rule)
    out_dtype = accm.accumulator_dtype(rule)
    if plan.kind == accm.PLAN_EMULATE:
        acc = accm.emulate_accumulation(a, w, za, zw, bias, rule, layer=layer, index_of=index_of)
        return acc.astype(out_dtype)
    if vnni_gemm.runs_exactly(a.dtype, plan):
        return vnni_gemm.gemm_exact_vnni(a, w, za, zw, bias).astype(out_dtype, copy=False)
    if plan.fits_int32 and k_len < gemm_loops.SMALL_K:
        out = np.empty((a.shape[0], w.shape[0]), dtype=np.int32)
        gemm_loops.gemm_i32_small_k(np.ascontiguousarray(a, dtype=np.int16),
                          np.ascontiguousarray(w.T, dtype=np.int16), np.int64(za), zw, bias, out)
        return out.astype(out_dtype, copy=False)
    if plan.fits_int32:
        out = np.empty((a.shape[0], w.shape[0]), dtype=np.int32)
        gemm_loops.gemm_i32(np.ascontiguousarray(a, dtype=np.int16),
                            np.ascontiguousarray(w, dtype=np.int16), np.int64(za), zw, bias, out)
        return out.astype(out_dtype, copy=False)
    out64 = np.empty((a.shape[0], w.shape[0]), dtype=np.int64)
    gemm_loops.gemm_i64(a, w, np.int64(za), zw, bias, out64)
    if plan.kind == accm.PLAN_WRAP:
        out64 = accm.wrap_to_bits(out64, rule.bits)
    return out64.astype(out_dtype)


@dataclass(frozen=True)
class FcCall:
    """A checked ``fully_connected`` call: the resolved operands every GEMM-like kernel
    (reference or fast; ``ConvCall`` extends it) computes from; ``bias`` and ``w_zero_point``
    are int64 ``(O,)``, ``act_range`` the integer clamp of the fused activation."""

    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    x_zero_point: int
    w_zero_point: np.ndarray
    out_zero_point: int
    requant: RequantParams
    accumulator: AccumulatorRule
    act_range: tuple[int, int]
    out_dtype: np.dtype
    layer: str
    # the float32 bias term per output channel when the profile adds the bias in float32
    # (``npquant.integer.bias``; the epilogue takes ``bias`` off and adds this), else None
    float_bias: np.ndarray | None = None

    def epilogue_bias(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``requantize_accumulators``' ``float_bias`` argument for this call."""
        return None if self.float_bias is None else (self.bias, self.float_bias)


def check_fc(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
             x_zero_point: int, out_zero_point: int, profile: Profile | str,
             w_zero_point: Any = 0, x_scale: float | None = None, w_scale: Any = None,
             out_scale: float | None = None, requant: RequantParams | None = None,
             out_dtype: Any = np.int8, out_bits: int | None = None,
             activation: str | None = None, accumulator: AccumulatorRule | None = None,
             layer: str = "fully_connected") -> FcCall:
    """Check the arguments of ``fully_connected`` (its docstring) and resolve them."""
    prof = check_profile(profile)
    x = check_int_array("x", x, ACTIVATION_DTYPES, 2)
    w = check_int_array("w", w, WEIGHT_DTYPES, 2)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has K={x.shape[1]} features but w has K={w.shape[1]} "
                         f"(x {x.shape}, w {w.shape})")
    o = w.shape[0]
    b = check_bias(bias, o)
    za = check_zero_point("x_zero_point", x_zero_point, x.dtype)
    zw = check_zero_points("w_zero_point", w_zero_point, w.dtype, o)
    odt = check_out_dtype(out_dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, odt)
    rule = accm.check_rule(accumulator if accumulator is not None else prof.accumulator)
    op_rule = prof.fully_connected.for_gemm(x.shape[0], o, x.shape[1])  # N columns, depth K
    params = resolve_requant(op_rule, requant_for_shape(requant, prof.fully_connected, op_rule),
                             x_scale, w_scale, out_scale, o, what=f"{prof.name} fully_connected")
    act = activation_range(activation, out_scale, zo, odt, prof, out_bits)
    b, term = layer_bias(b, params, op_rule)
    return FcCall(x, w, b, za, zw, zo, params, rule, act, odt, layer, term)


def fully_connected(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
                    x_zero_point: int, out_zero_point: int, profile: Profile | str,
                    w_zero_point: Any = 0,
                    x_scale: float | None = None, w_scale: Any = None,
                    out_scale: float | None = None, requant: RequantParams | None = None,
                    out_dtype: Any = np.int8,
                    out_bits: int | None = None, activation: str | None = None,
                    accumulator: AccumulatorRule | None = None,
                    layer: str = "fully_connected", return_accumulators: bool = False
                    ) -> np.ndarray | KernelResult:
    """Integer fully-connected layer ``y = requant(x w^T + bias)`` (eq. 1, computed as eq. 2).

    The arithmetic reads plainly in ``npquant.integer.reference.fully_connected``; this function
    computes the same values with the fast kernels.

    Args:
        x: activations ``(N, K)``, int8/uint8/int16.
        w: weights ``(O, K)``, int8/uint8 (PyTorch ``Linear`` layout).
        bias: int32 ``(O,)`` with scale ``S_x S_w[o]`` and zero point 0, or None; it enters
            as the profile's rule says (``RequantRule.bias``, ``npquant.integer.bias``).
        x_zero_point, w_zero_point, out_zero_point: zero points (``w_zero_point`` an int or one
            per output channel).
        profile: a ``Profile`` or its name (required): its ``fully_connected`` rule and
            ``accumulator``. A ``requant`` built for another rule is refused.
        x_scale, w_scale, out_scale: the scales (``w_scale`` a number or ``(O,)``), from which the
            profile's ``fully_connected`` rule derives ``M``; or give ``requant`` instead.
        out_dtype: int8, uint8 or int16.
        out_bits: the output's bit width (2.. the dtype's): outputs clamp to its range, e.g.
            ``[-8, 7]`` for 4 bits in int8 (``activation_range``); None: the dtype's range.
        activation: None, "relu" or "relu6" as an integer clamp (``activation_range``).
        accumulator: overrides ``profile.accumulator``.
        layer: the name in overflow errors.
        return_accumulators: also return the accumulators ``(N, O)``.

    Returns the output ``(N, O)`` of ``out_dtype``, or a ``KernelResult(out, acc)``.
    """
    c = check_fc(x, w, bias, x_zero_point=x_zero_point, out_zero_point=out_zero_point,
                 profile=profile, w_zero_point=w_zero_point, x_scale=x_scale, w_scale=w_scale,
                 out_scale=out_scale, requant=requant, out_dtype=out_dtype, out_bits=out_bits,
                 activation=activation, accumulator=accumulator, layer=layer)
    plan = accm.plan_for(c.x, c.x_zero_point, c.w, c.w_zero_point, c.x.shape[1], c.bias,
                         c.accumulator)
    if vnni_gemm.runs_exactly(c.x.dtype, plan) and not needs_domain_check(c.requant) \
            and fuses_epilogue(c.requant):
        # the same sums and the same epilogue, fused into the GEMM's last pass
        acc, out = vnni_gemm.gemm_exact_vnni(c.x, c.w, c.x_zero_point, c.w_zero_point, c.bias,
                                             requant=c.requant, out_zero_point=c.out_zero_point,
                                             act_range=c.act_range, out_dtype=c.out_dtype,
                                             want_acc=return_accumulators,
                                             float_bias=c.epilogue_bias())
        if acc is not None:
            acc = acc.astype(accm.accumulator_dtype(c.accumulator), copy=False)
        return KernelResult(out, acc) if return_accumulators else out
    acc = accumulate(c.x, c.w, c.x_zero_point, c.w_zero_point, c.bias, c.accumulator,
                     layer=c.layer, index_of=lambda m, n: (m, n))
    out = requantize_accumulators(acc, c.requant, channel_axis=1,
                                  out_zero_point=c.out_zero_point, act_range=c.act_range,
                                  out_dtype=c.out_dtype, float_bias=c.epilogue_bias())
    return KernelResult(out, acc) if return_accumulators else out
