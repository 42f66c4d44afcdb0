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

Residual networks (``npquant.models.resnet``) are graphs: the model is traced
(``npquant.quant.chain.trace_graph``), each op records which earlier ops feed it
(``IntegerModel.wiring``), and the residual join becomes an integer ADD with the profile's add
rule (``npquant.integer.add``; a following ReLU is fused as its clamp). The global average pool
is AVERAGE_POOL_2D over the whole plane with the input's qparams (TFLite's rule: the mean of
``q``, rounded by the profile's ``average_pool`` tie rule).

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
from npquant.quant.chain import INPUT, consumers, is_alias, resolve, trace_graph
from npquant.quant.ptq import ModelQParams, quantize_bias, quantize_weight
from npquant.requant import RequantParams, prepare_requant


@dataclass
class TraceEntry:
    """One op's tensors from ``IntegerModel.run(..., return_trace=True)``.

    ``acc``: the int32 accumulators of CONV_2D/FULLY_CONNECTED (before requantization) and the
    window sums of average pools, None otherwise (MAX_POOL_2D: its window maxima are its
    output).
    """

    index: int
    name: str
    op: str
    input: np.ndarray
    output: np.ndarray
    acc: np.ndarray | None = None
    other: np.ndarray | None = None  # ADD's second input


@dataclass
class IntOp:
    """Base of the integer ops: ``name`` (the float layer it came from) and ``op`` (its kind)."""

    name: str

    op = "OP"

    def run(self, x: np.ndarray, profile: Profile) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def infer(self, x: np.ndarray, profile: Profile, *others: np.ndarray) -> np.ndarray:
        """The output alone, as ``run`` computes it; CONV_2D and FULLY_CONNECTED override it to
        let the kernel skip storing the accumulators."""
        return self.run(x, profile, *others)[0]

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
        return dequantize(x, self.qparams, rule=profile.dequantize), None


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
        r = self._conv(x, profile, True)
        return r.out, r.acc

    def infer(self, x, profile, *others):
        return self._conv(x, profile, False)

    def infer_max_pooled(self, x, profile):
        """``infer`` followed by a 2x2 stride-2 MAX_POOL_2D, fused (``integer.conv2d_max_pool``:
        the same integers)."""
        return integer.conv2d_max_pool(x, self.weight, self.bias, **self._kwargs(profile))

    def _conv(self, x, profile, want_acc):
        return integer.conv2d(x, self.weight, self.bias, return_accumulators=want_acc,
                              **self._kwargs(profile))

    def _kwargs(self, profile):
        return dict(x_zero_point=_zp(self.input_qparams), out_zero_point=_zp(self.output_qparams),
                    w_zero_point=0, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, groups=self.groups, requant=self.requant,
                    profile=profile,
                    out_scale=float(self.output_qparams.scale),  # RELU6's bound
                    out_dtype=self.output_qparams.dtype, out_bits=self.output_qparams.bits,
                    activation=self.activation, layer=self.name)

    def describe(self):
        return {"stride": list(self.stride), "padding": list(self.padding),
                "dilation": list(self.dilation), "groups": self.groups,
                "activation": self.activation}


def _pools_next(ops: list[IntOp], i: int) -> bool:
    """True when ``ops[i]`` is a CONV_2D followed by a 2x2 stride-2 unpadded MAX_POOL_2D (in a
    chain: the pool is the conv output's only reader), which ``conv2d_max_pool`` fuses."""
    nxt = ops[i + 1] if i + 1 < len(ops) else None
    return isinstance(ops[i], Conv2dOp) and isinstance(nxt, MaxPoolOp) \
        and tuple(nxt.kernel_size) == (2, 2) and tuple(nxt.stride) == (2, 2) \
        and tuple(nxt.padding) == (0, 0)


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
        r = self._fc(x, profile, True)
        return r.out, r.acc

    def infer(self, x, profile, *others):
        return self._fc(x, profile, False)

    def _fc(self, x, profile, want_acc):
        return integer.fully_connected(x, self.weight, self.bias,
                                       x_zero_point=_zp(self.input_qparams),
                                       out_zero_point=_zp(self.output_qparams), w_zero_point=0,
                                       requant=self.requant, profile=profile,
                                       out_scale=float(self.output_qparams.scale),  # RELU6
                                       out_dtype=self.output_qparams.dtype,
                                       out_bits=self.output_qparams.bits,
                                       activation=self.activation, layer=self.name,
                                       return_accumulators=want_acc)

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
        # no accumulator: the window maxima of stored integers are the output itself (no
        # activation clamp here), so a trace would only hold them again, widened to int32
        return integer.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                  zero_point=_zp(self.qparams), profile=profile), None

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
class AvgPoolOp(IntOp):
    """AVERAGE_POOL_2D on the stored integers (qparams unchanged): ``round(sum q / count)``
    with the profile's ``average_pool`` tie rule; ``kernel_size=None`` pools the whole plane
    (the global average pool of a ResNet)."""

    qparams: QParams = None
    kernel_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    op = "AVERAGE_POOL_2D"

    def run(self, x, profile):
        if self.kernel_size is None:
            r = integer.global_avg_pool2d(x, zero_point=_zp(self.qparams),
                                          scale=float(self.qparams.scale), profile=profile,
                                          return_accumulators=True)
        else:
            r = integer.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                                   zero_point=_zp(self.qparams),
                                   scale=float(self.qparams.scale), profile=profile,
                                   count_include_pad=True, return_accumulators=True)
        return r.out, r.acc

    def describe(self):
        return {"kernel_size": None if self.kernel_size is None else list(self.kernel_size),
                "stride": None if self.stride is None else list(self.stride),
                "padding": list(self.padding)}


@dataclass
class AddOp(IntOp):
    """ADD of two quantized tensors (``npquant.integer.add``, the profile's add rule):
    ``y = clamp(Zy + M_out (M_a (a - Za) 2^ls + M_b (b - Zb) 2^ls))``; a fused ReLU clamps at
    ``Zy``, and the result is clamped to the output's bit range (``[-8, 7]`` for 4 bits)."""

    a_qparams: QParams = None
    b_qparams: QParams = None
    output_qparams: QParams = None
    activation: str | None = None
    op = "ADD"

    @property
    def qparams(self) -> QParams:
        """The output qparams (as pools and flatten expose theirs)."""
        return self.output_qparams

    def run(self, a, profile, b=None):
        qa, qb, qo = self.a_qparams, self.b_qparams, self.output_qparams
        r = integer.add(a, b, a_scale=float(qa.scale), a_zero_point=_zp(qa),
                        b_scale=float(qb.scale), b_zero_point=_zp(qb),
                        out_scale=float(qo.scale), out_zero_point=_zp(qo), profile=profile,
                        out_dtype=qo.dtype, activation=self.activation,
                        return_accumulators=True)
        return np.clip(r.out, qo.qmin, qo.qmax).astype(qo.dtype), r.acc

    def describe(self):
        return {"activation": self.activation}


@dataclass
class IntegerModel:
    """An ordered list of integer ops under one profile (QUANTIZE first, DEQUANTIZE last)."""

    ops: list[IntOp]
    profile: Profile
    input_shape: tuple[int, ...]  # (C, H, W) of one image
    qparams: ModelQParams = None
    meta: dict[str, Any] = field(default_factory=dict)
    # wiring[i]: the indices of the ops whose outputs op i takes (QUANTIZE takes the float
    # input, index -1); None for a chain (each op takes the previous one's output)
    wiring: list[tuple[int, ...]] | None = None

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
        if arr.shape[0] == 0:
            raise ValueError(f"x has no images (shape {arr.shape}); give at least one")
        trace: list[TraceEntry] = []
        h: np.ndarray = arr.astype(np.float32)
        values: dict[int, np.ndarray] = {-1: h}
        pooled = False
        for i, op in enumerate(self.ops[:-1]):
            srcs = (i - 1,) if self.wiring is None else self.wiring[i]
            h = values[srcs[0]]
            others = [values[j] for j in srcs[1:]]
            if return_trace:
                out, acc = op.run(h, self.profile, *others)
            elif pooled:  # this MAX_POOL_2D ran fused into the CONV_2D before it
                out, pooled = h, False
            elif self.wiring is None and _pools_next(self.ops, i):
                out, pooled = op.infer_max_pooled(h, self.profile), True
            else:
                out = op.infer(h, self.profile, *others)
            if return_trace:
                trace.append(TraceEntry(i, op.name, op.op, h, out, acc,
                                        others[0] if others else None))
            values[i] = out
            if self.wiring is None:
                values.pop(i - 1, None)
        last = len(self.ops) - 2 if self.wiring is None else self.wiring[-1][0]
        h = values[last]
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
        rows = [dict({"index": i, "name": op.name, "op": op.op}, **op.describe())
                for i, op in enumerate(self.ops)]
        if self.wiring is not None:
            for row, srcs in zip(rows, self.wiring, strict=True):
                row["inputs"] = list(srcs)
        return rows


def convert(model: nn.Module, qparams: ModelQParams, profile: Profile | str, *,
            input_shape: tuple[int, int, int]) -> IntegerModel:
    """The integer model of the BN-folded ``model`` with ``qparams`` under ``profile``.

    The model is traced on one zero image of ``input_shape`` (one image's ``(C, H, W)``), so
    chains and residual networks are both taken. Supported layers: Conv2d (groups allowed;
    depthwise uses the profile's depthwise rule), Linear (after a Flatten), Add (residual join),
    ReLU right after a conv/linear/add that nothing else reads (fused), MaxPool2d, AvgPool2d,
    AdaptiveAvgPool2d (global average), Flatten, Identity and Dropout (eval: identity).
    Anything else is a ValueError naming the layer and its type.
    """
    prof = get_profile(profile)
    if not isinstance(qparams, ModelQParams):
        raise TypeError(f"qparams must be ModelQParams, got {type(qparams).__name__}")
    if qparams.profile != prof.name:
        raise ValueError(f"qparams were chosen for profile {qparams.profile!r}, "
                         f"not {prof.name!r}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
    nodes = trace_graph(model, np.zeros((1,) + tuple(int(v) for v in input_shape), np.float32))
    current = {INPUT: qparams.input}  # tensor name -> qparams of the int tensor holding it
    ops: list[IntOp] = [QuantizeOp("input", qparams.input)]
    wiring: list[tuple[int, ...]] = [(-1,)]
    index = {INPUT: 0}  # tensor name -> the op computing it
    flat: set[str] = set()
    fused: set[str] = set()

    def emit(op: IntOp, srcs: list[str], *names: str) -> None:
        wiring.append(tuple(index[s] for s in srcs))
        ops.append(op)
        for n in names:
            index[n] = len(ops) - 1

    for node in nodes:
        m = node.module
        name = node.name
        if name in fused or is_alias(m):
            continue
        srcs = [resolve(nodes, i) for i in node.inputs]
        x_q = current.get(srcs[0])
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            lq = qparams.layers.get(name)
            if lq is None:
                raise ValueError(f"no qparams for layer {name!r}")
            _check_same(lq.input, x_q, name)
            if lq.weight.bits > 8:
                raise ValueError(f"layer {name!r}: {lq.weight.bits}-bit weights are not "
                                 "supported; the integer kernels hold weights as int8 (<= 8 bits)")
            w_q = quantize_weight(m.weight.data, lq.weight, prof)
            b_q = quantize_bias(None if m.bias is None else m.bias.data, lq.bias_scale)
            s_in, s_w, s_out = float(lq.input.scale), lq.weight.scale, float(lq.output.scale)
            common = dict(weight=w_q, bias=b_q, input_qparams=lq.input, weight_qparams=lq.weight,
                          output_qparams=lq.output, activation=lq.activation)
            if isinstance(m, nn.Conv2d):
                depthwise = m.groups == m.in_channels and m.weight.data.shape[1] == 1
                rule = prof.depthwise_conv if depthwise and m.groups > 1 else prof.conv
                op = Conv2dOp(name, requant=prepare_requant(rule, s_in, s_w, s_out),
                              stride=m.stride, padding=m.padding, dilation=m.dilation,
                              groups=m.groups, **common)
            else:
                if srcs[0] not in flat:
                    raise ValueError(f"Linear {name!r} needs a Flatten before it")
                op = FullyConnectedOp(
                    name, requant=prepare_requant(prof.fully_connected, s_in, s_w, s_out),
                    **common)
                flat.add(name)
            out_q, act_layer = lq.output, lq.activation_layer
        elif isinstance(m, nn.Add):
            aq = qparams.adds.get(name)
            if aq is None:
                raise ValueError(f"no qparams for ADD {name!r}")
            _check_same(aq.a, x_q, name)
            _check_same(aq.b, current.get(srcs[1]), name)
            if aq.a.dtype != aq.b.dtype:
                raise ValueError(f"ADD {name!r}: its inputs are stored as {aq.a.dtype} and "
                                 f"{aq.b.dtype}; give both the same bit width class (<= 8 or "
                                 "> 8 bits)")
            op = AddOp(name, a_qparams=aq.a, b_qparams=aq.b, output_qparams=aq.output,
                       activation=aq.activation)
            out_q, act_layer = aq.output, aq.activation_layer
        elif isinstance(m, nn.MaxPool2d):
            op, out_q, act_layer = MaxPoolOp(name, x_q, m.kernel_size, m.stride, m.padding), \
                x_q, None
        elif isinstance(m, nn.AvgPool2d):
            op, out_q, act_layer = AvgPoolOp(name, x_q, m.kernel_size, m.stride, m.padding), \
                x_q, None
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            op, out_q, act_layer = AvgPoolOp(name, x_q), x_q, None
        elif isinstance(m, nn.Flatten):
            op, out_q, act_layer = FlattenOp(name, x_q), x_q, None
            flat.add(name)
        elif isinstance(m, nn.BatchNorm2d):
            raise ValueError(f"unsupported layer {name!r} (BatchNorm2d): fold it into the conv "
                             "before it first (npquant.quant.fold_batch_norm)")
        elif isinstance(m, nn.ReLU):
            raise ValueError(f"unsupported layer {name!r} (ReLU): only a ReLU right after a "
                             "Conv2d/Linear/Add is supported (fused as an integer clamp)")
        else:
            raise ValueError(f"unsupported layer {name!r} ({type(m).__name__})")
        names = (name, act_layer) if act_layer else (name,)
        emit(op, srcs, *names)
        for n in names:
            current[n] = out_q
        if act_layer:
            fused.add(act_layer)
    last = resolve(nodes, nodes[-1].name)
    ops.append(DequantizeOp("output", current[last]))
    wiring.append((index[last],))
    chain = all(w == (i - 1,) for i, w in enumerate(wiring))
    return IntegerModel(ops, prof, tuple(int(v) for v in input_shape), qparams,
                        wiring=None if chain else wiring)


CONVERTIBLE = (nn.Conv2d, nn.Linear, nn.Add, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d,
               nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Dropout, nn.BatchNorm2d)


def check_convertible(model: nn.Module, input_shape: tuple[int, int, int]) -> None:
    """Trace ``model`` on one zero image and raise ValueError naming the first layer ``convert``
    cannot take (its type, or a ReLU/BatchNorm2d in a place where it cannot be fused/folded).
    Cheap enough to run before training (the pipeline does)."""
    nodes = trace_graph(model, np.zeros((1,) + tuple(int(v) for v in input_shape), np.float32))
    readers = consumers(nodes)
    by_name = {n.name: n.module for n in nodes}
    for n in nodes:
        if not isinstance(n.module, CONVERTIBLE):
            raise ValueError(f"unsupported layer {n.name!r} ({type(n.module).__name__}); "
                             f"convert takes {[c.__name__ for c in CONVERTIBLE]}")
        src = resolve(nodes, n.inputs[0]) if n.inputs else None
        src_m = by_name.get(src)
        if isinstance(n.module, nn.ReLU) and not (
                isinstance(src_m, (nn.Conv2d, nn.Linear, nn.Add, nn.BatchNorm2d))
                and readers.get(src) == [n.name]):
            raise ValueError(f"layer {n.name!r} (ReLU) does not follow a Conv2d/Linear/Add whose "
                             "output only it reads, so it cannot be fused")
        if isinstance(n.module, nn.BatchNorm2d) and not (
                isinstance(src_m, nn.Conv2d) and readers.get(src) == [n.name]):
            raise ValueError(f"layer {n.name!r} (BatchNorm2d) does not follow a Conv2d whose "
                             "output only it reads, so it cannot be folded")


def _zp(q: QParams) -> int:
    return int(q.zero_point)


def _check_same(a: QParams, b: QParams | None, name: str) -> None:
    if b is None:
        raise ValueError(f"layer {name!r}: its input has no quantized producer")
    if not (np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point)):
        raise ValueError(f"layer {name!r}: its input qparams {a} differ from the previous "
                         f"op's output {b}")
