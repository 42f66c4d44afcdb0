"""Import a quantized ONNX model into an ``IntegerModel`` (QOperator and QDQ forms).

Two ways of writing one integer network are read into the same integer ops:

* **QOperator** (what ``npquant.interop.onnx_model.export_onnx`` writes, and ORT's quantizer with
  ``QuantFormat.QOperator``): ``QuantizeLinear`` of the float input, ``QLinearConv``, ``QGemm``,
  ``QLinearMatMul``, ``QLinearAdd``, ``QLinearGlobalAveragePool``, ``QLinearAveragePool``,
  ``MaxPool``/``Flatten``/``Reshape`` on integers, an integer ``Clip`` after a node (its fused
  ReLU/ReLU6), and ``DequantizeLinear`` to the float output.
* **QDQ** (``onnxruntime.quantization.quantize_static`` with ``QuantFormat.QDQ``): float
  ``Conv``, ``Gemm``, ``MatMul``, ``Add``, ``MaxPool``, ``AveragePool``, ``GlobalAveragePool``,
  ``Flatten``, ``Reshape``, ``Relu``, ``Clip`` between ``DequantizeLinear`` of their inputs
  (weights and int32 biases are ``DequantizeLinear`` of initializers) and ``QuantizeLinear`` of
  their output. A group ``DQ -> op [-> Relu] -> Q`` is one integer op whose output qparams are the
  ``Q``'s; this is the grouping ORT's graph optimizer fuses into the QOperator kernels, which is
  how ORT runs a QDQ model at its default optimization level.

Each op is named by the integer tensor it writes (the ``Q`` output in QDQ, the node output in
QOperator), made file-safe (``/`` and other characters become ``_``: golden file names are built
from op names); ``model.meta["onnx_tensors"][i]`` is the ONNX tensor name of op ``i``, where a
per-layer comparison finds ORT's value.

Refused, with the node's index and name: a float model (no quantized tensor), a file that does
not parse or fails ``onnx.checker`` (truncated, corrupt), an op outside the lists above,
activations quantized per axis, weights per axis on an axis other than the output channels,
non-zero weight zero points, a pool or reshape whose output qparams differ from its input's,
and any tensor not 8-bit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npquant.convert import (
    AddOp,
    AvgPoolOp,
    Conv2dOp,
    DequantizeOp,
    FlattenOp,
    FullyConnectedOp,
    IntegerModel,
    IntOp,
    MaxPoolOp,
    QuantizeOp,
)
from npquant.integer.epilogue import activation_range
from npquant.interop._common import import_framework
from npquant.interop.onnx_ops import GlobalAvgPoolOp, ReluOp
from npquant.profiles import Profile, get_profile
from npquant.qparams import QParams
from npquant.requant import prepare_requant

QOPERATOR_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QGemm", "QLinearMatMul",
                 "QLinearAdd", "QLinearGlobalAveragePool", "QLinearAveragePool", "MaxPool",
                 "Flatten", "Reshape", "Clip")
QDQ_FLOAT_OPS = ("Conv", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool",
                 "Flatten", "Reshape", "Relu", "Clip")


@dataclass
class _Tensor:
    """A quantized activation: its qparams, the op writing it (-1: none) and its rank."""

    qparams: QParams
    op: int
    ndim: int


@dataclass
class _Pending:
    """A float QDQ op waiting for the QuantizeLinear that gives its output qparams."""

    kind: str
    node: int
    inputs: list[str]  # quantized tensor names
    attrs: dict[str, Any] = field(default_factory=dict)
    activation: str | None = None


class _Importer:
    def __init__(self, proto: Any, profile: Profile):
        self.onnx = import_framework("onnx", "npquant.interop.onnx_import")
        self.g = proto.graph
        self.prof = profile
        nh = self.onnx.numpy_helper
        self.inits = {t.name: nh.to_array(t) for t in self.g.initializer}
        for idx, node in enumerate(self.g.node):  # Constant nodes are initializers too
            if node.op_type == "Constant":
                attr = {a.name: a for a in node.attribute}
                if "value" not in attr:
                    raise self.refuse(idx, node, "only Constant nodes with a tensor value")
                self.inits[node.output[0]] = nh.to_array(attr["value"].t)
        self.q: dict[str, _Tensor] = {}  # quantized activations
        self.alias: dict[str, str] = {}  # float DQ output -> quantized tensor
        self.consts: dict[str, tuple[np.ndarray, QParams, int]] = {}  # DQ of initializers
        self.pending: dict[str, _Pending] = {}
        self.ops: list[IntOp] = []
        self.onnx_names: list[str] = []  # the ONNX tensor each op writes
        self.names_used: set[str] = set()
        self.wiring: list[tuple[int, ...]] = []
        self.qdq = False
        self.users: dict[str, int] = {}
        for node in self.g.node:
            for name in node.input:
                self.users[name] = self.users.get(name, 0) + 1
        self.graph_outputs = [o.name for o in self.g.output]

    # -------------------------------------------------------------------------- helpers
    def refuse(self, idx: int, node: Any, why: str) -> ValueError:
        return ValueError(f"node {idx} ({node.op_type} {node.name!r}): {why}")

    def attrs(self, node: Any) -> dict[str, Any]:
        h = self.onnx.helper
        return {a.name: h.get_attribute_value(a) for a in node.attribute}

    def init(self, idx: int, node: Any, name: str) -> np.ndarray:
        if name not in self.inits:
            raise self.refuse(idx, node, f"input {name!r} must be a constant (initializer)")
        return self.inits[name]

    def qparams(self, idx: int, node: Any, scale_name: str, zp_name: str | None,
                axis: int | None, what: str) -> QParams:
        s = np.asarray(self.init(idx, node, scale_name))
        z = np.asarray(self.init(idx, node, zp_name)) if zp_name else np.zeros((), np.uint8)
        if s.dtype != np.float32:
            raise self.refuse(idx, node, f"{what} scale is {s.dtype}, not float32")
        if z.dtype not in (np.int8, np.uint8, np.int32):
            raise self.refuse(idx, node, f"{what} is {z.dtype}; only int8/uint8 tensors (and "
                                         "int32 biases) are supported")
        bits, signed = (16, True) if z.dtype == np.int32 else (8, z.dtype == np.int8)
        try:
            if s.size > 1:
                return QParams(s, z, bits=bits, signed=signed, axis=axis)
            return QParams(s.reshape(()), z.reshape(()), bits=bits, signed=signed)
        except (ValueError, TypeError) as exc:
            raise self.refuse(idx, node, f"{what}: {exc}") from None

    def tensor(self, idx: int, node: Any, name: str) -> _Tensor:
        if name in self.alias:
            name = self.alias[name]
        if name not in self.q:
            raise self.refuse(idx, node, f"input {name!r} is not a quantized tensor of this "
                                         "model (a float path, or a missing producer)")
        return self.q[name]

    def qname(self, name: str) -> str:
        return self.alias.get(name, name)

    def emit(self, op: IntOp, srcs: list[str], out: str, qp: QParams, ndim: int) -> None:
        self.wiring.append(tuple(self.q[s].op for s in srcs) if srcs else (-1,))
        self.add_op(op, out)
        self.q[out] = _Tensor(qp, len(self.ops) - 1, ndim)

    def add_op(self, op: IntOp, out: str) -> None:
        """Append ``op``, named by a file-safe form of its ONNX output tensor ``out``."""
        op.name = self.safe_name(out)
        self.ops.append(op)
        self.onnx_names.append(out)

    def safe_name(self, tensor: str) -> str:
        """``tensor`` with every character outside ``[A-Za-z0-9_.-]`` as ``_`` (golden file
        names are built from op names), made unique with a numeric suffix."""
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", tensor).strip("_.") or "tensor"
        name, k = base, 1
        while name in self.names_used:
            name, k = f"{base}_{k}", k + 1
        self.names_used.add(name)
        return name

    def per_tensor(self, idx: int, node: Any, qp: QParams, what: str) -> QParams:
        if qp.axis is not None:
            raise self.refuse(idx, node, f"{what} is quantized per axis (axis {qp.axis}); only "
                                         "weights may be per channel")
        if qp.bits != 8:
            raise self.refuse(idx, node, f"{what} is not 8-bit")
        return qp

    def weight(self, idx: int, node: Any, w: np.ndarray, qp: QParams, axis: int) -> QParams:
        if w.dtype != np.int8:
            raise self.refuse(idx, node, f"weights are {w.dtype}; npquant's kernels take int8 "
                                         "weights")
        if np.any(qp.zero_point != 0):
            raise self.refuse(idx, node, "weight zero points must be 0 (symmetric weights)")
        if qp.axis is not None and qp.axis % w.ndim != axis:
            raise self.refuse(idx, node, f"weights are quantized per axis {qp.axis}; only per "
                                         f"output channel (axis {axis}) is supported")
        return QParams(qp.scale, np.zeros_like(qp.zero_point), bits=8, signed=True,
                       axis=0 if qp.axis is not None else None)

    # -------------------------------------------------------------------------- ops
    def conv_op(self, name: str, x: _Tensor, w: np.ndarray, wq: QParams, bias: np.ndarray | None,
                yq: QParams, a: dict[str, Any], act: str | None, idx: int, node: Any) -> Conv2dOp:
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.refuse(idx, node, "auto_pad is not supported; give explicit pads")
        groups = int(a.get("group", 1))
        pads = list(a.get("pads", [0, 0, 0, 0]))  # ONNX: top, left, bottom, right
        s_w = wq.scale.astype(np.float64)
        depthwise = groups > 1 and w.shape[1] == 1
        rule = self.prof.depthwise_conv if depthwise else self.prof.conv
        o = w.shape[0]
        b = np.zeros(o, np.int32) if bias is None else np.asarray(bias).reshape(o)
        return Conv2dOp(name, weight=w, bias=b.astype(np.int32), input_qparams=x.qparams,
                        weight_qparams=wq, output_qparams=yq,
                        requant=prepare_requant(rule, float(x.qparams.scale), s_w,
                                                float(yq.scale)),
                        stride=tuple(int(v) for v in a.get("strides", (1, 1))),
                        padding=(pads[0], pads[2], pads[1], pads[3]),
                        dilation=tuple(int(v) for v in a.get("dilations", (1, 1))),
                        groups=groups, activation=act)

    def fc_op(self, name: str, x: _Tensor, w: np.ndarray, wq: QParams, bias: np.ndarray | None,
              yq: QParams, act: str | None) -> FullyConnectedOp:
        o = w.shape[0]
        b = np.zeros(o, np.int32) if bias is None else np.asarray(bias).reshape(o)
        return FullyConnectedOp(
            name, weight=np.ascontiguousarray(w), bias=b.astype(np.int32),
            input_qparams=x.qparams, weight_qparams=wq, output_qparams=yq,
            requant=prepare_requant(self.prof.fully_connected, float(x.qparams.scale),
                                    wq.scale.astype(np.float64), float(yq.scale)),
            activation=act)

    def pool_op(self, name: str, kind: str, x: _Tensor, a: dict[str, Any], idx: int,
                node: Any) -> IntOp:
        pads = list(a.get("pads", [0, 0, 0, 0]))
        padding = (pads[0], pads[2], pads[1], pads[3])
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or a.get("ceil_mode", 0):
            raise self.refuse(idx, node, "auto_pad and ceil_mode are not supported")
        if any(d != 1 for d in a.get("dilations", (1, 1))):
            raise self.refuse(idx, node, "dilated pools are not supported")
        if kind == "global":
            return AvgPoolOp(name, x.qparams)
        k = tuple(int(v) for v in a["kernel_shape"])
        stride = tuple(int(v) for v in a.get("strides", (1, 1)))
        if kind == "max":
            return MaxPoolOp(name, x.qparams, k, stride, padding)
        if any(padding) and not a.get("count_include_pad", 0):
            raise self.refuse(idx, node, "a padded average pool must count the padding "
                                         "(count_include_pad=1), as npquant's AVERAGE_POOL_2D")
        return AvgPoolOp(name, x.qparams, k, stride, padding)

    def flatten_ok(self, idx: int, node: Any, x: _Tensor) -> None:
        """Flatten(axis=1) or Reshape to (N, -1) of a 4-D tensor: npquant's FLATTEN."""
        if node.op_type == "Flatten":
            if int(self.attrs(node).get("axis", 1)) != 1:
                raise self.refuse(idx, node, "only Flatten(axis=1) is supported")
        else:
            shape = [int(v) for v in np.asarray(self.init(idx, node, node.input[1])).reshape(-1)]
            if len(shape) != 2 or (shape[1] != -1 and shape[0] not in (-1, 0)):
                raise self.refuse(idx, node, f"Reshape to {shape}: only (N, -1) (a flatten) is "
                                             "supported")
        if x.ndim != 4:
            raise self.refuse(idx, node, f"flattens a {x.ndim}-D tensor; only 4-D (N, C, H, W)")

    def activation(self, idx: int, node: Any, lo_hi: tuple[float, float] | None,
                   yq: QParams | None = None) -> str | None:
        """``relu``/``relu6`` from a Relu or a float Clip (QDQ), or from an integer Clip
        (QOperator; None when its bounds are the type's whole range)."""
        if node.op_type == "Relu":
            return "relu"
        lo, hi = lo_hi
        if yq is None:  # float bounds
            if lo == 0 and hi == float("inf"):
                return "relu"
            if lo == 0 and hi == 6:
                return "relu6"
        else:
            z, info = int(yq.zero_point), np.iinfo(yq.dtype)
            for act in ("relu", "relu6"):
                if (lo, hi) == activation_range(act, float(yq.scale), z, np.dtype(yq.dtype),
                                                self.prof):
                    return act
            if lo <= info.min and hi >= info.max:
                return None
        raise self.refuse(idx, node, f"Clip({lo}, {hi}) is neither a ReLU nor a ReLU6")

    def clip_bounds(self, idx: int, node: Any) -> tuple[float, float]:
        a = self.attrs(node)
        lo = a.get("min", -np.inf)
        hi = a.get("max", np.inf)
        if len(node.input) > 1 and node.input[1]:
            lo = np.asarray(self.init(idx, node, node.input[1])).item()
        if len(node.input) > 2 and node.input[2]:
            hi = np.asarray(self.init(idx, node, node.input[2])).item()
        return lo, hi

    # -------------------------------------------------------------------------- walk
    def run(self) -> IntegerModel:
        graph_in = [i for i in self.g.input if i.name not in self.inits]
        if len(graph_in) != 1:
            raise ValueError(f"the model must have one input, got {[i.name for i in graph_in]}")
        gin = graph_in[0]
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in gin.type.tensor_type.shape.dim]
        if len(dims) != 4 or any(d is None or d < 1 for d in dims[1:]):
            raise ValueError(f"input {gin.name!r} must be NCHW with fixed C, H, W, got {dims}")
        self.input_name = gin.name
        quantized = ("QuantizeLinear", "DequantizeLinear") + QOPERATOR_OPS[2:7]
        if not any(n.op_type in quantized for n in self.g.node):
            raise ValueError("this is a float model: it has no quantized tensor (no "
                             "QuantizeLinear or QLinear* node); quantize it first, e.g. with "
                             "onnxruntime.quantization.quantize_static")
        for idx, node in enumerate(self.g.node):
            if node.op_type == "Constant":
                continue
            if node.domain not in ("", "ai.onnx", "com.microsoft"):
                raise self.refuse(idx, node, f"domain {node.domain!r} is not supported")
            self.visit(idx, node)
        if self.pending:
            name, p = next(iter(self.pending.items()))
            node = self.g.node[p.node]
            raise self.refuse(p.node, node, f"its output {name!r} is never quantized: "
                                            "float paths are not supported")
        if not self.ops or not isinstance(self.ops[-1], DequantizeOp):
            raise ValueError("the model must end in one DequantizeLinear to its float output")
        if len(self.graph_outputs) != 1:
            raise ValueError(f"the model must have one output, got {self.graph_outputs}")
        if not isinstance(self.ops[0], QuantizeOp) or sum(isinstance(o, QuantizeOp)
                                                          for o in self.ops) != 1:
            raise ValueError("the model must quantize its float input once, first")
        chain = all(w == (i - 1,) for i, w in enumerate(self.wiring))
        return IntegerModel(self.ops, self.prof, tuple(int(d) for d in dims[1:]),
                            meta={"source": "onnx", "form": "qdq" if self.qdq else "qoperator",
                                  "onnx_input": self.input_name,
                                  "onnx_tensors": list(self.onnx_names)},
                            wiring=None if chain else self.wiring)

    def visit(self, idx: int, node: Any) -> None:
        t = node.op_type
        ins, out = list(node.input), node.output[0]
        a = self.attrs(node)
        if t == "QuantizeLinear":
            self.quantize_linear(idx, node, ins, out, a)
        elif t == "DequantizeLinear":
            self.dequantize_linear(idx, node, ins, out, a)
        elif node.domain == "com.microsoft" or t.startswith("QLinear"):
            self.qoperator(idx, node, ins, out, a)
        elif any(self.qname(i) in self.q and i not in self.alias for i in ins[:1]):
            self.integer_node(idx, node, ins, out, a)  # MaxPool/Flatten/Reshape/Clip on ints
        elif t in QDQ_FLOAT_OPS:
            self.qdq = True
            self.float_node(idx, node, ins, out, a)
        else:
            raise self.refuse(idx, node, f"op {t} is not supported; supported: QOperator "
                                         f"{QOPERATOR_OPS}, QDQ around {QDQ_FLOAT_OPS}")

    def quantize_linear(self, idx, node, ins, out, a):
        zp = ins[2] if len(ins) > 2 and ins[2] else None
        if zp is None:
            raise self.refuse(idx, node, "a zero point is required (it fixes the integer type)")
        qp = self.qparams(idx, node, ins[1], zp, a.get("axis", 1), "the output")
        if ins[0] in self.inits:  # a weight quantized in the graph: a constant
            raise self.refuse(idx, node, "QuantizeLinear of a constant: store the quantized "
                                         "weights as an initializer")
        qp = self.per_tensor(idx, node, qp, f"tensor {out!r}")
        if ins[0] == self.input_name:
            self.emit(QuantizeOp(out, qp), [], out, qp, 4)
            return
        if ins[0] not in self.pending:
            raise self.refuse(idx, node, f"quantizes {ins[0]!r}, which is neither the model "
                                         "input nor the output of a supported float op")
        p = self.pending.pop(ins[0])
        pnode = self.g.node[p.node]
        x = self.q[p.inputs[0]]
        if p.kind == "conv":
            w, wq, bias = p.attrs["w"], p.attrs["wq"], p.attrs["bias"]
            op = self.conv_op(out, x, w, wq, bias, qp, p.attrs["a"], p.activation, p.node,
                              pnode)
            self.emit(op, p.inputs, out, qp, 4)
        elif p.kind == "fc":
            op = self.fc_op(out, x, p.attrs["w"], p.attrs["wq"], p.attrs["bias"], qp,
                            p.activation)
            self.emit(op, p.inputs, out, qp, 2)
        elif p.kind == "add":
            b = self.q[p.inputs[1]]
            op = AddOp(out, a_qparams=x.qparams, b_qparams=b.qparams, output_qparams=qp,
                       activation=p.activation)
            self.emit(op, p.inputs, out, qp, x.ndim)
        elif p.kind == "relu":
            if not _same(qp, x.qparams):
                raise self.refuse(idx, node, f"{pnode.op_type} changes the qparams ({x.qparams} "
                                             f"-> {qp}); a ReLU of its own must keep them")
            self.emit(ReluOp(out, x.qparams, p.activation), p.inputs, out, qp, x.ndim)
        else:  # pools and flatten keep their input's qparams
            if p.activation is not None:
                raise self.refuse(p.node, pnode, "an activation after a pool or flatten is not "
                                                 "supported")
            if p.kind == "global" and not _same(qp, x.qparams):
                self.emit(GlobalAvgPoolOp(out, input_qparams=x.qparams, output_qparams=qp),
                          p.inputs, out, qp, 4)
                return
            if not _same(qp, x.qparams):
                raise self.refuse(idx, node, f"{pnode.op_type} changes the qparams ({x.qparams} "
                                             f"-> {qp}); npquant's pools and flatten keep them")
            if p.kind == "flatten":
                op, nd = FlattenOp(out, x.qparams), 2
            else:
                op, nd = self.pool_op(out, p.kind, x, p.attrs["a"], p.node, pnode), 4
            self.emit(op, p.inputs, out, qp, nd)

    def dequantize_linear(self, idx, node, ins, out, a):
        zp = ins[2] if len(ins) > 2 and ins[2] else None
        if ins[0] in self.inits:
            qp = self.qparams(idx, node, ins[1], zp, a.get("axis", 1), f"constant {ins[0]!r}")
            self.consts[out] = (np.asarray(self.inits[ins[0]]), qp, a.get("axis", 1))
            return
        x = self.tensor(idx, node, ins[0])
        if out in self.graph_outputs:
            qp = self.qparams(idx, node, ins[1], zp, None, "the output")
            self.wiring.append((x.op,))
            self.add_op(DequantizeOp(out, qp), out)
            return
        qp = self.qparams(idx, node, ins[1], zp, a.get("axis", 1), f"tensor {ins[0]!r}")
        if not (np.array_equal(qp.scale, x.qparams.scale)
                and np.array_equal(qp.zero_point, x.qparams.zero_point)):
            raise self.refuse(idx, node, f"dequantizes {ins[0]!r} with qparams {qp} other than "
                                         f"the ones it was quantized with ({x.qparams})")
        self.alias[out] = self.qname(ins[0])

    def const_weight(self, idx, node, name: str) -> tuple[np.ndarray, QParams, int]:
        if name not in self.consts:
            raise self.refuse(idx, node, f"weight {name!r} must be a DequantizeLinear of a "
                                         "quantized initializer (a float weight is not "
                                         "supported)")
        return self.consts[name]

    def const_bias(self, idx, node, name: str | None) -> np.ndarray | None:
        if not name:
            return None
        if name not in self.consts:
            raise self.refuse(idx, node, f"bias {name!r} must be a DequantizeLinear of an int32 "
                                         "initializer (a float bias is not supported)")
        b, qp, _ = self.consts[name]
        if b.dtype != np.int32 or np.any(qp.zero_point != 0):
            raise self.refuse(idx, node, f"bias {name!r} must be int32 with zero point 0")
        return b

    def float_node(self, idx, node, ins, out, a):
        t = node.op_type
        if t in ("Relu", "Clip"):
            if ins[0] in self.alias:  # DQ -> Relu -> Q: a ReLU of its own
                self.tensor(idx, node, ins[0])
                act = self.activation(idx, node, None if t == "Relu"
                                      else self.clip_bounds(idx, node))
                self.pending[out] = _Pending("relu", idx, [self.qname(ins[0])], activation=act)
                return
            if ins[0] not in self.pending or self.pending[ins[0]].activation is not None \
                    or self.pending[ins[0]].kind not in ("conv", "fc", "add"):
                raise self.refuse(idx, node, f"{t} must follow a Conv/Gemm/MatMul/Add (fused "
                                             "as its clamp) or a DequantizeLinear")
            p = self.pending.pop(ins[0])
            p.activation = self.activation(idx, node, None if t == "Relu"
                                           else self.clip_bounds(idx, node))
            self.pending[out] = p
            return
        if t == "Conv":
            self.tensor(idx, node, ins[0])
            w, wq, _ = self.const_weight(idx, node, ins[1])
            wq = self.weight(idx, node, w, wq, 0)
            bias = self.const_bias(idx, node, ins[2] if len(ins) > 2 else None)
            self.pending[out] = _Pending("conv", idx, [self.qname(ins[0])],
                                         dict(w=w, wq=wq, bias=bias, a=a))
        elif t in ("Gemm", "MatMul"):
            self.tensor(idx, node, ins[0])
            w, wq, _ = self.const_weight(idx, node, ins[1])
            if w.ndim != 2:
                raise self.refuse(idx, node, f"weight of rank {w.ndim}; a 2-D weight is needed")
            trans_b = int(a.get("transB", 0)) if t == "Gemm" else 0
            if t == "Gemm" and (a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                                or a.get("beta", 1.0) != 1.0):
                raise self.refuse(idx, node, "only Gemm with transA=0, alpha=beta=1")
            wq = self.weight(idx, node, w, wq, 0 if trans_b else 1)
            w = w if trans_b else w.T
            bias = self.const_bias(idx, node, ins[2] if len(ins) > 2 else None)
            self.pending[out] = _Pending("fc", idx, [self.qname(ins[0])],
                                         dict(w=np.ascontiguousarray(w), wq=wq, bias=bias))
        elif t == "Add":
            self.tensor(idx, node, ins[0])
            self.tensor(idx, node, ins[1])
            self.pending[out] = _Pending("add", idx, [self.qname(i) for i in ins[:2]])
        elif t in ("MaxPool", "AveragePool", "GlobalAveragePool"):
            self.tensor(idx, node, ins[0])
            kind = {"MaxPool": "max", "AveragePool": "avg", "GlobalAveragePool": "global"}[t]
            self.pending[out] = _Pending(kind, idx, [self.qname(ins[0])], dict(a=a))
        elif t in ("Flatten", "Reshape"):
            x = self.tensor(idx, node, ins[0])
            self.flatten_ok(idx, node, x)
            self.pending[out] = _Pending("flatten", idx, [self.qname(ins[0])])

    def integer_node(self, idx, node, ins, out, a):
        t = node.op_type
        x = self.tensor(idx, node, ins[0])
        if t == "MaxPool":
            self.emit(self.pool_op(out, "max", x, a, idx, node), [self.qname(ins[0])], out,
                      x.qparams, 4)
        elif t in ("Flatten", "Reshape"):
            self.flatten_ok(idx, node, x)
            self.emit(FlattenOp(out, x.qparams), [self.qname(ins[0])], out, x.qparams, 2)
        elif t == "Clip":
            prev = self.ops[x.op]
            if not isinstance(prev, (Conv2dOp, FullyConnectedOp, AddOp)) or prev.activation \
                    or self.users.get(ins[0], 0) != 1 or self.onnx_names[x.op] != ins[0]:
                raise self.refuse(idx, node, "an integer Clip must be the only reader of a "
                                             "QLinearConv/QGemm/QLinearMatMul/QLinearAdd output")
            prev.activation = self.activation(idx, node, self.clip_bounds(idx, node), x.qparams)
            self.names_used.discard(prev.name)
            prev.name = self.safe_name(out)  # the op writes the clipped tensor
            self.onnx_names[x.op] = out
            self.q[out] = self.q.pop(ins[0])
        else:
            raise self.refuse(idx, node, f"op {t} on integers is not supported")

    def qoperator(self, idx, node, ins, out, a):
        t = node.op_type
        if t not in QOPERATOR_OPS:
            raise self.refuse(idx, node, f"op {t} ({node.domain or 'ai.onnx'}) is not "
                                         f"supported; supported: {QOPERATOR_OPS}")
        x = self.tensor(idx, node, ins[0])
        src = [self.qname(ins[0])]

        def out_qp(s: int, z: int) -> QParams:
            return self.per_tensor(idx, node, self.qparams(idx, node, ins[s], ins[z], None,
                                                           "the output"), f"tensor {out!r}")

        def in_check(s: int, z: int, tensor: _Tensor, what: str) -> None:
            qp = self.qparams(idx, node, ins[s], ins[z], None, what)
            if not (np.array_equal(qp.scale, tensor.qparams.scale)
                    and np.array_equal(qp.zero_point, tensor.qparams.zero_point)):
                raise self.refuse(idx, node, f"{what} qparams {qp} differ from those its "
                                             f"producer wrote ({tensor.qparams})")

        if t == "QLinearConv":
            in_check(1, 2, x, "x")
            w = np.asarray(self.init(idx, node, ins[3]))
            wq = self.weight(idx, node, w, self.qparams(idx, node, ins[4], ins[5], 0, "w"), 0)
            yq = out_qp(6, 7)
            bias = np.asarray(self.init(idx, node, ins[8])) if len(ins) > 8 and ins[8] else None
            self.emit(self.conv_op(out, x, w, wq, bias, yq, a, None, idx, node), src, out, yq, 4)
        elif t in ("QGemm", "QLinearMatMul"):
            in_check(1, 2, x, "a")
            w = np.asarray(self.init(idx, node, ins[3]))
            trans_b = int(a.get("transB", 0)) if t == "QGemm" else 0
            if t == "QGemm" and (a.get("transA", 0) or a.get("alpha", 1.0) != 1.0):
                raise self.refuse(idx, node, "only QGemm with transA=0, alpha=1")
            wq = self.weight(idx, node, w, self.qparams(idx, node, ins[4], ins[5],
                                                        0 if trans_b else 1, "b"),
                             0 if trans_b else 1)
            if t == "QGemm":
                if len(ins) < 9 or not ins[7]:
                    raise self.refuse(idx, node, "QGemm without y_scale has a float output; "
                                                 "not supported")
                bias = np.asarray(self.init(idx, node, ins[6])) if ins[6] else None
                yq = out_qp(7, 8)
            else:
                bias, yq = None, out_qp(6, 7)
            w = w if trans_b else w.T
            self.emit(self.fc_op(out, x, np.ascontiguousarray(w), wq, bias, yq, None), src, out,
                      yq, 2)
        elif t == "QLinearAdd":
            in_check(1, 2, x, "A")
            b = self.tensor(idx, node, ins[3])
            in_check(4, 5, b, "B")
            yq = out_qp(6, 7)
            self.emit(AddOp(out, a_qparams=x.qparams, b_qparams=b.qparams, output_qparams=yq),
                      src + [self.qname(ins[3])], out, yq, x.ndim)
        elif t in ("QLinearGlobalAveragePool", "QLinearAveragePool"):
            if a.get("channels_last", 0):
                raise self.refuse(idx, node, "channels_last=1 is not supported (NCHW only)")
            in_check(1, 2, x, "x")
            yq = out_qp(3, 4)
            kind = "global" if t == "QLinearGlobalAveragePool" else "avg"
            if not _same(yq, x.qparams):
                if kind != "global":
                    raise self.refuse(idx, node, "output qparams differ from the input's; "
                                                 "npquant's windowed average pool keeps them")
                self.emit(GlobalAvgPoolOp(out, input_qparams=x.qparams, output_qparams=yq), src,
                          out, yq, 4)
                return
            self.emit(self.pool_op(out, kind, x, a, idx, node), src, out, yq, 4)
        else:
            raise self.refuse(idx, node, f"op {t} is not supported here")


def _same(a: QParams, b: QParams) -> bool:
    return (np.array_equal(a.scale, b.scale) and np.array_equal(a.zero_point, b.zero_point)
            and a.dtype == b.dtype)


def import_onnx(model: str | Path | bytes, *, profile: Profile | str = "onnxruntime"
                ) -> IntegerModel:
    """The ``IntegerModel`` of a quantized ONNX model (module docstring), run under ``profile``.

    ``model``: a path or the serialized bytes. ``profile`` defaults to ``onnxruntime``, whose
    rules are ONNX Runtime's kernels on x86-64 (``onnxruntime-avx2`` on a CPU without VNNI).
    Errors are ValueError naming the node (index and name) and what is not supported.
    """
    onnx = import_framework("onnx", "npquant.interop.onnx_import")
    prof = get_profile(profile)
    if isinstance(model, (bytes, bytearray)):
        data, what = bytes(model), "the model bytes"
    else:
        p = Path(model)
        if not p.is_file():
            raise ValueError(f"model {str(p)!r} is not a file")
        data, what = p.read_bytes(), str(p)
    try:
        proto = onnx.load_model_from_string(data)
        onnx.checker.check_model(proto)
    except Exception as exc:  # DecodeError, ValidationError: the file is not a whole model
        raise ValueError(f"{what} is not a valid ONNX model (truncated or corrupt?): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                         ) from None
    return _Importer(proto, prof).run()
