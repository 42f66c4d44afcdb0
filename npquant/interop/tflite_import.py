"""Import a fully-quantized int8 ``.tflite`` model as an ``IntegerModel``.

The flatbuffer is parsed with the schema module that ships with LiteRT
(``ai_edge_litert.schema_py_generated``, the object API: ``ModelT``), the same optional
``interop`` dependency as the single-op bridge; no TensorFlow. Every operator becomes the npquant
op with the same arithmetic, under the profile the caller names (``profile=``, default
``"tflite"``: the reference kernels), and the integer tensors are taken as they are: int8
weights, int32 bias, the float32 scales and zero points of each tensor.

Layouts: TFLite is NHWC, npquant NCHW. Weights are transposed (OHWI -> OIHW, depthwise
(1, KH, KW, C m) -> (C m, 1, KH, KW)); padding SAME/VALID becomes explicit pads; a PAD, a
CONCATENATION axis and MEAN axes are converted to NCHW; RESHAPE and TRANSPOSE keep TFLite's
meaning through ``order="nhwc"`` (``npquant.intops``). Each op is named after its output tensor,
so ``npquant.interop.tflite_compare`` can pair it with the interpreter's tensor.

Operators: QUANTIZE (float32 -> int8, first) and DEQUANTIZE (last), CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED (a 4-D input is flattened in NHWC order, as TFLite does, by an npquant RESHAPE
named ``<fc>.flatten`` listed in ``meta["npquant_only"]``), ADD (same shapes), MAX_POOL_2D,
AVERAGE_POOL_2D, MEAN (over H and W), RESHAPE, SQUEEZE, TRANSPOSE, PAD, PADV2 (with the zero
point), CONCATENATION (equal qparams), SOFTMAX (2-D), LOGISTIC; fused NONE / RELU / RELU6. A
model with int8 input or output gets an npquant QUANTIZE / DEQUANTIZE at that end
(``meta["tflite_int8_input"]`` / ``_output``).
Everything else is refused with a ValueError that names the operator and its index: a float
model, an unsupported op or activation, per-axis quantization on another axis than the
kernel's output channels, a truncated or corrupt file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from npquant.convert import (
    AddOp,
    Conv2dOp,
    DequantizeOp,
    FullyConnectedOp,
    IntegerModel,
    IntOp,
    MaxPoolOp,
    QuantizeOp,
)
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
from npquant.profiles import Profile, get_profile
from npquant.qparams import QParams
from npquant.requant import prepare_requant

INT8, INT32, FLOAT32 = 9, 2, 0
_TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 7: "INT16",
               9: "INT8"}
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}
_ACTIVATION_NAMES = {2: "RELU_N1_TO_1", 4: "TANH", 5: "SIGN_BIT"}
# The TFLite kernel sequence of MEAN and SOFTMAX on each profile's kernel path (measured,
# tests/oracles/test_tflite_new_ops.py; docs/import_export.md). None: not modelled.
MEAN_SCHEME = {"tflite": ("reference", "reference"), "tflite-xnnpack": ("xnnpack", "xnnpack"),
               "tflite-optimized": ("optimized", "reference")}  # (keep_dims, not keep_dims)
SOFTMAX_SCHEME = {"tflite": "reference", "tflite-xnnpack": "optimized",
                  "tflite-optimized": "optimized"}
SUPPORTED = ("QUANTIZE", "DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD",
             "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "RESHAPE", "SQUEEZE", "TRANSPOSE", "PAD",
             "PADV2", "CONCATENATION", "SOFTMAX", "LOGISTIC")


class _Tensor:
    """One tensor of the subgraph: name, TFLite shape, type, qparams, constant data."""

    def __init__(self, index: int, t, data: np.ndarray | None) -> None:
        self.index = index
        self.name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or index)
        self.shape = tuple(int(v) for v in (t.shape if t.shape is not None else ()))
        self.type = int(t.type)
        q = t.quantization
        self.scale = None if q is None or q.scale is None else np.asarray(q.scale, np.float32)
        self.zero_point = None if q is None or q.zeroPoint is None else \
            np.asarray(q.zeroPoint, np.int64)
        self.axis = 0 if q is None else int(q.quantizedDimension)
        self.data = data

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type}")


def _read(source: bytes | bytearray | str | os.PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    raise TypeError(f"source must be bytes or a path, got {type(source).__name__}")


def _parse(data: bytes):
    """The schema's ModelT of ``data``, or ValueError for a file that is not a whole .tflite."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"not a .tflite flatbuffer: {len(data)} bytes, identifier "
                         f"{data[4:8]!r} (expected b'TFL3'); the file is truncated or not TFLite")
    s = _schema()
    try:
        model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # the flatbuffer reader raises struct/index errors on bad offsets
        raise ValueError(f"truncated or corrupt .tflite ({len(data)} bytes): "
                         f"{type(exc).__name__}: {exc}") from None
    if not model.subgraphs:
        raise ValueError("the .tflite model has no subgraph")
    return model


def _tensors(model, data: bytes) -> list[_Tensor]:
    sub = model.subgraphs[0]
    out = []
    for i, t in enumerate(sub.tensors or []):
        arr = None
        if t.buffer and t.buffer < len(model.buffers or []):
            b = model.buffers[t.buffer]
            if b.offset and b.offset > 1:  # large models keep buffers after the flatbuffer
                if b.offset + b.size > len(data):
                    raise ValueError(f"tensor {i} ({t.name!r}): its buffer lies beyond the end "
                                     f"of the file ({len(data)} bytes): truncated")
                arr = np.frombuffer(data, np.uint8, int(b.size), int(b.offset))
            elif b.data is not None and len(b.data):
                arr = np.asarray(b.data, np.uint8)
        tensor = _Tensor(i, t, arr)
        if arr is not None:
            dtype = {INT8: np.int8, INT32: np.int32, FLOAT32: np.float32}.get(tensor.type)
            if dtype is None:
                raise ValueError(f"tensor {i} ({tensor.name!r}) is a {tensor.type_name} "
                                 "constant; npquant imports int8 / int32 constants only")
            n = int(np.prod(tensor.shape)) if tensor.shape else 1
            if arr.size != n * np.dtype(dtype).itemsize:
                raise ValueError(f"tensor {i} ({tensor.name!r}): buffer of {arr.size} bytes for "
                                 f"shape {list(tensor.shape)} {np.dtype(dtype)}: truncated or "
                                 "corrupt")
            tensor.data = np.frombuffer(arr.tobytes(), dtype).reshape(tensor.shape)
        out.append(tensor)
    return out


def _op_name(model, op) -> str:
    s = _schema()
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if builtin == s.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return f"CUSTOM({custom.decode() if isinstance(custom, bytes) else custom})"
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}")


def to_nchw_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """npquant's shape of a TFLite activation shape (NHWC -> NCHW for 4-D)."""
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else tuple(shape)


class _Importer:
    def __init__(self, model, tensors: list[_Tensor], profile: Profile) -> None:
        self.model, self.t, self.prof = model, tensors, profile
        self.ops: list[IntOp] = []
        self.wiring: list[tuple[int, ...]] = []
        self.producer: dict[int, int] = {}  # tensor index -> npquant op index
        self.names: set[str] = set()
        self.meta: dict[str, Any] = {}
        self.where = ""

    # -- checks ------------------------------------------------------------------------------
    def fail(self, msg: str) -> ValueError:
        return ValueError(f"{self.where}: {msg}")

    def act(self, ti: int, what: str) -> QParams:
        """Per-tensor int8 qparams of the activation tensor ``ti``."""
        t = self.t[ti]
        if t.type == FLOAT32:
            raise self.fail(f"runs in float32 ({what} tensor {t.name!r} is FLOAT32); npquant "
                            "imports fully-quantized int8 models only")
        if t.type != INT8:
            raise self.fail(f"{what} tensor {t.name!r} is {t.type_name}; only int8 activations "
                            "are supported")
        if t.scale is None or t.scale.size == 0:
            raise self.fail(f"{what} tensor {t.name!r} is int8 without quantization parameters")
        if t.scale.size != 1:
            raise self.fail(f"{what} tensor {t.name!r} has per-axis quantization (axis "
                            f"{t.axis}, {t.scale.size} scales); activations must be per-tensor")
        return QParams(t.scale[0], int(t.zero_point[0]))

    def weight(self, ti: int, axis: int, channels: int) -> tuple[np.ndarray, QParams]:
        t = self.t[ti]
        if t.data is None:
            raise self.fail(f"weight tensor {t.name!r} is not a constant")
        if t.type != INT8:
            raise self.fail(f"weight tensor {t.name!r} is {t.type_name}; only int8 weights are "
                            "supported (float or hybrid models are not)")
        if t.scale is None or t.scale.size not in (1, channels):
            raise self.fail(f"weight tensor {t.name!r} needs 1 or {channels} scales")
        if t.scale.size > 1 and t.axis != axis:
            raise self.fail(f"per-axis quantization on axis {t.axis} of weight tensor "
                            f"{t.name!r} is not supported (the output channels are axis {axis})")
        if np.any(t.zero_point != 0):
            raise self.fail(f"weight tensor {t.name!r} has nonzero zero points; int8 weights "
                            "must be symmetric")
        if t.scale.size == 1:
            return t.data, QParams(t.scale[0], 0)
        return t.data, QParams(t.scale, np.zeros(channels, np.int64), axis=0)

    def bias(self, inputs: list[int], channels: int) -> np.ndarray:
        if len(inputs) < 3 or inputs[2] < 0:
            return np.zeros(channels, np.int32)
        t = self.t[inputs[2]]
        if t.type != INT32 or t.data is None or t.data.shape != (channels,):
            raise self.fail(f"bias tensor {t.name!r} must be a constant int32 ({channels},), "
                            f"got {t.type_name} {list(t.shape)}")
        return np.ascontiguousarray(t.data)

    def activation(self, code: int) -> str | None:
        if code not in _ACTIVATIONS:
            raise self.fail(f"fused activation {_ACTIVATION_NAMES.get(code, code)} is not "
                            "supported (NONE, RELU, RELU6 are)")
        return _ACTIVATIONS[code]

    def same_qparams(self, a: QParams, b: QParams, what: str) -> None:
        if np.float32(a.scale) != np.float32(b.scale) or int(a.zero_point) != int(b.zero_point):
            raise self.fail(f"{what}: input qparams ({float(a.scale)!r}, {int(a.zero_point)}) "
                            f"differ from the output's ({float(b.scale)!r}, "
                            f"{int(b.zero_point)}); TFLite requires them equal")

    def constant(self, ti: int, what: str) -> np.ndarray:
        t = self.t[ti]
        if t.data is None:
            raise self.fail(f"{what} tensor {t.name!r} must be a constant")
        return t.data

    # -- graph ------------------------------------------------------------------------------
    def emit(self, op: IntOp, srcs: list[int], out: int) -> None:
        name = op.name
        k = 1
        while name in self.names:
            name, k = f"{op.name}#{k}", k + 1
        op.name = name
        self.names.add(name)
        wires = []
        for ti in srcs:
            if ti not in self.producer:
                raise self.fail(f"input tensor {self.t[ti].name!r} has no producer (a second "
                                "graph input or a constant activation is not supported)")
            wires.append(self.producer[ti])
        self.ops.append(op)
        self.wiring.append(tuple(wires))
        self.producer[out] = len(self.ops) - 1

    def run(self) -> IntegerModel:
        sub = self.model.subgraphs[0]
        if len(self.model.subgraphs) > 1:
            raise ValueError(f"the model has {len(self.model.subgraphs)} subgraphs; npquant "
                             "imports single-subgraph models (no control flow)")
        if len(sub.inputs) != 1 or len(sub.outputs) != 1:
            raise ValueError(f"the model has {len(sub.inputs)} inputs and {len(sub.outputs)} "
                             "outputs; npquant imports one input and one output")
        inp = self.t[sub.inputs[0]]
        if len(inp.shape) != 4:
            raise ValueError(f"the model input {inp.name!r} has shape {list(inp.shape)}; npquant "
                             "imports image models with a 4-D (N, H, W, C) input")
        input_shape = to_nchw_shape(inp.shape)[1:]
        if inp.type == INT8:  # int8 I/O: npquant's own QUANTIZE makes the int8 input
            self.where = f"model input {inp.name!r}"
            self.meta["tflite_int8_input"] = True
            self.ops.append(QuantizeOp(inp.name, self.act(inp.index, "input")))
            self.wiring.append((-1,))
            self.producer[inp.index] = 0
            self.names.add(inp.name)
        elif inp.type != FLOAT32:
            raise ValueError(f"the model input {inp.name!r} is {inp.type_name}; float32 or int8 "
                             "inputs are supported")
        for i, op in enumerate(sub.operators):
            kind = _op_name(self.model, op)
            self.where = f"op {i} ({kind})"
            if kind not in SUPPORTED:
                raise ValueError(f"{self.where} is not supported by npquant's TFLite import; "
                                 f"supported: {', '.join(SUPPORTED)}")
            self.operator(i, kind, op)
        out = self.t[sub.outputs[0]]
        last = self.producer.get(out.index)
        if last is None:
            raise ValueError(f"the model output {out.name!r} is not computed by any operator")
        if not isinstance(self.ops[last], DequantizeOp):
            self.where = f"model output {out.name!r}"
            self.meta["tflite_int8_output"] = True
            self.emit(DequantizeOp(f"{out.name}.dequantize", self.act(out.index, "output")),
                      [out.index], -2)
        elif last != len(self.ops) - 1:
            raise ValueError("the DEQUANTIZE of the model output must be its last operator")
        if not isinstance(self.ops[0], QuantizeOp):
            raise ValueError("the model must start with QUANTIZE of its float input (or take "
                             "int8 input)")
        chain = all(w == (i - 1,) for i, w in enumerate(self.wiring))
        return IntegerModel(self.ops, self.prof, tuple(int(v) for v in input_shape),
                            meta=dict(self.meta, source="tflite"),
                            wiring=None if chain else self.wiring)

    def operator(self, i: int, kind: str, op) -> None:
        ins = [int(v) for v in (op.inputs if op.inputs is not None else [])]
        outs = [int(v) for v in (op.outputs if op.outputs is not None else [])]
        if len(outs) != 1:
            raise self.fail(f"has {len(outs)} outputs; one is supported")
        out = outs[0]
        o = self.t[out]
        opts = op.builtinOptions
        name = o.name
        if kind == "QUANTIZE":
            src = self.t[ins[0]]
            if src.type != FLOAT32 or ins[0] != self.model.subgraphs[0].inputs[0]:
                raise self.fail("only QUANTIZE of the float32 model input is supported "
                                "(int8 -> int8 requantization is not)")
            self.ops.append(QuantizeOp(name, self.act(out, "output")))
            self.wiring.append((-1,))
            self.producer[out] = len(self.ops) - 1
            self.names.add(name)
            return
        if kind == "DEQUANTIZE":
            if o.type != FLOAT32:
                raise self.fail(f"DEQUANTIZE to {o.type_name} is not supported")
            self.emit(DequantizeOp(name, self.act(ins[0], "input")), [ins[0]], out)
            return
        q_in = self.act(ins[0], "input")
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self.conv(kind, name, ins, out, q_in, opts)
        elif kind == "FULLY_CONNECTED":
            w_t = self.t[ins[1]]
            if len(w_t.shape) != 2:
                raise self.fail(f"weights {w_t.name!r} must be 2-D, got {list(w_t.shape)}")
            src = ins[0]
            in_shape = self.t[src].shape
            if len(in_shape) != 2:
                # TFLite flattens the input to (-1, K) itself (converters drop the RESHAPE
                # before an FC): an npquant RESHAPE in NHWC order does the same, one row per image
                if int(np.prod(in_shape[1:])) != w_t.shape[1] or len(o.shape) != 2 or \
                        getattr(opts, "keepNumDims", False):
                    raise self.fail(f"input of shape {list(in_shape)} does not flatten to one "
                                    f"row of {w_t.shape[1]} features per image")
                flat = ReshapeOp(f"{name}.flatten", q_in, (w_t.shape[1],), "nhwc")
                self.emit(flat, [src], -3 - i)
                self.meta.setdefault("npquant_only", []).append(flat.name)
                src = -3 - i
            if getattr(opts, "weightsFormat", 0):
                raise self.fail("shuffled FULLY_CONNECTED weights are not supported")
            w, w_q = self.weight(ins[1], 0, w_t.shape[0])
            q_out = self.act(out, "output")
            op = FullyConnectedOp(
                name, weight=np.ascontiguousarray(w), bias=self.bias(ins, w.shape[0]),
                input_qparams=q_in, weight_qparams=w_q, output_qparams=q_out,
                requant=prepare_requant(self.prof.fully_connected, float(q_in.scale),
                                        _w_scale(w_q), float(q_out.scale)),
                activation=self.activation(opts.fusedActivationFunction))
            self.emit(op, [src], out)
        elif kind == "ADD":
            if len(ins) != 2 or self.t[ins[0]].shape != self.t[ins[1]].shape:
                raise self.fail("ADD of two tensors of one shape is supported (no broadcasting)")
            op = AddOp(name, a_qparams=q_in, b_qparams=self.act(ins[1], "second input"),
                       output_qparams=self.act(out, "output"),
                       activation=self.activation(opts.fusedActivationFunction))
            self.emit(op, ins, out)
        elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            self.same_qparams(q_in, self.act(out, "output"), kind)
            k = (int(opts.filterHeight), int(opts.filterWidth))
            stride = (int(opts.strideH), int(opts.strideW))
            pads = self.pads(ins[0], opts.padding, k, stride, (1, 1))
            act = self.activation(opts.fusedActivationFunction)
            if kind == "MAX_POOL_2D":
                if act is not None:
                    raise self.fail("a fused activation on MAX_POOL_2D is not supported")
                self.emit(MaxPoolOp(name, q_in, k, stride, pads), [ins[0]], out)
            else:
                self.emit(AvgPool2dOp(name, q_in, k, stride, pads, act), [ins[0]], out)
        elif kind in ("RESHAPE", "SQUEEZE"):
            self.same_qparams(q_in, self.act(out, "output"), kind)
            if not o.shape or o.shape[0] != self.t[ins[0]].shape[0]:
                raise self.fail(f"{kind} must keep the batch dimension: "
                                f"{list(self.t[ins[0]].shape)} -> {list(o.shape)}")
            self.emit(ReshapeOp(name, q_in, tuple(o.shape[1:]), "nhwc"), [ins[0]], out)
        elif kind == "TRANSPOSE":
            self.same_qparams(q_in, self.act(out, "output"), kind)
            perm = tuple(int(v) for v in self.constant(ins[1], "permutation"))
            if perm[0] != 0:
                raise self.fail(f"TRANSPOSE must keep the batch axis first, perm {list(perm)}")
            self.emit(TransposeOp(name, q_in, perm, "nhwc"), [ins[0]], out)
        elif kind in ("PAD", "PADV2"):
            self.same_qparams(q_in, self.act(out, "output"), kind)
            p = [tuple(int(v) for v in row) for row in self.constant(ins[1], "paddings")]
            if kind == "PADV2" and len(ins) > 2:
                value = self.constant(ins[2], "constant value").reshape(-1)
                if int(value[0]) != int(q_in.zero_point):
                    raise self.fail(f"PADV2 with value {int(value[0])} is not supported (only "
                                    f"real 0, the zero point {int(q_in.zero_point)})")
            if len(p) == 4:
                p = [p[0], p[3], p[1], p[2]]  # NHWC -> NCHW
            self.emit(PadOp(name, q_in, tuple(p)), [ins[0]], out)
        elif kind == "CONCATENATION":
            q_out = self.act(out, "output")
            for j, ti in enumerate(ins):
                self.same_qparams(self.act(ti, f"input {j}"), q_out, kind)
            if self.activation(opts.fusedActivationFunction) is not None:
                raise self.fail("a fused activation on CONCATENATION is not supported")
            ndim = len(o.shape)
            axis = int(opts.axis) % ndim
            if ndim == 4:
                axis = (0, 2, 3, 1)[axis]  # NHWC axis -> NCHW axis
            self.emit(ConcatOp(name, q_out, axis), ins, out)
        elif kind == "MEAN":
            shape = self.t[ins[0]].shape
            axes = sorted(int(v) % max(len(shape), 1)
                          for v in self.constant(ins[1], "axes").reshape(-1))
            if len(shape) != 4 or axes != [1, 2]:
                raise self.fail(f"MEAN over axes {axes} of shape {list(shape)}; the mean over H "
                                "and W of a 4-D tensor is supported")
            schemes = MEAN_SCHEME.get(self.prof.name)
            if schemes is None:
                raise self.fail(f"MEAN under profile {self.prof.name!r} is not modelled "
                                f"(profiles: {sorted(MEAN_SCHEME)})")
            keep = bool(opts.keepDims)
            op = MeanOp(name, q_in, self.act(out, "output"), keep, schemes[0 if keep else 1])
            self.emit(op, [ins[0]], out)
        elif kind == "SOFTMAX":
            if len(self.t[ins[0]].shape) != 2:
                raise self.fail(f"SOFTMAX of shape {list(self.t[ins[0]].shape)}; 2-D is "
                                "supported")
            scheme = SOFTMAX_SCHEME.get(self.prof.name)
            if scheme is None:
                raise self.fail(f"SOFTMAX under profile {self.prof.name!r} is not modelled "
                                f"(profiles: {sorted(SOFTMAX_SCHEME)})")
            op = SoftmaxOp(name, q_in, self.act(out, "output"), float(opts.beta), scheme)
            self.emit(op, [ins[0]], out)
        elif kind == "LOGISTIC":
            self.emit(LogisticOp(name, q_in, self.act(out, "output")), [ins[0]], out)

    def pads(self, ti: int, code: int, k, stride, dilation) -> tuple[int, int, int, int]:
        shape = self.t[ti].shape
        if len(shape) != 4:
            raise self.fail(f"input {self.t[ti].name!r} must be 4-D, got {list(shape)}")
        return tflite_padding("SAME" if code == 0 else "VALID", (shape[1], shape[2]), k,
                              stride, dilation)[1]

    def conv(self, kind: str, name: str, ins: list[int], out: int, q_in: QParams, opts) -> None:
        w_t = self.t[ins[1]]
        if len(w_t.shape) != 4:
            raise self.fail(f"weights {w_t.name!r} must be 4-D, got {list(w_t.shape)}")
        cin = self.t[ins[0]].shape[3]
        if kind == "CONV_2D":
            out_ch = w_t.shape[0]
            w, w_q = self.weight(ins[1], 0, out_ch)
            if w.shape[3] != cin:
                raise self.fail(f"weights {list(w.shape)} do not match {cin} input channels "
                                "(grouped CONV_2D is not supported)")
            w = np.ascontiguousarray(np.transpose(w, (0, 3, 1, 2)))  # OHWI -> OIHW
            groups, rule = 1, self.prof.conv
        else:
            out_ch = w_t.shape[3]
            w, w_q = self.weight(ins[1], 3, out_ch)
            if out_ch % cin:
                raise self.fail(f"{out_ch} output channels are not a multiple of {cin} inputs")
            w = np.ascontiguousarray(np.transpose(w, (3, 0, 1, 2)))  # (1,KH,KW,Cm) -> (Cm,1,KH,KW)
            groups, rule = cin, self.prof.depthwise_conv
        stride = (int(opts.strideH), int(opts.strideW))
        dilation = (int(opts.dilationHFactor or 1), int(opts.dilationWFactor or 1))
        pads = self.pads(ins[0], opts.padding, w.shape[2:], stride, dilation)
        q_out = self.act(out, "output")
        op = Conv2dOp(name, weight=w, bias=self.bias(ins, out_ch), input_qparams=q_in,
                      weight_qparams=w_q, output_qparams=q_out,
                      requant=prepare_requant(rule, float(q_in.scale), _w_scale(w_q),
                                              float(q_out.scale)),
                      stride=stride, padding=pads, dilation=dilation, groups=groups,
                      activation=self.activation(opts.fusedActivationFunction))
        self.emit(op, [ins[0]], out)


def _w_scale(q: QParams):
    return float(q.scale) if q.axis is None else np.asarray(q.scale, np.float32)


def import_tflite(source: bytes | bytearray | str | os.PathLike, *,
                  profile: str | Profile = "tflite") -> IntegerModel:
    """The ``IntegerModel`` of a fully-quantized int8 ``.tflite`` (bytes or a path) under
    ``profile`` (module docstring): ``"tflite"`` for TFLite's reference kernels,
    ``"tflite-xnnpack"`` for the default interpreter with XNNPACK, ``"tflite-optimized"``...

    Raises ValueError naming the operator and its index for anything it cannot import exactly,
    TypeError for a ``source`` that is neither bytes nor a path.
    """
    prof = get_profile(profile)
    data = _read(source)
    model = _parse(data)
    return _Importer(model, _tensors(model, data), prof).run()
