"""A MobileNet-v2-style int8 .tflite built directly with the flatbuffer builder, independently of
npquant's converter and exporter: its float graph runs here in NHWC NumPy, each tensor's range is
observed on seeded calibration images, and the model is quantized the way TFLite's converter
does it (per-tensor asymmetric activations, per-channel symmetric int8 weights, int32 bias at
``S_in S_w``, softmax output ``(1/256, -128)``).

    QUANTIZE  CONV 3x3/2 RELU6  [CONV 1x1 RELU6  DEPTHWISE 3x3 RELU6  CONV 1x1]  ADD
              [CONV 1x1 RELU6  DEPTHWISE 3x3/2 RELU6  CONV 1x1]  MEAN(H, W)  FC  SOFTMAX
              DEQUANTIZE
"""

from __future__ import annotations

import numpy as np

INPUT = (16, 16, 3)  # H, W, C


def _conv(x, w, b, stride, depthwise=False):
    """NHWC float conv, SAME padding (TFLite's split: the odd pixel at the bottom/right)."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[1:3]
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + kh - h, 0)
    pw = max((ow - 1) * stride + kw - wd, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, w.shape[0] if not depthwise else w.shape[3]), np.float64)
    for a in range(kh):
        for bb in range(kw):
            patch = xp[:, a:a + stride * oh:stride, bb:bb + stride * ow:stride, :]
            if depthwise:  # w (1, KH, KW, C)
                out += patch * w[0, a, bb]
            else:  # w (O, KH, KW, I)
                out += np.einsum("nhwi,oi->nhwo", patch, w[:, a, bb, :])
    return out + b


def _layers(rng):
    """Float weights of the graph: (kind, params) in order."""
    def conv(o, k, i, stride, act):
        return ("conv", dict(w=rng.normal(0, np.sqrt(2 / (k * k * i)), (o, k, k, i)),
                             b=rng.normal(0, 0.1, o), stride=stride, act=act))

    def dw(c, stride):
        return ("dw", dict(w=rng.normal(0, np.sqrt(2 / 9), (1, 3, 3, c)),
                           b=rng.normal(0, 0.1, c), stride=stride, act="relu6"))

    return [conv(8, 3, 3, 2, "relu6"),
            conv(16, 1, 8, 1, "relu6"), dw(16, 1), conv(8, 1, 16, 1, None), ("add", {}),
            conv(16, 1, 8, 1, "relu6"), dw(16, 2), conv(12, 1, 16, 1, None),
            ("mean", {}),
            ("fc", dict(w=rng.normal(0, np.sqrt(1 / 12), (10, 12)), b=rng.normal(0, 0.1, 10))),
            ("softmax", {})]


def _forward(layers, x):
    """Every tensor of the float graph: [input, out_1, ...]."""
    outs = [x]
    h = x
    block_in = None
    for kind, p in layers:
        if kind in ("conv", "dw"):
            if kind == "conv" and p["w"].shape[1] == 1 and p["act"] == "relu6" and \
                    block_in is None:
                block_in = h
            h = _conv(h, p["w"], p["b"], p["stride"], depthwise=kind == "dw")
            if p["act"] == "relu6":
                h = np.clip(h, 0, 6)
        elif kind == "add":
            h = h + block_in
        elif kind == "mean":
            h = h.mean(axis=(1, 2))
        elif kind == "fc":
            h = h @ p["w"].T + p["b"]
        elif kind == "softmax":
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
        if kind == "add":
            block_in = None
        outs.append(h)
    return outs


def _qparams(lo: float, hi: float) -> tuple[float, int]:
    """TFLite's asymmetric int8 qparams of [lo, hi] (0 included; zero point nudged)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32((hi - lo) / 255.0)) or 1e-3
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zp


def build_mobilenet(seed: int = 0) -> bytes:
    """The .tflite bytes of the module docstring's model (seeded weights and calibration)."""
    import ai_edge_litert.schema_py_generated as s

    from npquant.interop.tflite_export import FLOAT32, INT8, INT32, ModelBuilder

    rng = np.random.default_rng(seed)
    layers = _layers(rng)
    calib = rng.normal(0, 1, (64,) + INPUT)
    ranges = [(float(t.min()), float(t.max())) for t in _forward(layers, calib)]
    qps = [_qparams(*r) for r in ranges]
    qps[-1] = (1 / 256, -128)  # softmax output, as TFLite requires

    b = ModelBuilder()

    def quant(scales, zps, axis=0):
        q = s.QuantizationParametersT()
        q.scale = [float(np.float32(v)) for v in scales]
        q.zeroPoint = [int(v) for v in zps]
        q.quantizedDimension = axis
        return q

    shapes = [t.shape[1:] for t in _forward(layers, calib[:1])]
    x_in = b.tensor("image", [1, *INPUT], FLOAT32)
    t_prev = b.tensor("input_q", [1, *INPUT], INT8, quant([qps[0][0]], [qps[0][1]]))
    b.operator("QUANTIZE", [x_in], [t_prev])
    block_in = None
    for k, (kind, p) in enumerate(layers, start=1):
        s_in = np.float32(qps[k - 1][0])
        out = b.tensor(f"{kind}{k}", [1, *shapes[k]], INT8, quant([qps[k][0]], [qps[k][1]]))
        act = {None: 0, "relu6": 3}.get(p.get("act"), 0)
        if kind in ("conv", "dw"):
            w = p["w"]
            axis = 0 if kind == "conv" else 3
            red = tuple(a for a in range(4) if a != axis)
            s_w = (np.abs(w).max(axis=red) / 127).astype(np.float32)
            shape = [1] * 4
            shape[axis] = -1
            w_q = np.clip(np.round(w / s_w.reshape(shape)), -127, 127).astype(np.int8)
            s_b = (s_in * s_w).astype(np.float32)
            b_q = np.round(p["b"] / s_b.astype(np.float64)).astype(np.int32)
            tw = b.tensor(f"{kind}{k}.w", w_q.shape, INT8, quant(s_w, [0] * len(s_w), axis), w_q)
            tb = b.tensor(f"{kind}{k}.b", b_q.shape, INT32, quant(s_b, [0] * len(s_b)), b_q)
            if kind == "conv":
                opts_t, opts = s.BuiltinOptions.Conv2DOptions, s.Conv2DOptionsT()
                if w.shape[1] == 1 and p["act"] == "relu6" and block_in is None:
                    block_in = t_prev
            else:
                opts_t, opts = s.BuiltinOptions.DepthwiseConv2DOptions, \
                    s.DepthwiseConv2DOptionsT()
                opts.depthMultiplier = 1
            opts.padding, opts.strideH, opts.strideW = 0, p["stride"], p["stride"]
            opts.dilationHFactor = opts.dilationWFactor = 1
            opts.fusedActivationFunction = act
            b.operator("CONV_2D" if kind == "conv" else "DEPTHWISE_CONV_2D",
                       [t_prev, tw, tb], [out], opts_t, opts)
        elif kind == "add":
            opts = s.AddOptionsT()
            b.operator("ADD", [t_prev, block_in], [out], s.BuiltinOptions.AddOptions, opts)
            block_in = None
        elif kind == "mean":
            axes = b.int32_constant("mean.axes", [1, 2])
            opts = s.ReducerOptionsT()
            opts.keepDims = False
            b.operator("MEAN", [t_prev, axes], [out], s.BuiltinOptions.ReducerOptions, opts)
        elif kind == "fc":
            w = p["w"]
            s_w = (np.abs(w).max(axis=1) / 127).astype(np.float32)
            w_q = np.clip(np.round(w / s_w[:, None]), -127, 127).astype(np.int8)
            s_b = (s_in * s_w).astype(np.float32)
            b_q = np.round(p["b"] / s_b.astype(np.float64)).astype(np.int32)
            tw = b.tensor("fc.w", w_q.shape, INT8, quant(s_w, [0] * 10, 0), w_q)
            tb = b.tensor("fc.b", b_q.shape, INT32, quant(s_b, [0] * 10), b_q)
            opts = s.FullyConnectedOptionsT()
            b.operator("FULLY_CONNECTED", [t_prev, tw, tb], [out],
                       s.BuiltinOptions.FullyConnectedOptions, opts)
        elif kind == "softmax":
            opts = s.SoftmaxOptionsT()
            opts.beta = 1.0
            b.operator("SOFTMAX", [t_prev], [out], s.BuiltinOptions.SoftmaxOptions, opts)
        t_prev = out
    y = b.tensor("probabilities", [1, 10], FLOAT32)
    b.operator("DEQUANTIZE", [t_prev], [y])
    return b.finish([x_in], [y], "MobileNet-v2-style block stack (tests/oracles)")


def mobilenet_images(n: int, seed: int) -> np.ndarray:
    """Seeded float images in npquant's layout (N, C, H, W)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, INPUT[2], INPUT[0], INPUT[1])).astype(np.float32)
