"""Golden data of an integer model on one batch: every op's tensors and constants, in three
formats (``.npy`` + one ``.npz``, ``$readmemh`` hex, raw little-endian ``.bin``) and a JSON
manifest with shapes, dtypes, layouts, qparams, profile, versions, seed and sha256 of every file.

The values come from ``IntegerModel.run(..., return_trace=True)`` — the integer kernels under the
named profile; ``tests/test_convert.py`` checks that path bit for bit against an independent
step-by-step reference.

Per op ``k`` (name ``op``, e.g. ``01_conv1``) the files are ``<k>_<name>.<tensor>.{npy,hex,bin}``
with tensors:

* ``input``, ``output``: activations (``QUANTIZE`` input float32, ``DEQUANTIZE`` output float32,
  all others int8), NCHW for 4-D, ``(N, features)`` for 2-D;
* ``acc``: int32 accumulators before requantization and activation clamp (CONV_2D,
  FULLY_CONNECTED; for MAX_POOL_2D the window maxima);
* ``weight`` (int8 OIHW / (O, I)), ``bias`` (int32, scale ``S_in S_w[o]``, zero point 0);
* ``requant_multiplier`` (int32 Q31 ``M0``), ``requant_shift`` (int32; ``M = M0 2^shift / 2^31``;
  for power-of-two rules ``M = 2^shift``), ``requant_real_multiplier`` (float64 ``M`` as the rule
  multiplies by it);
* ``input_scale``, ``weight_scale``, ``output_scale`` (float32) and ``input_zero_point``,
  ``output_zero_point`` (int32), with the zero points also in the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from npquant import __version__
from npquant.convert import Conv2dOp, FullyConnectedOp, IntegerModel, TraceEntry
from npquant.golden.formats import write_bin, write_hex
from npquant.integer import activation_range
from npquant.qparams import QParams
from npquant.quant.ptq import qparams_to_dict

FORMAT = "npquant-golden"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
NPZ = "golden.npz"
HEX_FORMAT = ("one value per line, lowercase hex, zero-padded to 2 digits per byte of the dtype "
              "(int8: 2, int32: 8); integers in two's complement (int8 -1 = ff, int32 -2 = "
              "fffffffe); floats as IEEE-754 bit patterns (float32 1.0 = 3f800000); C order")
BIN_FORMAT = "raw array bytes, little-endian, C order, no header"
ZERO_POINTS = ("r = S (q - Z) with Z the zero point. CMSIS-NN style offsets, where given, are "
               "input_offset = -input_zero_point and output_offset = +output_zero_point")


def write_golden(model: IntegerModel, x: np.ndarray, out_dir: str | Path, *,
                 seed: int | None = None, labels: np.ndarray | None = None,
                 nhwc: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``model`` on the float batch ``x`` and write its golden data to ``out_dir``.

    Args:
        model: the integer model (its profile names the arithmetic).
        x: float images ``(N, C, H, W)``.
        out_dir: created if needed; existing files of the same names are overwritten.
        seed: recorded in the manifest (the seed that produced the model and batch).
        labels: optional int labels of the batch, written as ``labels`` and listed.
        nhwc: also write every 4-D activation as NHWC and conv weights as OHWI
            (``<base>.nhwc.*``), listed with their layout.
        extra: JSON-able data added to the manifest under ``"extra"``.

    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"model must be an IntegerModel, got {type(model).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    logits, trace = model.run(x, return_trace=True)
    files: dict[str, dict[str, Any]] = {}
    npz: dict[str, np.ndarray] = {}

    def emit(key: str, arr: np.ndarray, layout: str) -> str:
        arr = np.ascontiguousarray(arr)
        for ext, write in (("npy", _write_npy), ("hex", write_hex), ("bin", write_bin)):
            write(out / f"{key}.{ext}", arr)
        files[key] = {"dtype": str(arr.dtype), "shape": list(arr.shape), "layout": layout,
                      "files": {ext: f"{key}.{ext}" for ext in ("npy", "hex", "bin")}}
        npz[key] = arr
        if nhwc and layout in ("NCHW", "OIHW"):
            t = arr.transpose(0, 2, 3, 1)
            emit(f"{key}.nhwc", t, "NHWC" if layout == "NCHW" else "OHWI")
        return key

    layers = []
    dq = model.ops[-1]
    final = TraceEntry(len(trace), dq.name, dq.op, logits, model.dequantize_logits(logits))
    for entry in [*trace, final]:
        op = model.ops[entry.index]
        base = f"{entry.index:02d}_{entry.name}"
        t: dict[str, str] = {
            "input": emit(f"{base}.input", entry.input, _act_layout(entry.input)),
            "output": emit(f"{base}.output", entry.output, _act_layout(entry.output)),
        }
        if entry.acc is not None:
            t["acc"] = emit(f"{base}.acc", entry.acc, _act_layout(entry.acc))
        layer: dict[str, Any] = {"index": entry.index, "name": entry.name, "op": entry.op,
                                 "attributes": op.describe(), "tensors": t}
        if isinstance(op, (Conv2dOp, FullyConnectedOp)):
            conv = isinstance(op, Conv2dOp)
            t["weight"] = emit(f"{base}.weight", op.weight, "OIHW" if conv else "OI")
            t["bias"] = emit(f"{base}.bias", op.bias, "O")
            rq = op.requant
            t["requant_multiplier"] = emit(f"{base}.requant_multiplier",
                                           rq.quantized_multiplier.astype(np.int32), "O")
            t["requant_shift"] = emit(f"{base}.requant_shift", rq.shift.astype(np.int32), "O")
            t["requant_real_multiplier"] = emit(f"{base}.requant_real_multiplier",
                                                rq.multiplier.astype(np.float64), "O")
            for role, q in (("input", op.input_qparams), ("weight", op.weight_qparams),
                            ("output", op.output_qparams)):
                t[f"{role}_scale"] = emit(f"{base}.{role}_scale", np.atleast_1d(q.scale), "O")
                if role != "weight":
                    t[f"{role}_zero_point"] = emit(f"{base}.{role}_zero_point",
                                                   np.atleast_1d(q.zero_point).astype(np.int32),
                                                   "scalar")
            layer["qparams"] = {"input": qparams_to_dict(op.input_qparams),
                                "weight": qparams_to_dict(op.weight_qparams),
                                "output": qparams_to_dict(op.output_qparams)}
            layer["requant"] = {"rule": rq.rule.describe(), "kind": rq.rule.kind.value,
                                "formula": "q_out = clamp(Z_out + round_rule(M[c] acc), "
                                           "act_min, act_max), M = S_in S_w[c] / S_out",
                                "activation_range": _act_range(op, model.profile)}
            zi, zo = int(op.input_qparams.zero_point), int(op.output_qparams.zero_point)
            layer["zero_points"] = {"input_zero_point": zi, "weight_zero_point": 0,
                                    "output_zero_point": zo}
            layer["offsets"] = {"definition": "input_offset = -input_zero_point; "
                                              "output_offset = output_zero_point (CMSIS-NN)",
                                "input_offset": -zi, "output_offset": zo}
        else:
            q = getattr(op, "qparams", None)
            if isinstance(q, QParams):
                layer["qparams"] = qparams_to_dict(q)
                layer["zero_points"] = {"zero_point": int(q.zero_point)}
        layers.append(layer)
    if labels is not None:
        emit("labels", np.asarray(labels).astype(np.int32), "N")

    _write_npz(out / NPZ, npz)
    digests = {name: _sha256(out / name) for name in sorted(_all_files(files) + [NPZ])}
    prof = model.profile
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "generator": "npquant.golden",
        "npquant_version": __version__, "seed": seed, "batch_size": int(logits.shape[0]),
        "profile": {"name": prof.name, "version": prof.version, "description": prof.description,
                    "rules": dict(prof.rules())},
        "input_shape": list(np.shape(x)), "layouts": ["NCHW"] + (["NHWC"] if nhwc else []),
        "hex_format": HEX_FORMAT, "bin_format": BIN_FORMAT, "zero_point_convention": ZERO_POINTS,
        "flatten_order": "C order of NCHW: feature index = c*H*W + h*W + w",
        "npz": NPZ, "layers": layers, "tensors": files, "sha256": digests,
        "extra": extra or {},
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(out / MANIFEST)
    return manifest


def _act_layout(arr: np.ndarray) -> str:
    return {4: "NCHW", 2: "NC"}.get(arr.ndim, f"{arr.ndim}-D")


def _act_range(op, profile) -> list[int]:
    """``[act_min, act_max]``: the integer clamp of the fused activation (ReLU: from Z_out)."""
    q = op.output_qparams
    return [int(v) for v in activation_range(op.activation, float(q.scale), int(q.zero_point),
                                             q.dtype, profile, q.bits)]


def _write_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, allow_pickle=False)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from npquant.train import save_npz  # reproducible bytes: sorted keys, fixed timestamps

    save_npz(path, arrays)


def _all_files(files: dict[str, dict[str, Any]]) -> list[str]:
    return [f for entry in files.values() for f in entry["files"].values()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
