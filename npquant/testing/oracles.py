"""npquant's own kernels against the real frameworks' kernel paths: the case strategies and the
table of comparisons that ``test_npquant_vs_*.py`` assert and ``tools/fidelity.py`` measures.

A comparison is one op on one framework kernel path, the npquant profile that should reproduce
it, a hypothesis strategy of cases, and two functions case -> integer (or float32) array: the
framework through ``npquant.interop`` and npquant through ``npquant.integer`` / ``npquant.qparams``.

Cases are valid by construction (shape, then qparams, then values). Half are "dyadic": scales
are small odd integers times powers of two and values lie close to the zero points, so the real
multiplier ``M = s_x s_w / s_y`` has few bits and ``acc M`` lands on exact ties in several percent
of the outputs (tie rules show). The other half draw float32 scales over many octaves
(``npquant.testing.strategies.scales``) and values over the full range (multiplier derivations
and accumulation show). Zero points cover the whole range of the type.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from hypothesis import strategies as st

from npquant.integer import (
    add,
    avg_pool2d,
    conv2d,
    depthwise_conv2d,
    fully_connected,
    global_avg_pool2d,
    max_pool2d,
)
from npquant.profiles import get_profile
from npquant.qparams import QParams, dequantize, quantize
from npquant.testing.strategies import scales, zero_points

f32 = np.float32
ACT = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}


# ----------------------------------------------------------------------------- case strategies
@dataclass
class Case:
    """One drawn op instance: inputs, weights and qparams (fields unused by an op stay None)."""

    kind: str
    x: np.ndarray
    x_scale: float
    x_zp: int
    y_scale: float = 1.0
    y_zp: int = 0
    w: np.ndarray | None = None
    w_scale: np.ndarray | None = None  # float32 values, length 1 or O
    w_zp: int = 0
    bias: np.ndarray | None = None
    b: np.ndarray | None = None  # second ADD input
    b_scale: float = 1.0
    b_zp: int = 0
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str | tuple[int, int, int, int] = "VALID"
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    activation: str = "NONE"
    axis: int | None = None
    dyadic: bool = False
    count_include_pad: bool = False  # average pools (ONNX)

    @property
    def per_channel(self) -> bool:
        return self.w_scale is not None and self.w_scale.size > 1

    def w_scale_arg(self):
        """A number for per-tensor weights, the float64 array for per-channel."""
        return self.w_scale.astype(np.float64) if self.per_channel else float(self.w_scale[0])

    def __repr__(self) -> str:  # short: hypothesis prints it on failure
        shapes = f"x{self.x.shape} {self.x.dtype}" + (f" w{self.w.shape}" if self.w is not None
                                                      else "")
        return (f"Case({self.kind}, {shapes}, s_x={self.x_scale!r}, z_x={self.x_zp}, "
                f"s_w={None if self.w_scale is None else self.w_scale.tolist()}, "
                f"s_y={self.y_scale!r}, z_y={self.y_zp}, stride={self.stride}, "
                f"dil={self.dilation}, pad={self.padding}, groups={self.groups}, "
                f"act={self.activation}, dyadic={self.dyadic})")


def _range(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _values(draw, dtype, shape, zp: int, dyadic: bool, spread: int = 6) -> np.ndarray:
    """Integers of ``dtype``: within ``zp +- spread`` (dyadic) or over the whole range."""
    lo, hi = _range(dtype)
    if dyadic:
        lo, hi = max(lo, zp - spread), min(hi, zp + spread)
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(dtype)


def _dyadic_scale(draw, lo_exp: int, hi_exp: int) -> float:
    """An odd integer in 1..15 times 2^e: a float32 with at most 4 significant bits."""
    return float(draw(st.integers(0, 7)) * 2 + 1) * 2.0 ** draw(st.integers(lo_exp, hi_exp))


def _y_scale(draw, acc_scale: float, typical: float, dyadic: bool) -> float:
    """Output scale putting a typical |acc| at 2^u output steps, u in [1, 7] (M <= 1/2)."""
    if dyadic:
        return float(2.0 ** (math.floor(math.log2(acc_scale * max(typical, 2.0)))
                             - draw(st.integers(1, 7))))
    u = draw(st.floats(1.0, 7.0))
    return float(f32(acc_scale * max(typical, 2.0) / 2.0**u))


@st.composite
def conv_cases(draw, kind: str, *, x_dtype=np.int8, layout: str = "tflite",
               per_channel: bool | None = None, fast_3x3: bool = False,
               with_bias: bool = True) -> Case:
    """Conv ("conv"), depthwise ("depthwise") or fully-connected ("fc") cases.

    ``layout`` fixes what the framework accepts: "tflite" (SAME/VALID padding, no groups),
    "onnx" (explicit pads, groups), "torch" (symmetric pads, groups; the int32 bias reaches
    PyTorch as the float32 ``f32(b f32(s_x s_w))``, ``torch_op``). Half the cases with
    ``with_bias`` (and an op that takes one: not ONNX QLinearMatMul) have a nonzero bias.
    ``fast_3x3`` (depthwise, tflite): the shapes of TFLite's 3x3 depthwise kernel (8, 16 or
    24 channels, a 3x3 filter, equal strides 1 or 2, no dilation, depth multiplier 1), which
    random shapes rarely hit (``profiles.tflite_fast_3x3`` decides; some SAME shapes still miss it).
    """
    dyadic = draw(st.booleans())
    per_channel = draw(st.booleans()) if per_channel is None else per_channel
    lo, hi = _range(x_dtype)
    x_zp = draw(st.integers(lo, hi))
    geom: dict = {}
    if kind == "fc":
        n, k, o = draw(st.integers(1, 8)), draw(st.integers(1, 80)), draw(st.integers(1, 24))
        x_shape, w_shape, taps = (n, k), (o, k), k
    elif fast_3x3:
        c = draw(st.sampled_from([8, 16, 24]))
        o, cin_w, groups, kh, kw = c, 1, c, 3, 3
        s = draw(st.integers(1, 2))
        stride, dilation = (s, s), (1, 1)
        padding, pads = draw(st.sampled_from(["SAME", "VALID"])), (0, 0, 0, 0)
        h, wd, n = draw(st.integers(3, 10)), draw(st.integers(3, 10)), 1
        x_shape, w_shape, taps = (n, c, h, wd), (o, cin_w, kh, kw), kh * kw
        geom = dict(stride=stride, dilation=dilation, padding=padding, groups=groups)
    else:
        groups = 1
        c = draw(st.integers(1, 10))
        if kind == "depthwise":
            o, cin_w, groups = c * draw(st.integers(1, 3)), 1, c
        elif layout != "tflite" and draw(st.booleans()):
            groups = draw(st.integers(1, 3))
            c, o, cin_w = c * groups, groups * draw(st.integers(1, 6)), c
        else:
            o, cin_w = draw(st.integers(1, 16)), c
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
        if layout == "tflite":
            padding = draw(st.sampled_from(["SAME", "VALID"]))
            pads = (0, 0, 0, 0)
        elif layout == "torch":
            ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
            padding = pads = (ph, ph, pw, pw)
        else:
            padding = pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
        h = draw(st.integers(max(1, eh - pads[0] - pads[1]), 10))
        wd = draw(st.integers(max(1, ew - pads[2] - pads[3]), 10))
        if padding == "VALID":
            h, wd = max(h, eh), max(wd, ew)
        n = draw(st.integers(1, 2))
        x_shape, w_shape, taps = (n, c, h, wd), (o, cin_w, kh, kw), cin_w * kh * kw
        geom = dict(stride=stride, dilation=dilation, padding=padding, groups=groups)
    x = _values(draw, x_dtype, x_shape, x_zp, dyadic)
    wlim = 7 if dyadic else 127
    w = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(
        -wlim, wlim + 1, w_shape).astype(np.int8)
    n_w = o if per_channel else 1
    # per-channel scales: one drawn base scale, the channels spread over 4 octaves around it
    # by a seeded generator (one hypothesis draw instead of one per channel)
    spread_rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dyadic:
        x_scale = 2.0 ** draw(st.integers(-12, 0))
        odd = spread_rng.integers(0, 8, n_w) * 2 + 1
        w_scale = (odd * 2.0 ** (draw(st.integers(-14, -6)) + spread_rng.integers(0, 3, n_w))
                   ).astype(np.float32)
    else:
        x_scale = float(draw(scales(min_exponent=-16, max_exponent=2)))
        base = float(draw(scales(min_exponent=-16, max_exponent=-2)))
        w_scale = (base * 2.0 ** spread_rng.uniform(-2, 2, n_w)).astype(np.float32)
        w_scale[0] = f32(base)
    bias = None
    no_bias = not with_bias or (layout == "onnx" and kind == "fc")  # QLinearMatMul
    if not no_bias and draw(st.booleans()):
        blim = 64 if dyadic else 2**draw(st.integers(4, 20))
        bias = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(
            -blim, blim + 1, o).astype(np.int32)
    spread = 6.0 if dyadic else (hi - lo) / 3.5
    typical = spread * wlim / 2 * math.sqrt(taps)
    y_scale = _y_scale(draw, x_scale * float(w_scale.max()), typical, dyadic)
    y_zp = draw(st.integers(lo, hi))
    act = draw(st.sampled_from(list(ACT))) if layout == "tflite" else "NONE"
    return Case(kind=kind, x=x, x_scale=x_scale, x_zp=x_zp, y_scale=y_scale, y_zp=y_zp, w=w,
                w_scale=w_scale, bias=bias, activation=act, dyadic=dyadic, **geom)


@st.composite
def add_cases(draw, dtype=np.int8, *, activations: bool = True) -> Case:
    """ADD of two tensors of one shape; the output scale is 1/8..8 times the larger input's."""
    dyadic = draw(st.booleans())
    lo, hi = _range(dtype)
    za, zb, zy = (draw(zero_points(bits=8, signed=lo < 0)) for _ in range(3))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 70)))
    if dyadic:
        sa, sb = _dyadic_scale(draw, -12, -2), _dyadic_scale(draw, -12, -2)
        sy = max(sa, sb) * 2.0 ** draw(st.integers(-3, 3))
    else:
        sa = float(draw(scales(min_exponent=-20, max_exponent=2)))
        sb = sa * 2.0 ** draw(st.floats(-6, 6))
        sy = max(sa, sb) * 2.0 ** draw(st.floats(-3, 3))
    sa, sb, sy = (float(f32(v)) for v in (sa, sb, sy))
    a = _values(draw, dtype, shape, za, False)
    b = _values(draw, dtype, shape, zb, False)
    act = draw(st.sampled_from(list(ACT))) if activations else "NONE"
    return Case(kind="add", x=a, x_scale=sa, x_zp=za, b=b, b_scale=sb, b_zp=zb, y_scale=sy,
                y_zp=zy, activation=act, dyadic=dyadic)


@st.composite
def pool_cases(draw, dtype=np.int8) -> Case:
    """Average / max pool windows (SAME or VALID), scale and zero point shared with the output."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 12)), draw(st.integers(k[0], 9)),
             draw(st.integers(k[1], 9)))
    zp = draw(zero_points(bits=8, signed=np.dtype(dtype) == np.int8))
    x = _values(draw, dtype, shape, zp, False)
    return Case(kind="pool", x=x, x_scale=float(draw(scales(min_exponent=-12, max_exponent=0))),
                x_zp=zp, kernel=k, stride=stride,
                padding=draw(st.sampled_from(["SAME", "VALID"])),
                activation=draw(st.sampled_from(list(ACT))))


@st.composite
def global_pool_cases(draw, dtype=np.int8) -> Case:
    """A pool case's input, averaged over its whole plane; half keep the input's qparams, half
    requantize to an output scale 1/4..4 times the input's and another zero point."""
    c = draw(pool_cases(dtype))
    if draw(st.booleans()):
        return replace(c, activation="NONE", y_scale=c.x_scale, y_zp=c.x_zp)
    y_scale = float(f32(c.x_scale * 2.0 ** draw(st.floats(-2, 2))))
    y_zp = draw(zero_points(bits=8, signed=np.dtype(dtype) == np.int8))
    return replace(c, activation="NONE", y_scale=y_scale, y_zp=y_zp)


@st.composite
def quantize_cases(draw, dtype=np.int8, *, per_axis: bool = False) -> Case:
    """float32 inputs: half at and one ulp around exact ties (k + 1/2) S, half spread over the
    range; per-axis cases have one scale and zero point per row (axis 0)."""
    rows = draw(st.integers(1, 4)) if per_axis else 1
    n = draw(st.integers(1, 80))
    s = np.array([draw(scales(min_exponent=-20, max_exponent=4)) for _ in range(rows)],
                 np.float32)
    z = np.array([draw(zero_points(bits=8, signed=dtype == np.int8)) for _ in range(rows)])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = rng.integers(-140, 140, (rows, n))
    ties = ((k + 0.5) * s.astype(np.float64)[:, None]).astype(np.float32)
    step = rng.integers(-1, 2, (rows, n))
    ties = np.where(step > 0, np.nextafter(ties, f32(np.inf)),
                    np.where(step < 0, np.nextafter(ties, f32(-np.inf)), ties))
    spread = (rng.normal(0, 80, (rows, n)) * s[:, None]).astype(np.float32)
    x = np.where(rng.random((rows, n)) < 0.5, ties, spread).astype(np.float32)
    if not per_axis:
        x = x.reshape(n)
        return Case(kind="quantize", x=x, x_scale=float(s[0]), x_zp=int(z[0]))
    return Case(kind="quantize", x=x, x_scale=s, x_zp=z, axis=0)


@st.composite
def dequantize_cases(draw, dtype=np.int8) -> Case:
    s = float(draw(scales(min_exponent=-20, max_exponent=4)))
    z = draw(zero_points(bits=8, signed=dtype == np.int8))
    return Case(kind="dequantize", x=_values(draw, dtype, (draw(st.integers(1, 80)),), z, False),
                x_scale=s, x_zp=z)


# ----------------------------------------------------------------------------- npquant side
def npq_conv(c: Case, profile: str, *, accumulators: bool = False) -> np.ndarray:
    """npquant's conv / depthwise / fully-connected kernel on a case, under ``profile``."""
    kw = dict(x_zero_point=c.x_zp, out_zero_point=c.y_zp, x_scale=c.x_scale,
              w_scale=c.w_scale_arg(), out_scale=c.y_scale, profile=profile,
              out_dtype=c.x.dtype, activation=ACT[c.activation],
              return_accumulators=accumulators)
    if c.kind == "fc":
        r = fully_connected(c.x, c.w, c.bias, w_zero_point=c.w_zp, **kw)
    elif c.kind == "depthwise":
        r = depthwise_conv2d(c.x, c.w, c.bias, stride=c.stride, dilation=c.dilation,
                             padding=c.padding, w_zero_point=c.w_zp, **kw)
    else:
        r = conv2d(c.x, c.w, c.bias, stride=c.stride, dilation=c.dilation, padding=c.padding,
                   groups=c.groups, w_zero_point=c.w_zp, **kw)
    return r.acc if accumulators else r


def npq_add(c: Case, profile: str) -> np.ndarray:
    return add(c.x, c.b, a_scale=c.x_scale, a_zero_point=c.x_zp, b_scale=c.b_scale,
               b_zero_point=c.b_zp, out_scale=c.y_scale, out_zero_point=c.y_zp, profile=profile,
               activation=ACT[c.activation])


def npq_pool(c: Case, profile: str, op: str) -> np.ndarray:
    if op == "average_pool2d":
        return avg_pool2d(c.x, c.kernel, c.stride, c.padding, zero_point=c.x_zp,
                          scale=c.x_scale, profile=profile, activation=ACT[c.activation],
                          count_include_pad=c.count_include_pad)
    return max_pool2d(c.x, c.kernel, c.stride, c.padding, zero_point=c.x_zp, scale=c.x_scale,
                      profile=profile, activation=ACT[c.activation])


def _qparams(c: Case, dtype) -> QParams:
    signed = np.dtype(dtype) == np.int8
    if c.axis is None:
        return QParams(c.x_scale, c.x_zp, signed=signed)
    return QParams(c.x_scale, c.x_zp, signed=signed, axis=c.axis)


def npq_quantize(c: Case, profile: str, dtype=np.int8) -> np.ndarray:
    rule = get_profile(profile).quantize_rule(per_channel=c.axis is not None)
    return quantize(c.x, _qparams(c, dtype), rule=rule)


def npq_dequantize(c: Case, profile: str) -> np.ndarray:
    """float32 output viewed as uint32: bit-exact comparison of floats (+0 != -0, NaN bits)."""
    r = dequantize(c.x, _qparams(c, c.x.dtype), rule=get_profile(profile).dequantize)
    return r.view(np.uint32)


# ----------------------------------------------------------------------------- framework side
TFLITE_OP = {"conv": "conv2d", "depthwise": "depthwise_conv2d", "fc": "fully_connected"}


class Declined(Exception):
    """The framework path does not run this case (e.g. XNNPACK declines an op)."""


def tflite_conv(c: Case, kernels: str) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    p = dict(w=c.w, bias=c.bias, x_scale=c.x_scale, x_zero_point=c.x_zp,
             w_scale=c.w_scale_arg(), y_scale=c.y_scale, y_zero_point=c.y_zp,
             activation=c.activation)
    if c.kind != "fc":
        p.update(stride=c.stride, dilation=c.dilation, padding=c.padding)
    return run_tflite_op(TFLITE_OP[c.kind], [c.x], p, kernels=kernels)


def tflite_add(c: Case, kernels: str) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    try:
        return run_tflite_op("add", [c.x, c.b], dict(
            a_scale=c.x_scale, a_zero_point=c.x_zp, b_scale=c.b_scale, b_zero_point=c.b_zp,
            y_scale=c.y_scale, y_zero_point=c.y_zp, activation=c.activation), kernels=kernels)
    except RuntimeError as exc:
        if "declined" in str(exc):
            raise Declined(str(exc)) from None
        raise


def tflite_pool(c: Case, kernels: str, op: str) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    try:
        return run_tflite_op(op, [c.x], dict(kernel_size=c.kernel, stride=c.stride,
                                             padding=c.padding, activation=c.activation,
                                             x_scale=c.x_scale, x_zero_point=c.x_zp),
                             kernels=kernels)
    except RuntimeError as exc:
        if "declined" in str(exc):
            raise Declined(str(exc)) from None
        raise


def tflite_quantize(c: Case, kernels: str) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    return run_tflite_op("quantize", [c.x.reshape(1, -1)],
                         dict(y_scale=c.x_scale, y_zero_point=c.x_zp),
                         kernels=kernels).reshape(c.x.shape)


def tflite_dequantize(c: Case, kernels: str) -> np.ndarray:
    from npquant.interop.tflite import run_tflite_op

    return run_tflite_op("dequantize", [c.x.reshape(1, -1)],
                         dict(x_scale=c.x_scale, x_zero_point=c.x_zp),
                         kernels=kernels).reshape(c.x.shape).view(np.uint32)


def onnx_qlinear(c: Case) -> np.ndarray:
    from npquant.interop.onnx import run_onnx_op

    if c.kind == "fc":
        y = run_onnx_op("qlinear_matmul", [c.x, np.ascontiguousarray(c.w.T)], dict(
            a_scale=c.x_scale, a_zero_point=c.x_zp, b_scale=float(c.w_scale[0]),
            b_zero_point=c.w_zp, y_scale=c.y_scale, y_zero_point=c.y_zp))
        return y
    return run_onnx_op("qlinear_conv", [c.x], dict(
        w=c.w, bias=c.bias, x_scale=c.x_scale, x_zero_point=c.x_zp, w_scale=c.w_scale_arg(),
        y_scale=c.y_scale, y_zero_point=c.y_zp, stride=c.stride, dilation=c.dilation,
        pads=c.padding, groups=c.groups))


def onnx_integer(c: Case) -> np.ndarray:
    """ConvInteger / MatMulInteger: the int32 accumulators (no bias)."""
    from npquant.interop.onnx import run_onnx_op

    if c.kind == "fc":
        return run_onnx_op("matmul_integer", [c.x, np.ascontiguousarray(c.w.T)],
                           dict(a_zero_point=c.x_zp, b_zero_point=c.w_zp))
    return run_onnx_op("conv_integer", [c.x], dict(
        w=c.w, x_zero_point=c.x_zp, w_zero_point=c.w_zp, stride=c.stride, dilation=c.dilation,
        pads=c.padding, groups=c.groups))


def onnx_quantize(c: Case, dtype) -> np.ndarray:
    from npquant.interop.onnx import run_onnx_op

    zp = c.x_zp if c.axis is None else np.asarray(c.x_zp).astype(dtype)
    s = c.x_scale if c.axis is None else np.asarray(c.x_scale, np.float64)
    return run_onnx_op("quantize_linear", [c.x], dict(y_scale=s, y_zero_point=zp,
                                                       axis=c.axis or 0, dtype=dtype))


def onnx_dequantize(c: Case) -> np.ndarray:
    from npquant.interop.onnx import run_onnx_op

    return run_onnx_op("dequantize_linear", [c.x], dict(
        x_scale=c.x_scale, x_zero_point=c.x_zp, axis=0)).view(np.uint32)


def onnx_add(c: Case) -> np.ndarray:
    from npquant.interop.onnx import run_onnx_op

    return run_onnx_op("qlinear_add", [c.x, c.b], dict(
        a_scale=c.x_scale, a_zero_point=c.x_zp, b_scale=c.b_scale, b_zero_point=c.b_zp,
        y_scale=c.y_scale, y_zero_point=c.y_zp))


def torch_op(c: Case, engine: str) -> np.ndarray:
    from npquant.interop.torch import run_torch_op

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if c.kind == "add":
            try:
                return run_torch_op("add", [c.x, c.b], dict(
                    a_scale=c.x_scale, a_zero_point=c.x_zp, b_scale=c.b_scale,
                    b_zero_point=c.b_zp, y_scale=c.y_scale, y_zero_point=c.y_zp), engine=engine)
            except RuntimeError as exc:
                # QNNPACK refuses input/output scale ratios outside [2^-14, 2^8)
                # (pytorch_qnnp_create_add_nc_q8): the case is not comparable
                if "failed to create QNNPACK Add operator" in str(exc):
                    raise Declined(str(exc)) from None
                raise
        if c.kind == "quantize":
            p = dict(y_scale=c.x_scale, y_zero_point=c.x_zp)
            if c.axis is not None:
                p.update(axis=c.axis, y_scale=np.asarray(c.x_scale, np.float64))
            return run_torch_op("quantize", [c.x], p, engine=engine)
        p = dict(w=c.w, x_scale=c.x_scale, x_zero_point=c.x_zp, w_scale=c.w_scale_arg(),
                 y_scale=c.y_scale, y_zero_point=c.y_zp)
        if c.bias is not None:  # as a model holds it: the float B = f32(b f32(s_x s_w))
            s_b = (f32(c.x_scale) * c.w_scale).astype(np.float64)
            p["bias"] = (c.bias.astype(np.float64) * s_b).astype(np.float32)  # exact, |b| < 2^29
        if c.kind == "fc":
            return run_torch_op("linear", [c.x], p, engine=engine)
        p.update(stride=c.stride, dilation=c.dilation, padding=(c.padding[0], c.padding[2]),
                 groups=c.groups)
        return run_torch_op("conv2d", [c.x], p, engine=engine)


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Comparison:
    """One op on one framework kernel path, and the npquant profile claimed to reproduce it.

    ``exact``: the claim is bit-exactness on every case. False rows are measured disagreements
    (tests pin their rate and size; ``explanation`` says which rule explains them).
    """

    op: str
    framework: str
    path: str
    profile: str
    cases: Callable[[], st.SearchStrategy]
    run_framework: Callable[[Case], np.ndarray]
    run_npquant: Callable[[Case], np.ndarray]
    explanation: str
    exact: bool = True

    @property
    def id(self) -> str:
        return f"{self.framework}-{self.path}-{self.op}"


def _tflite_rows() -> list[Comparison]:
    rows = []
    prof = {"reference": "tflite", "optimized": "tflite-optimized", "xnnpack": "tflite-xnnpack"}
    why = {
        ("reference", "conv"): "gemmlowp double rounding (SRDHM ties up, shift ties away), "
                               "M double",
        ("reference", "depthwise"): "gemmlowp double rounding, M double",
        ("reference", "fc"): "float64 acc*M rounded half away, M double",
        ("optimized", "conv"): "double rounding, final shift ties up (vrshl), M double",
        ("optimized", "depthwise"): "ties up on whole groups of 8 channels, away on the tail",
        ("optimized", "fc"): "ties up; per-tensor M = f64(f32(s_x s_w))/s_y, per-channel double",
        ("xnnpack", "conv"): "rne(f32(acc) f32(M)), M = f32(f32(s_x s_w)/s_y)",
        ("xnnpack", "depthwise"): "rne(f32(acc) f32(M)), M = f32(f32(s_x s_w)/s_y)",
        ("xnnpack", "fc"): "rne(f32(acc) f32(M)), M = f32(f32(s_x s_w)/s_y)",
    }
    op_name = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED"}
    for path, name in prof.items():
        for kind in ("conv", "depthwise", "fc"):
            rows.append(Comparison(
                op_name[kind], "tflite", path, name,
                lambda kind=kind: conv_cases(kind),
                lambda c, path=path: tflite_conv(c, path),
                lambda c, name=name: npq_conv(c, name), why[path, kind]))
    rows.append(Comparison(  # the shapes of the 3x3 kernel, which rounds otherwise on aarch64
        "DEPTHWISE_CONV_2D (3x3 kernel shapes)", "tflite", "optimized", "tflite-optimized",
        lambda: conv_cases("depthwise", fast_3x3=True),
        lambda c: tflite_conv(c, "optimized"), lambda c: npq_conv(c, "tflite-optimized"),
        "as DEPTHWISE_CONV_2D (x86: the 3x3 kernel rounds as the others)"))
    add_why = {"reference": "(q-Z) 2^20, all three rescalings gemmlowp double rounding",
               "optimized": "input rescalings single rounding (ties up), output double rounding",
               "xnnpack": "21-bit multipliers from f32(S/S_y), one shift ties up"}
    for path, name in prof.items():
        rows.append(Comparison("ADD", "tflite", path, name, lambda: add_cases(),
                               lambda c, path=path: tflite_add(c, path),
                               lambda c, name=name: npq_add(c, name), add_why[path]))
    for path in ("reference", "optimized"):
        name = prof[path]
        rows.append(Comparison(
            "AVERAGE_POOL_2D", "tflite", path, name, lambda: pool_cases(),
            lambda c, path=path: tflite_pool(c, path, "average_pool2d"),
            lambda c, name=name: npq_pool(c, name, "average_pool2d"),
            "in-bounds sum / count, ties away"))
    for path, name in prof.items():
        rows.append(Comparison(
            "MAX_POOL_2D", "tflite", path, name, lambda: pool_cases(),
            lambda c, path=path: tflite_pool(c, path, "max_pool2d"),
            lambda c, name=name: npq_pool(c, name, "max_pool2d"),
            "max then clamp" + (" (cases XNNPACK declines are skipped)"
                                if path == "xnnpack" else "")))
    q_why = {"reference": "round-half-away(f32(x/S)) + Z",
             "optimized": "rne(x f32(1/S)) on blocks of 8, half-away(x/f64(S)) on the tail",
             "xnnpack": "rne(x f32(1/S)) + Z"}
    d_why = {"reference": "f32(S (q-Z)), one rounding",
             "optimized": "f32(f32(q S) + f32(-Z S)) on blocks of 8, exact on the tail",
             "xnnpack": "f32(S (q-Z)), one rounding"}
    for path, name in prof.items():
        rows.append(Comparison("QUANTIZE", "tflite", path, name, lambda: quantize_cases(),
                               lambda c, path=path: tflite_quantize(c, path),
                               lambda c, name=name: npq_quantize(c, name), q_why[path]))
        rows.append(Comparison("DEQUANTIZE", "tflite", path, name, lambda: dequantize_cases(),
                               lambda c, path=path: tflite_dequantize(c, path),
                               lambda c, name=name: npq_dequantize(c, name), d_why[path]))
    return rows


def _onnx_rows() -> list[Comparison]:
    rows = []
    ort = "onnxruntime"
    why = "rne(f32(acc) f32(M)) + Z, M = f32(f32(s_x s_w)/s_y)"
    for dt in (np.int8, np.uint8):
        tag = np.dtype(dt).name
        for kind, op in (("conv", "QLinearConv"), ("depthwise", "QLinearConv (depthwise)"),
                         ("fc", "QLinearMatMul")):
            rows.append(Comparison(
                f"{op} {tag}", "onnxruntime", "cpu", ort,
                lambda kind=kind, dt=dt: conv_cases(kind, x_dtype=dt, layout="onnx",
                                                    per_channel=False if kind == "fc" else None),
                onnx_qlinear, lambda c: npq_conv(c, ort), why))
        for kind, op in (("conv", "ConvInteger"), ("fc", "MatMulInteger")):
            rows.append(Comparison(
                f"{op} {tag}", "onnxruntime", "cpu", ort,
                lambda kind=kind, dt=dt: conv_cases(kind, x_dtype=dt, layout="onnx",
                                                    per_channel=False),
                onnx_integer, _onnx_accumulators,
                "exact int32 sum (x - Zx)(w - Zw) (npquant accumulators)"))
        rows.append(Comparison(
            f"QuantizeLinear {tag}", "onnxruntime", "cpu", ort,
            lambda dt=dt: st.one_of(quantize_cases(dt), quantize_cases(dt, per_axis=True)),
            lambda c, dt=dt: onnx_quantize(c, dt), lambda c, dt=dt: npq_quantize(c, ort, dt),
            "rne(f32(x/S)) + Z, per tensor and per axis"))
        rows.append(Comparison(
            f"DequantizeLinear {tag}", "onnxruntime", "cpu", ort,
            lambda dt=dt: dequantize_cases(dt), onnx_dequantize,
            lambda c: npq_dequantize(c, ort), "f32(S (q-Z)), one rounding"))
        rows.append(Comparison(
            f"QLinearAdd {tag}", "onnxruntime", "cpu", ort,
            lambda dt=dt: add_cases(dt, activations=False), onnx_add,
            lambda c: npq_add(c, ort),
            "MLAS AVX2: r = f32(S/S_y), F = f32(Z_y - fma(r_a, Z_a, f32(r_b Z_b))), "
            "rne(fma(q_a, r_a, fma(q_b, r_b, F)))"))
        rows.append(Comparison(
            f"QLinearAveragePool {tag}", "onnxruntime", "cpu", ort,
            lambda dt=dt: pool_cases(dt).flatmap(lambda c: st.booleans().map(
                lambda inc: replace(c, activation="NONE", count_include_pad=inc))),
            onnx_avg_pool, lambda c: npq_pool(c, ort, "average_pool2d"),
            "float32: sum of f32(S (q-Z)), f32(sum/count), rne(f32(f32(m/S) + Z)); "
            "count_include_pad both ways; whole-plane windows the global pool"))
        rows.append(Comparison(
            f"QLinearGlobalAveragePool {tag}", "onnxruntime", "cpu", ort,
            lambda dt=dt: global_pool_cases(dt), onnx_global_avg_pool,
            lambda c: npq_global_pool(c, ort),
            "rne(f32(sum q - Z_x N) f32(S_x / f32(S_y N))) + Z_y"))
    return rows


def _onnx_accumulators(c: Case, profile: str = "onnxruntime") -> np.ndarray:
    """npquant's accumulators (``return_accumulators=True``) of the case without its bias."""
    return npq_conv(replace(c, bias=None, activation="NONE"), profile, accumulators=True)


def _torch_rows() -> list[Comparison]:
    rows = []
    for engine, name, why in (
            ("fbgemm", "pytorch-fbgemm", "rne(f32(f32(acc) + f32(B/S_b)) f32(M)) + Z, "
             "M = f32(f32(s_x s_w)/s_y), float bias B = f32(b S_b) over f32(1/S_b) per tensor"),
            ("qnnpack", "pytorch-qnnpack",
             "rne(f32(acc + b') f32(M)) + Z, M = f32(f32(s_w s_x) f32(1/s_y)), "
             "b' = rne(f32(B f32(1/S_b)))")):
        for kind, op in (("conv", "conv2d"), ("depthwise", "conv2d (depthwise)"),
                         ("fc", "linear")):
            rows.append(Comparison(
                op, "pytorch", engine, name,
                lambda kind=kind: conv_cases(kind, x_dtype=np.uint8, layout="torch",
                                             per_channel=False if kind == "fc" else None),
                lambda c, engine=engine: torch_op(c, engine),
                lambda c, name=name: npq_conv(c, name), why))
    rows.append(Comparison(
        "linear", "pytorch", "x86", "pytorch-fbgemm",
        lambda: conv_cases("fc", x_dtype=np.uint8, layout="torch", per_channel=False),
        lambda c: torch_op(c, "x86"), lambda c: npq_conv(c, "pytorch-fbgemm"),
        "x86 engine linear is fbgemm (float bias as fbgemm)"))
    rows.append(Comparison(
        "add", "pytorch", "fbgemm", "pytorch-fbgemm",
        lambda: add_cases(np.uint8, activations=False), lambda c: torch_op(c, "fbgemm"),
        lambda c: npq_add(c, "pytorch-fbgemm"),
        "ATen qadd: blocks of 64 rne(f32(f32(fma(S,q,-ZS) + ...) f32(1/S_y))) + Z, "
        "scalar tail rne(f32(f32(c f32(1/S_y)) + Z))"))
    rows.append(Comparison(
        "add", "pytorch", "qnnpack", "pytorch-qnnpack",
        lambda: add_cases(np.uint8, activations=False), lambda c: torch_op(c, "qnnpack"),
        lambda c: npq_add(c, "pytorch-qnnpack"),
        "q8vadd: 22-bit multipliers from f32(S/S_y), one shift ties away"))
    for dt_name, dt in (("quint8", np.uint8), ("qint8", np.int8)):
        rows.append(Comparison(
            f"quantize_per_tensor {dt_name}", "pytorch", "cpu", "pytorch-fbgemm",
            lambda dt=dt: quantize_cases(dt),
            lambda c, dt_name=dt_name: _torch_quantize(c, dt_name),
            lambda c, dt=dt: npq_quantize(c, "pytorch-fbgemm", dt),
            "rne(fma(x, f32(1/S), Z))"))
        rows.append(Comparison(
            f"quantize_per_channel {dt_name}", "pytorch", "cpu", "pytorch-fbgemm",
            lambda dt=dt: quantize_cases(dt, per_axis=True),
            lambda c, dt_name=dt_name: _torch_quantize(c, dt_name),
            lambda c, dt=dt: npq_quantize(c, "pytorch-fbgemm", dt),
            "rne(f32(f32(x f32(1/S)) + Z))"))
    return rows


def onnx_avg_pool(c: Case) -> np.ndarray:
    """com.microsoft QLinearAveragePool with the input's qparams on the output (as TFLite)."""
    from npquant.interop.onnx import run_onnx_op
    from npquant.interop.tflite import tflite_padding

    _, pads = tflite_padding(c.padding, c.x.shape[2:], c.kernel, c.stride)
    return run_onnx_op("qlinear_average_pool", [c.x], dict(
        kernel_size=c.kernel, stride=c.stride, pads=pads, x_scale=c.x_scale,
        x_zero_point=c.x_zp, y_scale=c.x_scale, y_zero_point=c.x_zp,
        count_include_pad=c.count_include_pad))


def onnx_global_avg_pool(c: Case) -> np.ndarray:
    """com.microsoft QLinearGlobalAveragePool (NCHW) with the input's qparams on the output."""
    from npquant.interop.onnx import run_onnx_op

    return run_onnx_op("qlinear_global_average_pool", [c.x], dict(
        x_scale=c.x_scale, x_zero_point=c.x_zp, y_scale=c.y_scale, y_zero_point=c.y_zp))


def npq_global_pool(c: Case, profile: str) -> np.ndarray:
    same = (c.y_scale, c.y_zp) == (c.x_scale, c.x_zp)
    if not same and get_profile(profile).global_average_pool is None:
        raise Declined(f"{profile} keeps the qparams in its global average pool")
    return global_avg_pool2d(c.x, zero_point=c.x_zp, scale=c.x_scale, out_scale=c.y_scale,
                             out_zero_point=c.y_zp, profile=profile)


def _torch_quantize(c: Case, dtype: str) -> np.ndarray:
    from npquant.interop.torch import run_torch_op

    p = dict(y_scale=c.x_scale, y_zero_point=c.x_zp, dtype=dtype)
    if c.axis is not None:
        p.update(axis=c.axis, y_scale=np.asarray(c.x_scale, np.float64),
                 y_zero_point=np.asarray(c.x_zp))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run_torch_op("quantize", [c.x], p, engine="fbgemm")


def onednn_misreads(c: Case) -> bool:
    """True for the convolutions that oneDNN 3.12's int8 conv (PyTorch's x86 engine, AVX-512
    VNNI) computes, at least sometimes, from input it should not read (``onednn_misreads_shape``).
    Not a rounding rule: the exact rows exclude these cases and ``_measured_rows`` pins them."""
    if c.kind == "fc":
        return False
    return onednn_misreads_shape(c.x.shape, c.w.shape, c.groups, c.padding, c.stride, c.dilation)


def onednn_misreads_shape(x_shape: tuple[int, ...], w_shape: tuple[int, ...], groups: int,
                          pads: tuple[int, int, int, int], stride: tuple[int, int],
                          dilation: tuple[int, int]) -> bool:
    """The shapes ``onednn_misreads`` names (NCHW ``x_shape``, OIHW ``w_shape``, ``pads`` top,
    bottom, left, right), measured on AVX-512 VNNI (docs/framework_facts.md, "oneDNN reads input
    it should not"):

    * one input channel per group feeding more than one output channel (a depthwise conv with
      a channel multiplier, or a one-channel input into several) with an output one pixel wide
      or one pixel tall: outputs off by up to 255, different between processes on the same
      case, and a probe with one-hot weights reads input row ``2i`` for output row ``i``;
    * an output window whose taps all lie in the padding (along the height or the width),
      whose exact output is ``Z_y`` plus the bias term.

    Every other shape agreed on every case.
    """
    o, cin_w, kh, kw = w_shape
    _, _, h, w = x_shape
    pt, pb, pl, pr = pads
    (sh, sw), (dh, dw) = stride, dilation
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    if cin_w == 1 and o // groups > 1 and min(oh, ow) == 1:
        return True

    def some_window_outside(n_out: int, n_in: int, k: int, s: int, d: int, p: int) -> bool:
        return any(all(not 0 <= i * s + t * d - p < n_in for t in range(k))
                   for i in range(n_out))

    return (some_window_outside(oh, h, kh, sh, dh, pt)
            or some_window_outside(ow, w, kw, sw, dw, pl))


def _x86_conv_cases(kind: str, misread: bool) -> st.SearchStrategy:
    """The x86 engine's conv cases (uint8, a nonzero bias on half) without (``misread=False``)
    or with only (True) the shapes of ``onednn_misreads``; the depthwise ones with a channel
    multiplier, the others from the conv cases (a one-channel input, or groups of one)."""
    cases = conv_cases(kind, x_dtype=np.uint8, layout="torch")
    return cases.filter(lambda c: onednn_misreads(c) == misread)


def _x86_rows() -> list[Comparison]:
    """PyTorch's x86 engine conv and depthwise conv (oneDNN) under ``pytorch-x86``."""
    why = ("oneDNN: rne(f32(f32(f32(f32(f32(acc) src) s_w) + B) D) + Z), src = f32(1/f32(1/s_x)), "
           "D = f32(1/f32(1/f32(1/s_y))), B the float bias; without the shapes oneDNN misreads "
           "(onednn_misreads)")
    return [Comparison(op, "pytorch", "x86", "pytorch-x86",
                       lambda kind=kind: _x86_conv_cases(kind, misread=False),
                       lambda c: torch_op(c, "x86"), lambda c: npq_conv(c, "pytorch-x86"), why)
            for kind, op in (("conv", "conv2d"), ("depthwise", "conv2d (depthwise)"))]


def _measured_rows() -> list[Comparison]:
    """Paths no profile reproduces: measured, pinned by tests, explained where known."""
    return [
        Comparison(
            "conv2d (depthwise, misread shapes)", "pytorch", "x86", "pytorch-x86",
            lambda: _x86_conv_cases("depthwise", misread=True),
            lambda c: torch_op(c, "x86"), lambda c: npq_conv(c, "pytorch-x86"),
            "oneDNN reads input it should not (channel multiplier > 1 and a one-pixel-wide or "
            "-tall output, or a window wholly in the padding: onednn_misreads); outputs off by "
            "up to 255, different between processes (docs/framework_facts.md)", exact=False),
    ]


COMPARISONS: list[Comparison] = (_tflite_rows() + _onnx_rows() + _torch_rows() + _x86_rows()
                                 + _measured_rows())
REQUIRES = {"tflite": ("ai_edge_litert",), "onnxruntime": ("onnxruntime", "onnx"),
            "pytorch": ("torch",)}


# ----------------------------------------------------------------------------- CPU variants
# The profile that reproduces a row's kernel path on another CPU, where the frameworks run other
# kernels there (tools/emulated_cpu.py runs the frameworks under qemu; docs/fidelity.md has a
# column per CPU), keyed by row id or, for every row of a profile, by the profile's name. On
# AVX2 without VNNI, u8 x s8 sums saturate int16 pairs (vpmaddubsw) in ORT's uint8 QLinearConv,
# QLinearMatMul and MatMulInteger and in fbgemm's conv (depthwise too) and linear; ORT's depthwise
# convs with one output channel per input channel sum exactly there (MLAS's depthwise kernels),
# those with a channel multiplier pair taps (a grouped GEMM); the x86 engine runs its convs on
# fbgemm there (oneDNN's only with VNNI); ORT's int8 (s8 x s8) kernels and ConvInteger sum
# exactly there.
CPU_VARIANTS: dict[str, dict[str, str]] = {
    "aarch64": {"tflite-optimized": "tflite-optimized-aarch64"}
    | {f"onnxruntime-cpu-QLinearAdd {t}": "onnxruntime-aarch64" for t in ("int8", "uint8")},
    "avx2": {f"onnxruntime-cpu-{op} uint8": "onnxruntime-avx2"
             for op in ("QLinearConv", "QLinearConv (depthwise)", "QLinearMatMul",
                        "MatMulInteger")}
    | {f"pytorch-{path}-{op}": "pytorch-fbgemm-avx2"
       for path in ("fbgemm", "x86") for op in ("conv2d", "conv2d (depthwise)", "linear")}
    # without AVX-512 VNNI PyTorch hands every x86-engine conv to fbgemm (qconv_prepack.cpp,
    # onednn_utils::should_use_onednn_quant), the shapes oneDNN misreads too
    | {"pytorch-x86-conv2d (depthwise, misread shapes)": "pytorch-fbgemm-avx2"},
}
# Rows claimed exact natively that no profile reproduces on that CPU yet: measured there, with
# the reason (docs/fidelity.md shows the rate).
CPU_UNMODELLED: dict[str, dict[str, str]] = {}


def profile_on(cmp: Comparison, cpu: str) -> str:
    """The profile claimed for ``cmp`` when the framework runs on ``cpu`` (native: its own)."""
    table = CPU_VARIANTS.get(cpu, {})
    return table.get(cmp.id, table.get(cmp.profile, cmp.profile))


def npquant_under(cmp: Comparison, profile: str) -> Callable[[Case], np.ndarray]:
    """The npquant side of ``cmp`` under ``profile`` instead of the row's own profile."""
    op = cmp.op
    dtype = np.uint8 if ("uint8" in op or "quint8" in op) else np.int8
    if op.startswith(("ConvInteger", "MatMulInteger")):
        return lambda c: _onnx_accumulators(c, profile)
    if op.startswith(("CONV_2D", "DEPTHWISE", "FULLY", "QLinearConv", "QLinearMatMul", "conv2d",
                      "linear")):
        return lambda c: npq_conv(c, profile)
    if op.startswith(("ADD", "add", "QLinearAdd")):
        return lambda c: npq_add(c, profile)
    if op.startswith("QLinearGlobalAveragePool"):
        return lambda c: npq_global_pool(c, profile)
    if op.startswith(("AVERAGE_POOL", "QLinearAveragePool", "MAX_POOL")):
        kind = "max_pool2d" if op.startswith("MAX") else "average_pool2d"
        return lambda c: npq_pool(c, profile, kind)
    if op.startswith(("DEQUANTIZE", "DequantizeLinear")):
        return lambda c: npq_dequantize(c, profile)
    if op.startswith(("QUANTIZE", "QuantizeLinear", "quantize_per")):
        return lambda c: npq_quantize(c, profile, dtype)
    raise ValueError(f"no npquant side for op {op!r}")


def on_cpu(cmp: Comparison, cpu: str) -> Comparison:
    """``cmp`` with the npquant side under ``profile_on(cmp, cpu)``; a row in
    ``CPU_UNMODELLED`` is a measurement there (``exact=False``)."""
    from dataclasses import replace

    profile = profile_on(cmp, cpu)
    exact = cmp.exact and cmp.id not in CPU_UNMODELLED.get(cpu, {})
    if profile == cmp.profile and exact == cmp.exact:
        return cmp
    return replace(cmp, profile=profile, run_npquant=npquant_under(cmp, profile), exact=exact)


# ----------------------------------------------------------------------------- measuring
@dataclass
class Tally:
    """Agreement of one comparison over the cases run."""

    cases: int = 0
    agree: int = 0
    elements: int = 0
    elements_differ: int = 0
    max_abs_diff: float = 0.0
    declined: int = 0
    first_failure: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.agree / self.cases if self.cases else float("nan")

    def record(self, got: np.ndarray, want: np.ndarray, case: Case) -> bool:
        """Count one case; True when ``got`` equals ``want`` bit for bit."""
        self.cases += 1
        self.elements += int(np.size(want))
        if got.shape == want.shape and np.array_equal(got, want):
            self.agree += 1
            return True
        if got.shape != want.shape:
            self.elements_differ += int(np.size(want))
            self.max_abs_diff = float("inf")
        else:
            mask = got != want
            self.elements_differ += int(np.count_nonzero(mask))
            if got.dtype == np.uint32:  # float32 bits: the difference in units in the last place
                diff = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32))
            else:
                diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            self.max_abs_diff = max(self.max_abs_diff, float(diff[mask].max()))
        if not self.first_failure:
            self.first_failure = repr(case)
        return False


def run_cases(strategy: st.SearchStrategy, n: int, seed: int,
              body: Callable[[Case], None]) -> None:
    """``body(case)`` on ``n`` cases of ``strategy``, the same cases for a seed: no example
    database, no deadline, no health checks and no shrinking (a tally, not a minimal example).
    ``body`` may ``hypothesis.reject()`` a case; it does not count towards ``n``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(strategy)
    def run(case):
        body(case)

    run()


def measure(cmp: Comparison, n: int, *, seed: int = 0) -> Tally:
    """Run ``cmp`` on ``n`` hypothesis cases (reproducible for a seed) and tally agreement."""
    from hypothesis import reject

    tally = Tally()

    def one(case: Case) -> None:
        try:
            want = np.asarray(cmp.run_framework(case))
        except Declined:
            tally.declined += 1
            reject()
        tally.record(np.asarray(cmp.run_npquant(case)), want, case)

    run_cases(cmp.cases(), n, seed, one)
    return tally


def disagreements(rows: list[Comparison], n: int, *, seed: int = 0) -> list[str]:
    """``measure`` each row on ``n`` cases; one line per row whose framework and npquant
    disagree on some case (its id, profile, count and first failure), empty if all agree."""
    bad = []
    for cmp in rows:
        tally = measure(cmp, n, seed=seed)
        if tally.agree != tally.cases:
            bad.append(f"{cmp.id} under {cmp.profile}: {tally.agree}/{tally.cases}, first "
                       f"{tally.first_failure}")
    return bad
