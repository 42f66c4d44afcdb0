"""Seeded random cases for the oracle tests: shapes, int8 data and qparams, with a share of
"dyadic" cases whose scales are small odd integers times powers of two and whose values are
small (|x - Zx| <= 6, |w| <= 7), so that the real multiplier M = s_x s_w / s_y is exact in every
precision and only a few bits long: acc * M then lands on a tie for several percent of the
outputs, enough to tell tie rules apart."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from oracle_refs import conv2d_acc, effective_scale, f32, matmul_acc, requantize


def _padding(mode: str, in_hw, k_hw, stride, dilation):
    """TFLite/ONNX SAME_UPPER padding or VALID: (out_hw, (top, bottom, left, right))."""
    outs, pads = [], []
    for n, k, s, d in zip(in_hw, k_hw, stride, dilation, strict=True):
        eff = (k - 1) * d + 1
        out = -(-n // s) if mode == "SAME" else (n - eff) // s + 1
        total = max((out - 1) * s + eff - n, 0)
        outs.append(out)
        pads += [total // 2, total - total // 2]
    return tuple(outs), tuple(pads)


@dataclass
class ConvCase:
    """One int8 conv / depthwise / fully-connected case with its exact accumulator."""

    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    x_scale: float
    x_zp: int
    w_scale: np.ndarray  # float32 values, length 1 (per-tensor) or O
    y_scale: float
    y_zp: int
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "VALID"
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    activation: str = "NONE"
    dyadic: bool = False
    acc: np.ndarray = field(default=None, repr=False)

    def per_channel(self) -> bool:
        return len(self.w_scale) > 1

    def w_scale_arg(self):
        return self.w_scale.astype(np.float64) if self.per_channel() else float(self.w_scale[0])


def _scales(rng, dyadic: bool, n: int):
    """A positive float32 scale (or n of them). Dyadic: odd m in [1, 15] times 2^-e."""
    if dyadic:
        m = rng.integers(0, 8, n) * 2 + 1
        return (m * 2.0 ** -rng.integers(6, 11, n)).astype(np.float32)
    return (10.0 ** rng.uniform(-3.5, -1.0, n)).astype(np.float32)


def _pick_y_scale(rng, acc_real_max: float, dyadic: bool) -> float:
    """An output scale spreading |real output| over ~60..200 steps (some saturation)."""
    target = acc_real_max / rng.uniform(60, 200) if acc_real_max > 0 else 1.0
    if dyadic:
        return float(2.0 ** np.round(np.log2(target)))
    return float(f32(target))


def conv_case(rng: np.random.Generator, *, kind: str = "conv", per_channel: bool | None = None,
              dyadic: bool | None = None, x_range: tuple[int, int] = (-128, 127),
              max_channels: int = 12) -> ConvCase:
    """A random conv ("conv"), depthwise ("depthwise") or fully-connected ("fc") case."""
    dyadic = bool(rng.random() < 0.5) if dyadic is None else dyadic
    per_channel = bool(rng.random() < 0.5) if per_channel is None else per_channel
    lo, hi = x_range
    dtype = np.int8 if lo < 0 else np.uint8
    x_zp = int(rng.integers(lo, hi + 1))
    wlo, whi = -127, 127
    if dyadic:  # small values around the zero point: short accumulators, frequent ties
        x_zp = int(rng.integers(lo + 6, hi - 5))
        lo, hi, wlo, whi = x_zp - 6, x_zp + 6, -7, 7
    act = str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))
    if kind == "fc":
        n, k, o = int(rng.integers(1, 4)), int(rng.integers(1, 64)), int(rng.integers(1, 17))
        x = rng.integers(lo, hi + 1, (n, k)).astype(dtype)
        w = rng.integers(wlo, whi + 1, (o, k)).astype(np.int8)
        kw_shape = dict()
    else:
        c = int(rng.integers(1, max_channels + 1))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = str(rng.choice(["SAME", "VALID"]))
        h = int(rng.integers((kh - 1) * dilation[0] + 1, 10))
        wd = int(rng.integers((kw - 1) * dilation[1] + 1, 10))
        if kind == "conv":
            o, cin_w, groups = int(rng.integers(1, max_channels + 1)), c, 1
        else:
            m = int(rng.integers(1, 4))
            o, cin_w, groups = c * m, 1, c
        x = rng.integers(lo, hi + 1, (1, c, h, wd)).astype(dtype)
        w = rng.integers(wlo, whi + 1, (o, cin_w, kh, kw)).astype(np.int8)
        _, pads = _padding(padding, (h, wd), (kh, kw), stride, dilation)
        kw_shape = dict(stride=stride, dilation=dilation, padding=padding, pads=pads,
                        groups=groups)
    x_scale = float(_scales(rng, dyadic, 1)[0])
    w_scale = _scales(rng, dyadic, o if per_channel else 1)
    bias = rng.integers(-50 if dyadic else -2000, 51 if dyadic else 2001, o).astype(np.int32)
    if kind == "fc":
        acc = matmul_acc(x, w, bias, x_zp)
    else:
        acc = conv2d_acc(x, w, bias, x_zp, kw_shape["stride"], kw_shape["pads"],
                         kw_shape["dilation"], kw_shape["groups"])
    ws = w_scale if per_channel else np.repeat(w_scale, o)
    ch_axis = 1
    shape = [1] * acc.ndim
    shape[ch_axis] = o
    real = np.abs(acc) * (x_scale * ws.astype(np.float64)).reshape(shape)
    y_scale = _pick_y_scale(rng, float(real.max()), dyadic)
    y_zp = int(rng.integers(-20, 21)) if dtype == np.int8 else int(rng.integers(100, 156))
    return ConvCase(x=x, w=w, bias=bias, x_scale=x_scale, x_zp=x_zp, w_scale=w_scale,
                    y_scale=y_scale, y_zp=y_zp, activation=act, dyadic=dyadic, acc=acc,
                    **kw_shape)


def discriminating_accs(m_a: float, m_b: float, rule: str, limit: int = 2**21) -> np.ndarray:
    """All accumulators in [-A, A] (A = 126 / M, capped at ``limit``, so that no output
    saturates) whose requantized value under ``rule`` differs between the multipliers m_a and
    m_b: the accumulators that land between the two rounding boundaries, acc * M within
    ~acc * |m_a - m_b| of a half."""
    a = min(int(126 / max(m_a, m_b)), limit)
    acc = np.arange(-a, a + 1, dtype=np.int64)
    return acc[requantize(acc, m_a, rule) != requantize(acc, m_b, rule)]


def probe_case(rng: np.random.Generator, *, kind: str, rule: str, derivations: tuple[str, str],
               per_channel: bool = False, channels: int = 16, max_draws: int = 200) -> ConvCase:
    """A 1x1 case whose accumulators sit exactly where two multiplier derivations disagree.

    The input equals its zero point, so acc[o] = bias[o]: the biases are set to accumulators
    found by :func:`discriminating_accs` for random float32 scales with M in [2^-14, 2^-10]
    (small M gives a wide accumulator range, hence some disagreements). Per-channel cases repeat
    the same scale on every channel (the per-channel code path with one known M).
    """
    for _ in range(max_draws):
        sx = float(f32(10.0 ** rng.uniform(-3, -1)))
        sw = float(f32(10.0 ** rng.uniform(-3, -1)))
        sy = float(f32(sx * sw / 2.0 ** rng.uniform(-14, -10)))
        m_a, m_b = (float(effective_scale(sx, [sw], sy, d)[0]) for d in derivations)
        found = discriminating_accs(m_a, m_b, rule)
        if found.size:
            break
    else:
        raise RuntimeError(f"no discriminating accumulator for {derivations} in {max_draws} draws")
    bias = rng.choice(found, channels).astype(np.int32)
    x_zp = int(rng.integers(-128, 128))
    w_scale = np.full(channels if per_channel else 1, sw, dtype=np.float32)
    if kind == "fc":
        x = np.full((1, 1), x_zp, np.int8)
        w = rng.integers(-127, 128, (channels, 1)).astype(np.int8)
        acc = bias.astype(np.int64)[None, :]
        extra = {}
    else:
        cin = 1 if kind == "conv" else channels
        x = np.full((1, cin, 1, 1), x_zp, np.int8)
        w = rng.integers(-127, 128, (channels, 1, 1, 1)).astype(np.int8)
        acc = bias.astype(np.int64)[None, :, None, None]
        extra = {"groups": 1 if kind == "conv" else channels}
    return ConvCase(x=x, w=w, bias=bias, x_scale=sx, x_zp=x_zp, w_scale=w_scale, y_scale=sy,
                    y_zp=0, acc=acc, **extra)
