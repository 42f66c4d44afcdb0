"""Single-node ONNX models (onnx.helper) run by ONNX Runtime's CPU execution provider.

ONNX is NCHW with OIHW weights, as npquant: no transposes. Weights, biases and quantization
parameters are initializers (constants), as in a real quantized model, so ORT's weight
prepacking paths run. Sessions use one intra-op thread and ``ORT_DISABLE_ALL`` graph
optimizations, so the node runs as written (no fusion or constant folding).

Quantization parameters are float32 scale tensors and int8/uint8 zero-point tensors: a Python
float scale is rounded to float32 on the way in (the framework sees ``f32(scale)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from npquant.interop._common import (
    check_array,
    check_keys,
    check_scale,
    check_scales,
    check_zero_point,
    import_framework,
    pair,
)

OPS = ("quantize_linear", "dequantize_linear", "qlinear_matmul", "qlinear_conv", "conv_integer",
       "matmul_integer", "qlinear_add", "qlinear_average_pool", "qlinear_global_average_pool")
OPSET = 21
_QTYPES = (np.int8, np.uint8)


def _ort():
    return import_framework("onnxruntime", "npquant.interop.onnx")


def _onnx():
    return import_framework("onnx", "npquant.interop.onnx")


def _qdtype(name: str, value: Any) -> np.dtype:
    dt = np.dtype(value)
    if dt not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise TypeError(f"{name} must be int8 or uint8, got {dt}")
    return dt


def _int_input(name: str, arr: Any, ndim: int | None = None) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
    _qdtype(f"{name}.dtype", arr.dtype)
    return check_array(name, arr, arr.dtype, ndim)


def _scale_init(name: str, value: Any, channels: int | None = None) -> np.ndarray:
    """float32 scale initializer: scalar, or 1-D per-axis when ``channels`` allows it."""
    if channels is None or np.ndim(value) == 0:
        return np.array(check_scale(name, value), dtype=np.float32)
    return check_scales(name, value, channels).astype(np.float32)


def _zp_init(name: str, value: Any, dtype: np.dtype, channels: int | None = None) -> np.ndarray:
    if np.ndim(value) == 0:
        return np.array(check_zero_point(name, value, dtype), dtype=dtype)
    arr = np.asarray(value)
    if channels is None or arr.shape != (channels,):
        raise ValueError(f"{name} must be a scalar or have shape ({channels},), got {arr.shape}")
    return np.array([check_zero_point(f"{name}[{i}]", int(v), dtype) for i, v in enumerate(arr)],
                    dtype=dtype)


def _pads(value: Any) -> list[int]:
    """npquant order (top, bottom, left, right) -> ONNX order (top, left, bottom, right)."""
    vals = tuple(int(v) for v in value)
    if len(vals) != 4 or min(vals) < 0:
        raise ValueError(f"pads must be 4 non-negative ints (top, bottom, left, right), "
                         f"got {value!r}")
    top, bottom, left, right = vals
    return [top, left, bottom, right]


def build_onnx_model(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any]) -> bytes:
    """The serialized ONNX model of one ``op`` (see :func:`run_onnx_op` for the arguments)."""
    return _build(op, inputs, params)[0]


def _build(op: str, inputs: Sequence[np.ndarray], p: Mapping[str, Any]):
    onnx = _onnx()
    h, tp = onnx.helper, onnx.TensorProto
    p = dict(p)
    inits: list = []
    node_inputs: list[str] = []
    feeds: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}
    domain = ""

    def init(name: str, arr: np.ndarray) -> None:
        inits.append(onnx.numpy_helper.from_array(np.array(arr, order="C"), name))  # keeps 0-d
        node_inputs.append(name)

    def init_qparams(tensor: str, dtype: np.dtype, channels: int | None = None) -> None:
        # the (scale, zero point) inputs of one tensor, in the order the QLinear* ops list them
        init(f"{tensor}_scale", _scale_init(f"{tensor}_scale", p[f"{tensor}_scale"], channels))
        init(f"{tensor}_zero_point", _zp_init(f"{tensor}_zero_point",
                                              p.get(f"{tensor}_zero_point", 0), dtype, channels))

    def feed(name: str, arr: np.ndarray) -> None:
        feeds[name] = arr
        node_inputs.append(name)

    def n_inputs(k: int) -> None:
        if len(inputs) != k:
            raise ValueError(f"{op} takes {k} input(s), got {len(inputs)}")

    if op == "quantize_linear":
        check_keys(op, p, {"y_scale", "y_zero_point"}, {"axis", "dtype"})
        n_inputs(1)
        x = check_array("inputs[0]", inputs[0], np.float32)
        axis = int(p.get("axis", 1))
        ch = x.shape[axis] if x.ndim else None
        dt = _qdtype("dtype", p.get("dtype", np.int8))
        feed("x", x)
        init_qparams("y", dt, ch)
        attrs["axis"] = axis
        out_type, node = dt, "QuantizeLinear"
    elif op == "dequantize_linear":
        check_keys(op, p, {"x_scale", "x_zero_point"}, {"axis"})
        n_inputs(1)
        x = _int_input("inputs[0]", inputs[0])
        axis = int(p.get("axis", 1))
        ch = x.shape[axis] if x.ndim else None
        feed("x", x)
        init_qparams("x", x.dtype, ch)
        attrs["axis"] = axis
        out_type, node = np.dtype(np.float32), "DequantizeLinear"
    elif op in ("qlinear_matmul", "qlinear_add"):
        check_keys(op, p, {"a_scale", "a_zero_point", "b_scale", "b_zero_point", "y_scale",
                           "y_zero_point"}, set())
        n_inputs(2)
        a = _int_input("inputs[0]", inputs[0], 2 if op == "qlinear_matmul" else None)
        b = _int_input("inputs[1]", inputs[1], 2 if op == "qlinear_matmul" else None)
        if op == "qlinear_matmul" and a.shape[1] != b.shape[0]:
            raise ValueError(f"qlinear_matmul: a {a.shape} @ b {b.shape} do not chain")
        if op == "qlinear_add" and a.shape != b.shape:
            raise ValueError(f"qlinear_add: inputs must have the same shape, got {a.shape} and "
                             f"{b.shape}")
        y_dt = a.dtype if op == "qlinear_add" else _qdtype(
            "y dtype", p.get("y_dtype", a.dtype))
        feed("a", a)
        init_qparams("a", a.dtype)
        if op == "qlinear_matmul":  # b is the weight: a constant, as in a quantized model
            init("b", b)
        else:
            feed("b", b)
        init_qparams("b", b.dtype)
        init_qparams("y", y_dt)
        out_type = y_dt
        node = "QLinearMatMul" if op == "qlinear_matmul" else "QLinearAdd"
        domain = "" if op == "qlinear_matmul" else "com.microsoft"
    elif op in ("qlinear_conv", "conv_integer"):
        req = {"w", "x_zero_point"} | ({"x_scale", "w_scale", "y_scale", "y_zero_point"}
                                       if op == "qlinear_conv" else set())
        check_keys(op, p, req, {"w_zero_point", "bias", "stride", "pads", "dilation", "groups"})
        n_inputs(1)
        x = _int_input("inputs[0]", inputs[0], 4)
        w = _int_input("w", p["w"], 4)
        groups = int(p.get("groups", 1))
        o, cg = w.shape[:2]
        if groups < 1 or x.shape[1] != cg * groups or o % groups:
            raise ValueError(f"{op}: x {x.shape}, w {w.shape} and groups={groups} disagree")
        feed("x", x)
        if op == "qlinear_conv":
            init_qparams("x", x.dtype)
            init("w", w)
            init_qparams("w", w.dtype, o)
            init_qparams("y", x.dtype)
            if p.get("bias") is not None:
                bias = check_array("bias", p["bias"], np.int32, 1)
                if bias.shape != (o,):
                    raise ValueError(f"bias must have shape ({o},), got {bias.shape}")
                init("bias", bias)
            out_type, node = x.dtype, "QLinearConv"
        else:
            init("w", w)
            init("x_zero_point", _zp_init("x_zero_point", p["x_zero_point"], x.dtype))
            init("w_zero_point", _zp_init("w_zero_point", p.get("w_zero_point", 0), w.dtype, o))
            out_type, node = np.dtype(np.int32), "ConvInteger"
        attrs.update(kernel_shape=list(w.shape[2:]), strides=list(pair("stride",
                                                                       p.get("stride", 1))),
                     dilations=list(pair("dilation", p.get("dilation", 1))),
                     pads=_pads(p.get("pads", (0, 0, 0, 0))), group=groups)
    elif op == "matmul_integer":
        check_keys(op, p, {"a_zero_point", "b_zero_point"}, set())
        n_inputs(2)
        a = _int_input("inputs[0]", inputs[0], 2)
        b = _int_input("inputs[1]", inputs[1], 2)
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul_integer: a {a.shape} @ b {b.shape} do not chain")
        feed("a", a)
        init("b", b)
        init("a_zero_point", _zp_init("a_zero_point", p["a_zero_point"], a.dtype))
        init("b_zero_point", _zp_init("b_zero_point", p["b_zero_point"], b.dtype))
        out_type, node = np.dtype(np.int32), "MatMulInteger"
    elif op == "qlinear_average_pool":
        check_keys(op, p, {"kernel_size", "x_scale", "x_zero_point", "y_scale", "y_zero_point"},
                   {"stride", "pads", "count_include_pad"})
        n_inputs(1)
        x = _int_input("inputs[0]", inputs[0], 4)
        feed("x", x)
        init_qparams("x", x.dtype)
        init_qparams("y", x.dtype)
        k = pair("kernel_size", p["kernel_size"])
        attrs.update(kernel_shape=list(k), strides=list(pair("stride", p.get("stride", k))),
                     pads=_pads(p.get("pads", (0, 0, 0, 0))),
                     count_include_pad=int(bool(p.get("count_include_pad", False))))
        out_type, node, domain = x.dtype, "QLinearAveragePool", "com.microsoft"
    elif op == "qlinear_global_average_pool":
        check_keys(op, p, {"x_scale", "x_zero_point", "y_scale", "y_zero_point"}, set())
        n_inputs(1)
        x = _int_input("inputs[0]", inputs[0], 4)
        feed("x", x)
        init_qparams("x", x.dtype)
        init_qparams("y", x.dtype)
        attrs["channels_last"] = 0
        out_type, node, domain = x.dtype, "QLinearGlobalAveragePool", "com.microsoft"
    else:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")

    elem = {np.dtype(np.int8): tp.INT8, np.dtype(np.uint8): tp.UINT8,
            np.dtype(np.int32): tp.INT32, np.dtype(np.float32): tp.FLOAT}
    graph_inputs = [h.make_tensor_value_info(k, elem[v.dtype], list(v.shape))
                    for k, v in feeds.items()]
    nd = h.make_node(node, node_inputs, ["y"], domain=domain or None, **attrs)
    graph = h.make_graph([nd], op, graph_inputs,
                         [h.make_tensor_value_info("y", elem[np.dtype(out_type)], None)],
                         initializer=inits)
    opsets = [h.make_opsetid("", OPSET)]
    if domain:
        opsets.append(h.make_opsetid(domain, 1))
    model = h.make_model(graph, opset_imports=opsets, producer_name="npquant.interop.onnx")
    model.ir_version = 10
    return model.SerializeToString(), feeds


def run_onnx_op(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any]) -> np.ndarray:
    """Run one quantized ONNX node in ONNX Runtime (CPU EP, 1 thread, no graph optimization).

    Args:
        op: one of :data:`OPS`.
        inputs: runtime inputs, NCHW for convs and pools:
            ``[x]`` (float32) for quantize_linear; ``[x]`` (int8/uint8) for dequantize_linear,
            qlinear_conv, conv_integer, qlinear_average_pool; ``[a, b]`` for qlinear_matmul and
            matmul_integer (``b`` (K, N) becomes a constant initializer) and qlinear_add.
        params:
            - quantize_linear: ``y_scale``, ``y_zero_point`` (scalars, or 1-D per ``axis``),
              optional ``axis`` (default 1), ``dtype`` (int8 default, or uint8);
            - dequantize_linear: ``x_scale``, ``x_zero_point``, optional ``axis``;
            - qlinear_matmul / qlinear_add: ``a_scale``, ``a_zero_point``, ``b_scale``,
              ``b_zero_point``, ``y_scale``, ``y_zero_point`` (per-tensor);
            - qlinear_conv: ``w`` (OIHW int8/uint8), ``x_scale``, ``x_zero_point``, ``w_scale``
              (scalar or (O,)), ``y_scale``, ``y_zero_point``; optional ``w_zero_point``,
              ``bias`` (int32 (O,), scale s_x s_w), ``stride``, ``pads`` (top, bottom, left,
              right; pad value is the input zero point), ``dilation``, ``groups``;
            - conv_integer: ``w``, ``x_zero_point``, optional ``w_zero_point``, ``stride``,
              ``pads``, ``dilation``, ``groups`` -> int32 accumulators;
            - matmul_integer: ``a_zero_point``, ``b_zero_point`` -> int32 accumulators;
            - qlinear_average_pool (com.microsoft): ``kernel_size``, ``x_scale``,
              ``x_zero_point``, ``y_scale``, ``y_zero_point``; optional ``stride``, ``pads``,
              ``count_include_pad``;
            - qlinear_global_average_pool (com.microsoft, NCHW): ``x_scale``, ``x_zero_point``,
              ``y_scale``, ``y_zero_point``.

    Returns:
        ORT's output array (int8/uint8, int32 or float32).
    """
    model, feeds = _build(op, inputs, params)
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]
