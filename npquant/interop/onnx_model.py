"""Whole-model ONNX export of an ``IntegerModel`` and running an ONNX model in ONNX Runtime with
every intermediate tensor kept.

The export writes the QOperator form, one quantized ONNX node per integer op, because that is
the form whose ONNX Runtime arithmetic the ``onnxruntime`` profile reproduces exactly (the QDQ
form runs float Conv/Gemm/Add on dequantized tensors unless ORT's graph optimizer fuses them
into these same nodes; docs/onnx_import_export.md):

    QUANTIZE         -> QuantizeLinear            rne(f32(x / S)) + Z
    CONV_2D          -> QLinearConv (+ Clip)      rne(f32(acc) f32(M)) + Z, M = f32(f32(sx sw)/sy)
    FULLY_CONNECTED  -> QGemm (com.microsoft)     the same requantization, int32 bias, transB=1
    ADD              -> QLinearAdd (com.microsoft)  MLAS's float32 fma sequence (integer/mlas.py)
    AVERAGE_POOL_2D  -> QLinearGlobalAveragePool  (global) or QLinearAveragePool (a window)
    MAX_POOL_2D      -> MaxPool on int8/uint8     FLATTEN -> Flatten(axis=1)
    DEQUANTIZE       -> DequantizeLinear          f32(S (q - Z))

A fused activation is the integer clamp of npquant's kernels. ORT fuses a ReLU into the op before
it by the output's range alone: when the output zero point is the type's minimum (-128 / 0, what
PTQ chooses for a ReLU output) the saturation *is* the ReLU and no node is written. Otherwise
(a zero point above the minimum, or RELU6) a ``Clip`` on the integers follows the node, with
the same bounds ``activation_range`` gives the kernels.

Tensor names: the graph takes float32 ``input`` (N, C, H, W) and gives float32 ``output``; the
integer tensor of op ``i`` is named by ``tensor_names(model)[i]`` (the op's name; QUANTIZE's is
``input_quantized``), so a per-layer comparison maps ONNX tensors to ops one to one. Constants
are initializers named ``<op name>.<role>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from npquant.integer.epilogue import activation_range
from npquant.interop._common import import_framework

if TYPE_CHECKING:
    from npquant.convert import IntegerModel

OPSET = 21
INPUT, OUTPUT = "input", "output"
_QUANTIZED_INPUT = "input_quantized"


def _onnx():
    return import_framework("onnx", "npquant.interop.onnx_model")


def _ort():
    return import_framework("onnxruntime", "npquant.interop.onnx_model")


def tensor_names(model: IntegerModel) -> list[str]:
    """The ONNX tensor name of every op's output: the op's name, ``input_quantized`` for the
    QUANTIZE op and ``output`` (float32) for DEQUANTIZE. ValueError if two ops share a name."""
    names = []
    for i, op in enumerate(model.ops):
        if op.op == "QUANTIZE":
            names.append(_QUANTIZED_INPUT)
        elif op.op == "DEQUANTIZE":
            names.append(OUTPUT)
        else:
            names.append(op.name)
        if names[-1] in names[:-1] or names[-1] == INPUT:
            raise ValueError(f"op {i} ({op.op}) has the name {names[-1]!r} of another tensor; "
                             "give the ops unique names")
    return names


def _sources(model: IntegerModel) -> list[tuple[int, ...]]:
    if model.wiring is not None:
        return list(model.wiring)
    return [(i - 1,) for i in range(len(model.ops))]


def _check_8bit(i: int, op: Any, q: Any, role: str) -> None:
    if q.bits != 8 or np.dtype(q.dtype) not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise ValueError(f"op {i} ({op.op} {op.name!r}): its {role} is {q.bits}-bit "
                         f"{np.dtype(q.dtype)}; ONNX QLinear ops take 8-bit int8/uint8 tensors")


def _scalar_scale(q: Any) -> np.ndarray:
    return np.array(np.asarray(q.scale, dtype=np.float32).reshape(-1)[0], dtype=np.float32)


def _scalar_zp(q: Any) -> np.ndarray:
    return np.array(int(np.asarray(q.zero_point).reshape(-1)[0]), dtype=q.dtype)


def export_onnx(model: IntegerModel, path: str | Path | None = None) -> bytes:
    """The ONNX model (QOperator form, opset 21 + com.microsoft) of ``model``, serialized; also
    written to ``path`` when given (all at once: a failed export writes nothing).

    ONNX Runtime on x86-64 computes every integer tensor of it equal to ``model.run`` under the
    ``onnxruntime`` profile (and ``onnxruntime-avx2`` on CPUs without VNNI), except a windowed
    AVERAGE_POOL_2D (QLinearAveragePool, not modelled: docs/fidelity.md). Under another profile
    the graph is the same model, but ORT's arithmetic is ORT's. ValueError for an op that is
    not 8-bit or has no ONNX form.
    """
    from npquant.convert import (
        AddOp,
        AvgPoolOp,
        Conv2dOp,
        DequantizeOp,
        FlattenOp,
        FullyConnectedOp,
        MaxPoolOp,
        QuantizeOp,
    )
    from npquant.interop.onnx_ops import GlobalAvgPoolOp, ReluOp

    onnx = _onnx()
    h, nh, tp = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    names = tensor_names(model)
    srcs = _sources(model)
    nodes: list = []
    inits: list = []
    uses_ms = False

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(nh.from_array(np.array(arr, order="C"), name))
        return name

    def src(i: int, k: int = 0) -> str:
        j = srcs[i][k]
        return INPUT if j < 0 else names[j]

    def clamp(i: int, op: Any, out_q: Any, pre: str) -> None:
        """Clip the integers to the fused activation's bounds, if they are narrower than the
        type's (otherwise the saturation of the op is the activation, as ORT fuses it)."""
        lo, hi = activation_range(op.activation, float(_scalar_scale(out_q)),
                                  int(_scalar_zp(out_q)), np.dtype(out_q.dtype), model.profile)
        info = np.iinfo(out_q.dtype)
        if (lo, hi) == (info.min, info.max):
            nodes[-1].output[0] = names[i]
            return
        nodes.append(h.make_node("Clip", [pre, const(f"{op.name}.clip_min",
                                                     np.array(lo, out_q.dtype)),
                                          const(f"{op.name}.clip_max", np.array(hi, out_q.dtype))],
                                 [names[i]], name=f"{op.name}.clip"))

    for i, op in enumerate(model.ops):
        n = op.name
        if isinstance(op, QuantizeOp):
            _check_8bit(i, op, op.qparams, "output")
            nodes.append(h.make_node("QuantizeLinear", [
                INPUT, const(f"{n}.scale", _scalar_scale(op.qparams)),
                const(f"{n}.zero_point", _scalar_zp(op.qparams))], [names[i]], name=n))
        elif isinstance(op, DequantizeOp):
            nodes.append(h.make_node("DequantizeLinear", [
                src(i), const(f"{n}.scale", _scalar_scale(op.qparams)),
                const(f"{n}.zero_point", _scalar_zp(op.qparams))], [names[i]], name=n))
        elif isinstance(op, (Conv2dOp, FullyConnectedOp)):
            for role, q in (("input", op.input_qparams), ("output", op.output_qparams)):
                _check_8bit(i, op, q, role)
            if op.weight.dtype != np.int8:
                raise ValueError(f"op {i} ({op.op} {n!r}): weights must be int8, got "
                                 f"{op.weight.dtype}")
            o = op.weight.shape[0]
            ws = np.asarray(op.weight_qparams.scale, dtype=np.float32).reshape(-1)
            w_scale = ws if ws.size > 1 else ws.reshape(())
            w_zp = np.zeros(ws.shape if ws.size > 1 else (), np.int8)
            ins = [src(i), const(f"{n}.x_scale", _scalar_scale(op.input_qparams)),
                   const(f"{n}.x_zero_point", _scalar_zp(op.input_qparams)),
                   const(f"{n}.weight", op.weight),
                   const(f"{n}.w_scale", w_scale), const(f"{n}.w_zero_point", w_zp)]
            outs = [const(f"{n}.y_scale", _scalar_scale(op.output_qparams)),
                    const(f"{n}.y_zero_point", _scalar_zp(op.output_qparams))]
            bias = const(f"{n}.bias", np.asarray(op.bias, np.int32).reshape(o))
            pre = f"{n}.pre_activation"
            if isinstance(op, Conv2dOp):
                pt, pb, pl, pr = _pads4(op.padding)
                nodes.append(h.make_node(
                    "QLinearConv", ins + outs + [bias], [pre], name=n,
                    kernel_shape=list(op.weight.shape[2:]), strides=list(op.stride),
                    dilations=list(op.dilation), pads=[pt, pl, pb, pr], group=int(op.groups)))
            else:
                uses_ms = True
                nodes.append(h.make_node("QGemm", ins + [bias] + outs, [pre], name=n,
                                         domain="com.microsoft", transB=1))
            clamp(i, op, op.output_qparams, pre)
        elif isinstance(op, AddOp):
            for role, q in (("a", op.a_qparams), ("b", op.b_qparams),
                            ("output", op.output_qparams)):
                _check_8bit(i, op, q, role)
            uses_ms = True
            nodes.append(h.make_node("QLinearAdd", [
                src(i, 0), const(f"{n}.a_scale", _scalar_scale(op.a_qparams)),
                const(f"{n}.a_zero_point", _scalar_zp(op.a_qparams)),
                src(i, 1), const(f"{n}.b_scale", _scalar_scale(op.b_qparams)),
                const(f"{n}.b_zero_point", _scalar_zp(op.b_qparams)),
                const(f"{n}.y_scale", _scalar_scale(op.output_qparams)),
                const(f"{n}.y_zero_point", _scalar_zp(op.output_qparams))],
                [f"{n}.pre_activation"], name=n, domain="com.microsoft"))
            clamp(i, op, op.output_qparams, f"{n}.pre_activation")
        elif isinstance(op, MaxPoolOp):
            pt, pb, pl, pr = _pads4(op.padding)
            nodes.append(h.make_node("MaxPool", [src(i)], [names[i]], name=n,
                                     kernel_shape=list(op.kernel_size),
                                     strides=list(op.stride), pads=[pt, pl, pb, pr]))
        elif isinstance(op, AvgPoolOp):
            _check_8bit(i, op, op.qparams, "input")
            uses_ms = True
            qs = [const(f"{n}.x_scale", _scalar_scale(op.qparams)),
                  const(f"{n}.x_zero_point", _scalar_zp(op.qparams)),
                  const(f"{n}.y_scale", _scalar_scale(op.qparams)),
                  const(f"{n}.y_zero_point", _scalar_zp(op.qparams))]
            if op.kernel_size is None:
                nodes.append(h.make_node("QLinearGlobalAveragePool", [src(i)] + qs, [names[i]],
                                         name=n, domain="com.microsoft", channels_last=0))
            else:
                pt, pb, pl, pr = _pads4(op.padding)
                nodes.append(h.make_node(
                    "QLinearAveragePool", [src(i)] + qs, [names[i]], name=n,
                    domain="com.microsoft", kernel_shape=list(op.kernel_size),
                    strides=list(op.stride or op.kernel_size), pads=[pt, pl, pb, pr],
                    count_include_pad=1))
        elif isinstance(op, GlobalAvgPoolOp):
            for role, q in (("input", op.input_qparams), ("output", op.output_qparams)):
                _check_8bit(i, op, q, role)
            uses_ms = True
            nodes.append(h.make_node("QLinearGlobalAveragePool", [
                src(i), const(f"{n}.x_scale", _scalar_scale(op.input_qparams)),
                const(f"{n}.x_zero_point", _scalar_zp(op.input_qparams)),
                const(f"{n}.y_scale", _scalar_scale(op.output_qparams)),
                const(f"{n}.y_zero_point", _scalar_zp(op.output_qparams))], [names[i]],
                name=n, domain="com.microsoft", channels_last=0))
        elif isinstance(op, ReluOp):  # an integer Clip with the kernels' bounds
            lo, hi = activation_range(op.activation, float(_scalar_scale(op.qparams)),
                                      int(_scalar_zp(op.qparams)), np.dtype(op.qparams.dtype),
                                      model.profile)
            nodes.append(h.make_node("Clip", [src(i), const(f"{n}.clip_min",
                                                            np.array(lo, op.qparams.dtype)),
                                              const(f"{n}.clip_max",
                                                    np.array(hi, op.qparams.dtype))],
                                     [names[i]], name=n))
        elif isinstance(op, FlattenOp):
            nodes.append(h.make_node("Flatten", [src(i)], [names[i]], name=n, axis=1))
        else:
            raise ValueError(f"op {i} ({op.op} {n!r}) has no ONNX export")
    c, hh, ww = model.input_shape
    # the logits' shape, from one zero image (cheap; ONNX wants every graph output typed)
    out_shape = ["N"] + list(model.run(np.zeros((1, c, hh, ww), np.float32)).shape[1:])
    graph = h.make_graph(
        nodes, "npquant", [h.make_tensor_value_info(INPUT, tp.FLOAT, ["N", c, hh, ww])],
        [h.make_tensor_value_info(OUTPUT, tp.FLOAT, out_shape)], initializer=inits)
    opsets = [h.make_opsetid("", OPSET)] + ([h.make_opsetid("com.microsoft", 1)] if uses_ms
                                            else [])
    proto = h.make_model(graph, opset_imports=opsets, producer_name="npquant",
                         doc_string=f"npquant IntegerModel, profile {model.profile.name} "
                                    f"version {model.profile.version}")
    proto.ir_version = 10
    data = proto.SerializeToString()
    if path is not None:
        write_atomically(Path(path), data)
    return data


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: a
    reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _pads4(padding: Any) -> tuple[int, int, int, int]:
    """npquant padding (an int, (ph, pw) or (top, bottom, left, right)) as a 4-tuple."""
    p = tuple(int(v) for v in np.atleast_1d(padding))
    if len(p) == 1:
        p = p * 4
    if len(p) == 2:
        p = (p[0], p[0], p[1], p[1])
    if len(p) != 4:
        raise ValueError(f"padding must be an int, a pair or a 4-tuple, got {padding!r}")
    return p  # type: ignore[return-value]


def run_onnx_model(model: bytes | str | Path, x: np.ndarray, *,
                   tensors: Sequence[str] = (), optimize: bool = False,
                   ) -> dict[str, np.ndarray]:
    """Run an ONNX model in ONNX Runtime (CPU EP, one thread) on the float32 batch ``x`` and
    return ``{name: array}`` for the graph outputs and every name in ``tensors`` (intermediate
    tensors become graph outputs, ORT's way of keeping them).

    ``optimize=False`` runs the nodes as written (``ORT_DISABLE_ALL``); ``True`` uses ORT's
    default level (``ORT_ENABLE_ALL``: QDQ fusion, layout transforms), how a model is deployed.
    """
    onnx, ort = _onnx(), _ort()
    proto = onnx.load_model_from_string(model) if isinstance(model, bytes) \
        else onnx.load(str(model))
    have = {o.name for o in proto.graph.output}
    for name in tensors:
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    sess = ort.InferenceSession(proto.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    outs = [o.name for o in sess.get_outputs()]
    return dict(zip(outs, sess.run(outs, feed), strict=True))
