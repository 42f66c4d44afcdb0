"""Integer ops that imported models need beyond the ones ``convert`` emits (``npquant.convert``).

They share the ``IntOp`` interface (``run(x, profile, *others) -> (output, acc)``,
``describe()``), so an ``IntegerModel`` runs, traces and exports them like the others:

    RESHAPE  TRANSPOSE  PAD  CONCATENATION  MEAN  AVERAGE_POOL_2D (valid taps only)
    SOFTMAX  LOGISTIC

Layouts. npquant's 4-D activations are NCHW. An op whose meaning depends on the layout of the
framework it came from (a reshape, a transpose) records that layout in ``order``: ``"nchw"``
acts on npquant's tensor as it is (ONNX), ``"nhwc"`` acts on its NHWC view ``x.transpose(0, 2,
3, 1)`` and returns a 4-D result to NCHW (TFLite). Axes and pads given to the other ops are in
npquant's NCHW order (the importers convert them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npquant import integer
from npquant.convert import IntOp
from npquant.integer.activations import logistic_int8, softmax_int8
from npquant.integer.mean import mean_hw
from npquant.integer.pad import pad
from npquant.qparams import QParams

ORDERS = ("nchw", "nhwc")


def to_order(x: np.ndarray, order: str) -> np.ndarray:
    """npquant's tensor in ``order``: NCHW -> NHWC for a 4-D tensor under ``"nhwc"``."""
    return x.transpose(0, 2, 3, 1) if order == "nhwc" and x.ndim == 4 else x


def from_order(x: np.ndarray, order: str) -> np.ndarray:
    """Back from ``order`` to npquant's layout (NHWC -> NCHW for 4-D under ``"nhwc"``)."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if order == "nhwc" and x.ndim == 4
                                else x)


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


@dataclass
class ReshapeOp(IntOp):
    """RESHAPE (qparams unchanged): ``(N, ...) -> (N, *shape)`` in ``order`` (C order there);
    one entry of ``shape`` may be -1."""

    qparams: QParams = None
    shape: tuple[int, ...] = ()
    order: str = "nchw"
    op = "RESHAPE"

    def run(self, x, profile):
        _check_order(self.order)
        y = np.ascontiguousarray(to_order(x, self.order)).reshape((x.shape[0],) + self.shape)
        return from_order(y, self.order), None

    def describe(self):
        return {"shape": list(self.shape), "order": self.order}


@dataclass
class TransposeOp(IntOp):
    """TRANSPOSE (qparams unchanged) by ``perm`` (batch included, ``perm[0] == 0``) in
    ``order``."""

    qparams: QParams = None
    perm: tuple[int, ...] = ()
    order: str = "nchw"
    op = "TRANSPOSE"

    def run(self, x, profile):
        _check_order(self.order)
        y = np.ascontiguousarray(to_order(x, self.order).transpose(self.perm))
        return from_order(y, self.order), None

    def describe(self):
        return {"perm": list(self.perm), "order": self.order}


@dataclass
class PadOp(IntOp):
    """PAD with real 0, i.e. the zero point (``npquant.integer.pad``); ``pads[d] = (before,
    after)`` per axis of npquant's layout (batch included)."""

    qparams: QParams = None
    pads: tuple[tuple[int, int], ...] = ()
    op = "PAD"

    def run(self, x, profile):
        return pad(x, self.pads, value=int(self.qparams.zero_point)), None

    def describe(self):
        return {"pads": [list(p) for p in self.pads]}


@dataclass
class ConcatOp(IntOp):
    """CONCATENATION along ``axis`` (npquant's layout) of inputs that share the output's
    qparams, as TFLite requires for int8 (then it is a copy: no arithmetic)."""

    qparams: QParams = None
    axis: int = 1
    op = "CONCATENATION"

    def run(self, x, profile, *others):
        return np.concatenate((x,) + tuple(others), axis=self.axis), None

    def describe(self):
        return {"axis": self.axis}


@dataclass
class MeanOp(IntOp):
    """MEAN over H and W (``npquant.integer.mean``): ``(N, C, H, W) -> (N, C, 1, 1)`` with
    ``keep_dims``, else ``(N, C)``; ``scheme`` is TFLite's integer sequence for it."""

    input_qparams: QParams = None
    output_qparams: QParams = None
    keep_dims: bool = True
    scheme: str = "reference"
    op = "MEAN"

    @property
    def qparams(self) -> QParams:
        """The output qparams."""
        return self.output_qparams

    def run(self, x, profile):
        qi, qo = self.input_qparams, self.output_qparams
        r = mean_hw(x, in_scale=float(qi.scale), in_zero_point=int(qi.zero_point),
                    out_scale=float(qo.scale), out_zero_point=int(qo.zero_point),
                    scheme=self.scheme, return_accumulators=True)
        out = r.out[:, :, None, None] if self.keep_dims else r.out
        return out, r.acc

    def describe(self):
        return {"keep_dims": self.keep_dims, "scheme": self.scheme}


@dataclass
class AvgPool2dOp(IntOp):
    """AVERAGE_POOL_2D as TFLite pads: padded taps are not counted (``count`` is the number of
    valid taps, unlike ``convert.AvgPoolOp``); ``padding`` is (top, bottom, left, right)."""

    qparams: QParams = None
    kernel_size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    activation: str | None = None
    op = "AVERAGE_POOL_2D"

    def run(self, x, profile):
        r = integer.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                               zero_point=int(self.qparams.zero_point),
                               scale=float(self.qparams.scale), profile=profile,
                               activation=self.activation, count_include_pad=False,
                               return_accumulators=True)
        return r.out, r.acc

    def describe(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "activation": self.activation}


@dataclass
class SoftmaxOp(IntOp):
    """int8 SOFTMAX over the last axis with TFLite's fixed-point arithmetic
    (``npquant.integer.activations.softmax_int8``); output qparams 1/256, -128."""

    input_qparams: QParams = None
    output_qparams: QParams = None
    beta: float = 1.0
    scheme: str = "reference"
    op = "SOFTMAX"

    @property
    def qparams(self) -> QParams:
        """The output qparams."""
        return self.output_qparams

    def run(self, x, profile):
        return softmax_int8(x, in_scale=float(self.input_qparams.scale), beta=self.beta,
                            out_scale=float(self.output_qparams.scale),
                            out_zero_point=int(self.output_qparams.zero_point),
                            scheme=self.scheme), None

    def describe(self):
        return {"beta": self.beta, "scheme": self.scheme}


@dataclass
class LogisticOp(IntOp):
    """int8 LOGISTIC with TFLite's fixed-point arithmetic
    (``npquant.integer.activations.logistic_int8``); output qparams 1/256, -128."""

    input_qparams: QParams = None
    output_qparams: QParams = None
    scheme: str = "lut"
    op = "LOGISTIC"

    @property
    def qparams(self) -> QParams:
        """The output qparams."""
        return self.output_qparams

    def run(self, x, profile):
        return logistic_int8(x, in_scale=float(self.input_qparams.scale),
                             in_zero_point=int(self.input_qparams.zero_point),
                             out_scale=float(self.output_qparams.scale),
                             out_zero_point=int(self.output_qparams.zero_point),
                             scheme=self.scheme), None

    def describe(self):
        return {"scheme": self.scheme}
