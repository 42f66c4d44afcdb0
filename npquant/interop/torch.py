"""PyTorch (CPU) quantized ops with exact, caller-given qparams: quantize, conv2d, linear, add.

Layouts are PyTorch's own and npquant's: NCHW activations, OIHW weights, linear x (N, K) and
w (O, K). Activations are quint8 (uint8), weights qint8 (int8) per-tensor or per-channel
(axis 0). Quantized tensors are made directly from the caller's integers
(``torch._make_per_tensor_quantized_tensor``), so nothing is re-quantized on the way in.
The engine (``"x86"``, ``"fbgemm"`` or ``"qnnpack"``) is set for the call and restored after.
NOTE: PyTorch keeps scales as float64 in the tensor but its kernels use float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
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

OPS = ("quantize", "conv2d", "linear", "add")
ENGINES = ("x86", "fbgemm", "qnnpack")


def _torch():
    return import_framework("torch", "npquant.interop.torch")


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Select ``torch.backends.quantized.engine`` for the block, then restore it."""
    torch = _torch()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"engine {engine!r} is not supported by this torch build "
                           f"({torch.backends.quantized.supported_engines})")
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


def _qtensor(q: np.ndarray, scale: Any, zero_point: Any, axis: int | None = None):
    """A torch quantized tensor holding exactly the integers ``q`` (int8 -> qint8,
    uint8 -> quint8) with the given per-tensor or per-channel (``axis``) qparams."""
    torch = _torch()
    t = torch.from_numpy(np.array(q, order="C"))
    if axis is None:
        return torch._make_per_tensor_quantized_tensor(t, float(scale), int(zero_point))
    scales = torch.tensor(np.asarray(scale, dtype=np.float64))
    zps = torch.tensor(np.asarray(zero_point, dtype=np.int64))
    return torch._make_per_channel_quantized_tensor(t, scales, zps, axis)


def run_torch_op(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any], *,
                 engine: str = "x86") -> np.ndarray:
    """Run one PyTorch quantized CPU op and return its integer output (``int_repr()``).

    Args:
        op: one of :data:`OPS`.
        inputs: ``[x]`` (float32 for quantize; uint8 NCHW for conv2d; uint8 (N, K) for linear)
            or ``[a, b]`` (uint8, same shape) for add.
        params:
            - quantize: ``y_scale``, ``y_zero_point`` (numbers, or 1-D arrays with ``axis``),
              optional ``axis``, ``dtype`` ("quint8" default, or "qint8");
            - conv2d: ``w`` (int8 OIHW), ``x_scale``, ``x_zero_point``, ``w_scale`` (number or
              (O,)), ``y_scale``, ``y_zero_point``; optional ``stride``, ``padding`` (symmetric
              (ph, pw), padded with the input zero point), ``dilation``, ``groups``, ``bias``
              (float32 (O,): PyTorch takes a real-valued bias and quantizes it itself);
            - linear: ``w`` (int8 (O, K)) and the same qparams, optional ``bias`` (float32);
            - add: ``a_scale``, ``a_zero_point``, ``b_scale``, ``b_zero_point``, ``y_scale``,
              ``y_zero_point``.
        engine: "x86", "fbgemm" or "qnnpack".

    Returns:
        uint8 (or int8 for a qint8 quantize) numpy array.
    """
    torch = _torch()
    p = dict(params)
    with quantized_engine(engine), torch.no_grad():
        if op == "quantize":
            check_keys(op, p, {"y_scale", "y_zero_point"}, {"axis", "dtype"})
            if len(inputs) != 1:
                raise ValueError(f"quantize takes 1 input, got {len(inputs)}")
            x = torch.from_numpy(check_array("inputs[0]", inputs[0], np.float32).copy())
            dtype = {"quint8": torch.quint8, "qint8": torch.qint8}.get(p.get("dtype", "quint8"))
            if dtype is None:
                raise ValueError(f"dtype must be 'quint8' or 'qint8', got {p['dtype']!r}")
            np_dt = np.uint8 if dtype == torch.quint8 else np.int8
            if p.get("axis") is None:
                s = check_scale("y_scale", p["y_scale"])
                z = check_zero_point("y_zero_point", p["y_zero_point"], np_dt)
                y = torch.quantize_per_tensor(x, s, z, dtype)
            else:
                axis = int(p["axis"])
                s = check_scales("y_scale", p["y_scale"], x.shape[axis])
                z = np.array([check_zero_point("y_zero_point", int(v), np_dt)
                              for v in np.atleast_1d(p["y_zero_point"])], dtype=np.int64)
                y = torch.quantize_per_channel(x, torch.tensor(s), torch.tensor(z), axis, dtype)
        elif op in ("conv2d", "linear"):
            check_keys(op, p, {"w", "x_scale", "x_zero_point", "w_scale", "y_scale",
                               "y_zero_point"},
                       {"bias"} | ({"stride", "padding", "dilation", "groups"}
                                   if op == "conv2d" else set()))
            if len(inputs) != 1:
                raise ValueError(f"{op} takes 1 input, got {len(inputs)}")
            nd = 4 if op == "conv2d" else 2
            x = check_array("inputs[0]", inputs[0], np.uint8, nd)
            w = check_array("w", p["w"], np.int8, nd)
            o = w.shape[0]
            xq = _qtensor(x, check_scale("x_scale", p["x_scale"]),
                          check_zero_point("x_zero_point", p["x_zero_point"], np.uint8))
            w_scale = check_scales("w_scale", p["w_scale"], o)
            wq = (_qtensor(w, w_scale[0], 0) if w_scale.size == 1 else
                  _qtensor(w, w_scale, np.zeros(o, np.int64), axis=0))
            bias = p.get("bias")
            if bias is not None:
                bias = torch.from_numpy(check_array("bias", bias, np.float32, 1).copy())
            y_scale = check_scale("y_scale", p["y_scale"])
            y_zp = check_zero_point("y_zero_point", p["y_zero_point"], np.uint8)
            if op == "conv2d":
                groups = int(p.get("groups", 1))
                if x.shape[1] != w.shape[1] * groups:
                    raise ValueError(f"conv2d: x {x.shape}, w {w.shape}, groups={groups} disagree")
                packed = torch.ops.quantized.conv2d_prepack(
                    wq, bias, list(pair("stride", p.get("stride", 1))),
                    list(_padding(p.get("padding", 0))),
                    list(pair("dilation", p.get("dilation", 1))), groups)
                y = torch.ops.quantized.conv2d(xq, packed, y_scale, y_zp)
            else:
                if x.shape[1] != w.shape[1]:
                    raise ValueError(f"linear: x {x.shape} and w {w.shape} disagree on K")
                packed = torch.ops.quantized.linear_prepack(wq, bias)
                y = torch.ops.quantized.linear(xq, packed, y_scale, y_zp)
        elif op == "add":
            check_keys(op, p, {"a_scale", "a_zero_point", "b_scale", "b_zero_point", "y_scale",
                               "y_zero_point"}, set())
            if len(inputs) != 2:
                raise ValueError(f"add takes 2 inputs, got {len(inputs)}")
            a = check_array("inputs[0]", inputs[0], np.uint8)
            b = check_array("inputs[1]", inputs[1], np.uint8)
            if a.shape != b.shape:
                raise ValueError(f"add: inputs must have the same shape, got {a.shape} and "
                                 f"{b.shape}")
            aq = _qtensor(a, check_scale("a_scale", p["a_scale"]),
                          check_zero_point("a_zero_point", p["a_zero_point"], np.uint8))
            bq = _qtensor(b, check_scale("b_scale", p["b_scale"]),
                          check_zero_point("b_zero_point", p["b_zero_point"], np.uint8))
            y = torch.ops.quantized.add(aq, bq, check_scale("y_scale", p["y_scale"]),
                                        check_zero_point("y_zero_point", p["y_zero_point"],
                                                         np.uint8))
        else:
            raise ValueError(f"op must be one of {OPS}, got {op!r}")
        return y.int_repr().numpy().copy()


def _padding(value: Any) -> tuple[int, int]:
    vals = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in vals):
        raise ValueError(f"padding must be a non-negative int or pair, got {value!r}")
    return int(vals[0]), int(vals[1])
