"""Export an ``IntegerModel`` as a whole int8 ``.tflite`` flatbuffer (no TensorFlow, no converter).

Each npquant op becomes the TFLite operator with the same arithmetic, carrying exactly the
model's integers (weights, int32 bias) and quantization parameters, so the interpreter under
the matching kernels reproduces ``IntegerModel.run`` bit for bit (reference kernels <-> profile
``tflite``, the XNNPACK delegate <-> ``tflite-xnnpack``; docs/import_export.md).

Layouts: npquant is NCHW, TFLite NHWC. Every 4-D activation ``x`` of npquant is the TFLite tensor
``t`` with ``x = t.transpose(0, 3, 1, 2)``; weights are transposed as in ``npquant.interop.tflite``
(OIHW -> OHWI, depthwise (C m, 1, KH, KW) -> (1, KH, KW, C m)). npquant's FLATTEN orders the
features ``c H W + h W + w`` (NCHW), so it is exported as TRANSPOSE (NHWC -> NCHW) then RESHAPE,
and the FC weights apply as trained.

    QUANTIZE  -> QUANTIZE (float32 NHWC input)        CONV_2D    -> CONV_2D / DEPTHWISE_CONV_2D
    FULLY_CONNECTED -> FULLY_CONNECTED                 MAX_POOL_2D / AVERAGE_POOL_2D -> the same
    ADD       -> ADD                                    FLATTEN    -> [TRANSPOSE] RESHAPE
    DEQUANTIZE -> DEQUANTIZE (float32 output)

A fused ReLU / ReLU6 becomes the operator's fused activation (TFLite derives the same integer
clamp from the output qparams). Explicit padding that TFLite's SAME does not produce becomes a
PAD operator (which pads int8 with the zero point, real 0) before a VALID conv or average pool.
The ops of ``npquant.intops`` (RESHAPE, PAD, CONCATENATION, MEAN, SOFTMAX, LOGISTIC, TRANSPOSE)
export to their TFLite operators. Anything else is a ValueError naming the op and its index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npquant.convert import (
    AddOp,
    AvgPoolOp,
    Conv2dOp,
    DequantizeOp,
    FlattenOp,
    FullyConnectedOp,
    IntegerModel,
    MaxPoolOp,
    QuantizeOp,
)
from npquant.integer.conv import conv_padding
from npquant.interop._common import import_framework
from npquant.interop.tflite import _schema, tflite_padding
from npquant.intops import (
    AvgPool2dOp,
    ConcatOp,
    LogisticOp,
    MeanOp,
    PadOp,
    ReshapeOp,
    SoftmaxOp,
    TransposeOp,
)
from npquant.qparams import QParams

INT8, INT32, FLOAT32 = 9, 2, 0  # schema TensorType
# (builtin code, op version) of every operator the exporter writes: the int8 versions
OPCODES = {"QUANTIZE": (114, 2), "DEQUANTIZE": (6, 2), "CONV_2D": (3, 3),
           "DEPTHWISE_CONV_2D": (4, 3), "FULLY_CONNECTED": (9, 4), "ADD": (0, 2),
           "AVERAGE_POOL_2D": (1, 2), "MAX_POOL_2D": (17, 2), "RESHAPE": (22, 1),
           "TRANSPOSE": (39, 2), "PAD": (34, 2), "CONCATENATION": (2, 2), "MEAN": (40, 2),
           "SOFTMAX": (25, 2), "LOGISTIC": (14, 2)}
ACTIVATION_CODES = {None: 0, "relu": 1, "relu6": 3}
NHWC_TO_NCHW = (0, 3, 1, 2)


def to_tflite_layout(x: np.ndarray) -> np.ndarray:
    """npquant's NCHW activation as TFLite's NHWC (other ranks unchanged)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def to_npquant_layout(t: np.ndarray) -> np.ndarray:
    """TFLite's NHWC activation as npquant's NCHW (other ranks unchanged)."""
    return np.ascontiguousarray(t.transpose(NHWC_TO_NCHW)) if t.ndim == 4 else t


def tflite_shape(shape: Sequence[int]) -> list[int]:
    """The TFLite shape of an npquant activation shape (NCHW -> NHWC for 4-D)."""
    s = [int(v) for v in shape]
    return [s[0], s[2], s[3], s[1]] if len(s) == 4 else s


def quantization(q: QParams, *, axis: int = 0):
    """The schema's QuantizationParametersT of ``q`` (per-channel along ``axis`` if 1-D)."""
    s = _schema()
    t = s.QuantizationParametersT()
    t.scale = [float(v) for v in np.atleast_1d(q.scale).astype(np.float32)]
    t.zeroPoint = [int(v) for v in np.atleast_1d(q.zero_point)]
    t.quantizedDimension = axis
    return t


class ModelBuilder:
    """Tensors, buffers, operator codes and operators of one subgraph under construction."""

    def __init__(self) -> None:
        s = _schema()
        self.s = s
        self.tensors: list = []
        self.buffers = [s.BufferT()]  # buffer 0: the empty sentinel
        self.codes: list[str] = []
        self.operators: list = []
        self.names: set[str] = set()

    def tensor(self, name: str, shape: Sequence[int], ttype: int, quant=None,
               data: np.ndarray | None = None) -> int:
        """Add a tensor (a constant when ``data`` is given); returns its index."""
        t = self.s.TensorT()
        base, k = name, 1
        while name in self.names:  # tensor names stay unique (they key the comparison)
            name, k = f"{base}#{k}", k + 1
        self.names.add(name)
        t.name, t.shape, t.type, t.quantization = name, [int(v) for v in shape], ttype, quant
        if data is not None:
            b = self.s.BufferT()
            b.data = np.ascontiguousarray(data).view(np.uint8).ravel()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def int32_constant(self, name: str, values: Sequence[int]) -> int:
        """A 1-D int32 constant (shapes, axes, permutations)."""
        arr = np.asarray(values, dtype=np.int32).reshape(-1)
        return self.tensor(name, arr.shape, INT32, None, arr)

    def operator(self, kind: str, inputs: Sequence[int], outputs: Sequence[int],
                 options_type: int = 0, options=None) -> None:
        """Append an operator of ``kind`` (a key of ``OPCODES``)."""
        if kind not in self.codes:
            self.codes.append(kind)
        op = self.s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.codes.index(kind), list(inputs), \
            list(outputs)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.operators.append(op)

    def finish(self, inputs: Sequence[int], outputs: Sequence[int], description: str) -> bytes:
        """Serialize the model (identifier ``TFL3``)."""
        s = self.s
        codes = []
        for kind in self.codes:
            c = s.OperatorCodeT()
            code, version = OPCODES[kind]
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), version
            codes.append(c)
        sub = s.SubGraphT()
        sub.tensors, sub.operators, sub.name = self.tensors, self.operators, "main"
        sub.inputs, sub.outputs = list(inputs), list(outputs)
        model = s.ModelT()
        model.version, model.operatorCodes, model.subgraphs = 3, codes, [sub]
        model.buffers, model.description = self.buffers, description
        flatbuffers = import_framework("flatbuffers", "npquant.interop.tflite_export")
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _int8_qparams(q: QParams, what: str) -> QParams:
    if q is None or q.axis is not None or q.bits != 8 or not q.signed:
        raise ValueError(f"{what}: TFLite export needs per-tensor signed 8-bit qparams, got {q}")
    return q


class _Exporter:
    """Walks an IntegerModel and emits one or more TFLite operators per op."""

    def __init__(self, model: IntegerModel, shapes: list[tuple[int, ...]]) -> None:
        self.m = model
        self.shapes = shapes  # npquant shape of each op's output (batch 1)
        self.b = ModelBuilder()
        self.out_tensor: dict[int, int] = {}  # op index -> TFLite tensor of its output
        self.graph_input = -1

    def activation_tensor(self, i: int, name: str, q: QParams | None, ttype: int = INT8) -> int:
        quant = None if q is None else quantization(_int8_qparams(q, f"op {i} ({name})"))
        return self.b.tensor(name, tflite_shape(self.shapes[i]), ttype, quant)

    def padded(self, i: int, name: str, src: int, q: QParams, pads: tuple[int, int, int, int]
               ) -> int:
        """A PAD operator (with the zero point) before op ``i``; returns the padded tensor."""
        n, h, w, c = self.b.tensors[src].shape
        t, bo, le, ri = pads
        out = self.b.tensor(f"{name}.pad", [n, h + t + bo, w + le + ri, c], INT8,
                            quantization(q))
        paddings = self.b.tensor(f"{name}.paddings", [4, 2], INT32, None,
                                 np.array([[0, 0], [t, bo], [le, ri], [0, 0]], np.int32))
        s = self.b.s
        self.b.operator("PAD", [src, paddings], [out], s.BuiltinOptions.PadOptions,
                        s.PadOptionsT())
        return out

    def window_padding(self, i: int, name: str, src: int, q: QParams, pads, in_hw, k, stride,
                       dilation, pad_allowed: bool) -> tuple[int, int]:
        """TFLite padding code (0 SAME, 1 VALID) for explicit ``pads``, adding a PAD operator
        when neither gives them (``pad_allowed``: padding with the zero point is exact)."""
        if pads == (0, 0, 0, 0):
            return 1, src
        if pads == tflite_padding("SAME", in_hw, k, stride, dilation)[1]:
            return 0, src
        if not pad_allowed:
            raise ValueError(f"op {i} ({name}): padding {pads} is not TFLite's SAME for this "
                             "shape, and padding with the zero point would change the result")
        return 1, self.padded(i, name, src, q, pads)

    def emit(self, i: int, op, srcs: tuple[int, ...]) -> None:
        s, b = self.b.s, self.b
        ins = [self.out_tensor[j] if j >= 0 else self.graph_input for j in srcs]
        name = op.name
        if isinstance(op, QuantizeOp):
            shape = tflite_shape((1,) + tuple(self.m.input_shape))
            self.graph_input = b.tensor(f"{op.name}.float", shape, FLOAT32)
            out = self.activation_tensor(i, name, op.qparams)
            b.operator("QUANTIZE", [self.graph_input], [out])
        elif isinstance(op, DequantizeOp):
            out = b.tensor(name, tflite_shape(self.shapes[i]), FLOAT32)
            b.operator("DEQUANTIZE", ins, [out])
        elif isinstance(op, Conv2dOp):
            out = self._conv(i, op, ins[0])
        elif isinstance(op, FullyConnectedOp):
            out = self._fully_connected(i, op, ins[0])
        elif isinstance(op, (MaxPoolOp, AvgPoolOp)):
            out = self._pool(i, op, ins[0])
        elif isinstance(op, AddOp):
            _int8_qparams(op.a_qparams, f"op {i} ({name}) input a")
            _int8_qparams(op.b_qparams, f"op {i} ({name}) input b")
            out = self.activation_tensor(i, name, op.output_qparams)
            opts = s.AddOptionsT()
            opts.fusedActivationFunction = _activation(i, op)
            b.operator("ADD", ins, [out], s.BuiltinOptions.AddOptions, opts)
        elif isinstance(op, FlattenOp):
            out = self._flatten(i, op, ins[0])
        elif type(op) in _NEW_OPS:
            out = getattr(self, _NEW_OPS[type(op)])(i, op, ins)
        else:
            raise ValueError(f"op {i} ({name}, {op.op}) has no TFLite export")
        self.out_tensor[i] = out

    def _conv(self, i: int, op: Conv2dOp, src: int) -> int:
        s, b = self.b.s, self.b
        w = op.weight
        cin = self.b.tensors[src].shape[3]
        out_ch, _, kh, kw = w.shape
        q_in = _int8_qparams(op.input_qparams, f"op {i} ({op.name}) input")
        depthwise = op.groups > 1 and op.groups == cin and w.shape[1] == 1
        if op.groups != 1 and not depthwise:
            raise ValueError(f"op {i} ({op.name}): grouped conv with groups={op.groups} "
                             "(not depthwise) has no TFLite operator")
        in_hw = tuple(self.b.tensors[src].shape[1:3])
        pads = conv_padding(op.padding, in_hw, (kh, kw), op.stride, op.dilation)
        pcode, src = self.window_padding(i, op.name, src, q_in, pads, in_hw, (kh, kw),
                                         op.stride, op.dilation, pad_allowed=True)
        w_scale = np.atleast_1d(op.weight_qparams.scale).astype(np.float32)
        if depthwise:
            w_t, axis = np.transpose(w, (1, 2, 3, 0)), 3  # (Cm,1,KH,KW) -> (1,KH,KW,Cm)
            opts_type, opts = s.BuiltinOptions.DepthwiseConv2DOptions, \
                s.DepthwiseConv2DOptionsT()
            opts.depthMultiplier = out_ch // cin
            kind = "DEPTHWISE_CONV_2D"
        else:
            w_t, axis = np.transpose(w, (0, 2, 3, 1)), 0  # OIHW -> OHWI
            opts_type, opts = s.BuiltinOptions.Conv2DOptions, s.Conv2DOptionsT()
            kind = "CONV_2D"
        opts.padding = pcode
        opts.strideH, opts.strideW = op.stride
        opts.dilationHFactor, opts.dilationWFactor = op.dilation
        opts.fusedActivationFunction = _activation(i, op)
        tw = b.tensor(f"{op.name}.weight", w_t.shape, INT8,
                      _weight_quant(w_scale, axis), np.ascontiguousarray(w_t))
        tb = b.tensor(f"{op.name}.bias", op.bias.shape, INT32,
                      _bias_quant(q_in, w_scale), op.bias.astype(np.int32))
        out = self.activation_tensor(i, op.name, op.output_qparams)
        b.operator(kind, [src, tw, tb], [out], opts_type, opts)
        return out

    def _fully_connected(self, i: int, op: FullyConnectedOp, src: int) -> int:
        s, b = self.b.s, self.b
        q_in = _int8_qparams(op.input_qparams, f"op {i} ({op.name}) input")
        w_scale = np.atleast_1d(op.weight_qparams.scale).astype(np.float32)
        tw = b.tensor(f"{op.name}.weight", op.weight.shape, INT8, _weight_quant(w_scale, 0),
                      np.ascontiguousarray(op.weight))
        tb = b.tensor(f"{op.name}.bias", op.bias.shape, INT32, _bias_quant(q_in, w_scale),
                      op.bias.astype(np.int32))
        opts = s.FullyConnectedOptionsT()
        opts.fusedActivationFunction = _activation(i, op)
        out = self.activation_tensor(i, op.name, op.output_qparams)
        b.operator("FULLY_CONNECTED", [src, tw, tb], [out],
                   s.BuiltinOptions.FullyConnectedOptions, opts)
        return out

    def _pool(self, i: int, op, src: int) -> int:
        s, b = self.b.s, self.b
        q = _int8_qparams(op.qparams, f"op {i} ({op.name})")
        in_hw = tuple(self.b.tensors[src].shape[1:3])
        is_max = isinstance(op, MaxPoolOp)
        if not is_max and op.kernel_size is None:  # global average: one window of H x W
            k, stride, pads = in_hw, (1, 1), (0, 0, 0, 0)
        else:
            k = tuple(op.kernel_size)
            stride = tuple(op.stride) if op.stride is not None else k
            pads = conv_padding(op.padding, in_hw, k, stride, (1, 1))
        # Max pool ignores padded taps, as TFLite's SAME does; npquant's AVERAGE_POOL_2D counts
        # them as the zero point (count_include_pad), which a PAD with Z then VALID reproduces.
        pcode, src = self.window_padding(i, op.name, src, q, pads, in_hw, k, stride, (1, 1),
                                         pad_allowed=not is_max)
        opts = s.Pool2DOptionsT()
        opts.padding = pcode
        opts.strideH, opts.strideW = stride
        opts.filterHeight, opts.filterWidth = k
        opts.fusedActivationFunction = 0
        out = self.activation_tensor(i, op.name, q)
        b.operator("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [src], [out],
                   s.BuiltinOptions.Pool2DOptions, opts)
        return out

    def _flatten(self, i: int, op: FlattenOp, src: int) -> int:
        s, b = self.b.s, self.b
        q = _int8_qparams(op.qparams, f"op {i} ({op.name})")
        shape = b.tensors[src].shape
        if len(shape) == 4 and shape[1] * shape[2] > 1:
            # npquant's feature order is NCHW: transpose the NHWC tensor before the reshape
            n, h, w, c = shape
            nchw = b.tensor(f"{op.name}.nchw", [n, c, h, w], INT8, quantization(q))
            perm = b.int32_constant(f"{op.name}.perm", NHWC_TO_NCHW)
            b.operator("TRANSPOSE", [src, perm], [nchw], s.BuiltinOptions.TransposeOptions,
                       s.TransposeOptionsT())
            src = nchw
        features = int(np.prod(shape[1:]))
        new_shape = b.int32_constant(f"{op.name}.shape", [-1, features])
        opts = s.ReshapeOptionsT()
        opts.newShape = [-1, features]
        out = self.activation_tensor(i, op.name, q)
        b.operator("RESHAPE", [src, new_shape], [out], s.BuiltinOptions.ReshapeOptions, opts)
        return out


    # -- the ops of npquant.intops --------------------------------------------------------------

    def _reshape(self, i: int, op: ReshapeOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        if op.order != "nhwc" and len(self.shapes[i]) == 4:
            raise ValueError(f"op {i} ({op.name}): a 4-D RESHAPE in NCHW order has no TFLite "
                             "operator (TFLite reshapes NHWC)")
        shape = [-1] + [int(v) for v in op.shape]
        new_shape = b.int32_constant(f"{op.name}.shape", shape)
        opts = s.ReshapeOptionsT()
        opts.newShape = shape
        out = self.activation_tensor(i, op.name, op.qparams)
        b.operator("RESHAPE", [ins[0], new_shape], [out], s.BuiltinOptions.ReshapeOptions, opts)
        return out

    def _transpose(self, i: int, op: TransposeOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        if op.order != "nhwc":
            raise ValueError(f"op {i} ({op.name}): TRANSPOSE in NCHW order is not exported")
        perm = b.int32_constant(f"{op.name}.perm", op.perm)
        out = self.activation_tensor(i, op.name, op.qparams)
        b.operator("TRANSPOSE", [ins[0], perm], [out], s.BuiltinOptions.TransposeOptions,
                   s.TransposeOptionsT())
        return out

    def _pad(self, i: int, op: PadOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        pads = [list(p) for p in op.pads]
        if len(pads) == 4:
            pads = [pads[0], pads[2], pads[3], pads[1]]  # NCHW -> NHWC order
        paddings = b.tensor(f"{op.name}.paddings", [len(pads), 2], INT32, None,
                            np.asarray(pads, np.int32))
        out = self.activation_tensor(i, op.name, op.qparams)
        b.operator("PAD", [ins[0], paddings], [out], s.BuiltinOptions.PadOptions,
                   s.PadOptionsT())
        return out

    def _concat(self, i: int, op: ConcatOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        ndim = len(self.shapes[i])
        axis = op.axis % ndim
        if ndim == 4:
            axis = (0, 3, 1, 2)[axis]  # NCHW axis -> NHWC axis
        opts = s.ConcatenationOptionsT()
        opts.axis, opts.fusedActivationFunction = axis, 0
        out = self.activation_tensor(i, op.name, op.qparams)
        b.operator("CONCATENATION", ins, [out], s.BuiltinOptions.ConcatenationOptions, opts)
        return out

    def _mean(self, i: int, op: MeanOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        _int8_qparams(op.input_qparams, f"op {i} ({op.name}) input")
        axes = b.int32_constant(f"{op.name}.axes", [1, 2])
        opts = s.ReducerOptionsT()
        opts.keepDims = bool(op.keep_dims)
        out = self.activation_tensor(i, op.name, op.output_qparams)
        b.operator("MEAN", [ins[0], axes], [out], s.BuiltinOptions.ReducerOptions, opts)
        return out

    def _avg_pool(self, i: int, op: AvgPool2dOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        src = ins[0]
        in_hw = tuple(b.tensors[src].shape[1:3])
        pads = conv_padding(op.padding, in_hw, op.kernel_size, op.stride, (1, 1))
        pcode, src = self.window_padding(i, op.name, src, op.qparams, pads, in_hw,
                                         op.kernel_size, op.stride, (1, 1), pad_allowed=False)
        opts = s.Pool2DOptionsT()
        opts.padding = pcode
        opts.strideH, opts.strideW = op.stride
        opts.filterHeight, opts.filterWidth = op.kernel_size
        opts.fusedActivationFunction = _activation(i, op)
        out = self.activation_tensor(i, op.name, op.qparams)
        b.operator("AVERAGE_POOL_2D", [src], [out], s.BuiltinOptions.Pool2DOptions, opts)
        return out

    def _softmax(self, i: int, op: SoftmaxOp, ins: list[int]) -> int:
        s, b = self.b.s, self.b
        _int8_qparams(op.input_qparams, f"op {i} ({op.name}) input")
        opts = s.SoftmaxOptionsT()
        opts.beta = float(op.beta)
        out = self.activation_tensor(i, op.name, op.output_qparams)
        b.operator("SOFTMAX", ins, [out], s.BuiltinOptions.SoftmaxOptions, opts)
        return out

    def _logistic(self, i: int, op: LogisticOp, ins: list[int]) -> int:
        _int8_qparams(op.input_qparams, f"op {i} ({op.name}) input")
        out = self.activation_tensor(i, op.name, op.output_qparams)
        self.b.operator("LOGISTIC", ins, [out])
        return out


_NEW_OPS = {ReshapeOp: "_reshape", TransposeOp: "_transpose", PadOp: "_pad", ConcatOp: "_concat",
            MeanOp: "_mean", AvgPool2dOp: "_avg_pool", SoftmaxOp: "_softmax",
            LogisticOp: "_logistic"}


def _activation(i: int, op) -> int:
    act = getattr(op, "activation", None)
    if act not in ACTIVATION_CODES:
        raise ValueError(f"op {i} ({op.name}): fused activation {act!r} has no TFLite code")
    return ACTIVATION_CODES[act]


def _weight_quant(w_scale: np.ndarray, axis: int):
    s = _schema()
    t = s.QuantizationParametersT()
    t.scale = [float(v) for v in w_scale]
    t.zeroPoint = [0] * len(w_scale)
    t.quantizedDimension = axis
    return t


def _bias_quant(q_in: QParams, w_scale: np.ndarray):
    # S_bias = S_in S_w[c] (Z = 0); TFLite only checks it approximately, the int32 bias is exact
    return _weight_quant(np.float32(q_in.scale) * w_scale.astype(np.float32), 0)


def export_tflite(model: IntegerModel, path: str | os.PathLike | None = None) -> bytes:
    """The ``.tflite`` flatbuffer of ``model`` (module docstring); also written to ``path``.

    The model has one float32 NHWC input of batch 1 (the runner resizes it) and one float32
    output (after DEQUANTIZE). Every op output tensor is named after the npquant op, so a
    per-layer comparison can find it. Raises ValueError naming the op and its index for an op
    or parameter TFLite cannot express. The file is written only after the whole model was
    built (atomically: a temporary sibling then one rename).
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"model must be an IntegerModel, got {type(model).__name__}")
    if not isinstance(model.ops[0], QuantizeOp) or not isinstance(model.ops[-1], DequantizeOp):
        raise ValueError("model must start with QUANTIZE and end with DEQUANTIZE")
    probe = np.zeros((1,) + tuple(model.input_shape), np.float32)
    logits, trace = model.run(probe, return_trace=True)
    shapes = [e.output.shape for e in trace] + [logits.shape]
    ex = _Exporter(model, shapes)
    for i, op in enumerate(model.ops):
        srcs = ((i - 1,) if model.wiring is None else tuple(model.wiring[i]))
        ex.emit(i, op, srcs)
    data = ex.b.finish([ex.graph_input], [ex.out_tensor[len(model.ops) - 1]],
                       f"npquant IntegerModel, profile {model.profile.name} "
                       f"{model.profile.version}")
    if path is not None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return data
