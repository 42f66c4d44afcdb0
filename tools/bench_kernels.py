"""Benchmark npquant's integer kernels against ONNX Runtime (QLinearConv / QLinearMatMul) and
PyTorch's fbgemm quantized ops on the same shapes, in one run; prints a table.

Usage: python3 tools/bench_kernels.py [--repeat 5] [--threads 2] [--quick] [--no-tflite]

All take uint8 activations and int8 per-tensor weights with the same qparams; npquant runs the
``onnxruntime`` profile. Times are the best of ``--repeat`` runs after a warm-up (numba compile
excluded). "core" is npquant's exact int32 GEMM alone on prepacked operands (the VNNI kernel when
the CPU has it, else the int16 kernel; no im2col, bound check, packing or requantization), to show
where the time goes. "TFL ref" is TFLite's BUILTIN_REF kernels through
``npquant.interop.tflite.run_tflite_op`` on int8 inputs with the same shapes, one run: it includes
building the one-op model and the interpreter (tens of ms), so it is an upper bound of the kernel
time. GOPS counts 2 operations per multiply-accumulate.

The repository root is put first on ``sys.path``, so the checkout is measured even when another
copy of npquant is installed.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from npquant.integer import conv2d, depthwise_conv2d, fully_connected  # noqa: E402
from npquant.integer.fast import vnni_gemm as fast_gemm  # noqa: E402
from npquant.integer.fast.gemm_loops import gemm_i32 as _gemm_i32  # noqa: E402

SX, SW, SY, ZX, ZY = 0.02, 0.01, 0.5, 128, 128


def best_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def ort_session(kind: str, x: np.ndarray, w: np.ndarray, geom: dict, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(SX, np.float32), "sx"),
             numpy_helper.from_array(np.array(ZX, np.uint8), "zx"),
             numpy_helper.from_array(np.array(SW, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(np.array(SY, np.float32), "sy"),
             numpy_helper.from_array(np.array(ZY, np.uint8), "zy")]
    if kind == "fc":
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), "w"))
        node = helper.make_node("QLinearMatMul", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"],
                                ["y"])
    else:
        inits.append(numpy_helper.from_array(w, "w"))
        pads = geom.get("padding", 0)
        node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"],
                                ["y"], group=geom.get("groups", 1),
                                pads=[pads] * 4, strides=[geom.get("stride", 1)] * 2)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"x": x})[0]


def torch_fn(kind: str, x: np.ndarray, w: np.ndarray, geom: dict):
    import torch
    import torch.ao.nn.quantized as nnq

    torch.backends.quantized.engine = "fbgemm" if "fbgemm" in \
        torch.backends.quantized.supported_engines else "x86"
    xq = torch.quantize_per_tensor(torch.from_numpy(x.astype(np.float32) - ZX) * SX, SX, ZX,
                                   torch.quint8)
    wq = torch.quantize_per_tensor(torch.from_numpy(w.astype(np.float32)) * SW, SW, 0, torch.qint8)
    if kind == "fc":
        mod = nnq.Linear(w.shape[1], w.shape[0])
    else:
        mod = nnq.Conv2d(x.shape[1], w.shape[0], w.shape[2:], stride=geom.get("stride", 1),
                         padding=geom.get("padding", 0), groups=geom.get("groups", 1))
    mod.set_weight_bias(wq, None)
    mod.scale, mod.zero_point = SY, ZY

    def run():
        with torch.no_grad():
            return mod(xq)
    return run


def npquant_fn(kind: str, x, w, geom):
    kw = dict(x_zero_point=ZX, out_zero_point=ZY, x_scale=SX, w_scale=SW, out_scale=SY,
              profile="onnxruntime", out_dtype=np.uint8)
    if kind == "fc":
        return lambda: fully_connected(x, w, None, **kw)
    if kind == "depthwise":
        return lambda: depthwise_conv2d(x, w, None, padding=geom.get("padding", 0), **kw)
    return lambda: conv2d(x, w, None, padding=geom.get("padding", 0), stride=geom.get("stride", 1),
                          **kw)


def core_fn(kind: str, x, w, geom):
    """npquant's exact int32 GEMM on the im2col-shaped operands (conv) or the operands (fc)."""
    if kind == "depthwise":
        return None
    if kind == "fc":
        a, wm = x, w
    else:
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        p = geom.get("padding", 0)
        oh, ow = h + 2 * p - kh + 1, wd + 2 * p - kw + 1
        # conv as the VNNI path runs it: rows = weights, columns = output pixels of all images
        a, wm = w.reshape(o, -1), np.zeros((n * oh * ow, c * kh * kw), np.uint8)
    if fast_gemm.HAVE_VNNI:
        kpad = fast_gemm.padded(a.shape[1], 4)
        ap = np.empty((fast_gemm.padded(a.shape[0], fast_gemm.MR), kpad), np.uint8)
        fast_gemm.pack_rows(a.view(np.uint8), ap)
        bp = np.empty(fast_gemm.padded(wm.shape[0], fast_gemm.NR) * kpad, np.int8)
        fast_gemm.pack_panels(wm.view(np.int8), bp)
        c32 = np.empty((ap.shape[0], fast_gemm.padded(wm.shape[0], fast_gemm.NR)), np.int32)
        return lambda: fast_gemm.gemm_u8s8(ap, bp, kpad, c32)
    a16, w16 = a.astype(np.int16), wm.astype(np.int16)
    out = np.empty((a.shape[0], wm.shape[0]), np.int32)
    zeros = np.zeros(wm.shape[0], np.int64)
    return lambda: _gemm_i32(a16, w16, np.int64(ZX), zeros, zeros, out)


def tflite_fn(kind: str, x, w, geom):
    """TFLite BUILTIN_REF on the same shapes (int8 activations: the stored uint8 minus 128)."""
    from npquant.interop.tflite import run_tflite_op

    xi = (x.astype(np.int16) - 128).astype(np.int8)
    params = dict(w=w, x_scale=SX, x_zero_point=ZX - 128, w_scale=SW, y_scale=SY,
                  y_zero_point=ZY - 128)
    if kind == "fc":
        return lambda: run_tflite_op("fully_connected", [xi], params, kernels="reference")
    params["padding"] = "SAME" if geom.get("padding", 0) else "VALID"
    op = "depthwise_conv2d" if kind == "depthwise" else "conv2d"
    return lambda: run_tflite_op(op, [xi], params, kernels="reference")


CASES = [
    # (name, kind, x shape, w shape, geometry)
    ("FashionMNIST conv1 1->40 3x3 28x28 b256", "conv", (256, 1, 28, 28), (40, 1, 3, 3), {}),
    ("FashionMNIST conv2 40->40 3x3 13x13 b256", "conv", (256, 40, 13, 13), (40, 40, 3, 3), {}),
    ("FashionMNIST fc 1000->10 b256", "fc", (256, 1000), (10, 1000), {}),
    ("GEMM 1024^3", "fc", (1024, 1024), (1024, 1024), {}),
    ("conv 64->64 3x3 32x32 pad1 b8", "conv", (8, 64, 32, 32), (64, 64, 3, 3), {"padding": 1}),
    ("depthwise 3x3 64ch 32x32 pad1 b8", "depthwise", (8, 64, 32, 32), (64, 1, 3, 3),
     {"padding": 1, "groups": 64}),
]


def macs(kind, xs, ws, geom) -> int:
    if kind == "fc":
        return xs[0] * ws[0] * ws[1]
    p = geom.get("padding", 0)
    oh, ow = xs[2] + 2 * p - ws[2] + 1, xs[3] + 2 * p - ws[3] + 1
    return xs[0] * ws[0] * oh * ow * ws[1] * ws[2] * ws[3]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="skip the 1024^3 GEMM")
    ap.add_argument("--no-tflite", action="store_true", help="skip the TFLite reference column")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(f"numba threads {numba.get_num_threads()}, VNNI kernels {fast_gemm.HAVE_VNNI}")
    head = (f"{'case':<42} {'GOP':>6} {'npquant ms':>10} {'core ms':>8} {'ORT ms':>8} "
            f"{'torch ms':>8} {'TFL ref':>8} {'npq GOPS':>8} {'ORT GOPS':>8} {'npq/ORT':>7} "
            f"{'npq/TFL':>7}")
    print(head)
    print("-" * len(head))
    for name, kind, xs, ws, geom in CASES:
        if args.quick and name.startswith("GEMM"):
            continue
        x = rng.integers(0, 256, xs).astype(np.uint8)
        w = rng.integers(-127, 128, ws).astype(np.int8)
        gop = 2 * macs(kind, xs, ws, geom) / 1e9
        t_npq = best_time(npquant_fn(kind, x, w, geom), args.repeat)
        core = core_fn(kind, x, w, geom)
        t_core = best_time(core, args.repeat) if core else float("nan")
        try:
            t_ort = best_time(ort_session(kind, x, w, geom, args.threads), args.repeat)
        except Exception as exc:  # noqa: BLE001 - a missing framework only blanks its column
            print(f"  ORT failed: {exc}")
            t_ort = float("nan")
        try:
            t_torch = best_time(torch_fn(kind, x, w, geom), args.repeat) if torch else float("nan")
        except Exception as exc:  # noqa: BLE001
            print(f"  torch failed: {exc}")
            t_torch = float("nan")
        t_tfl = float("nan")
        if not args.no_tflite:
            try:
                fn = tflite_fn(kind, x, w, geom)
                t0 = time.perf_counter()
                fn()
                t_tfl = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001
                print(f"  TFLite failed: {exc}")
        print(f"{name:<42} {gop:6.3f} {t_npq * 1e3:10.2f} {t_core * 1e3:8.2f} {t_ort * 1e3:8.2f} "
              f"{t_torch * 1e3:8.2f} {t_tfl * 1e3:8.1f} {gop / t_npq:8.1f} {gop / t_ort:8.1f} "
              f"{t_npq / t_ort:7.2f} {t_npq / t_tfl:7.3f}")


if __name__ == "__main__":
    main()
