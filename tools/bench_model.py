"""Benchmark whole models side by side in one run: npquant's float forward and integer-only
inference against PyTorch fp32, PyTorch quantized (fbgemm and x86 engines) and ONNX Runtime
(fp32 and int8), on the same weights and the same FashionMNIST test images.

Usage: python3 tools/bench_model.py [--models cnn,cnn_bn,resnet_small] [--images 10000]
                                    [--batch-sizes 64,1000] [--repeat 3] [--threads 2]
                                    [--train-images 6400] [--profiles tflite,onnxruntime,...]

Every model is built from one set of weights:

* the npquant float model (``npquant.models``), seeded and then trained for one pass over the
  first ``--train-images`` training images (Adam, lr 1e-3, batch 64; 0 keeps the seeded
  initialization), so that the accuracy columns mean something;
* PyTorch fp32 and ONNX Runtime fp32: the same layers with the same weights (BatchNorm kept,
  in eval mode), built from npquant's traced graph (``npquant.quant.chain.trace_graph``);
* npquant int8: BatchNorm folded, 16 calibration batches of 64 training images, qparams and
  conversion under each ``--profiles`` profile (``npquant.convert``);
* PyTorch quantized and ONNX Runtime int8: the integer model of the ``pytorch-fbgemm`` resp.
  ``onnxruntime`` profile rebuilt op by op with its exact int8 weights, int32 biases and
  qparams (quantized conv/linear with fused ReLU, max pool, add, global average pool;
  ONNX ``QLinearConv``/``QGemm``/``QLinearAdd``/``QLinearGlobalAveragePool``). int8
  activations become uint8 with the zero point shifted by 128 (the same arithmetic).

Timing: for each batch size, ``--repeat`` rounds; in each round every engine runs the whole
image set once, engines interleaved, so that a noisy neighbour hits all of them alike. The
best round is reported (img/s) with its ratio to the reference row of its kind (float rows to
PyTorch fp32, integer rows to PyTorch fbgemm). Accuracy is over the same images; "agree" is the
fraction of predictions equal to npquant's (float or integer of the same profile family).
Threads: ``torch.set_num_threads``, ONNX Runtime's ``intra_op_num_threads``, numba's thread
count and OpenBLAS all get ``--threads``. Compilation and first-call costs are excluded (one
warm-up batch per engine). The repository root is put first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

DEFAULT_PROFILES = ("tflite", "onnxruntime", "pytorch-fbgemm")


# -- the npquant models ---------------------------------------------------------------------
def float_model(name: str, x_train: np.ndarray, y_train: np.ndarray, train_images: int,
                seed: int = 0):
    """The seeded npquant model, trained one pass over ``train_images`` images (eval mode)."""
    from npquant import nn
    from npquant.data import batches
    from npquant.models import get_model
    from npquant.train import _model_kwargs

    model = get_model(name, seed=seed, **_model_kwargs(name, x_train))
    if train_images:
        opt = nn.Adam(model.parameters(), 1e-3)
        model.train()
        for idx in batches(train_images, 64, rng=np.random.default_rng(seed)):
            loss = nn.cross_entropy(model(nn.Tensor(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def integer_model(model, x_train: np.ndarray, profile: str):
    """Fold, calibrate (16 x 64 seeded training images) and convert under ``profile``."""
    from npquant.convert import convert
    from npquant.quant import fold_batch_norm
    from npquant.quant.ptq import calibrate, choose_qparams

    folded = fold_batch_norm(model, x_train[:1])
    cal = calibrate(folded, x_train, num_batches=16, batch_size=64, seed=0)
    qp = choose_qparams(folded, cal, profile)
    return convert(folded, qp, profile, input_shape=tuple(x_train.shape[1:]))


def npquant_float_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    from npquant import nn

    def run(x):
        with nn.no_grad():
            return model(nn.Tensor(x)).data
    return run


# -- PyTorch --------------------------------------------------------------------------------
def torch_float_model(torch, nodes):
    """A torch module running npquant's traced graph with the same weights (eval mode)."""
    from npquant import nn
    from npquant.quant.chain import INPUT

    tn = torch.nn

    def t(a):
        return torch.from_numpy(np.array(a, dtype=np.float32))

    mods, wiring = [], []
    for node in nodes:
        m = node.module
        if isinstance(m, nn.Conv2d):
            tm = tn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                           m.dilation, m.groups, bias=m.bias is not None)
            tm.weight.data = t(m.weight.data)
            if m.bias is not None:
                tm.bias.data = t(m.bias.data)
        elif isinstance(m, nn.Linear):
            tm = tn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            tm.weight.data = t(m.weight.data)
            if m.bias is not None:
                tm.bias.data = t(m.bias.data)
        elif isinstance(m, nn.BatchNorm2d):
            tm = tn.BatchNorm2d(m.num_features, eps=m.eps)
            tm.weight.data, tm.bias.data = t(m.weight.data), t(m.bias.data)
            tm.running_mean.data, tm.running_var.data = t(m.running_mean), t(m.running_var)
        elif isinstance(m, nn.ReLU):
            tm = tn.ReLU()
        elif isinstance(m, nn.MaxPool2d):
            tm = tn.MaxPool2d(m.kernel_size, m.stride, m.padding)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            tm = tn.AdaptiveAvgPool2d(1)
        elif isinstance(m, nn.Flatten):
            tm = tn.Flatten()
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            tm = tn.Identity()
        elif isinstance(m, nn.Add):
            tm = None
        else:
            raise ValueError(f"bench_model: no torch twin for {node.name!r} ({type(m).__name__})")
        mods.append(tm)
        wiring.append(node.inputs)
    names = [INPUT] + [n.name for n in nodes]

    class Graph(tn.Module):
        def __init__(self):
            super().__init__()
            self.layers = tn.ModuleList([m if m is not None else tn.Identity() for m in mods])
            self.adds = [m is None for m in mods]
            self.srcs = [tuple(names.index(s) for s in w) for w in wiring]

        def forward(self, x):
            vals = [x]
            for layer, is_add, srcs in zip(self.layers, self.adds, self.srcs, strict=True):
                ins = [vals[i] for i in srcs]
                vals.append(ins[0] + ins[1] if is_add else layer(ins[0]))
            return vals[-1]

    return Graph().eval()


def _u8(qp) -> tuple[float, int]:
    """Per-tensor (scale, zero point) of an activation, as uint8 (int8 zero point + 128)."""
    z = int(qp.zero_point) + (128 if qp.signed else 0)
    return float(qp.scale), z


def torch_int8_fn(torch, im, engine: str) -> Callable[[np.ndarray], np.ndarray]:
    """The integer model ``im`` as PyTorch quantized ops on ``engine``, weights prepacked once.

    Returns a function from float images to the uint8 logits."""
    from npquant import convert as cv

    F = torch.nn.functional
    qops = torch.ops.quantized
    steps = []
    with _engine(torch, engine):
        for op in im.ops[:-1]:
            if isinstance(op, cv.QuantizeOp):
                s, z = _u8(op.qparams)
                steps.append(lambda x, s=s, z=z: torch.quantize_per_tensor(x, s, z, torch.quint8))
            elif isinstance(op, (cv.Conv2dOp, cv.FullyConnectedOp)):
                sx, _ = _u8(op.input_qparams)
                sy, zy = _u8(op.output_qparams)
                wq_, ws = op.weight_qparams, np.atleast_1d(op.weight_qparams.scale)
                w = torch.from_numpy(np.ascontiguousarray(op.weight))
                if wq_.axis is None:
                    wq = torch._make_per_tensor_quantized_tensor(w, float(ws[0]), 0)
                else:
                    wq = torch._make_per_channel_quantized_tensor(
                        w, torch.tensor(ws.astype(np.float64)),
                        torch.zeros(len(ws), dtype=torch.int64), 0)
                bias = torch.from_numpy((op.bias.astype(np.float64) * sx
                                         * np.broadcast_to(ws, op.bias.shape)).astype(np.float32))
                relu = op.activation == "relu"
                if op.activation not in (None, "relu"):
                    raise ValueError(f"bench_model: activation {op.activation!r} in {op.name}")
                if isinstance(op, cv.Conv2dOp):
                    packed = qops.conv2d_prepack(wq, bias, list(op.stride), list(op.padding),
                                                 list(op.dilation), op.groups)
                    fn = qops.conv2d_relu if relu else qops.conv2d
                else:
                    packed = qops.linear_prepack(wq, bias)
                    fn = qops.linear_relu if relu else qops.linear
                steps.append(lambda x, f=fn, p=packed, s=sy, z=zy: f(x, p, s, z))
            elif isinstance(op, cv.MaxPoolOp):
                steps.append(lambda x, o=op: F.max_pool2d(x, o.kernel_size, o.stride, o.padding))
            elif isinstance(op, cv.FlattenOp):
                steps.append(lambda x: torch.flatten(x, 1))
            elif isinstance(op, cv.AvgPoolOp) and op.kernel_size is None:
                steps.append(lambda x: F.adaptive_avg_pool2d(x, 1))
            elif isinstance(op, cv.AddOp):
                sy, zy = _u8(op.output_qparams)
                fn = qops.add_relu if op.activation == "relu" else qops.add
                steps.append(lambda a, b, f=fn, s=sy, z=zy: f(a, b, s, z))
            else:
                raise ValueError(f"bench_model: no torch op for {op.op} ({op.name})")
    wiring = im.wiring

    def run(x):
        with _engine(torch, engine), torch.no_grad():
            vals = {-1: torch.from_numpy(x)}
            for i, step in enumerate(steps):
                srcs = (i - 1,) if wiring is None else wiring[i]
                vals[i] = step(*(vals[j] for j in srcs))
            return vals[len(steps) - 1].int_repr().numpy()
    return run


class _engine:
    """``torch.backends.quantized.engine = name`` inside the block."""

    def __init__(self, torch, name):
        self.torch, self.name = torch, name

    def __enter__(self):
        self.old = self.torch.backends.quantized.engine
        self.torch.backends.quantized.engine = self.name

    def __exit__(self, *exc):
        self.torch.backends.quantized.engine = self.old


# -- ONNX Runtime ---------------------------------------------------------------------------
def _ort_fn(model, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]


def _onnx_model(nodes_, inits, out_name, in_shape, out_type):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes_, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                    ["n", *in_shape])],
        [helper.make_tensor_value_info(out_name, getattr(TensorProto, out_type), None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def onnx_float_model(nodes, in_shape):
    """The traced float graph as ONNX (Conv, BatchNormalization, Relu, MaxPool, Flatten, Gemm,
    Add, GlobalAveragePool) with the same weights."""
    from onnx import helper, numpy_helper

    from npquant import nn
    from npquant.quant.chain import INPUT

    out, inits = [], []

    def init(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), name))
        return name

    rename = {INPUT: "x"}
    for node in nodes:
        m, n = node.module, node.name
        ins = [rename[s] for s in node.inputs]
        if isinstance(m, (nn.Identity, nn.Dropout)):
            rename[n] = ins[0]
            continue
        rename[n] = n
        if isinstance(m, nn.Conv2d):
            args = [ins[0], init(n + ".w", m.weight.data)]
            if m.bias is not None:
                args.append(init(n + ".b", m.bias.data))
            out.append(helper.make_node("Conv", args, [n], strides=list(m.stride),
                                        pads=list(m.padding) * 2, dilations=list(m.dilation),
                                        group=m.groups))
        elif isinstance(m, nn.Linear):
            args = [ins[0], init(n + ".w", m.weight.data)]
            if m.bias is not None:
                args.append(init(n + ".b", m.bias.data))
            out.append(helper.make_node("Gemm", args, [n], transB=1))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(helper.make_node(
                "BatchNormalization", [ins[0], init(n + ".g", m.weight.data),
                                       init(n + ".b", m.bias.data),
                                       init(n + ".m", m.running_mean),
                                       init(n + ".v", m.running_var)], [n], epsilon=m.eps))
        elif isinstance(m, nn.ReLU):
            out.append(helper.make_node("Relu", ins, [n]))
        elif isinstance(m, nn.MaxPool2d):
            out.append(helper.make_node("MaxPool", ins, [n], kernel_shape=list(m.kernel_size),
                                        strides=list(m.stride), pads=list(m.padding) * 2))
        elif isinstance(m, nn.Flatten):
            out.append(helper.make_node("Flatten", ins, [n], axis=1))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out.append(helper.make_node("GlobalAveragePool", ins, [n]))
        elif isinstance(m, nn.Add):
            out.append(helper.make_node("Add", ins, [n]))
        else:
            raise ValueError(f"bench_model: no ONNX op for {n!r} ({type(m).__name__})")
    return _onnx_model(out, inits, rename[nodes[-1].name], in_shape, "FLOAT")


def onnx_int8_model(im):
    """The integer model ``im`` as ONNX QLinear ops with its exact weights, biases, qparams."""
    from onnx import helper, numpy_helper

    from npquant import convert as cv

    out, inits = [], []

    def init(name, a, dtype):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype=dtype), name))
        return name

    def qp(name, q):
        s, z = _u8(q)
        return [init(name + ".s", s, np.float32), init(name + ".z", z, np.uint8)]

    names = {-1: "x"}
    for i, op in enumerate(im.ops[:-1]):
        srcs = (i - 1,) if im.wiring is None else im.wiring[i]
        ins = [names[j] for j in srcs]
        n = f"t{i}"
        names[i] = n
        if isinstance(op, cv.QuantizeOp):
            out.append(helper.make_node("QuantizeLinear", [ins[0], *qp(n + ".q", op.qparams)],
                                        [n]))
        elif isinstance(op, (cv.Conv2dOp, cv.FullyConnectedOp)):
            ws = np.atleast_1d(op.weight_qparams.scale).astype(np.float32)
            w_args = [init(n + ".w", op.weight if isinstance(op, cv.Conv2dOp) else op.weight.T,
                           np.int8), init(n + ".ws", ws if len(ws) > 1 else ws[0], np.float32),
                      init(n + ".wz", np.zeros(len(ws), np.int8) if len(ws) > 1 else 0,
                           np.int8)]
            args = [ins[0], *qp(n + ".x", op.input_qparams), *w_args,
                    *qp(n + ".y", op.output_qparams)]
            if op.activation not in (None, "relu") or (
                    op.activation == "relu" and _u8(op.output_qparams)[1] != 0):
                raise ValueError(f"bench_model: {op.name}: only a ReLU with output zero point "
                                 "at qmin is exact as a plain QLinear op")
            bias = init(n + ".b", op.bias, np.int32)
            if isinstance(op, cv.Conv2dOp):
                out.append(helper.make_node("QLinearConv", [*args, bias], [n],
                                            strides=list(op.stride), pads=list(op.padding) * 2,
                                            dilations=list(op.dilation), group=op.groups))
            else:  # QGemm(A, as, az, B, bs, bz, C, ys, yz)
                out.append(helper.make_node("QGemm", [*args[:6], bias, *args[6:]], [n],
                                            domain="com.microsoft"))
        elif isinstance(op, cv.MaxPoolOp):
            out.append(helper.make_node("MaxPool", ins, [n], kernel_shape=list(op.kernel_size),
                                        strides=list(op.stride), pads=list(op.padding) * 2))
        elif isinstance(op, cv.FlattenOp):
            out.append(helper.make_node("Flatten", ins, [n], axis=1))
        elif isinstance(op, cv.AvgPoolOp) and op.kernel_size is None:
            q = qp(n + ".q", op.qparams)
            out.append(helper.make_node("QLinearGlobalAveragePool", [ins[0], *q, *q], [n],
                                        domain="com.microsoft", channels_last=0))
        elif isinstance(op, cv.AddOp):
            if op.activation == "relu" and _u8(op.output_qparams)[1] != 0:
                raise ValueError(f"bench_model: {op.name}: ReLU with output zero point > qmin")
            out.append(helper.make_node(
                "QLinearAdd", [ins[0], *qp(n + ".a", op.a_qparams), ins[1],
                               *qp(n + ".b", op.b_qparams), *qp(n + ".y", op.output_qparams)],
                [n], domain="com.microsoft"))
        else:
            raise ValueError(f"bench_model: no ONNX op for {op.op} ({op.name})")
    return _onnx_model(out, inits, names[len(im.ops) - 2], list(im.input_shape), "UINT8")


# -- timing ---------------------------------------------------------------------------------
def run_all(fn, x: np.ndarray, bs: int) -> np.ndarray:
    """Predicted classes of every image, ``bs`` at a time."""
    return np.concatenate([np.asarray(fn(x[s:s + bs])).argmax(axis=1)
                           for s in range(0, len(x), bs)])


def bench(engines: dict[str, Callable], x: np.ndarray, bs: int, repeat: int
          ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Best wall time of a pass over ``x`` per engine (rounds interleaved) and predictions."""
    for fn in engines.values():
        fn(x[:bs])  # warm-up: compilation, first-call allocations
    best = {k: float("inf") for k in engines}
    preds = {}
    for _ in range(repeat):
        for k, fn in engines.items():
            t = time.perf_counter()
            preds[k] = run_all(fn, x, bs)
            best[k] = min(best[k], time.perf_counter() - t)
    return best, preds


def cpu_name() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="cnn,cnn_bn,resnet_small")
    p.add_argument("--images", type=int, default=10000, help="test images timed per pass")
    p.add_argument("--batch-sizes", default="64,1000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-images", type=int, default=6400,
                   help="one training pass over this many images first (0: seeded init)")
    p.add_argument("--profiles", default=",".join(DEFAULT_PROFILES),
                   help="npquant integer profiles to time")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
    import numba
    import onnxruntime
    import torch

    from npquant.integer import fast_gemm
    from npquant.quant.chain import trace_graph
    from npquant.testing.cpu import cpu_flags, has_vnni
    from npquant.train import prepare

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    x_train, y_train = prepare("fashion-mnist", "train", args.data_dir)
    x_test, y_test = prepare("fashion-mnist", "test", args.data_dir)
    x, y = x_test[:args.images], y_test[:args.images]
    sizes = [int(v) for v in args.batch_sizes.split(",")]
    profiles = [s for s in args.profiles.split(",") if s]
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores; VNNI {has_vnni(cpu_flags())}, "
          f"npquant VNNI kernels {fast_gemm.HAVE_VNNI}); threads {args.threads}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"numpy {np.__version__}, numba {numba.__version__}")
    print(f"{len(x)} FashionMNIST test images; weights: seeded init + one Adam pass over "
          f"{args.train_images} training images; best of {args.repeat} interleaved rounds")
    for name in [s for s in args.models.split(",") if s]:
        model = float_model(name, x_train, y_train, args.train_images)
        nodes = trace_graph(model, x_train[:1])
        ims = {prof: integer_model(model, x_train, prof)
               for prof in dict.fromkeys(profiles + ["pytorch-fbgemm", "onnxruntime"])}
        floats = {"npquant fp32": npquant_float_fn(model),
                  "torch fp32": torch_float_model(torch, nodes),
                  "ORT fp32": _ort_fn(onnx_float_model(nodes, list(x.shape[1:])), args.threads)}
        tf = floats["torch fp32"]

        def torch_run(xb, m=tf):
            with torch.no_grad():
                return m(torch.from_numpy(xb)).numpy()
        floats["torch fp32"] = torch_run
        ints = {f"npquant int8 {prof}": ims[prof].run for prof in profiles}
        ints["torch fbgemm"] = torch_int8_fn(torch, ims["pytorch-fbgemm"], "fbgemm")
        ints["torch x86"] = torch_int8_fn(torch, ims["pytorch-fbgemm"], "x86")
        ints["ORT int8"] = _ort_fn(onnx_int8_model(ims["onnxruntime"]), args.threads)
        print(f"\n== {name} ==")
        head = f"{'engine':<34} {'bs':>5} {'img/s':>9} {'ratio':>7} {'acc %':>6} {'agree %':>7}"
        print(head)
        print("-" * len(head))
        for bs in sizes:
            for group, ref, base in ((floats, "torch fp32", "npquant fp32"),
                                     (ints, "torch fbgemm", None)):
                best, preds = bench(group, x, bs, args.repeat)
                for k in group:
                    mine = base or (f"npquant int8 {profiles[0]}" if profiles else k)
                    if base is None and k.startswith("npquant"):
                        mine = k
                    elif base is None:
                        prof = "onnxruntime" if k.startswith("ORT") else "pytorch-fbgemm"
                        mine = f"npquant int8 {prof}"
                    agree = (100 * np.mean(preds[k] == preds[mine])
                             if mine in preds else float("nan"))
                    print(f"{k:<34} {bs:5d} {len(x) / best[k]:9.0f} {best[ref] / best[k]:7.2f} "
                          f"{100 * np.mean(preds[k] == y):6.2f} {agree:7.2f}")
    print("\nratio: img/s over the reference's (float rows: torch fp32; integer rows: torch "
          "fbgemm); > 1 is faster. agree: predictions equal to npquant's of the same kind "
          "(integer: the profile matching the framework).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
