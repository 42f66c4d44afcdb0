"""Single-op int8 TFLite models written as flatbuffers in memory and run by the LiteRT interpreter.

No TensorFlow and no converter: each model is one operator whose tensors carry exactly the
caller's quantization parameters, so the framework's integer output can be compared bit for bit
with npquant's kernels.

Layouts. The bridge takes npquant's layouts and transposes them for TFLite:

- activations NCHW  -> TFLite NHWC (and the output back to NCHW);
- conv weights OIHW -> TFLite OHWI;
- depthwise weights (C*m, 1, KH, KW) (PyTorch ``groups=C``) -> TFLite (1, KH, KW, C*m);
  output channel ``o`` reads input channel ``o // m`` in both layouts;
- fully-connected x (N, K), weights (O, K) -> the same in TFLite, output (N, O);
- ADD, QUANTIZE, DEQUANTIZE are elementwise: any shape, passed through unchanged.

Kernel paths (``kernels=``):

- ``"reference"``: ``BUILTIN_REF``, TFLite's reference kernels (the ``tflite`` profile);
- ``"optimized"``: ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, the optimized builtin kernels;
- ``"xnnpack"``: the default resolver, which hands supported int8 ops to the XNNPACK delegate.
  If XNNPACK declines the op (it then silently runs the optimized kernel), the bridge raises
  ``RuntimeError`` rather than return another path's numbers.
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

OPS = ("conv2d", "depthwise_conv2d", "fully_connected", "add", "average_pool2d", "max_pool2d",
       "quantize", "dequantize")
KERNELS = ("reference", "optimized", "xnnpack")
ACTIVATIONS = ("NONE", "RELU", "RELU6")
PADDINGS = ("SAME", "VALID")

# Builtin operator codes and op versions (the int8 versions the resolver registers).
_OPCODE = {"conv2d": (3, 3), "depthwise_conv2d": (4, 3), "fully_connected": (9, 4),
           "add": (0, 2), "average_pool2d": (1, 2), "max_pool2d": (17, 2),
           "quantize": (114, 2), "dequantize": (6, 2)}
_INT8, _INT32, _FLOAT32 = 9, 2, 0  # schema TensorType values


def _schema():
    return import_framework("ai_edge_litert.schema_py_generated", "npquant.interop.tflite")


def tflite_padding(padding: str, in_hw: tuple[int, int], kernel_hw: tuple[int, int],
                   stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)
                   ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Output size and explicit pads TFLite uses for ``padding`` ("SAME" or "VALID").

    As TFLite's ``ComputePaddingHeightWidth``: effective kernel ``k' = (k - 1) d + 1``; SAME gives
    ``out = ceil(in / s)`` and VALID ``out = ceil((in - k' + 1) / s)``; the total pad
    ``max((out - 1) s + k' - in, 0)`` is split with the odd pixel at the bottom/right.

    Returns ``((out_h, out_w), (pad_top, pad_bottom, pad_left, pad_right))``.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    outs, pads = [], []
    for n, k, s, d in zip(in_hw, kernel_hw, stride, dilation, strict=True):
        eff = (k - 1) * d + 1
        out = (n + s - 1) // s if padding == "SAME" else (n + s - eff) // s
        total = max((out - 1) * s + eff - n, 0)
        outs.append(out)
        pads += [total // 2, total - total // 2]
    return (outs[0], outs[1]), (pads[0], pads[1], pads[2], pads[3])


def _quant(scales: Sequence[float] | np.ndarray, zero_points: Sequence[int], axis: int = 0):
    s = _schema()
    q = s.QuantizationParametersT()
    q.scale = [float(v) for v in scales]
    q.zeroPoint = [int(v) for v in zero_points]
    q.quantizedDimension = axis
    return q


class _Graph:
    """Tensors and buffers of a one-operator subgraph under construction."""

    def __init__(self) -> None:
        s = _schema()
        self.tensors: list = []
        self.buffers = [s.BufferT()]  # buffer 0 is the empty sentinel

    def tensor(self, name: str, shape: Sequence[int], ttype: int, quant=None,
               data: np.ndarray | None = None) -> int:
        s = _schema()
        t = s.TensorT()
        t.name, t.shape, t.type, t.quantization = name, [int(v) for v in shape], ttype, quant
        if data is not None:
            b = s.BufferT()
            b.data = np.ascontiguousarray(data).view(np.uint8).ravel().tolist()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1


def _activation_code(name: str) -> int:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return {"NONE": 0, "RELU": 1, "RELU6": 3}[name]


def _padding_code(name: str) -> int:
    if name not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {name!r}")
    return {"SAME": 0, "VALID": 1}[name]


_CONV_REQ = {"w", "x_scale", "x_zero_point", "w_scale", "y_scale", "y_zero_point"}
_CONV_OPT = {"bias", "stride", "padding", "dilation", "activation"}


def _weights_and_bias(op: str, p: Mapping[str, Any], w_ndim: int, out_ch: int, x_scale: float):
    """Validated int8 weights, their scales (1 or out_ch), and int32 bias (zeros if absent)."""
    w = check_array("w", p["w"], np.int8, w_ndim)
    w_scale = check_scales("w_scale", p["w_scale"], out_ch)
    bias = p.get("bias")
    bias = np.zeros(out_ch, np.int32) if bias is None else check_array("bias", bias, np.int32, 1)
    if bias.shape != (out_ch,):
        raise ValueError(f"{op}: bias must have shape ({out_ch},), got {bias.shape}")
    # Bias scale is s_x * s_w[c] (Z = 0); TFLite checks it only approximately.
    bias_scale = (np.float32(x_scale) * w_scale.astype(np.float32)).astype(np.float64)
    return w, w_scale, bias, bias_scale


def _build(op: str, inputs: Sequence[np.ndarray], p: Mapping[str, Any]):
    """Validate the call and return (model bytes, runtime input arrays in TFLite layout,
    function mapping the TFLite output back to npquant's layout)."""
    s = _schema()
    g = _Graph()
    opts_type, opts = 0, None
    to_caller = (lambda y: y)  # noqa: E731

    def one_input(dtype, ndim=None):
        if len(inputs) != 1:
            raise ValueError(f"{op} takes 1 input, got {len(inputs)}")
        return check_array("inputs[0]", inputs[0], dtype, ndim)

    if op in ("conv2d", "depthwise_conv2d"):
        check_keys(op, dict(p), _CONV_REQ, _CONV_OPT)
        x = one_input(np.int8, 4)
        x_scale = check_scale("x_scale", p["x_scale"])
        x_zp = check_zero_point("x_zero_point", p["x_zero_point"], np.int8)
        y_scale = check_scale("y_scale", p["y_scale"])
        y_zp = check_zero_point("y_zero_point", p["y_zero_point"], np.int8)
        w_arr = check_array("w", p["w"], np.int8, 4)
        out_ch, cin_w, kh, kw = w_arr.shape
        n, c, h, wd = x.shape
        w, w_scale, bias, bias_scale = _weights_and_bias(op, p, 4, out_ch, x_scale)
        stride = pair("stride", p.get("stride", 1))
        dilation = pair("dilation", p.get("dilation", 1))
        padding = p.get("padding", "VALID")
        act = _activation_code(p.get("activation", "NONE"))
        if op == "conv2d":
            if cin_w != c:
                raise ValueError(f"conv2d: w has {cin_w} input channels, x has {c} "
                                 f"(x {x.shape}, w {w.shape})")
            w_t = np.transpose(w, (0, 2, 3, 1))  # OIHW -> OHWI, per-channel axis 0
            w_axis = 0
            opts_type, opts = s.BuiltinOptions.Conv2DOptions, s.Conv2DOptionsT()
        else:
            if cin_w != 1 or out_ch % c != 0:
                raise ValueError(f"depthwise_conv2d: w must be (C*m, 1, KH, KW) with C={c}, "
                                 f"got {w.shape}")
            w_t = np.transpose(w, (1, 2, 3, 0))  # (Cm,1,KH,KW) -> (1,KH,KW,Cm), axis 3
            w_axis = 3
            opts_type = s.BuiltinOptions.DepthwiseConv2DOptions
            opts = s.DepthwiseConv2DOptionsT()
            opts.depthMultiplier = out_ch // c
        opts.padding = _padding_code(padding)
        opts.strideH, opts.strideW = stride
        opts.dilationHFactor, opts.dilationWFactor = dilation
        opts.fusedActivationFunction = act
        (oh, ow), _ = tflite_padding(padding, (h, wd), (kh, kw), stride, dilation)
        if oh < 1 or ow < 1:
            raise ValueError(f"{op}: empty output {oh}x{ow} for x {x.shape}, w {w.shape}")
        runtime = [np.transpose(x, (0, 2, 3, 1)).copy()]
        ti = g.tensor("x", runtime[0].shape, _INT8, _quant([x_scale], [x_zp]))
        tw = g.tensor("w", w_t.shape, _INT8, _quant(w_scale, [0] * len(w_scale), w_axis),
                      w_t.copy())
        tb = g.tensor("bias", bias.shape, _INT32, _quant(bias_scale, [0] * len(bias_scale)),
                      bias)
        to = g.tensor("y", (n, oh, ow, out_ch), _INT8, _quant([y_scale], [y_zp]))
        op_inputs, op_outputs = [ti, tw, tb], [to]
        to_caller = (lambda y: np.transpose(y, (0, 3, 1, 2)).copy())  # noqa: E731

    elif op == "fully_connected":
        check_keys(op, dict(p), _CONV_REQ, {"bias", "activation"})
        x = one_input(np.int8, 2)
        x_scale = check_scale("x_scale", p["x_scale"])
        x_zp = check_zero_point("x_zero_point", p["x_zero_point"], np.int8)
        y_scale = check_scale("y_scale", p["y_scale"])
        y_zp = check_zero_point("y_zero_point", p["y_zero_point"], np.int8)
        w_arr = check_array("w", p["w"], np.int8, 2)
        out_ch, k = w_arr.shape
        if x.shape[1] != k:
            raise ValueError(f"fully_connected: x {x.shape} and w {w_arr.shape} disagree on K")
        w, w_scale, bias, bias_scale = _weights_and_bias(op, p, 2, out_ch, x_scale)
        opts_type = s.BuiltinOptions.FullyConnectedOptions
        opts = s.FullyConnectedOptionsT()
        opts.fusedActivationFunction = _activation_code(p.get("activation", "NONE"))
        runtime = [x]
        ti = g.tensor("x", x.shape, _INT8, _quant([x_scale], [x_zp]))
        tw = g.tensor("w", w.shape, _INT8, _quant(w_scale, [0] * len(w_scale), 0), w)
        tb = g.tensor("bias", bias.shape, _INT32, _quant(bias_scale, [0] * len(bias_scale)),
                      bias)
        to = g.tensor("y", (x.shape[0], out_ch), _INT8, _quant([y_scale], [y_zp]))
        op_inputs, op_outputs = [ti, tw, tb], [to]

    elif op == "add":
        check_keys(op, dict(p), {"a_scale", "a_zero_point", "b_scale", "b_zero_point",
                                 "y_scale", "y_zero_point"}, {"activation"})
        if len(inputs) != 2:
            raise ValueError(f"add takes 2 inputs, got {len(inputs)}")
        a = check_array("inputs[0]", inputs[0], np.int8)
        b = check_array("inputs[1]", inputs[1], np.int8)
        if a.shape != b.shape:
            raise ValueError(f"add: inputs must have the same shape, got {a.shape} and {b.shape}")
        qa = _quant([check_scale("a_scale", p["a_scale"])],
                    [check_zero_point("a_zero_point", p["a_zero_point"], np.int8)])
        qb = _quant([check_scale("b_scale", p["b_scale"])],
                    [check_zero_point("b_zero_point", p["b_zero_point"], np.int8)])
        qy = _quant([check_scale("y_scale", p["y_scale"])],
                    [check_zero_point("y_zero_point", p["y_zero_point"], np.int8)])
        opts_type, opts = s.BuiltinOptions.AddOptions, s.AddOptionsT()
        opts.fusedActivationFunction = _activation_code(p.get("activation", "NONE"))
        runtime = [a, b]
        op_inputs = [g.tensor("a", a.shape, _INT8, qa), g.tensor("b", b.shape, _INT8, qb)]
        op_outputs = [g.tensor("y", a.shape, _INT8, qy)]

    elif op in ("average_pool2d", "max_pool2d"):
        check_keys(op, dict(p), {"kernel_size", "x_scale", "x_zero_point"},
                   {"stride", "padding", "activation", "y_scale", "y_zero_point"})
        x = one_input(np.int8, 4)
        x_scale = check_scale("x_scale", p["x_scale"])
        x_zp = check_zero_point("x_zero_point", p["x_zero_point"], np.int8)
        y_scale = check_scale("y_scale", p.get("y_scale", x_scale))
        y_zp = check_zero_point("y_zero_point", p.get("y_zero_point", x_zp), np.int8)
        kh, kw = pair("kernel_size", p["kernel_size"])
        stride = pair("stride", p.get("stride", (kh, kw)))
        padding = p.get("padding", "VALID")
        opts_type, opts = s.BuiltinOptions.Pool2DOptions, s.Pool2DOptionsT()
        opts.padding = _padding_code(padding)
        opts.strideH, opts.strideW = stride
        opts.filterHeight, opts.filterWidth = kh, kw
        opts.fusedActivationFunction = _activation_code(p.get("activation", "NONE"))
        n, c, h, wd = x.shape
        (oh, ow), _ = tflite_padding(padding, (h, wd), (kh, kw), stride)
        if oh < 1 or ow < 1:
            raise ValueError(f"{op}: empty output {oh}x{ow} for x {x.shape}, kernel {kh}x{kw}")
        runtime = [np.transpose(x, (0, 2, 3, 1)).copy()]
        op_inputs = [g.tensor("x", runtime[0].shape, _INT8, _quant([x_scale], [x_zp]))]
        op_outputs = [g.tensor("y", (n, oh, ow, c), _INT8, _quant([y_scale], [y_zp]))]
        to_caller = (lambda y: np.transpose(y, (0, 3, 1, 2)).copy())  # noqa: E731

    elif op == "quantize":
        check_keys(op, dict(p), {"y_scale", "y_zero_point"}, set())
        x = one_input(np.float32)
        qy = _quant([check_scale("y_scale", p["y_scale"])],
                    [check_zero_point("y_zero_point", p["y_zero_point"], np.int8)])
        runtime = [x]
        op_inputs = [g.tensor("x", x.shape, _FLOAT32)]
        op_outputs = [g.tensor("y", x.shape, _INT8, qy)]

    elif op == "dequantize":
        check_keys(op, dict(p), {"x_scale", "x_zero_point"}, set())
        x = one_input(np.int8)
        qx = _quant([check_scale("x_scale", p["x_scale"])],
                    [check_zero_point("x_zero_point", p["x_zero_point"], np.int8)])
        runtime = [x]
        op_inputs = [g.tensor("x", x.shape, _INT8, qx)]
        op_outputs = [g.tensor("y", x.shape, _FLOAT32)]
    else:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")

    code, version = _OPCODE[op]
    opcode = s.OperatorCodeT()
    opcode.builtinCode, opcode.deprecatedBuiltinCode, opcode.version = code, code, version
    operator = s.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, op_inputs, op_outputs
    operator.builtinOptionsType, operator.builtinOptions = opts_type, opts
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.name = g.tensors, [operator], op
    sub.inputs = op_inputs[: len(runtime)] if op not in ("add",) else op_inputs
    sub.outputs = op_outputs
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [opcode], [sub]
    model.buffers, model.description = g.buffers, "npquant.interop.tflite single-op model"

    flatbuffers = import_framework("flatbuffers", "npquant.interop.tflite")
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), runtime, to_caller


def build_tflite_model(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any]) -> bytes:
    """The ``.tflite`` flatbuffer of one ``op`` (see :func:`run_tflite_op` for the arguments)."""
    return _build(op, inputs, params)[0]


def run_tflite_op(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any], *,
                  kernels: str = "reference") -> np.ndarray:
    """Run one int8 TFLite operator with exactly the given quantization parameters.

    Args:
        op: one of :data:`OPS`.
        inputs: runtime inputs in npquant layout (module docstring): ``[x]`` (int8; float32 for
            ``quantize``), or ``[a, b]`` (int8, same shape) for ``add``.
        params: per op (scales are real > 0, zero points int8; ``w_scale`` is a number or one
            scale per output channel, weight zero points are 0):

            - conv2d / depthwise_conv2d: ``w`` (int8 OIHW / (C*m,1,KH,KW)), ``x_scale``,
              ``x_zero_point``, ``w_scale``, ``y_scale``, ``y_zero_point``; optional ``bias``
              (int32, scale ``x_scale * w_scale``), ``stride``, ``padding`` ("VALID"/"SAME"),
              ``dilation``, ``activation`` ("NONE"/"RELU"/"RELU6").
            - fully_connected: ``w`` (int8 (O, K)) and the same qparams; ``bias``, ``activation``.
            - add: ``a_scale``, ``a_zero_point``, ``b_scale``, ``b_zero_point``, ``y_scale``,
              ``y_zero_point``; optional ``activation``.
            - average_pool2d / max_pool2d: ``kernel_size``, ``x_scale``, ``x_zero_point``;
              optional ``stride`` (default kernel_size), ``padding``, ``activation``,
              ``y_scale``/``y_zero_point`` (default: the input's).
            - quantize (float32 -> int8): ``y_scale``, ``y_zero_point``.
            - dequantize (int8 -> float32): ``x_scale``, ``x_zero_point``.
        kernels: "reference", "optimized" or "xnnpack" (module docstring).

    Returns:
        The framework's output (int8, or float32 for dequantize) in npquant layout.
    """
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    model, runtime, to_caller = _build(op, inputs, params)
    interp = make_interpreter(model, kernels)
    interp.allocate_tensors()
    if kernels == "xnnpack" and not tflite_op_is_delegated(interp):
        raise RuntimeError(f"XNNPACK declined {op} with these parameters; the interpreter would "
                           "run the optimized builtin kernel instead")
    for detail, arr in zip(interp.get_input_details(), runtime, strict=True):
        interp.set_tensor(detail["index"], arr)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
    return to_caller(np.array(y))


def make_interpreter(model: bytes, kernels: str, preserve_all_tensors: bool = False) -> Any:
    """A one-thread LiteRT interpreter of ``model`` on the kernel path ``kernels`` (module
    docstring: the op resolver of each path); ``preserve_all_tensors`` keeps every
    intermediate tensor readable."""
    mod = import_framework("ai_edge_litert.interpreter", "npquant.interop.tflite")
    resolver = {"reference": mod.OpResolverType.BUILTIN_REF,
                "optimized": mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                "xnnpack": mod.OpResolverType.AUTO}[kernels]
    return mod.Interpreter(model_content=model, num_threads=1,
                           experimental_op_resolver_type=resolver,
                           experimental_preserve_all_tensors=preserve_all_tensors)


def tflite_op_is_delegated(interpreter: Any) -> bool:
    """True when the interpreter's (only) node was replaced by a delegate node."""
    return any(d["op_name"] == "DELEGATE" for d in interpreter._get_ops_details())
