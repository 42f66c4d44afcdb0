"""Measure the frameworks' u8 x s8 kernel paths on a CPU without VNNI, by user-mode emulation.

ONNX Runtime (MLAS) and PyTorch fbgemm sum uint8 x int8 products exactly with VNNI; without it they
use ``vpmaddubsw``, which adds adjacent products in pairs and saturates each pair to int16. This
machine's CPU may have VNNI; ``qemu-x86_64 -cpu Haswell`` runs the framework as on an AVX2 CPU
(cpuid then reports no AVX-512 and no VNNI, and the libraries pick their AVX2 kernels).

The script draws seeded cases natively, runs only the frameworks under qemu (a child process fed
with an .npz; numba is never needed there) and compares their outputs natively with npquant under
the VNNI profile (``onnxruntime``, ``pytorch-fbgemm``: exact sums) and its ``-avx2`` variant
(int16-saturated pairs along the input features of a linear layer, ``(kh, kw, ci)`` in a conv).

    python3 tools/emulated_paths.py --cases 40      # needs qemu-user (apt-get install qemu-user)

It prints one row per op: cases, how many equal each profile bit for bit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OPS = ("ort-MatMulInteger", "ort-ConvInteger", "ort-QLinearMatMul", "ort-QLinearConv",
       "torch-fbgemm-linear", "torch-fbgemm-conv2d")


def draw_cases(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` fc and ``n`` conv cases: uint8 activations over 0..255, int8 weights over -127..127
    (so pairs saturate often), per-tensor scales, a random input zero point."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(2 * n):
        fc = i < n
        zx = int(rng.integers(0, 256))
        if fc:
            k, o = int(rng.integers(2, 80)), int(rng.integers(1, 9))
            x = rng.integers(0, 256, (int(rng.integers(1, 4)), k)).astype(np.uint8)
            w = rng.integers(-127, 128, (o, k)).astype(np.int8)
            geometry = np.zeros(6, np.int64)
        else:
            c, o = int(rng.integers(1, 9)), int(rng.integers(1, 7))
            kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            x = rng.integers(0, 256, (1, c, int(rng.integers(kh, 9)),
                                      int(rng.integers(kw, 9)))).astype(np.uint8)
            w = rng.integers(-127, 128, (o, c, kh, kw)).astype(np.int8)
            p = int(rng.integers(0, 2))
            geometry = np.array([int(rng.integers(1, 3)), int(rng.integers(1, 3)), p, p, p, p])
        s_x = np.float32(10.0 ** rng.uniform(-3, -1))
        s_w = np.float32(10.0 ** rng.uniform(-3, -1))
        bound = float(np.abs(w.astype(np.int64)).sum(axis=tuple(range(1, w.ndim))).max()) * 255
        s_y = np.float32(bound * float(s_x) * float(s_w) / rng.uniform(60, 250) or 1.0)
        zy = int(rng.integers(0, 256))
        cases.append(dict(x=x, w=w, zx=np.int64(zx), zy=np.int64(zy), geometry=geometry,
                          scales=np.array([s_x, s_w, s_y], np.float32)))
    return cases


def run_framework(op: str, c: dict[str, np.ndarray]) -> np.ndarray:
    """One framework call on one case (runs under emulation in the child)."""
    x, w, zx, zy = c["x"], c["w"], int(c["zx"]), int(c["zy"])
    s_x, s_w, s_y = (float(v) for v in c["scales"])
    sh, sw, *pads = (int(v) for v in c["geometry"])
    if op.startswith("ort"):
        from npquant.interop.onnx import run_onnx_op

        if x.ndim == 2:
            wt = np.ascontiguousarray(w.T)
            if op == "ort-MatMulInteger":
                return run_onnx_op("matmul_integer", [x, wt], dict(a_zero_point=zx,
                                                                   b_zero_point=0))
            return run_onnx_op("qlinear_matmul", [x, wt], dict(
                a_scale=s_x, a_zero_point=zx, b_scale=s_w, b_zero_point=0, y_scale=s_y,
                y_zero_point=zy))
        if op == "ort-ConvInteger":
            return run_onnx_op("conv_integer", [x], dict(w=w, x_zero_point=zx, w_zero_point=0,
                                                         stride=(sh, sw), pads=tuple(pads)))
        return run_onnx_op("qlinear_conv", [x], dict(
            w=w, x_scale=s_x, x_zero_point=zx, w_scale=s_w, y_scale=s_y, y_zero_point=zy,
            stride=(sh, sw), pads=tuple(pads)))
    from npquant.interop.torch import run_torch_op

    p = dict(w=w, x_scale=s_x, x_zero_point=zx, w_scale=s_w, y_scale=s_y, y_zero_point=zy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if x.ndim == 2:
            return run_torch_op("linear", [x], p, engine="fbgemm")
        p.update(stride=(sh, sw), padding=(pads[0], pads[2]), dilation=(1, 1), groups=1)
        return run_torch_op("conv2d", [x], p, engine="fbgemm")


def applies(op: str, c: dict[str, np.ndarray]) -> bool:
    fc = c["x"].ndim == 2
    return fc == any(k in op for k in ("MatMul", "linear"))


def npquant_outputs(op: str, c: dict[str, np.ndarray], avx2: bool) -> np.ndarray:
    """npquant's result under the op's profile (``onnxruntime`` / ``pytorch-fbgemm``, exact sums)
    or its ``-avx2`` variant (int16-saturated pairs; conv pairs along ``(kh, kw, ci)``)."""
    from npquant.integer import conv2d, fully_connected

    profile = ("onnxruntime" if op.startswith("ort") else "pytorch-fbgemm") + \
        ("-avx2" if avx2 else "")
    x, w, zx, zy = c["x"], c["w"], int(c["zx"]), int(c["zy"])
    s_x, s_w, s_y = (float(v) for v in c["scales"])
    sh, sw, *pads = (int(v) for v in c["geometry"])
    kw = dict(x_zero_point=zx, out_zero_point=zy, x_scale=s_x, w_scale=s_w, out_scale=s_y,
              profile=profile, out_dtype=np.uint8, return_accumulators=True)
    if x.ndim == 2:
        r = fully_connected(x, w, None, **kw)
    else:
        r = conv2d(x, w, None, stride=(sh, sw), padding=tuple(pads), **kw)
    return r.acc if "Integer" in op else r.out


def child(path_in: str, path_out: str) -> int:
    """Under emulation: run every op on every case of ``path_in``; write ``path_out``."""
    with np.load(path_in, allow_pickle=False) as z:
        n = int(z["n"])
        cases = [{k: z[f"{i}/{k}"] for k in ("x", "w", "zx", "zy", "geometry", "scales")}
                 for i in range(n)]
    out = {}
    for op in OPS:
        for i, c in enumerate(cases):
            if applies(op, c):
                out[f"{op}/{i}"] = np.asarray(run_framework(op, c))
    np.savez(path_out, **out)
    return 0


def measure(n: int, seed: int, cpu: str, keep: str | None = None
            ) -> dict[str, tuple[int, int, int]]:
    """``{op: (cases, equal to the exact-sum profile, equal to its -avx2 variant)}`` with the
    frameworks run under ``qemu-x86_64 -cpu CPU`` (outputs kept in / reused from ``keep``)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise FileNotFoundError("qemu-x86_64 not found: apt-get install qemu-user "
                                "(or bash tools/setup_emulation.sh)")
    cases = draw_cases(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path_in = os.path.join(tmp, "in.npz")
        path_out = keep or os.path.join(tmp, "out.npz")
        arrays = {"n": np.int64(len(cases))}
        for i, c in enumerate(cases):
            arrays.update({f"{i}/{k}": v for k, v in c.items()})
        np.savez(path_in, **arrays)
        if not os.path.exists(path_out):
            t0 = time.time()
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            subprocess.run([qemu, "-cpu", cpu, sys.executable, __file__, "--child",
                            path_in, path_out], check=True, env=env, stderr=subprocess.DEVNULL)
            print(f"frameworks under qemu-x86_64 -cpu {cpu}: {time.time() - t0:.0f} s")
        with np.load(path_out, allow_pickle=False) as z:
            got = {k: z[k] for k in z.files}
    rows = {}
    for op in OPS:
        idx = [i for i, c in enumerate(cases) if applies(op, c)]
        exact, avx2 = (sum(np.array_equal(got[f"{op}/{i}"], npquant_outputs(op, cases[i], v))
                           for i in idx) for v in (False, True))
        rows[op] = (len(idx), exact, avx2)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=40, help="cases per kind (fc, conv)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", default="Haswell", help="qemu CPU model (default: Haswell)")
    ap.add_argument("--keep", default=None, help="save the frameworks' outputs to this .npz, or "
                    "reuse it if it exists (for the same --cases/--seed)")
    ap.add_argument("--child", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)
    try:
        rows = measure(args.cases, args.seed, args.cpu, args.keep)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print("| op | cases | equal to the exact-sum profile | equal to its -avx2 variant |")
    print("|---|---:|---:|---:|")
    for op, (n, exact, avx2) in rows.items():
        print(f"| {op} | {n} | {exact} | {avx2} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
