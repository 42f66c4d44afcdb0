"""The reference integer kernels: one plain loop per op, written to be read.

These are "the" conv, depthwise conv, fully-connected layer, pools and ADD of npquant, in the way
TFLite's reference kernels read: a loop over the output elements, and for each element

1. **accumulate** (``accumulate``): ``acc = bias + sum_k (x_k - Zx)(w_k - Zw)``, one term at a
   time in the reduction order of the op, each partial sum kept inside the profile's accumulator
   (``AccumulatorRule``: N bits, overflow raise / wrap / saturate, or the ``vpmaddubsw`` pairs);
2. **requantize** (``requantize_one``): ``M acc`` rounded by the profile's rule, with the
   fixed-point and float primitives of ``npquant.fixedpoint`` (through
   ``npquant.requant.requantize_scalar``); where the profile adds the bias in float32 (fbgemm,
   ``npquant.integer.bias``), ``requantize_float_bias``;
3. **clamp**: ``Z_out`` plus that, saturated to the fused activation's integer range.

Python integers hold every intermediate value exactly, so nothing here can overflow by accident:
where a value leaves a range, it is because the rule says so. The fast kernels
(``npquant.integer.conv2d`` and friends: im2col GEMMs, the VNNI kernels, the direct depthwise
loops, fused epilogues) compute the same numbers; tests/integer/test_reference.py checks them with
``np.array_equal`` on hypothesis draws that take each fast path and its alternative.

Each kernel here takes the arguments of the public kernel of the same name and checks them with
the same function (``check_conv``, ``check_fc``, ``check_pool``, ``check_add``), so the two differ
only in how they compute. They always return ``KernelResult(out, acc)``. They are slow (a Python
loop per multiply): use them to read, and to test, on small tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npquant import fixedpoint as fp
from npquant.integer.accumulator import AccumulatorOverflowError, accumulator_dtype
from npquant.integer.aten_add import BLOCK, aten_add_one
from npquant.integer.conv import check_conv
from npquant.integer.elementwise import check_add
from npquant.integer.epilogue import activation_range
from npquant.integer.gemm import check_fc
from npquant.integer.mlas import check_mlas_shapes, mlas_add_one
from npquant.integer.mlas_neon import neon_add_one
from npquant.integer.pool import PoolCall, check_pool, global_pool_output, global_pool_requant
from npquant.integer.result import KernelResult
from npquant.profiles import AccumulatorRule, AddScheme, AveragePoolScheme, Overflow, RequantKind
from npquant.requant import RequantParams, requantize_scalar
from npquant.validate import ACTIVATION_DTYPES, check_int_array, check_profile, dtype_range

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


class _Overflow(Exception):
    """A partial sum left a ``raise`` accumulator (``step``: the reduction step, -1 for bias)."""

    def __init__(self, step: int, value: int) -> None:
        super().__init__(step, value)
        self.step, self.value = step, value


def _keep_in_range(value: int, rule: AccumulatorRule, step: int) -> int:
    """One partial sum under the rule: unchanged inside ``[-2^(b-1), 2^(b-1) - 1]``; outside,
    clamped (saturate), wrapped modulo ``2^b`` (wrap) or refused (raise)."""
    lo, hi = -(1 << (rule.bits - 1)), (1 << (rule.bits - 1)) - 1
    if lo <= value <= hi:
        return value
    if rule.overflow is Overflow.SATURATE:
        return fp.saturate_scalar(value, lo, hi)
    if rule.overflow is Overflow.WRAP:
        return (value - lo) % (1 << rule.bits) + lo
    raise _Overflow(step, value)


def accumulate(bias: int, xs: list[int], ws: list[int], zx: int, zw: int,
               rule: AccumulatorRule) -> int:
    """``bias + sum_k (x_k - Zx)(w_k - Zw)`` over the stored integers ``xs``, ``ws`` (the
    reduction order is their order), one step at a time under ``rule``.

    With ``rule.pair_saturation`` (x86 ``vpmaddubsw``) the stored values are multiplied, adjacent
    products are added in pairs ``(k, k+1)`` and each pair sum is saturated to int16 before it is
    accumulated; the zero points enter at the end as one term (eq. 2 of
    ``npquant.integer.accumulator``): ``- Zw sum x - Zx sum w + K Zx Zw``.
    Raises ``_Overflow`` for a ``raise`` rule.
    """
    acc = _keep_in_range(bias, rule, -1)
    k_len = len(xs)
    if not rule.pair_saturation:
        for k in range(k_len):
            acc = _keep_in_range(acc + (xs[k] - zx) * (ws[k] - zw), rule, k)
        return acc
    for k in range(0, k_len, 2):
        pair = xs[k] * ws[k] + (xs[k + 1] * ws[k + 1] if k + 1 < k_len else 0)
        acc = _keep_in_range(acc + fp.saturate_scalar(pair, INT16_MIN, INT16_MAX), rule, k)
    zero_point_terms = -zw * sum(xs) - zx * sum(ws) + k_len * zx * zw
    return _keep_in_range(acc + zero_point_terms, rule, k_len)


def requantize_one(acc: int, params: RequantParams, channel: int, channels: int) -> int:
    """``M[channel] acc`` rounded by the rule of ``params`` (no zero point, no clamp).

    Requantization takes an int32 accumulator; double rounding first shifts it left by
    ``max(shift, 0)``, which must stay in int32 (TFLite's contract). Either violation is a
    ValueError, as in the fast epilogue.
    """
    if not fp.INT32_MIN <= acc <= fp.INT32_MAX:
        raise ValueError(f"accumulator {acc} is outside int32, which requantization takes")
    i = channel if params.channels > 1 else 0
    shift = int(params.shift[i])
    if params.rule.kind is RequantKind.DOUBLE_ROUNDING and shift > 0 and \
            not fp.INT32_MIN <= acc << shift <= fp.INT32_MAX:
        raise ValueError(f"accumulator {acc} times 2^{shift} leaves int32 in double-rounding "
                         "requantization (M >= 1)")
    ties = params.channel_ties(channels)
    tie = int(ties[channel] if ties.shape[0] > 1 else ties[0])
    return int(requantize_scalar(acc, params.kind_code, tie, int(params.quantized_multiplier[i]),
                                 shift, float(params.multiplier[i])))


def requantize_float_bias(acc: int, bias: int, term: float, params: RequantParams,
                          channel: int, channels: int) -> int:
    """fbgemm's float bias (``npquant.integer.bias``): ``round(f32(f32(f32(acc - b) + term) M))``
    with the rule's ties, ``acc - b`` the integer sum without the bias, the inner sum rounded
    once (no zero point, no clamp)."""
    total = acc - bias
    if not fp.INT32_MIN <= total <= fp.INT32_MAX:
        raise ValueError(f"accumulator {total} is outside int32, which requantization takes")
    m32 = np.float32(params.multiplier[channel if params.channels > 1 else 0])
    ties = params.channel_ties(channels)
    tie = int(ties[channel] if ties.shape[0] > 1 else ties[0])
    # f32(acc - b) + term rounded once to float32 (a float32 add, or fbgemm's fused fma)
    with_bias = fp.float32_sum_scalar(float(np.float32(total)), float(term))
    product = np.float32(np.float32(with_bias) * m32)  # float32 multiply: one rounding
    return int(fp.round_float_scalar(float(product), tie))


def requantize_onednn(acc: int, bias: int, term: float, params: RequantParams, channel: int,
                      zo: int) -> int:
    """oneDNN's epilogue (``RequantKind.FLOAT32_ONEDNN``), one numpy float32 operation per
    step, the zero point *included*: ``round(f32(f32(f32(f32(f32(acc - b) src) wei) + B) D)
    + Z)`` with ``B`` the float bias ``term`` (0 without one) and ``b`` the integer bias it
    replaces (no clamp)."""
    total = acc - bias
    if not fp.INT32_MIN <= total <= fp.INT32_MAX:
        raise ValueError(f"accumulator {total} is outside int32, which requantization takes")
    wei = np.float32(params.multiplier[channel if params.channels > 1 else 0])
    src, d = (np.float32(f) for f in params.onednn_factors)
    v = np.float32(total) * src  # numpy float32 scalars: each operation rounds to float32
    v = v * wei
    v = v + np.float32(term)
    v = v * d
    v = v + np.float32(zo)
    # oneDNN's vcvtps2dq rounds ties to even; the rule's ties say so (fp.round_float_scalar)
    return int(fp.round_float_scalar(float(v), int(params.channel_ties(1)[0])))


def _output(acc: int, params: RequantParams, channel: int, channels: int, zo: int,
            act_range: tuple[int, int], bias: int = 0, term: np.ndarray | None = None) -> int:
    """``clamp(Z_out + M acc, act_min, act_max)``: the epilogue of every GEMM-like op; with a
    float bias ``term`` (per channel), ``requantize_float_bias`` instead of ``M acc``; under
    the ``float32_onednn`` kind, ``requantize_onednn`` (the zero point before the rounding)."""
    if params.rule.kind is RequantKind.FLOAT32_ONEDNN:
        b, t = (bias, float(term[channel])) if term is not None else (0, 0.0)
        return fp.saturate_scalar(requantize_onednn(acc, b, t, params, channel, zo), *act_range)
    if term is not None:
        scaled = requantize_float_bias(acc, bias, term[channel], params, channel, channels)
    else:
        scaled = requantize_one(acc, params, channel, channels)
    return fp.saturate_scalar(zo + scaled, *act_range)


def _accumulate_at(layer: str, index: tuple[int, ...], bias: int, xs: list[int],
                   ws: list[int], zx: int, zw: int, rule: AccumulatorRule) -> int:
    try:
        return accumulate(bias, xs, ws, zx, zw, rule)
    except _Overflow as e:
        raise AccumulatorOverflowError(layer, index, e.step, e.value, rule.bits) from None


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
           **kwargs: Any) -> KernelResult:
    """Convolution (groups, depthwise) by the definition; the arguments of
    ``npquant.integer.conv2d``.

    ``acc[n, o, i, j] = bias[o] + sum (x[n, g Cg + ci, i sh + a dh - pt, j sw + b dw - pl] - Zx)
    (w[o, ci, a, b] - Zw[o])`` over ``(ci, a, b)`` (``ci`` slowest), or ``(a, b, ci)`` when the
    accumulator's ``conv_order`` is ``"hwc"``; ``g = o // (O / groups)``. Padded taps read ``Zx``.
    """
    depthwise_op = kwargs.pop("_depthwise_op", False)
    c = check_conv(x, w, bias, depthwise_op=depthwise_op, **kwargs)
    o_len, cg, kh_len, kw_len = c.w.shape
    oh_len, ow_len = c.out_hw
    og = o_len // c.groups
    (sh, sw), (dh, dw) = c.stride, c.dilation
    if c.accumulator.conv_order == "hwc":
        taps = [(ci, a, b) for a in range(kh_len) for b in range(kw_len) for ci in range(cg)]
    else:
        taps = [(ci, a, b) for ci in range(cg) for a in range(kh_len) for b in range(kw_len)]
    shape = (c.x.shape[0], o_len, oh_len, ow_len)
    acc = np.zeros(shape, dtype=accumulator_dtype(c.accumulator))
    out = np.zeros(shape, dtype=c.out_dtype)
    for n, o, i, j in np.ndindex(shape):
        first = (o // og) * cg  # the group's first input channel
        xs = [int(c.xp[n, first + ci, i * sh + a * dh, j * sw + b * dw]) for ci, a, b in taps]
        ws = [int(c.w[o, ci, a, b]) for ci, a, b in taps]
        acc[n, o, i, j] = _accumulate_at(c.layer, (n, o, i, j), int(c.bias[o]), xs, ws,
                                         c.x_zero_point, int(c.w_zero_point[o]), c.accumulator)
    for n, o, i, j in np.ndindex(shape):
        out[n, o, i, j] = _output(int(acc[n, o, i, j]), c.requant, o, o_len, c.out_zero_point,
                                  c.act_range, int(c.bias[o]), c.float_bias)
    return KernelResult(out, acc)


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
                     **kwargs: Any) -> KernelResult:
    """Depthwise convolution: ``conv2d`` with ``groups = C`` and the profile's depthwise rule."""
    return conv2d(x, w, bias, groups=x.shape[1], _depthwise_op=True, **kwargs)


def fully_connected(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
                    **kwargs: Any) -> KernelResult:
    """``acc[n, o] = bias[o] + sum_k (x[n, k] - Zx)(w[o, k] - Zw[o])``, requantized; the arguments
    of ``npquant.integer.fully_connected``."""
    c = check_fc(x, w, bias, **kwargs)
    shape = (c.x.shape[0], c.w.shape[0])
    acc = np.zeros(shape, dtype=accumulator_dtype(c.accumulator))
    out = np.zeros(shape, dtype=c.out_dtype)
    for n, o in np.ndindex(shape):
        acc[n, o] = _accumulate_at(c.layer, (n, o), int(c.bias[o]),
                                   [int(v) for v in c.x[n]], [int(v) for v in c.w[o]],
                                   c.x_zero_point, int(c.w_zero_point[o]), c.accumulator)
    for n, o in np.ndindex(shape):
        out[n, o] = _output(int(acc[n, o]), c.requant, o, shape[1], c.out_zero_point,
                            c.act_range, int(c.bias[o]), c.float_bias)
    return KernelResult(out, acc)


def _mean_float32(values: list[int], count: int, scale: float, zp: int) -> int:
    """ONNX Runtime's QLinearAveragePool of one window (``AveragePoolScheme.FLOAT32``): the
    float32 sum of ``f32(S (q - Z))`` in order, ``f32(sum / count)``, ``rne(f32(f32(m / S) + Z))``
    (input and output sharing ``S`` and ``Z``)."""
    s32, total = np.float32(scale), np.float32(0.0)
    for q in values:
        total = np.float32(total + np.float32(s32 * np.float32(q - zp)))
    mean = np.float32(total / np.float32(count))
    return int(np.rint(np.float32(np.float32(mean / s32) + np.float32(zp))))


def _pool(c: PoolCall) -> KernelResult:
    """Each window's max, or ``round(sum q / count)`` with the profile's tie rule (the stored
    ``q``, as TFLite averages them), or ONNX Runtime's float32 sequence (``_mean_float32``);
    padded taps are skipped, or count as ``Z`` with ``count_include_pad``."""
    n_len, c_len, h_len, w_len = c.x.shape
    shape = (n_len, c_len) + c.out_hw
    acc = np.zeros(shape, dtype=np.int32)
    out = np.zeros(shape, dtype=c.x.dtype)
    (kh_len, kw_len), (sh, sw) = c.kernel_size, c.stride
    pt, pl = c.pads[0], c.pads[2]
    for n, ch, i, j in np.ndindex(shape):
        values, padded = [], 0
        for a in range(kh_len):
            for b in range(kw_len):
                y, z = i * sh + a - pt, j * sw + b - pl
                if 0 <= y < h_len and 0 <= z < w_len:
                    values.append(int(c.x[n, ch, y, z]))
                else:
                    padded += 1
        if c.is_max:
            acc[n, ch, i, j] = r = max(values)
        elif c.scheme is AveragePoolScheme.FLOAT32:
            count = kh_len * kw_len if c.count_include_pad else len(values)
            acc[n, ch, i, j] = sum(values) + (c.zero_point * padded if c.count_include_pad
                                              else 0)
            r = _mean_float32(values, count, c.scale, c.zero_point)
        else:
            if c.count_include_pad:
                values += [c.zero_point] * padded
            acc[n, ch, i, j] = total = sum(values)
            r = fp.round_divide_scalar(total, len(values), c.ties.code)
        out[n, ch, i, j] = fp.saturate_scalar(r, *c.act_range)
    return KernelResult(out, acc)


def max_pool2d(x: np.ndarray, kernel_size: int | tuple[int, int], stride: Any = None,
               padding: Any = 0, **kwargs: Any) -> KernelResult:
    """Max pool by the definition; the arguments of ``npquant.integer.max_pool2d``."""
    return _pool(check_pool("max", x, kernel_size, stride, padding, **kwargs))


def avg_pool2d(x: np.ndarray, kernel_size: int | tuple[int, int], stride: Any = None,
               padding: Any = 0, **kwargs: Any) -> KernelResult:
    """Average pool by the definition; the arguments of ``npquant.integer.avg_pool2d`` (under
    the FLOAT32 scheme a window that is the whole unpadded plane is the global average pool)."""
    c = check_pool("avg", x, kernel_size, stride, padding, **kwargs)
    if c.scheme is AveragePoolScheme.FLOAT32 and c.whole_plane:
        return global_avg_pool2d(c.x, zero_point=c.zero_point, scale=c.scale,
                                 profile=kwargs["profile"], activation=kwargs.get("activation"))
    return _pool(c)


def global_avg_pool2d(x: np.ndarray, *, zero_point: int = 0, scale: float | None = None,
                      profile: Any, activation: str | None = None,
                      out_scale: float | None = None, out_zero_point: int | None = None
                      ) -> KernelResult:
    """Global average pool by the definition; the arguments of
    ``npquant.integer.global_avg_pool2d``.

    Without a ``global_average_pool`` rule in the profile: ``avg_pool2d`` over the whole plane
    (in and out qparams equal). With one (ONNX Runtime): ``acc = sum q - Z_in N`` per channel,
    ``y = clamp(Z_out + M acc)`` with ``M = f32(S_in / f32(S_out N))``.
    """
    prof = check_profile(profile)
    x = check_int_array("x", x, ACTIVATION_DTYPES, 4)
    so, zo = global_pool_output(prof, zero_point, scale, out_zero_point, out_scale)
    if prof.global_average_pool is None:
        return avg_pool2d(x, (x.shape[2], x.shape[3]), 1, 0, zero_point=zero_point, scale=scale,
                          profile=prof, activation=activation)
    zp, zo, s_out, params = global_pool_requant(x, prof, zero_point, scale, so, zo)
    act_range = activation_range(activation, s_out, zo, x.dtype, prof)
    shape = x.shape[:2] + (1, 1)
    acc = np.zeros(shape, dtype=np.int32)
    out = np.zeros(shape, dtype=x.dtype)
    for n, ch in np.ndindex(x.shape[:2]):
        total = sum(int(v) - zp for v in x[n, ch].ravel())
        acc[n, ch, 0, 0] = total
        out[n, ch, 0, 0] = _output(total, params, 0, 1, zo, act_range)
    return KernelResult(out, acc)


def _mlas_add(c: Any) -> KernelResult:
    """ONNX Runtime's QLinearAdd one element at a time: on x86-64 every float32 step an exact
    rational rounded to float32 (``mlas.mlas_add_one``), ``acc = rne(u)``, ``y = clamp(acc)``;
    on ARM the integer sequence or its float fallback (``mlas_neon.neon_add_one``); a single
    element input takes ORT's scalar path."""
    check_mlas_shapes(np.shape(c.a), np.shape(c.b))
    scalar = "a" if np.size(c.a) == 1 else "b" if np.size(c.b) == 1 else None
    a_full, b_full = np.broadcast_to(c.a, c.shape), np.broadcast_to(c.b, c.shape)
    (sa, sb, so) = c.scales
    acc = np.zeros(c.shape, dtype=np.int32)
    out = np.zeros(c.shape, dtype=c.out_dtype)
    tlo, thi = dtype_range(c.out_dtype)
    for idx in np.ndindex(c.shape):
        if c.scheme is AddScheme.MLAS:
            acc[idx] = total = mlas_add_one(int(a_full[idx]), int(b_full[idx]), a_scale=sa,
                                            a_zero_point=c.a_zero_point, b_scale=sb,
                                            b_zero_point=c.b_zero_point, out_scale=so,
                                            out_zero_point=c.out_zero_point, scalar=scalar)
        else:  # MLAS_NEON: the kernel saturates to the type's range, then the activation
            acc[idx], total = neon_add_one(int(a_full[idx]), int(b_full[idx]), a_scale=sa,
                                           a_zero_point=c.a_zero_point, b_scale=sb,
                                           b_zero_point=c.b_zero_point, out_scale=so,
                                           out_zero_point=c.out_zero_point, qmin=tlo,
                                           qmax=thi, scalar=scalar)
        out[idx] = fp.saturate_scalar(total, *c.act_range)
    return KernelResult(out, acc)


def _aten_add(c: Any) -> KernelResult:
    """PyTorch's quantized add one element at a time (``aten_add.aten_add_one``): elements in
    the whole blocks of ``BLOCK`` of the flat output take the vectorized sequence, the rest the
    scalar one; ``acc`` the rounded value before the clamp."""
    (sa, sb, so) = c.scales
    acc = np.zeros(c.shape, dtype=np.int32)
    out = np.zeros(c.shape, dtype=c.out_dtype)
    n = int(np.prod(c.shape))
    for flat, idx in enumerate(np.ndindex(c.shape)):
        acc[idx] = total = aten_add_one(int(c.a[idx]), int(c.b[idx]), a_scale=sa,
                                        a_zero_point=c.a_zero_point, b_scale=sb,
                                        b_zero_point=c.b_zero_point, out_scale=so,
                                        out_zero_point=c.out_zero_point,
                                        vector=flat < BLOCK * (n // BLOCK))
        out[idx] = fp.saturate_scalar(total, *c.act_range)
    return KernelResult(out, acc)


def add(a: np.ndarray, b: np.ndarray, **kwargs: Any) -> KernelResult:
    """ADD by the definition; the arguments of ``npquant.integer.add``.

    MLAS (ONNX Runtime): ``npquant.integer.mlas`` (x86-64), ``npquant.integer.mlas_neon``
    (ARM). TFLite scheme: ``s_a = M_a ((a - Za) 2^ls)``,
    ``s_b`` likewise, ``acc = s_a + s_b``,
    ``y = clamp(Z_out + M_out acc)``. One-shift schemes (XNNPACK, QNNPACK):
    ``acc = (a - Za) m_a + (b - Zb) m_b``, ``y = clamp(Z_out + round(acc / 2^n))``.
    """
    c = check_add(a, b, **kwargs)
    if c.scheme in (AddScheme.MLAS, AddScheme.MLAS_NEON):
        return _mlas_add(c)
    if c.scheme is AddScheme.ATEN:
        return _aten_add(c)
    a_full, b_full = np.broadcast_to(c.a, c.shape), np.broadcast_to(c.b, c.shape)
    acc = np.zeros(c.shape, dtype=np.int32)
    out = np.zeros(c.shape, dtype=c.out_dtype)
    for idx in np.ndindex(c.shape):
        da = int(a_full[idx]) - c.a_zero_point
        db = int(b_full[idx]) - c.b_zero_point
        if c.scheme is AddScheme.TFLITE:
            total = requantize_one(da << c.left_shift, c.input_a, 0, 1) + \
                requantize_one(db << c.left_shift, c.input_b, 0, 1)
            scaled = requantize_one(total, c.output, 0, 1)
        else:
            m_a, m_b = c.multipliers
            total = da * m_a + db * m_b
            scaled = fp.rounding_shift_right_scalar(total, c.shift, c.ties.code)
        acc[idx] = total
        out[idx] = fp.saturate_scalar(c.out_zero_point + scaled, *c.act_range)
    return KernelResult(out, acc)
