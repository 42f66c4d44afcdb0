"""Run the oracle table's rows with the frameworks on an emulated CPU (aarch64, or AVX2 x86).

The frameworks pick their kernels by CPU: LiteRT's optimized kernels and XNNPACK, and ONNX
Runtime's MLAS, have separate x86 and ARM code. This module runs the *same* comparisons as
``tools/fidelity.py`` (npquant/testing/oracles.py: the same hypothesis cases for a seed, the
same npquant side, natively) while each framework call goes to a child process on an emulated
CPU:

- ``aarch64``: ``qemu-aarch64 -cpu neoverse-n1`` running Debian's arm64 python with the aarch64
  wheels of numpy, ai-edge-litert and onnxruntime (the sysroot of tools/setup_emulation.sh).
  Not ``-cpu max``: its SME emulation gives wrong XNNPACK int8 results. The sysroot holds a
  fake ``/proc/cpuinfo`` for that model (the host's x86 one crashes LiteRT's CPU detection).
- ``avx2``: ``qemu-x86_64 -cpu Haswell`` running this machine's python (AVX2, no VNNI).

The host builds each single-op model (``npquant.interop``: flatbuffer / ONNX bytes) and sends it
with its runtime inputs; the child only loads numpy and the framework, invokes the model as
``npquant.interop.run_tflite_op`` / ``run_onnx_op`` do (one thread, the same op resolvers, no
graph optimization) and sends the output back. So the aarch64 child needs neither numba nor
npquant. PyTorch runs only in the x86 child (``run_torch_op`` there, its parameters sent as
arrays and JSON): the aarch64 torch wheel on the package index is the CUDA build.

Each row is measured under the profile claimed on that CPU (npquant.testing.oracles.profile_on).

    python3 tools/emulated_cpu.py --cpu aarch64 --cases 50            # every TFLite/ORT row
    python3 tools/emulated_cpu.py --cpu avx2 --cases 100 --only pytorch --variants

It prints one row per comparison: the profile, cases, agreement and, with ``--variants``, on a
row that disagrees, the agreement of each other profile of the same framework.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
AARCH64_ROOT = Path(os.environ.get("NPQUANT_AARCH64_ROOT",
                                   Path.home() / ".cache" / "npquant" / "aarch64"))
PY = "python3.11"
CPUS = ("aarch64", "avx2")
# The frameworks each child runs (no aarch64 CPU build of PyTorch on the package index).
FRAMEWORKS = {"aarch64": ("tflite", "onnxruntime"), "avx2": ("tflite", "onnxruntime", "pytorch")}


# ----------------------------------------------------------------------------- wire format
# Not .npz: under qemu the child's Python runs several times slower, and zipping and unzipping
# a message cost it 5 ms per case, more than most frameworks' invoke (measured on aarch64:
# decode 4.1 ms, invoke 2.4-5.1 ms, encode 0.9 ms). A JSON header and the raw bytes cost
# little on either side.
def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as one message body: an 8-byte little-endian header length, a JSON header
    ``{name: [dtype, shape, offset, nbytes]}`` and the arrays' C-order bytes one after another
    (offsets counted from the end of the header). Object arrays are refused."""
    header, chunks, offset = {}, [], 0
    for name, value in arrays.items():
        a = np.asarray(value)  # tobytes() is C order whatever the layout
        if a.dtype.hasobject:
            raise TypeError(f"{name}: object arrays cannot be sent")
        header[name] = [a.dtype.str, list(a.shape), offset, a.nbytes]
        chunks.append(a.tobytes())
        offset += a.nbytes
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def _unpack(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a ``_pack`` body (writable views of one copy of it); ValueError for a body
    that does not hold what its header says."""
    buf = bytearray(data)
    if len(buf) < 8:
        raise ValueError(f"message of {len(buf)} bytes has no header length")
    (h,) = struct.unpack_from("<Q", buf)
    if 8 + h > len(buf):
        raise ValueError(f"header of {h} bytes in a message of {len(buf)}")
    base, out = 8 + h, {}
    for name, (dtype, shape, offset, nbytes) in json.loads(bytes(buf[8:base])).items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if dt.hasobject or count * dt.itemsize != nbytes or base + offset + nbytes > len(buf):
            raise ValueError(f"{name}: {dtype} {shape} at {offset} (+{nbytes}) does not fit a "
                             f"message of {len(buf)} bytes")
        out[name] = np.frombuffer(buf, dtype=dt, count=count, offset=base + offset
                                  ).reshape(tuple(shape))
    return out


def _send(stream, arrays: dict[str, np.ndarray]) -> None:
    """One message: an 8-byte little-endian length, then ``_pack(arrays)``."""
    data = _pack(arrays)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream) -> dict[str, np.ndarray] | None:
    """The next message's arrays, or None at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError(f"message cut off: {len(data)} of {n} bytes")
    return _unpack(data)


def _encode_params(params: dict) -> dict[str, np.ndarray]:
    """A bridge's keyword parameters as message entries: arrays as ``p:<name>``, the rest (numbers,
    strings, None, tuples) in one JSON text, tagged so that they decode to the same types."""
    spec, out = {}, {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            spec[k], out[f"p:{k}"] = ["array"], v
        elif isinstance(v, (tuple, list)):
            spec[k] = ["tuple", [int(e) for e in v]]
        elif isinstance(v, np.integer):
            spec[k] = ["value", int(v)]
        elif isinstance(v, np.floating):
            spec[k] = ["value", float(v)]
        else:
            spec[k] = ["value", v]
    out["params"] = np.array(json.dumps(spec))
    return out


def _decode_params(msg: dict[str, np.ndarray]) -> dict:
    out = {}
    for k, (tag, *val) in json.loads(str(msg["params"])).items():
        out[k] = msg[f"p:{k}"] if tag == "array" else tuple(val[0]) if tag == "tuple" \
            else val[0]
    return out


# ----------------------------------------------------------------------------- the child
def _invoke(msg: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run one model (in the child). Mirrors npquant.interop.tflite.run_tflite_op and
    npquant.interop.onnx.run_onnx_op after their model building."""
    kind = str(msg["kind"])
    model = msg["model"].tobytes()
    inputs = [msg[f"in{i}"] for i in range(int(msg["n_inputs"]))]
    if kind == "tflite":
        import ai_edge_litert.interpreter as tfl

        kernels = str(msg["kernels"])
        resolver = {"reference": tfl.OpResolverType.BUILTIN_REF,
                    "optimized": tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                    "xnnpack": tfl.OpResolverType.AUTO}[kernels]
        interp = tfl.Interpreter(model_content=model, num_threads=1,
                                 experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        if kernels == "xnnpack" and not any(d["op_name"] == "DELEGATE"
                                            for d in interp._get_ops_details()):
            return {"declined": np.bool_(True)}
        for detail, arr in zip(interp.get_input_details(), inputs, strict=True):
            interp.set_tensor(detail["index"], arr)
        interp.invoke()
        return {"y": np.array(interp.get_tensor(interp.get_output_details()[0]["index"]))}
    if kind == "torch":  # only the x86 child: npquant (and numba) import there
        from npquant.interop.torch import run_torch_op

        params = _decode_params(msg)
        return {"y": np.asarray(run_torch_op(str(msg["op"]), inputs, params,
                                             engine=str(msg["engine"])))}
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = [str(s) for s in msg["names"]]
    return {"y": np.asarray(sess.run(None, dict(zip(names, inputs, strict=True)))[0])}


def serve() -> int:
    """The child's loop: read a model message from stdin, answer on stdout, until EOF.

    The frameworks' own prints go to stderr: fd 1 is pointed there and the protocol keeps a
    private copy of the original stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    _send(out, {"ready": np.bool_(True)})
    while (msg := _recv(inp)) is not None:
        try:
            reply = _invoke(msg)
        except Exception as exc:  # the host re-raises it with the child's message
            reply = {"error": np.array(f"{type(exc).__name__}: {exc}")}
        _send(out, reply)
    return 0


# ----------------------------------------------------------------------------- the host
def missing(cpu: str) -> str | None:
    """Why ``cpu`` cannot be emulated here (a sentence naming the setup command), or None."""
    if cpu not in CPUS:
        raise ValueError(f"cpu must be one of {CPUS}, got {cpu!r}")
    qemu = "qemu-aarch64" if cpu == "aarch64" else "qemu-x86_64"
    if shutil.which(qemu) is None:
        return f"{qemu} is not installed (bash tools/setup_emulation.sh)"
    if cpu == "aarch64" and not (AARCH64_ROOT / "stamp").is_file():
        return (f"no aarch64 sysroot in {AARCH64_ROOT} (bash tools/setup_emulation.sh, or set "
                "NPQUANT_AARCH64_ROOT)")
    return None


def child_command(cpu: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the child process for ``cpu``."""
    me = str(Path(__file__).resolve())
    if cpu == "aarch64":
        sysroot = AARCH64_ROOT / "sysroot"
        env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1",
               "PYTHONPATH": str(AARCH64_ROOT / "site")}
        return (["qemu-aarch64", "-cpu", "neoverse-n1", "-L", str(sysroot),
                 str(sysroot / "usr" / "bin" / PY), me, "--serve"], env)
    return (["qemu-x86_64", "-cpu", "Haswell", sys.executable, me, "--serve"],
            dict(os.environ, PYTHONPATH=str(ROOT)))


class EmulatedFrameworks:
    """A running child process on an emulated ``cpu`` that invokes models for the host."""

    def __init__(self, cpu: str) -> None:
        reason = missing(cpu)
        if reason:
            raise FileNotFoundError(reason)
        cmd, env = child_command(cpu)
        t0 = time.time()
        self.cpu = cpu
        self.calls = 0
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        if _recv(self.proc.stdout) is None:
            raise RuntimeError(f"the {cpu} child process did not start: {' '.join(cmd)}")
        self.startup_seconds = time.time() - t0

    def invoke(self, kind: str, model: bytes, inputs: list[np.ndarray], *,
               kernels: str = "", names: list[str] | None = None,
               extra: dict[str, np.ndarray] | None = None) -> np.ndarray | None:
        """The model's output computed on the emulated CPU; None when XNNPACK declines it.
        (``kind`` "torch": no model; ``extra`` carries the op, engine and parameters.)"""
        msg = {"kind": np.array(kind), "model": np.frombuffer(model, np.uint8),
               "n_inputs": np.int64(len(inputs)), "kernels": np.array(kernels),
               "names": np.array(names or [""])}
        msg.update({f"in{i}": np.asarray(a) for i, a in enumerate(inputs)})
        msg.update(extra or {})
        _send(self.proc.stdin, msg)
        reply = _recv(self.proc.stdout)
        self.calls += 1
        if reply is None:
            raise RuntimeError(f"the {self.cpu} child process died (exit {self.proc.poll()})")
        if "error" in reply:
            raise RuntimeError(f"on {self.cpu}: {reply['error']}")
        return None if "declined" in reply else reply["y"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)

    def __enter__(self) -> EmulatedFrameworks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def frameworks_on(child: EmulatedFrameworks) -> Iterator[None]:
    """Within the block, ``npquant.interop``'s ``run_tflite_op`` and ``run_onnx_op`` build their
    model here and run it in ``child`` (same arguments, same errors, same output layout)."""
    from npquant.interop import onnx as ionnx
    from npquant.interop import tflite as itfl

    def run_tflite_op(op, inputs, params, *, kernels="reference"):
        if kernels not in itfl.KERNELS:
            raise ValueError(f"kernels must be one of {itfl.KERNELS}, got {kernels!r}")
        model, runtime, to_caller = itfl._build(op, inputs, params)
        y = child.invoke("tflite", model, list(runtime), kernels=kernels)
        if y is None:
            raise RuntimeError(f"XNNPACK declined {op} with these parameters; the interpreter "
                               "would run the optimized builtin kernel instead")
        return to_caller(y)

    def run_onnx_op(op, inputs, params):
        model, feeds = ionnx._build(op, inputs, params)
        return child.invoke("onnx", model, list(feeds.values()), names=list(feeds))

    def run_torch_op(op, inputs, params, *, engine="x86"):
        extra = {"op": np.array(op), "engine": np.array(engine), **_encode_params(dict(params))}
        return child.invoke("torch", b"", list(inputs), extra=extra)

    saved = itfl.run_tflite_op, ionnx.run_onnx_op
    itfl.run_tflite_op, ionnx.run_onnx_op = run_tflite_op, run_onnx_op
    itorch = None
    if "pytorch" in FRAMEWORKS[child.cpu]:
        from npquant.interop import torch as itorch

        saved_torch = itorch.run_torch_op
        itorch.run_torch_op = run_torch_op
    try:
        yield
    finally:
        itfl.run_tflite_op, ionnx.run_onnx_op = saved
        if itorch is not None:
            itorch.run_torch_op = saved_torch


# ----------------------------------------------------------------------------- measuring
def comparisons(cpu: str, only: str = "") -> list:
    """The oracle table's rows that ``cpu``'s child can run (id containing ``only``), each with
    the profile claimed on that CPU (npquant.testing.oracles.on_cpu)."""
    for path in (str(ROOT),):
        if path not in sys.path:
            sys.path.insert(0, path)
    from npquant.testing.oracles import COMPARISONS, on_cpu

    return [on_cpu(c, cpu) for c in COMPARISONS
            if c.framework in FRAMEWORKS[cpu] and only in c.id]


def variants(cmp) -> list[str]:
    """The framework's other profiles, tried on a disagreeing row's cases with ``--variants``."""
    from npquant.profiles import PROFILES

    prefix = {"tflite": "tflite", "onnxruntime": "onnxruntime", "pytorch": "pytorch"}
    return [p for p in sorted(PROFILES)
            if p.startswith(prefix[cmp.framework]) and p != cmp.profile]


def measure_on(cpu: str, n: int, seed: int = 0, only: str = "", with_variants: bool = False,
               log=print, cmps: list | None = None) -> list[tuple]:
    """``[(comparison, tally, {variant: agree})]`` for the rows of ``comparisons(cpu, only)``
    (or ``cmps``) on ``n`` cases each, the frameworks run on the emulated ``cpu``."""
    from dataclasses import replace

    cmps = comparisons(cpu, only) if cmps is None else cmps
    from npquant.testing.oracles import measure, npquant_under
    rows = []
    with EmulatedFrameworks(cpu) as child, frameworks_on(child):
        log(f"{cpu} child started in {child.startup_seconds:.1f} s")
        for cmp in cmps:
            t0, calls = time.time(), child.calls
            tally = measure(cmp, n, seed=seed)
            extra = {}
            if with_variants and tally.agree < tally.cases:
                for prof in variants(cmp):
                    other = replace(cmp, run_npquant=npquant_under(cmp, prof))
                    extra[prof] = measure(other, n, seed=seed).agree
            rows.append((cmp, tally, extra))
            log(f"{cmp.id:48s} {cmp.profile:26s} {tally.agree:>6}/{tally.cases:<6} "
                f"({tally.declined} declined) {time.time() - t0:6.1f} s for "
                f"{child.calls - calls} calls" + "".join(f"  {p}: {a}" for p, a in extra.items()))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", default="aarch64", choices=CPUS)
    ap.add_argument("--cases", type=int, default=50, help="hypothesis cases per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="only rows whose id contains this text")
    ap.add_argument("--variants", action="store_true",
                    help="on rows that disagree, also count agreement with the framework's "
                         "other profiles (reruns the cases)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve()
    if args.cases < 1:
        ap.error(f"--cases must be >= 1, got {args.cases}")
    reason = missing(args.cpu)
    if reason:
        print(reason, file=sys.stderr)
        return 2
    import warnings

    warnings.simplefilter("ignore")
    measure_on(args.cpu, args.cases, args.seed, args.only, args.variants,
               log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
