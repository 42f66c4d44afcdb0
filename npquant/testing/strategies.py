"""Hypothesis strategies for quantized arithmetic, valid by construction, edges included.

Shapes are drawn first, then qparams, then values inside the type's range, so no draw needs
``assume``. Configuration arguments are keyword-only; bad ones raise ValueError naming the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npquant.fixedpoint import INT32_MAX, int_range
from npquant.qparams import QParams

_EDGE_MULTIPLIERS = (0, 1, 2**30, 2**30 + 1, INT32_MAX - 1, INT32_MAX)


def scales(*, min_exponent: int = -30, max_exponent: int = 4) -> st.SearchStrategy[np.float32]:
    """Positive float32 scales ``m 2^e`` with ``m`` in [1, 2) over many octaves."""
    if min_exponent > max_exponent:
        raise ValueError(f"min_exponent={min_exponent} > max_exponent={max_exponent}")
    if min_exponent < -120 or max_exponent > 120:
        raise ValueError("exponents must be within -120..120 (float32 normal range)")
    mant = st.floats(1.0, 2.0, exclude_max=True, allow_nan=False)
    exps = st.integers(min_exponent, max_exponent)
    return st.builds(lambda m, e: np.float32(m * 2.0**e), mant, exps)


def zero_points(*, bits: int = 8, signed: bool = True) -> st.SearchStrategy[int]:
    """Zero points over the full range of the type, with both ends and 0 made likely."""
    qmin, qmax = int_range(bits, signed)
    return st.one_of(st.sampled_from(sorted({qmin, qmax, max(qmin, 0), min(qmax, 0)})),
                     st.integers(qmin, qmax))


@st.composite
def qparams(draw, *, bits: int = 8, signed: bool = True, channels: int | None = None,
            axis: int = 0, symmetric: bool = False) -> QParams:
    """``QParams`` per tensor (``channels=None``) or per channel along ``axis``."""
    if channels is not None and channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    zp = (st.just(0) if symmetric else zero_points(bits=bits, signed=signed))
    if channels is None:
        return QParams(draw(scales()), draw(zp), bits=bits, signed=signed)
    s = [draw(scales()) for _ in range(channels)]
    z = [draw(zp) for _ in range(channels)]
    return QParams(np.array(s, np.float32), np.array(z), bits=bits, signed=signed, axis=axis)


def int_tensors(dtype, shape) -> st.SearchStrategy[np.ndarray]:
    """Arrays of an integer ``dtype`` over its whole range (ends included) with ``shape``."""
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.integer):
        raise ValueError(f"dtype must be an integer type, got {dt}")
    info = np.iinfo(dt)
    elements = st.one_of(st.sampled_from([int(info.min), int(info.max), 0]),
                         st.integers(int(info.min), int(info.max)))
    return hnp.arrays(dt, shape, elements=elements)


def quantized_multipliers() -> st.SearchStrategy[tuple[int, int]]:
    """``(M0, shift)`` pairs: M0 in [2^30, 2^31) or an edge (0, 1, 2^30, INT32_MAX), shift in
    -31..0 (``M < 1``, the usual case) with the ends 0 and -31 made likely."""
    m0 = st.one_of(st.sampled_from(_EDGE_MULTIPLIERS), st.integers(2**30, INT32_MAX))
    shift = st.one_of(st.sampled_from([0, -1, -31]), st.integers(-31, 0))
    return st.tuples(m0, shift)


@dataclass(frozen=True)
class ConvShape:
    """A consistent NCHW/OIHW convolution problem (explicit symmetric-or-not padding)."""

    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int

    @property
    def output_hw(self) -> tuple[int, int]:
        """``floor((H + pads - dilation (k - 1) - 1) / stride) + 1`` on each axis."""
        top, bottom, left, right = self.padding
        oh = (self.height + top + bottom - self.dilation[0] * (self.kernel[0] - 1) - 1
              ) // self.stride[0] + 1
        ow = (self.width + left + right - self.dilation[1] * (self.kernel[1] - 1) - 1
              ) // self.stride[1] + 1
        return oh, ow


@st.composite
def conv_shapes(draw, *, max_channels: int = 8, max_hw: int = 9, max_kernel: int = 4,
                depthwise: bool | None = None) -> ConvShape:
    """Convolution shapes incl. 1x1, kernel > stride, odd pads, dilation, groups, depthwise.

    ``depthwise=True`` forces ``groups == in_channels`` (with a depth multiplier),
    ``False`` forbids it, None lets hypothesis choose.
    """
    if max_channels < 1 or max_hw < 1 or max_kernel < 1:
        raise ValueError("max_channels, max_hw and max_kernel must be >= 1")
    groups = draw(st.integers(1, max_channels))
    if depthwise is True:
        in_channels = groups
        out_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    else:
        in_per = draw(st.integers(1, max(1, max_channels // groups)))
        out_per = draw(st.integers(1, max(1, max_channels // groups)))
        in_channels, out_channels = groups * in_per, groups * out_per
        if depthwise is False and groups == in_channels and groups > 1:
            in_channels *= 2
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # the input must hold at least one dilated kernel window after padding
    min_h = max(1, dh * (kh - 1) + 1 - pads[0] - pads[1])
    min_w = max(1, dw * (kw - 1) + 1 - pads[2] - pads[3])
    h = draw(st.integers(min_h, max(min_h, max_hw)))
    w = draw(st.integers(min_w, max(min_w, max_hw)))
    return ConvShape(batch=draw(st.integers(1, 2)), in_channels=in_channels, height=h, width=w,
                     out_channels=out_channels, kernel=(kh, kw), stride=(sh, sw),
                     padding=pads, dilation=(dh, dw), groups=groups)


def gemm_shapes(*, max_dim: int = 64) -> st.SearchStrategy[tuple[int, int, int]]:
    """``(M, K, N)`` of ``(M, K) x (K, N)``, each in 1..max_dim (1 is made likely)."""
    if max_dim < 1:
        raise ValueError(f"max_dim must be >= 1, got {max_dim}")
    dim = st.one_of(st.just(1), st.integers(1, max_dim))
    return st.tuples(dim, dim, dim)
