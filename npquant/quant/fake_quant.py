"""Fake quantization in the autograd: quantize-then-dequantize forward, straight-through backward.

Forward (Jacob et al. 2018, arXiv:1712.05877, section 3.1), for qparams ``(S, Z)`` of ``bits``
bits with integer range ``[qmin, qmax]``::

    v = round(x / S) + Z                   (the profile's quantize rule, before saturation)
    q = clamp(v, qmin, qmax)
    y = S (q - Z)                          (exact product, rounded once to x's dtype)

``v`` is computed by ``npquant.qparams.quantize_unclamped`` with the *profile's* rule (divide or
multiply by ``f32(1/S)``, ties away or even, on ``float32(x)``), so ``q`` is bit for bit the
integer the integer-only model's QUANTIZE would produce for the same float input, and ``y`` is
its DEQUANTIZE. Rounding has derivative 0 almost everywhere, so training needs a surrogate:

* **STE** (straight-through estimator, Bengio et al. 2013, arXiv:1308.3432): ``d round(u)/du := 1``,
  hence ``dy/dx = 1`` where ``qmin <= v <= qmax`` and 0 where ``v`` is clamped (PyTorch's
  ``fake_quantize_per_tensor_affine`` mask). Equivalently, ``round(u) = u + c`` with the residual
  ``c = round(u) - u`` held constant: every gradient below is the exact gradient of that surrogate
  (the tests check them by finite differences on it, in float64).
* **PACT** (Choi et al. 2018, arXiv:1805.06085): a learnable clip ``alpha`` for activations,
  ``y = Q(clip(x, 0, alpha))`` with ``S = alpha / (qmax - qmin)`` and ``Z = qmin``; by the STE
  ``Q(u) ~ u`` (eq. 3 of the paper), ``dy/dx = 1`` on ``[0, alpha)`` and ``dy/dalpha = 1`` where
  ``x >= alpha``, else 0.
* **LSQ** (Esser et al. 2019, arXiv:1902.08153): a learnable step ``S`` (per tensor or per
  channel); with the STE residual frozen, ``y = S (clamp(x/S + c + Z) - Z)`` gives
  ``dy/dS = round(x/S) - x/S`` inside the range, ``qmin - Z`` below it and ``qmax - Z`` above it
  (eq. 3 of the paper), and the step's gradient is scaled by ``g = 1 / sqrt(N Qp)`` (``N``: weights
  per channel or features per example, ``Qp``: positive levels, ``qmax - Z``). A learnable zero
  point (LSQ+, PyTorch's ``_fake_quantize_learnable_*``) gets ``dy/dZ = 0`` inside and ``-S``
  outside; the forward uses ``clamp(round_even(Z), qmin, qmax)``.

The modules (``FakeQuantize``, ``PACT``, ``LSQ``) keep their statistics and learned values in
parameters and buffers, so a QAT checkpoint (``state_dict``) restores them exactly, and each
returns the ``QParams`` the integer model will use (``qparams()``).
"""

from __future__ import annotations

import math

import numpy as np

from npquant import nn
from npquant.fixedpoint import int_range
from npquant.profiles import QParamsMethod, QuantizeRule
from npquant.qparams import SCHEMES, QParams, from_range, quantize_unclamped
from npquant.quant.observers import MinMaxObserver, MovingAverageMinMaxObserver, Observer

ACT_OBSERVERS = ("minmax", "ema")
_MIN_SCALE = 1e-12  # a learned scale or clip is floored here: QParams needs S > 0


# -- the forward shared by every fake quantizer ------------------------------------------------
def quantize_dequantize(x: np.ndarray, qparams: QParams,
                        rule: QuantizeRule) -> tuple[np.ndarray, np.ndarray]:
    """``(y, v)``: ``y = S (clamp(v, qmin, qmax) - Z)`` in ``x``'s dtype and the unclamped
    ``v = round(x / S) + Z`` (float64) by ``rule`` (module docstring)."""
    arr = np.asarray(x)
    v = quantize_unclamped(arr, qparams, rule=rule)
    q = np.clip(v, qparams.qmin, qparams.qmax)
    scale, zp = qparams.broadcast(arr.ndim)
    # (q - Z) has at most 17 significant bits and S 24: the float64 product is exact.
    y = (scale.astype(np.float64) * (q - zp)).astype(arr.dtype)
    return y, v


def code_range(bits: int, signed: bool, narrow_range: bool = False) -> tuple[int, int]:
    """``(qmin, qmax)`` of ``bits``-bit codes; narrow range drops the most negative one."""
    qmin, qmax = int_range(bits, signed)
    return qmin + int(bool(narrow_range) and signed), qmax


def _reduce_to(g: np.ndarray, axis: int | None) -> np.ndarray:
    """Sum ``g`` over every axis but ``axis`` (all axes when None): a per-channel gradient."""
    if axis is None:
        return np.asarray(g.sum())
    axis = axis % g.ndim
    return g.sum(axis=tuple(i for i in range(g.ndim) if i != axis))


class FakeQuantizeFn(nn.Function):
    """Fixed-qparams fake quantization with the STE: ``dy/dx = 1`` where ``qmin <= v <= qmax``
    (``v = round(x/S) + Z`` before clamping), else 0."""

    @staticmethod
    def forward(ctx, x, qparams, rule):
        y, v = quantize_dequantize(x, qparams, rule)
        ctx.inside = (v >= qparams.qmin) & (v <= qparams.qmax)
        return y

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx.inside,)


def fake_quantize(x: nn.Tensor, qparams: QParams, rule: QuantizeRule) -> nn.Tensor:
    """``S (clamp(round(x/S) + Z, qmin, qmax) - Z)`` with the straight-through gradient.

    ``qparams`` may be per tensor or per channel (its ``axis``); ``rule`` is the profile's
    quantize rule (``profile.quantize_rule(per_channel)``). NaN in ``x`` is a ValueError.
    """
    if not isinstance(qparams, QParams):
        raise TypeError(f"qparams must be a QParams, got {type(qparams).__name__}")
    if not isinstance(rule, QuantizeRule):
        raise TypeError(f"rule must be a QuantizeRule, got {type(rule).__name__}")
    return FakeQuantizeFn.apply(x, qparams=qparams, rule=rule)


class LearnableFakeQuantizeFn(nn.Function):
    """LSQ: fake quantization with a learnable scale (and optionally zero point).

    Inputs ``x``, ``scale`` (0-d, or 1-D along ``axis``), ``zero_point`` (same shape, float).
    Backward, with ``u = x/S`` and the mask of ``v = round(u) + Z`` (module docstring):
    ``dx = dy`` inside; ``dS = g sum dy * {round(u) - u inside, qmin - Z below, qmax - Z above}``;
    ``dZ = g sum dy * {0 inside, -S outside}``, sums over every axis but ``axis``. ``round(u) - u``
    is computed as ``(y - x) / S`` (PyTorch's formula; the same number up to one rounding).
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point, bits, signed, narrow_range, axis, rule, grad_factor):
        s = np.maximum(scale.astype(np.float64), _MIN_SCALE)
        qmin, qmax = code_range(bits, signed, narrow_range)
        zp = np.clip(np.rint(zero_point.astype(np.float64)), qmin, qmax).astype(np.int64)
        qp = QParams(s, zp, bits=bits, signed=signed, narrow_range=narrow_range, axis=axis)
        y, v = quantize_dequantize(x, qp, rule)
        sb, zb = qp.broadcast(np.ndim(x))
        ctx.below, ctx.above = v < qmin, v > qmax
        ctx.inside = ~(ctx.below | ctx.above)
        ctx.x, ctx.y, ctx.s, ctx.z = x, y, sb.astype(np.float64), zb.astype(np.float64)
        ctx.qmin, ctx.qmax, ctx.axis, ctx.g = qmin, qmax, axis, float(grad_factor)
        ctx.scale_shape = scale.shape
        return y

    @staticmethod
    def backward(ctx, grad):
        g64 = grad.astype(np.float64)
        dx = grad * ctx.inside if ctx.needs_input_grad[0] else None
        ds = dz = None
        if ctx.needs_input_grad[1]:
            resid = (ctx.y.astype(np.float64) - ctx.x.astype(np.float64)) / ctx.s
            d = np.where(ctx.inside, resid,
                         np.where(ctx.below, ctx.qmin - ctx.z, ctx.qmax - ctx.z))
            ds = (ctx.g * _reduce_to(g64 * d, ctx.axis)).reshape(ctx.scale_shape)
            ds = ds.astype(grad.dtype)
        if ctx.needs_input_grad[2]:
            d = np.where(ctx.inside, 0.0, -ctx.s)
            dz = (ctx.g * _reduce_to(g64 * d, ctx.axis)).reshape(ctx.scale_shape)
            dz = dz.astype(grad.dtype)
        return dx, ds, dz


def fake_quantize_learnable(x: nn.Tensor, scale: nn.Tensor, zero_point: nn.Tensor, *,
                            bits: int, signed: bool = True, narrow_range: bool = False,
                            axis: int | None = None, rule: QuantizeRule,
                            grad_factor: float = 1.0) -> nn.Tensor:
    """LSQ fake quantization (``LearnableFakeQuantizeFn``): ``scale`` and ``zero_point`` are
    Tensors (0-d per tensor, 1-D per channel along ``axis``); set ``requires_grad`` on the ones
    to learn. ``grad_factor`` is LSQ's ``g`` (1 gives the plain gradient)."""
    if not isinstance(rule, QuantizeRule):
        raise TypeError(f"rule must be a QuantizeRule, got {type(rule).__name__}")
    if scale.shape != zero_point.shape:
        raise ValueError(f"scale shape {scale.shape} != zero_point shape {zero_point.shape}")
    if (axis is None) != (scale.ndim == 0):
        raise ValueError(f"a per-tensor scale is 0-d and a per-channel one 1-D with axis=; got "
                         f"scale shape {scale.shape} with axis={axis}")
    if not (math.isfinite(grad_factor) and grad_factor > 0):
        raise ValueError(f"grad_factor must be finite and > 0, got {grad_factor!r}")
    return LearnableFakeQuantizeFn.apply(x, scale, zero_point, bits=bits, signed=signed,
                                         narrow_range=narrow_range, axis=axis, rule=rule,
                                         grad_factor=grad_factor)


class PACTFn(nn.Function):
    """PACT: ``y = Q(clip(x, 0, alpha))`` with ``S = alpha/(qmax - qmin)``, ``Z = qmin``.

    Backward (Choi et al. 2018, eq. 3, the quantizer passed straight through):
    ``dx = dy`` where ``0 <= x < alpha``, else 0; ``dalpha = sum dy`` over ``x >= alpha``.
    """

    @staticmethod
    def forward(ctx, x, alpha, bits, signed, rule):
        qp = pact_qparams(float(alpha), bits, signed)
        y, _ = quantize_dequantize(x, qp, rule)
        a = float(np.asarray(alpha, dtype=x.dtype))
        ctx.pass_x = (x >= 0) & (x < a)
        ctx.top = x >= a
        return y

    @staticmethod
    def backward(ctx, grad):
        dx = grad * ctx.pass_x if ctx.needs_input_grad[0] else None
        da = np.asarray((grad * ctx.top).sum(), dtype=grad.dtype) \
            if ctx.needs_input_grad[1] else None
        return dx, da


def pact_qparams(alpha: float, bits: int, signed: bool = True) -> QParams:
    """The qparams of a PACT range ``[0, alpha]``: ``S = f32(alpha / (qmax - qmin))``,
    ``Z = qmin`` (real 0 is the lowest code, as after a ReLU)."""
    qmin, qmax = int_range(bits, signed)
    a = max(float(alpha), _MIN_SCALE)
    return QParams(np.float32(a / (qmax - qmin)), qmin, bits=bits, signed=signed)


def pact(x: nn.Tensor, alpha: nn.Tensor, *, bits: int, signed: bool = True,
         rule: QuantizeRule) -> nn.Tensor:
    """PACT fake quantization (``PACTFn``) with a learnable 0-d clip ``alpha``."""
    if alpha.ndim != 0:
        raise ValueError(f"alpha must be a 0-d tensor, got shape {alpha.shape}")
    return PACTFn.apply(x, alpha, bits=bits, signed=signed, rule=rule)


# -- modules -----------------------------------------------------------------------------------
class ObservingQuantizer(nn.Module):
    """A per-tensor activation quantizer that observes its input (min/max or EMA).

    The range lives in buffers (``min_val``, ``max_val``, ``num_observed``) so that it is saved
    in the state dict; ``Observer`` supplies the update formula and the qparams formula.
    ``observer_enabled`` and ``fake_quant_enabled`` are PyTorch's two switches: calibration
    observes with fake quantization off; QAT observes (in training mode) until frozen.
    """

    def __init__(self, *, bits: int, scheme: str, signed: bool, rule: QuantizeRule,
                 method: QParamsMethod | str, observer: str, averaging_constant: float,
                 name: str) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if observer not in ACT_OBSERVERS:
            raise ValueError(f"observer must be one of {ACT_OBSERVERS}, got {observer!r}")
        if not isinstance(rule, QuantizeRule):
            raise TypeError(f"rule must be a QuantizeRule, got {type(rule).__name__}")
        kw = dict(scheme=scheme, bits=bits, signed=signed, name=name)
        self._observer: Observer = (
            MovingAverageMinMaxObserver(averaging_constant=averaging_constant, **kw)
            if observer == "ema" else MinMaxObserver(**kw))
        self.bits, self.scheme, self.signed, self.name = int(bits), scheme, bool(signed), name
        self.rule, self.method, self.observer = rule, QParamsMethod(method), observer
        self.observer_enabled, self.fake_quant_enabled = True, True
        self.register_buffer("min_val", np.array(0.0))
        self.register_buffer("max_val", np.array(0.0))
        self.register_buffer("num_observed", np.array(0, dtype=np.int64))

    def observe(self, x: np.ndarray) -> None:
        """Update the range with one batch (the observer's rule: running min/max or EMA)."""
        o = self._observer
        if int(self.num_observed):
            o.min_val, o.max_val = np.asarray(self.min_val), np.asarray(self.max_val)
        else:
            o.min_val = o.max_val = None
        o.observe(x)
        self.register_buffer("min_val", np.asarray(o.min_val, dtype=np.float64))
        self.register_buffer("max_val", np.asarray(o.max_val, dtype=np.float64))
        self.register_buffer("num_observed", np.array(int(self.num_observed) + 1, np.int64))

    def observed_qparams(self) -> QParams:
        """``from_range(min_val, max_val)`` by this quantizer's scheme, bits and method."""
        if not int(self.num_observed):
            raise ValueError(f"{self.name}: no data observed yet; calibrate the QAT model "
                             "(npquant.quant.qat.calibrate_qat) before fake quantization")
        o = self._observer
        o.min_val, o.max_val = np.asarray(self.min_val), np.asarray(self.max_val)
        return o.calculate_qparams(self.method)

    def _should_observe(self) -> bool:
        return self.observer_enabled and (self.training or not self.fake_quant_enabled)

    def extra_repr(self) -> str:
        return f"{self.name}: {self.scheme} {self.bits}-bit, {self.observer}"


class FakeQuantize(ObservingQuantizer):
    """Activation fake quantization with observed ranges and the STE (PyTorch's FakeQuantize).

    While ``observer_enabled`` the range is updated in training mode (and during calibration,
    when ``fake_quant_enabled`` is off) by running min/max (``observer="minmax"``) or by the EMA
    ``r_t = r_{t-1} + c (r(x_t) - r_{t-1})`` (``"ema"``, ``c = averaging_constant``); the forward
    fake-quantizes with the qparams of the current range.
    """

    def __init__(self, *, bits: int = 8, scheme: str = "asymmetric", signed: bool = True,
                 rule: QuantizeRule, method: QParamsMethod | str = QParamsMethod.TFLITE,
                 observer: str = "ema", averaging_constant: float = 0.01,
                 name: str = "fake_quant") -> None:
        super().__init__(bits=bits, scheme=scheme, signed=signed, rule=rule, method=method,
                         observer=observer, averaging_constant=averaging_constant, name=name)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        if self._should_observe():
            self.observe(x.data)
        if not self.fake_quant_enabled:
            return x
        return fake_quantize(x, self.qparams(), self.rule)

    def qparams(self) -> QParams:
        """The qparams of the current range (what the integer model uses)."""
        return self.observed_qparams()


class PACT(ObservingQuantizer):
    """PACT activation quantizer (``pact``): a learnable clip ``alpha`` (a Parameter).

    Before fake quantization starts, it observes its input like ``FakeQuantize``;
    ``start()`` sets ``alpha`` to the observed maximum. Only for non-negative activations
    (after a ReLU): real 0 is code ``qmin``.
    """

    def __init__(self, *, bits: int = 8, signed: bool = True, rule: QuantizeRule,
                 method: QParamsMethod | str = QParamsMethod.TFLITE, observer: str = "ema",
                 averaging_constant: float = 0.01, alpha: float = 6.0,
                 name: str = "pact") -> None:
        super().__init__(bits=bits, scheme="asymmetric", signed=signed, rule=rule, method=method,
                         observer=observer, averaging_constant=averaging_constant, name=name)
        self.alpha = nn.Parameter(np.array(alpha, dtype=np.float32))
        self.fake_quant_enabled = False

    def start(self) -> None:
        """alpha := observed max (if anything was observed); turn fake quantization on."""
        if int(self.num_observed):
            self.alpha.data = np.array(max(float(self.max_val), _MIN_SCALE),
                                       dtype=self.alpha.data.dtype)
        self.fake_quant_enabled = True

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        if self._should_observe():
            self.observe(x.data)
        if not self.fake_quant_enabled:
            return x
        return pact(x, self.alpha, bits=self.bits, signed=self.signed, rule=self.rule)

    def qparams(self) -> QParams:
        """``S = alpha / (qmax - qmin)``, ``Z = qmin`` (``pact_qparams``)."""
        return pact_qparams(float(self.alpha.data), self.bits, self.signed)


class LSQ(ObservingQuantizer):
    """LSQ quantizer (``fake_quantize_learnable``): a learnable step ``scale`` (a Parameter).

    Per tensor (activations; ``axis=None``) it observes its input until ``start()``, which sets
    ``scale``/``zero_point`` from the observed range (a min/max initialization instead of
    the paper's ``2 mean|x| / sqrt(Qp)``). For weights use ``axis=0`` and ``start(weight)``.
    The zero point is fixed unless ``learn_zero_point``. The gradient scale
    ``g = 1/sqrt(N Qp)`` uses ``N`` = elements per example (activations) or per channel
    (weights) and ``Qp = qmax - Z`` (the mean over channels of ``Z``).
    """

    def __init__(self, *, bits: int = 8, scheme: str = "asymmetric", signed: bool = True,
                 narrow_range: bool = False, axis: int | None = None, channels: int = 1,
                 rule: QuantizeRule, method: QParamsMethod | str = QParamsMethod.TFLITE,
                 observer: str = "ema", averaging_constant: float = 0.01,
                 learn_zero_point: bool = False, name: str = "lsq") -> None:
        super().__init__(bits=bits, scheme=scheme, signed=signed, rule=rule, method=method,
                         observer=observer, averaging_constant=averaging_constant, name=name)
        if scheme == "power_of_two":
            raise ValueError(f"{name}: LSQ learns arbitrary steps; scheme='power_of_two' "
                             "cannot hold them (use an observer-based FakeQuantize)")
        self.axis, self.narrow_range = axis, bool(narrow_range)
        shape = () if axis is None else (int(channels),)
        self.scale = nn.Parameter(np.ones(shape, dtype=np.float32))
        self.zero_point = nn.Parameter(np.zeros(shape, dtype=np.float32)) if learn_zero_point \
            else None
        self.register_buffer("fixed_zero_point", np.zeros(shape, dtype=np.float32))
        self.fake_quant_enabled = False

    def start(self, weight: np.ndarray | None = None) -> None:
        """Initialize ``scale``/``zero_point`` from ``qparams`` of the observed range, or of
        ``weight`` per channel (symmetric), and turn fake quantization on."""
        if weight is not None:
            w = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
            qp = from_range(w.min(axis=1), w.max(axis=1), bits=self.bits, signed=self.signed,
                            scheme=self.scheme, narrow_range=self.narrow_range,
                            method=self.method, axis=0)
        else:
            qp = self.observed_qparams()
        self.scale.data = qp.scale.astype(np.float32).reshape(self.scale.shape)
        zp = qp.zero_point.astype(np.float32).reshape(self.scale.shape)
        if self.zero_point is not None:
            self.zero_point.data = zp
        self.register_buffer("fixed_zero_point", zp)
        self.fake_quant_enabled = True

    def _zero_point(self) -> nn.Tensor:
        return self.zero_point if self.zero_point is not None else \
            nn.Tensor(self.fixed_zero_point)

    def grad_factor(self, x_shape: tuple[int, ...]) -> float:
        """LSQ's ``g = 1 / sqrt(N Qp)`` for an input of ``x_shape``."""
        n = int(np.prod(x_shape[1:])) if x_shape else 1
        qmax = int_range(self.bits, self.signed)[1]
        qp = max(float(qmax - np.mean(np.rint(self._zero_point().data))), 1.0)
        return 1.0 / math.sqrt(max(n, 1) * qp)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        if self.axis is None and self._should_observe():
            self.observe(x.data)
        if not self.fake_quant_enabled:
            return x
        return fake_quantize_learnable(x, self.scale, self._zero_point(), bits=self.bits,
                                       signed=self.signed, narrow_range=self.narrow_range,
                                       axis=self.axis, rule=self.rule,
                                       grad_factor=self.grad_factor(x.shape))

    def qparams(self) -> QParams:
        """The learned ``(S, Z)`` as the forward uses them (``S`` floored at 1e-12, ``Z``
        rounded half to even and clamped)."""
        qmin, qmax = code_range(self.bits, self.signed, self.narrow_range)
        s = np.maximum(self.scale.data.astype(np.float64), _MIN_SCALE)
        zp = np.clip(np.rint(self._zero_point().data.astype(np.float64)), qmin, qmax)
        return QParams(s, zp.astype(np.int64), bits=self.bits, signed=self.signed,
                       narrow_range=self.narrow_range, axis=self.axis)
