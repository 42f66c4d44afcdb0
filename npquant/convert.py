"""Conversion: a BN-folded float chain + per-layer qparams + a profile -> an integer-only model.

``convert(model, qparams, profile)`` walks the layer chain and emits an ordered list of integer
ops, TFLite style:

    QUANTIZE (float input -> int8)  CONV_2D (+ fused ReLU as an integer clamp)  MAX_POOL_2D
    FLATTEN  FULLY_CONNECTED  ...   DEQUANTIZE (int8 logits -> float)

Each op holds its int8 weights, int32 bias, scales, zero points and requantization parameters
(``npquant.requant.RequantParams``), and runs only ``npquant.integer`` kernels: the only float
arithmetic is in the first QUANTIZE and the last DEQUANTIZE. ``IntegerModel.run`` returns the
int8 logits (and, on request, a per-op trace of inputs, accumulators and outputs, which the
golden writer exports).

FLATTEN is a reshape of the NCHW int8 tensor in C order, ``(N, C, H, W) -> (N, C H W)`` with
index ``c H W + h W + w``: the order of the float ``nn.Flatten``, so the FC weights apply as
trained. Max pooling keeps its input's qparams (the max of ``q`` is the ``q`` of the max).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npquant import integer, nn
from npquant.profiles import Profile, get_profile
from npquant.qparams import QParams, dequantize, quantize
from npquant.quant.chain import chain_layers
from npquant.quant.ptq import ModelQParams, quantize_bias, quantize_weight
from npquant.requant import RequantParams, prepare_requant


@dataclass
class TraceEntry:
    """One op's tensors from ``IntegerModel.run(..., return_trace=True)``.

    ``acc``: the int32 accumulators of CONV_2D/FULLY_CONNECTED (before requantization), the
    window maxima of MAX_POOL_2D, None otherwise.
    """

    index: int
    name: str
    op: str
    input: np.ndarray
    output: np.ndarray
    acc: np.ndarray | None = None


@dataclass
class IntOp:
    """Base of the integer ops: ``name`` (the float layer it came from) and ``op`` (its kind)."""

    name: str

    op = "OP"

    def run(self, x: np.ndarray, profile: Profile) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able attributes (no arrays)."""
        return {}


@dataclass
class QuantizeOp(IntOp):
    """float32 -> int8: ``q = clamp(round(x / S) + Z)`` by the profile's quantize rule."""

    qparams: QParams = None
    op = "QUANTIZE"

    def run(self, x, profile):
        return quantize(x, self.qparams, rule=profile.quantize_rule(False)), None


@dataclass
class DequantizeOp(IntOp):
    """int8 -> float32: ``r = f32(S (q - Z))``."""

    qparams: QParams = None
    op = "DEQUANTIZE"

    def run(self, x, profile):
        return dequantize(x, self.qparams), None


@dataclass
class Conv2dOp(IntOp):
    """CONV_2D: ``acc = bias + sum (x - Zx) w`` (int32), ``y = clamp(Zy + M[c] acc)``.

    With a fused ReLU the clamp's lower end is ``Zy`` (real 0).
    """

    weight: np.ndarray = None  # int8 OIHW
    bias: np.ndarray = None  # int32 (O,)
    input_qparams: QParams = None
    weight_qparams: QParams = None
    output_qparams: QParams = None
    requant: RequantParams = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    activation: str | None = None
    op = "CONV_2D"

    def run(self, x, profile):
        r = integer.conv2d(x, self.weight, self.bias, x_zero_point=_zp(self.input_qparams),
                           out_zero_point=_zp(self.output_qparams), w_zero_point=0,
                           stride=self.stride, padding=self.padding, dilation=self.dilation,
                           groups=self.groups, requant=self.requant, profile=profile,
                           out_dtype=self.output_qparams.dtype,
                           out_bits=self.output_qparams.bits, activation=self.activation,
                           layer=self.name, return_accumulators=True)
        return r.out, r.acc

    def describe(self):
        return {"stride": list(self.stride), "padding": list(self.padding),
                "dilation": list(self.dilation), "groups": self.groups,
                "activation": self.activation}


@dataclass
class FullyConnectedOp(IntOp):
    """FULLY_CONNECTED: ``acc = bias + sum_k (x_k - Zx) w[o, k]``, ``y = clamp(Zy + M[o] acc)``."""

    weight: np.ndarray = None  # int8 (O, K)
    bias: np.ndarray = None
    input_qparams: QParams = None
    weight_qparams: QParams = None
    output_qparams: QParams = None
    requant: RequantParams = None
    activation: str | None = None
    op = "FULLY_CONNECTED"

    def run(self, x, profile):
        r = integer.fully_connected(x, self.weight, self.bias,
                                    x_zero_point=_zp(self.input_qparams),
                                    out_zero_point=_zp(self.output_qparams), w_zero_point=0,
                                    requant=self.requant, profile=profile,
                                    out_dtype=self.output_qparams.dtype,
                                    out_bits=self.output_qparams.bits,
                                    activation=self.activation, layer=self.name,
                                    return_accumulators=True)
        return r.out, r.acc

    def describe(self):
        return {"activation": self.activation}


@dataclass
class MaxPoolOp(IntOp):
    """MAX_POOL_2D on the stored integers (qparams unchanged)."""

    qparams: QParams = None
    kernel_size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    op = "MAX_POOL_2D"

    def run(self, x, profile):
        r = integer.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                               zero_point=_zp(self.qparams), profile=profile,
                               return_accumulators=True)
        return r.out, r.acc

    def describe(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}


@dataclass
class FlattenOp(IntOp):
    """FLATTEN: ``(N, C, H, W) -> (N, C H W)`` in C order (the float ``nn.Flatten`` order)."""

    qparams: QParams = None
    op = "FLATTEN"

    def run(self, x, profile):
        return np.ascontiguousarray(x).reshape(x.shape[0], -1), None


@dataclass
class IntegerModel:
    """An ordered list of integer ops under one profile (QUANTIZE first, DEQUANTIZE last)."""

    ops: list[IntOp]
    profile: Profile
    input_shape: tuple[int, ...]  # (C, H, W) of one image
    qparams: ModelQParams = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_qparams(self) -> QParams:
        """The QUANTIZE op's qparams."""
        return self.ops[0].qparams

    @property
    def output_qparams(self) -> QParams:
        """The DEQUANTIZE op's qparams (those of the int8 logits)."""
        return self.ops[-1].qparams

    def run(self, x: np.ndarray, return_trace: bool = False
            ) -> np.ndarray | tuple[np.ndarray, list[TraceEntry]]:
        """int8 logits ``(N, classes)`` for float images ``x (N, C, H, W)``.

        Runs QUANTIZE and every integer op, stopping before DEQUANTIZE. With ``return_trace``
        also returns one ``TraceEntry`` per op run (QUANTIZE's input is the float32 image).
        """
        arr = np.asarray(x)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"x must be a float array, got dtype {arr.dtype}")
        if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {arr.shape}")
        trace: list[TraceEntry] = []
        h: np.ndarray = arr.astype(np.float32)
        for i, op in enumerate(self.ops[:-1]):
            out, acc = op.run(h, self.profile)
            if return_trace:
                trace.append(TraceEntry(i, op.name, op.op, h, out, acc))
            h = out
        return (h, trace) if return_trace else h

    def dequantize_logits(self, q: np.ndarray) -> np.ndarray:
        """The final DEQUANTIZE: float32 logits ``S (q - Z)``."""
        return self.ops[-1].run(q, self.profile)[0]

    def predict(self, x: np.ndarray, batch_size: int = 500, progress=None) -> np.ndarray:
        """Class indices ``argmax`` of the int8 logits (the dequantize is monotonic, so it is
        the argmax of the float logits too), batch by batch. ``progress`` wraps the batch
        iterator (e.g. a tqdm factory taking ``(iterable, total)``)."""
        starts = range(0, len(x), batch_size)
        it = progress(starts, len(starts)) if progress is not None else starts
        return np.concatenate([self.run(x[s:s + batch_size]).argmax(axis=1) for s in it]) \
            if len(x) else np.zeros(0, dtype=np.int64)

    def summary(self) -> list[dict[str, Any]]:
        """One JSON-able row per op: index, name, op and its attributes."""
        return [dict({"index": i, "name": op.name, "op": op.op}, **op.describe())
                for i, op in enumerate(self.ops)]


def convert(model: nn.Module, qparams: ModelQParams, profile: Profile | str, *,
            input_shape: tuple[int, int, int]) -> IntegerModel:
    """The integer model of the BN-folded chain ``model`` with ``qparams`` under ``profile``.

    Supported layers: Conv2d (groups allowed; depthwise uses the profile's depthwise rule),
    Linear, ReLU right after a conv/linear (fused), MaxPool2d, Flatten, Identity and Dropout
    (eval: identity). Anything else is a ValueError naming the layer and its type.
    ``input_shape`` is one image's ``(C, H, W)``.
    """
    prof = get_profile(profile)
    if not isinstance(qparams, ModelQParams):
        raise TypeError(f"qparams must be ModelQParams, got {type(qparams).__name__}")
    if qparams.profile != prof.name:
        raise ValueError(f"qparams were chosen for profile {qparams.profile!r}, "
                         f"not {prof.name!r}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
    layers = chain_layers(model)
    current = qparams.input
    ops: list[IntOp] = [QuantizeOp("input", current)]
    fused: set[str] = set()
    flat = False
    for name, m in layers:
        if name in fused or isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            lq = qparams.layers.get(name)
            if lq is None:
                raise ValueError(f"no qparams for layer {name!r}")
            _check_same(lq.input, current, name)
            if lq.weight.bits > 8:
                raise ValueError(f"layer {name!r}: {lq.weight.bits}-bit weights are not "
                                 "supported; the integer kernels hold weights as int8 (<= 8 bits)")
            w_q = quantize_weight(m.weight.data, lq.weight, prof)
            b_q = quantize_bias(None if m.bias is None else m.bias.data, lq.bias_scale)
            s_in, s_w, s_out = float(lq.input.scale), lq.weight.scale, float(lq.output.scale)
            if lq.activation_layer:
                fused.add(lq.activation_layer)
            common = dict(weight=w_q, bias=b_q, input_qparams=lq.input, weight_qparams=lq.weight,
                          output_qparams=lq.output, activation=lq.activation)
            if isinstance(m, nn.Conv2d):
                depthwise = m.groups == m.in_channels and m.weight.data.shape[1] == 1
                rule = prof.depthwise_conv if depthwise and m.groups > 1 else prof.conv
                ops.append(Conv2dOp(name, requant=prepare_requant(rule, s_in, s_w, s_out),
                                    stride=m.stride, padding=m.padding, dilation=m.dilation,
                                    groups=m.groups, **common))
            else:
                if not flat:
                    raise ValueError(f"Linear {name!r} needs a Flatten before it")
                ops.append(FullyConnectedOp(
                    name, requant=prepare_requant(prof.fully_connected, s_in, s_w, s_out),
                    **common))
            current = lq.output
        elif isinstance(m, nn.MaxPool2d):
            ops.append(MaxPoolOp(name, current, m.kernel_size, m.stride, m.padding))
        elif isinstance(m, nn.Flatten):
            ops.append(FlattenOp(name, current))
            flat = True
        elif isinstance(m, nn.BatchNorm2d):
            raise ValueError(f"unsupported layer {name!r} (BatchNorm2d): fold it into the conv "
                             "before it first (npquant.quant.fold_batch_norm)")
        elif isinstance(m, nn.ReLU):
            raise ValueError(f"unsupported layer {name!r} (ReLU): only a ReLU right after a "
                             "Conv2d/Linear is supported (fused as an integer clamp)")
        else:
            raise ValueError(f"unsupported layer {name!r} ({type(m).__name__})")
    ops.append(DequantizeOp("output", current))
    return IntegerModel(ops, prof, tuple(int(v) for v in input_shape), qparams)


def _zp(q: QParams) -> int:
    return int(q.zero_point)


def _check_same(a: QParams, b: QParams, name: str) -> None:
    if not (np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point)):
        raise ValueError(f"layer {name!r}: its input qparams {a} differ from the previous "
                         f"op's output {b}")
