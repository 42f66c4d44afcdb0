"""Integer 2-D convolution (groups, depthwise with depth multiplier) over NCHW / OIHW integers.

Layouts (as the float side, PyTorch): activations ``x (N, C, H, W)``; weights
``w (O, C / groups, KH, KW)``; output ``(N, O, OH, OW)``. Depthwise is ``groups == C`` with
``w (C m, 1, KH, KW)``: output channel ``o`` reads input channel ``o // m`` (depth multiplier m).

Each output is eq. 1 of ``npquant.integer.accumulator`` over the receptive field:

    acc[n, o, i, j] = bias[o] + sum_{ci,kh,kw} (x[n, g Cg + ci, y, z] - Zx)(w[o, ci, kh, kw] - Zw)
    y = i sh + kh dh - pt,  z = j sw + kw dw - pl

with ``g = o // (O / groups)``. Padding pads with the input zero point ``Zx`` (real 0), never with
integer 0, so a padded tap adds ``(Zx - Zx)(w - Zw) = 0``. Output size
``OH = (H + pt + pb - ((KH - 1) dh + 1)) // sh + 1``.

The arithmetic reads plainly in ``npquant.integer.reference.conv2d`` (a loop per output element).
This module checks the arguments once (``check_conv``) and computes the same numbers fast: the
convolution is lowered to the GEMM of ``npquant.integer.gemm`` per group (im2col: one row per
output pixel, one column per ``(ci, kh, kw)``, which is also the reduction order); with int8/uint8
activations on an AVX-512 VNNI CPU, ``npquant.integer.fast.vnni_conv`` runs the same sums per
image straight into NCHW when the operand bound proves them exact in int32; depthwise layers run
a direct loop (``fast.conv_loops``) when the operand bound proves int32 exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
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
from npquant.integer.fast import conv_loops, depthwise, depthwise3x3, vnni_gemm
from npquant.integer.fast.vnni_conv import conv_exact_vnni
from npquant.integer.gemm import FcCall, accumulate
from npquant.integer.result import KernelResult
from npquant.profiles import AccumulatorRule, Profile, tflite_fast_3x3
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
    pair,
)

Padding = int | tuple[int, int] | tuple[int, int, int, int] | str


def conv_padding(padding: Padding, in_hw: tuple[int, int], kernel_hw: tuple[int, int],
                 stride: tuple[int, int], dilation: tuple[int, int]
                 ) -> tuple[int, int, int, int]:
    """Explicit pads ``(top, bottom, left, right)`` from an int, a pair ``(ph, pw)``, a 4-tuple,
    or TFLite's ``"SAME"``/``"VALID"``.

    SAME (TFLite ``ComputePaddingHeightWidth``): ``out = ceil(in / s)``, total pad
    ``max((out - 1) s + (k - 1) d + 1 - in, 0)``, the odd pixel at the bottom/right.
    """
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID', an int or a tuple, got {padding!r}")
        if padding == "VALID":
            return 0, 0, 0, 0
        pads = []
        for n, k, s, d in zip(in_hw, kernel_hw, stride, dilation, strict=True):
            out = (n + s - 1) // s
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return pads[0], pads[1], pads[2], pads[3]
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        p = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        p = (int(padding[0]), int(padding[0]), int(padding[1]), int(padding[1]))
    elif isinstance(padding, (tuple, list)) and len(padding) == 4:
        p = tuple(int(v) for v in padding)
    else:
        raise TypeError(f"padding must be an int, a pair, a 4-tuple or 'SAME'/'VALID', "
                        f"got {padding!r}")
    if min(p) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return p[0], p[1], p[2], p[3]


@dataclass(frozen=True)
class ConvCall(FcCall):
    """A checked ``conv2d`` call: the operands of ``FcCall`` (``x`` the input, ``w`` OIHW) and
    the convolution's geometry. ``xp`` is the input padded with ``Zx`` (real 0), built on first
    use (the 3x3 depthwise kernel pads one plane at a time instead)."""

    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    out_hw: tuple[int, int] = (1, 1)
    depthwise: bool = False

    @cached_property
    def xp(self) -> np.ndarray:
        """The input padded with ``Zx`` by ``pads`` (top, bottom, left, right)."""
        pt, pb, pl, pr = self.pads
        if not (pt or pb or pl or pr):
            return self.x
        return np.pad(self.x, ((0, 0), (0, 0), (pt, pb), (pl, pr)),
                      constant_values=self.x_zero_point)


def check_conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
               x_zero_point: int, out_zero_point: int, profile: Profile | str,
               w_zero_point: Any = 0, stride: int | tuple[int, int] = 1, padding: Padding = 0,
               dilation: int | tuple[int, int] = 1, groups: int = 1,
               x_scale: float | None = None, w_scale: Any = None,
               out_scale: float | None = None, requant: RequantParams | None = None,
               out_dtype: Any = np.int8, out_bits: int | None = None,
               activation: str | None = None, accumulator: AccumulatorRule | None = None,
               layer: str = "conv2d", depthwise_op: bool = False) -> ConvCall:
    """Check the arguments of ``conv2d`` (its docstring) and resolve them into a ``ConvCall``.

    ``depthwise_op``: the call comes from ``depthwise_conv2d`` (the op type, not the shape, makes
    a one-channel layer depthwise).
    """
    prof = check_profile(profile)
    x = check_int_array("x", x, ACTIVATION_DTYPES, 4)
    w = check_int_array("w", w, WEIGHT_DTYPES, 4)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    n_len, c_len, h_len, w_len = x.shape
    o_len, cg, kh_len, kw_len = w.shape
    if c_len % groups or o_len % groups or cg * groups != c_len:
        raise ValueError(f"groups={groups}: x has C={c_len} channels and w has O={o_len}, "
                         f"C/groups={cg} (x {x.shape}, w {w.shape})")
    sh, sw = pair("stride", stride)
    dh, dw = pair("dilation", dilation)
    pt, pb, pl, pr = conv_padding(padding, (h_len, w_len), (kh_len, kw_len), (sh, sw), (dh, dw))
    oh_len = (h_len + pt + pb - ((kh_len - 1) * dh + 1)) // sh + 1
    ow_len = (w_len + pl + pr - ((kw_len - 1) * dw + 1)) // sw + 1
    if oh_len < 1 or ow_len < 1:
        raise ValueError(f"empty output {oh_len}x{ow_len}: x {x.shape}, w {w.shape}, "
                         f"pads {(pt, pb, pl, pr)}, stride {(sh, sw)}, dilation {(dh, dw)}")
    b = check_bias(bias, o_len)
    zx = check_zero_point("x_zero_point", x_zero_point, x.dtype)
    zw = check_zero_points("w_zero_point", w_zero_point, w.dtype, o_len)
    odt = check_out_dtype(out_dtype)
    zo = check_zero_point("out_zero_point", out_zero_point, odt)
    if accumulator is None:
        # one input and one output channel per group: the profile's depthwise accumulator, if
        # the framework runs those convs on a kernel of their own (Profile.depthwise_accumulator)
        one_to_one = cg == 1 and o_len == groups and prof.depthwise_accumulator is not None
        accumulator = prof.depthwise_accumulator if one_to_one else prof.accumulator
    rule = accm.check_rule(accumulator)
    depthwise = groups == c_len and cg == 1 and (groups > 1 or depthwise_op)
    base_rule = prof.depthwise_conv if depthwise else prof.conv
    if depthwise:  # TFLite's 3x3 kernel can round otherwise (RequantRule.for_depthwise)
        op_rule = base_rule.for_depthwise(tflite_fast_3x3(
            c_len, o_len // c_len, (kh_len, kw_len), (sh, sw), (dh, dw), (pt, pl),
            (h_len, w_len), (oh_len, ow_len)))
    else:  # a GEMM of O rows, depth C KH KW / groups and N OH OW columns (for_gemm)
        op_rule = base_rule.for_gemm(n_len * oh_len * ow_len, o_len, cg * kh_len * kw_len)
    params = resolve_requant(op_rule, requant_for_shape(requant, base_rule, op_rule), x_scale,
                             w_scale, out_scale, o_len,
                             what=f"{prof.name} {'depthwise_conv' if depthwise else 'conv'}")
    act = activation_range(activation, out_scale, zo, odt, prof, out_bits)
    b, term = layer_bias(b, params, op_rule)
    return ConvCall(x, w, b, zx, zw, zo, params, rule, act, odt, layer, term, stride=(sh, sw),
                    dilation=(dh, dw), pads=(pt, pb, pl, pr), groups=groups,
                    out_hw=(oh_len, ow_len), depthwise=depthwise)


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *,
           x_zero_point: int, out_zero_point: int, profile: Profile | str,
           w_zero_point: Any = 0, stride: int | tuple[int, int] = 1, padding: Padding = 0,
           dilation: int | tuple[int, int] = 1, groups: int = 1,
           x_scale: float | None = None, w_scale: Any = None, out_scale: float | None = None,
           requant: RequantParams | None = None,
           out_dtype: Any = np.int8, out_bits: int | None = None,
           activation: str | None = None,
           accumulator: AccumulatorRule | None = None, layer: str = "conv2d",
           return_accumulators: bool = False, _depthwise_op: bool = False
           ) -> np.ndarray | KernelResult:
    """Integer convolution ``y = requant(conv(x - Zx, w - Zw) + bias)`` (module docstring).

    The arithmetic reads plainly in ``npquant.integer.reference.conv2d``; this function computes
    the same values with the fast kernels.

    Args:
        x: ``(N, C, H, W)`` int8/uint8/int16. w: ``(O, C / groups, KH, KW)`` int8/uint8.
        bias: int32 ``(O,)`` (scale ``S_x S_w[o]``, zero point 0) or None; it enters as the
            profile's rule says (``RequantRule.bias``, ``npquant.integer.bias``).
        profile: a ``Profile`` or its name (required): its ``conv`` / ``depthwise_conv`` rule
            and its ``accumulator`` (its ``depthwise_accumulator``, when it has one, for a conv
            with one input and one output channel per group). A ``requant`` built for another
            rule is refused.
        stride, dilation: int or ``(h, w)``. padding: int, ``(ph, pw)``,
            ``(top, bottom, left, right)``, or ``"SAME"``/``"VALID"`` (TFLite).
        groups: C and O divisible by it; ``groups == C > 1`` with ``w.shape[1] == 1`` is
            depthwise and uses the profile's ``depthwise_conv`` rule (else its ``conv`` rule). A
            one-channel input with ``groups=1`` is a CONV_2D here; ``depthwise_conv2d`` makes it
            a depthwise layer (as the op type, not the shape, decides in TFLite).
        x_scale, w_scale (number or ``(O,)`` per channel), out_scale, or ``requant``: as in
            ``fully_connected``. Zero points: ``w_zero_point`` an int or ``(O,)``.
        out_dtype, out_bits, activation, accumulator, layer, return_accumulators: as in
            ``fully_connected``; accumulators come back as ``(N, O, OH, OW)``.

    Returns ``(N, O, OH, OW)`` of ``out_dtype``, or ``KernelResult(out, acc)``.
    """
    c = check_conv(x, w, bias, x_zero_point=x_zero_point, out_zero_point=out_zero_point,
                   profile=profile, w_zero_point=w_zero_point, stride=stride, padding=padding,
                   dilation=dilation, groups=groups, x_scale=x_scale, w_scale=w_scale,
                   out_scale=out_scale, requant=requant, out_dtype=out_dtype, out_bits=out_bits,
                   activation=activation, accumulator=accumulator, layer=layer,
                   depthwise_op=_depthwise_op)
    # the padded taps hold Zx and add 0 to the bound: the bound of x is that of xp
    plan = accm.plan_for(c.x, c.x_zero_point, c.w, c.w_zero_point, c.w[0].size, c.bias,
                         c.accumulator)
    if _vnni_applies(c, plan) and not needs_domain_check(c.requant) \
            and fuses_epilogue(c.requant):
        # the same sums and the same epilogue, fused per image (npquant.integer.fast.vnni_conv)
        acc, out = conv_exact_vnni(c.xp, c.w, c.x_zero_point, c.w_zero_point, c.bias, c.stride,
                                   c.dilation, c.groups, c.out_hw, requant=c.requant,
                                   out_zero_point=c.out_zero_point, act_range=c.act_range,
                                   out_dtype=c.out_dtype, want_acc=return_accumulators,
                                   float_bias=c.epilogue_bias())
        if acc is not None:
            acc = acc.astype(accm.accumulator_dtype(c.accumulator), copy=False)
        return KernelResult(out, acc) if return_accumulators else out
    if c.depthwise and c.groups > 1 and c.stride == (1, 1) and plan.kind == accm.PLAN_EXACT \
            and plan.fits_int32 and not needs_domain_check(c.requant) \
            and fuses_epilogue(c.requant) \
            and c.float_bias is None:  # (the direct depthwise epilogues add the bias in int32)
        # the direct depthwise sums with the epilogue fused per row (fast.depthwise3x3) or
        # per plane (fast.depthwise)
        if c.w.shape[2:] == (3, 3):
            out, acc = depthwise3x3.depthwise_3x3(
                c.x, c.w, c.x_zero_point, c.w_zero_point, c.bias, c.pads, c.dilation, c.out_hw,
                c.requant, c.out_zero_point, c.act_range, c.out_dtype, return_accumulators)
        else:
            out, acc = depthwise.depthwise_unit_stride(
                c.xp, c.w, c.x_zero_point, c.w_zero_point, c.bias, c.dilation, c.out_hw,
                c.requant, c.out_zero_point, c.act_range, c.out_dtype, return_accumulators)
        if acc is not None:
            acc = acc.astype(accm.accumulator_dtype(c.accumulator), copy=False)
        return KernelResult(out, acc) if return_accumulators else out
    acc = _accumulate_conv(c, plan)
    out = requantize_accumulators(acc, c.requant, channel_axis=1,
                                  out_zero_point=c.out_zero_point, act_range=c.act_range,
                                  out_dtype=c.out_dtype, float_bias=c.epilogue_bias())
    return KernelResult(out, acc) if return_accumulators else out


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
                     **kwargs: Any) -> np.ndarray | KernelResult:
    """Depthwise convolution: ``conv2d(x, w, bias, groups=C, ...)`` with ``w (C m, 1, KH, KW)``.

    The keyword arguments are those of ``conv2d`` (without ``groups``); the profile's
    ``depthwise_conv`` rule applies.
    """
    x = check_int_array("x", x, ACTIVATION_DTYPES, 4)
    w = check_int_array("w", w, WEIGHT_DTYPES, 4)
    if w.shape[1] != 1 or w.shape[0] % x.shape[1]:
        raise ValueError(f"depthwise w must be (C*m, 1, KH, KW) with C={x.shape[1]}, "
                         f"got w {w.shape} (x {x.shape})")
    kwargs.setdefault("layer", "depthwise_conv2d")
    return conv2d(x, w, bias, groups=x.shape[1], _depthwise_op=True, **kwargs)


def _vnni_applies(c: ConvCall, plan: accm.Plan) -> bool:
    """True when ``fast.vnni_conv`` computes the exact accumulators: ``vnni_gemm.runs_exactly``
    and not a depthwise layer (the direct depthwise loops take those)."""
    return vnni_gemm.runs_exactly(c.x.dtype, plan) and not (c.depthwise and c.groups > 1)


def _accumulate_conv(c: ConvCall, plan: accm.Plan) -> np.ndarray:
    """Accumulators ``(N, O, OH, OW)`` of the checked call, under its accumulator rule."""
    xp, w, zx, zw, b, rule = c.xp, c.w, c.x_zero_point, c.w_zero_point, c.bias, c.accumulator
    stride, dilation, groups, layer = c.stride, c.dilation, c.groups, c.layer
    n_len = xp.shape[0]
    o_len, cg, kh_len, kw_len = w.shape
    oh_len, ow_len = c.out_hw
    og = o_len // groups
    exact_i32 = plan.kind == accm.PLAN_EXACT and plan.fits_int32
    if c.depthwise and groups > 1 and exact_i32:
        acc = np.empty((n_len, o_len, oh_len, ow_len), dtype=np.int32)
        w3, mult = w.reshape(o_len, kh_len, kw_len), np.int64(o_len // xp.shape[1])
        if stride == (1, 1):
            conv_loops.depthwise_i32_unit_stride(xp, w3, np.int64(zx), zw, b, mult, dilation[0],
                                                 dilation[1], acc)
        else:
            conv_loops.depthwise_i32(xp, w3, np.int64(zx), zw, b, mult, stride[0], stride[1],
                                     dilation[0], dilation[1], acc)
        return acc.astype(accm.accumulator_dtype(rule), copy=False)
    if _vnni_applies(c, plan):
        acc, _ = conv_exact_vnni(xp, w, zx, zw, b, stride, dilation, groups, c.out_hw)
        return acc.astype(accm.accumulator_dtype(rule), copy=False)
    cols = np.empty((groups, n_len * oh_len * ow_len, cg * kh_len * kw_len), dtype=np.int16)
    conv_loops.im2col(xp, kh_len, kw_len, stride[0], stride[1], dilation[0], dilation[1], oh_len,
                      ow_len, groups, cols)
    wmat = w.reshape(groups, og, cg * kh_len * kw_len)
    if rule.conv_order == "hwc":
        # the reduction runs along (kh, kw, ci), an NHWC im2col row (AccumulatorRule.conv_order)
        cols = np.ascontiguousarray(cols.reshape(groups, -1, cg, kh_len, kw_len)
                                    .transpose(0, 1, 3, 4, 2).reshape(cols.shape))
        wmat = np.ascontiguousarray(wmat.reshape(groups, og, cg, kh_len, kw_len)
                                    .transpose(0, 1, 3, 4, 2).reshape(wmat.shape))
    acc = np.empty((n_len * oh_len * ow_len, o_len), dtype=accm.accumulator_dtype(rule))
    per_image = oh_len * ow_len
    for g in range(groups):
        def index_of(m: int, j: int, g: int = g) -> tuple[int, ...]:
            return (m // per_image, g * og + j, (m % per_image) // ow_len, m % ow_len)

        sl = slice(g * og, (g + 1) * og)
        acc[:, sl] = accumulate(cols[g], wmat[g], zx, zw[sl], b[sl], rule, layer=layer,
                                index_of=index_of)
    return np.ascontiguousarray(acc.reshape(n_len, oh_len, ow_len, o_len).transpose(0, 3, 1, 2))
