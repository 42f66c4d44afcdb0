"""The committed reference sets of ``reference_data/``: golden data that pins npquant's rounding.

Two kinds of set, one directory per profile each:

* ``cnn/<profile>/``: ``CNN_IMAGES`` FashionMNIST test images through the seed CNN (1 epoch,
  seed 0) under the profile — every op's tensors as ``$readmemh`` hex (``load_golden`` reads
  them back with the manifest's dtypes and shapes);
* ``ops/<profile>/``: single-op vectors at the edges, ``npy`` + hex + bin + C header. Each
  "layer" is one case of ``REQUANTIZE`` (``q = clamp(Z + round_rule(M acc), qmin, qmax)``
  with the profile's conv rule) or ``QUANTIZE`` (``q = clamp(round(x / S) + Z)``): ties,
  saturation, INT32_MIN / INT32_MAX accumulators with the largest Q31 multiplier, zero-point
  extremes, 4-bit and 16-bit outputs.

Everything is computed from committed *sources* (``reference_data/sources/``): the float weights
of the seed CNN, the images, and each profile's qparams (chosen once by calibration). Floats from
BLAS never enter regeneration — only element-wise IEEE operations and integer kernels — so
``tests/golden/test_reference_data.py`` regenerates every set on any machine and compares bytes;
a change in rounding behaviour shows as a failing diff that must be explained (regenerate with
``python3 tools/gen_reference_data.py --force`` and say why in the commit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from npquant.convert import IntegerModel, convert
from npquant.golden.writer import write_golden, write_tensors
from npquant.models import get_model
from npquant.profiles import PROFILES, RequantKind, get_profile
from npquant.qparams import QParams, quantize
from npquant.quant import fold_batch_norm
from npquant.quant.ptq import LayerQParams, ModelQParams
from npquant.requant import prepare_requant, requant_params_from_multiplier, requantize

CNN_IMAGES = 2
CNN_FORMATS = ("hex",)  # the RTL format; load_golden reads hex-only sets (manifest: dtype, shape)
OPS_FORMATS = ("npy", "hex", "bin", "h")
SOURCES = "sources"
STATE, IMAGES, QPARAMS = "cnn_state.npz", "cnn_images.npy", "cnn_qparams.json"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
M_MAX_Q31 = (2**31 - 1) / 2**31  # the largest multiplier below 1: M0 = 2^31 - 1, shift 0


def make_sources(root: str | Path, train_dir: str | Path, *, data_dir: str | Path | None = None,
                 calib_batches: int = 16, calib_batch_size: int = 64) -> None:
    """Write ``root/sources/``: the trained seed CNN's float weights, the first ``CNN_IMAGES``
    test images, and each profile's qparams calibrated as ``npquant golden`` does. Run once;
    regeneration only reads them."""
    from npquant import train
    from npquant.golden.source import build_integer_model

    src = Path(root) / SOURCES
    src.mkdir(parents=True, exist_ok=True)
    model = train.load_trained_model(train_dir)
    train.save_npz(src / STATE, model.state_dict())
    x, _ = train.prepare("fashion-mnist", "test", data_dir, CNN_IMAGES)
    with open(src / IMAGES, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(x, dtype=np.float32),
                                  allow_pickle=False)
    qp = {}
    for p in PROFILES:
        im, _ = build_integer_model(train_dir, p, data_dir=data_dir, calib_batches=calib_batches,
                                    calib_batch_size=calib_batch_size)
        qp[p] = im.qparams.to_dict()
    (src / QPARAMS).write_text(json.dumps(qp, indent=1) + "\n")


def model_qparams_from_dict(d: dict[str, Any]) -> ModelQParams:
    """The inverse of ``ModelQParams.to_dict`` (scales are float32 values, exact in JSON)."""
    def q(e: dict[str, Any]) -> QParams:
        return QParams(e["scale"], e["zero_point"], bits=e["bits"], signed=e["signed"],
                       axis=e["axis"], narrow_range=e["narrow_range"])

    layers = {name: LayerQParams(name=v["name"], kind=v["kind"], input=q(v["input"]),
                                 weight=q(v["weight"]), output=q(v["output"]),
                                 bias_scale=np.asarray(v["bias_scale"], dtype=np.float64),
                                 activation=v["activation"],
                                 activation_layer=v["activation_layer"])
              for name, v in d["layers"].items()}
    return ModelQParams(d["profile"], d["profile_version"], q(d["input"]), layers)


def cnn_model(root: str | Path, profile: str) -> tuple[IntegerModel, np.ndarray]:
    """The seed CNN of ``root/sources`` under ``profile`` and its images."""
    from npquant.train import load_npz

    src = Path(root) / SOURCES
    model = get_model("cnn", seed=0)
    model.load_state_dict(load_npz(src / STATE))
    folded = fold_batch_norm(model.eval())
    qp = model_qparams_from_dict(json.loads((src / QPARAMS).read_text())[profile])
    x = np.load(src / IMAGES, allow_pickle=False)
    return convert(folded, qp, profile, input_shape=tuple(x.shape[1:])), x


def op_cases(profile: str) -> list[dict[str, Any]]:
    """The single-op edge cases of one profile (module docstring), as dicts of
    ``name, op, M (REQUANTIZE) or scale (QUANTIZE), zero_point, qmin, qmax, dtype, x``."""
    ties = np.arange(-16, 17, dtype=np.int32)
    big = np.array([INT32_MIN, INT32_MIN + 1, -(2**30), -1_000_001, -171, -170, 0, 170, 171,
                    1_000_001, 2**30, INT32_MAX - 1, INT32_MAX], dtype=np.int32)
    halves = np.arange(-8, 9, dtype=np.float32) * np.float32(0.25)  # x / S = k + 1/2 at S = 0.5
    cases = [
        dict(name="ties_half", op="REQUANTIZE", M=0.5, zero_point=0, qmin=-128, qmax=127,
             dtype="int8", x=ties),
        dict(name="ties_sixteenth", op="REQUANTIZE", M=2.0**-4, zero_point=3, qmin=-128,
             qmax=127, dtype="int8", x=ties * 8),
        dict(name="saturation", op="REQUANTIZE", M=0.75, zero_point=-5, qmin=-128, qmax=127,
             dtype="int8", x=big),
        dict(name="int32_edges_max_q31", op="REQUANTIZE", M=M_MAX_Q31, zero_point=0, qmin=-128,
             qmax=127, dtype="int8", x=big),
        dict(name="int32_edges_tiny_m", op="REQUANTIZE", M=2.0**-30 * 0.7, zero_point=0,
             qmin=-128, qmax=127, dtype="int8", x=big),
        # M = 2^-32: INT32_MIN M = -1/2 exactly, a tie on the most negative accumulator
        dict(name="int32_min_tie", op="REQUANTIZE", M=2.0**-32, zero_point=0, qmin=-128,
             qmax=127, dtype="int8", x=big),
        dict(name="zero_point_min_relu", op="REQUANTIZE", M=0.3, zero_point=-128, qmin=-128,
             qmax=127, dtype="int8", x=np.arange(-600, 601, 50, dtype=np.int32)),
        dict(name="zero_point_max", op="REQUANTIZE", M=0.3, zero_point=127, qmin=-128,
             qmax=127, dtype="int8", x=np.arange(-600, 601, 50, dtype=np.int32)),
        dict(name="int4", op="REQUANTIZE", M=0.05, zero_point=-3, qmin=-8, qmax=7, dtype="int8",
             x=np.arange(-250, 251, 10, dtype=np.int32)),
        dict(name="int16", op="REQUANTIZE", M=0.37, zero_point=0, qmin=-32768, qmax=32767,
             dtype="int16", x=np.concatenate([big, ties * 3])),
        dict(name="quantize_ties", op="QUANTIZE", scale=0.5, zero_point=-1, qmin=-128,
             qmax=127, dtype="int8", x=halves),
        dict(name="quantize_saturation_uint8", op="QUANTIZE", scale=0.1, zero_point=200, qmin=0,
             qmax=255, dtype="uint8", x=np.array([-100, -20.05, -20.0, 0, 5.55, 5.6, 100],
                                                  dtype=np.float32)),
    ]
    if get_profile(profile).conv.kind is RequantKind.POWER_OF_TWO:
        for c in cases:  # power-of-two hardware takes M = 2^-n only: the nearest one
            if "M" in c:
                c["M"] = float(2.0 ** np.round(np.log2(c["M"])))
    return cases


def write_ops(out: str | Path, profile: str, *, provenance_record: dict[str, Any] | None = None,
              overwrite: bool = False) -> dict[str, Any]:
    """Write the single-op set of ``profile`` (``op_cases``) to ``out``."""
    prof = get_profile(profile)
    rule = prof.conv
    tensors, layers = [], []
    for i, c in enumerate(op_cases(profile)):
        base = f"{i:02d}_{c['name']}"
        t: dict[str, str] = {}
        attrs = {k: c[k] for k in ("zero_point", "qmin", "qmax")}
        if c["op"] == "REQUANTIZE":
            onednn = rule.kind is RequantKind.FLOAT32_ONEDNN
            # oneDNN's three factors (npquant.requant.onednn_scales): M as the input scale
            params = (prepare_requant(rule, c["M"], 1.0, 1.0) if onednn
                      else requant_params_from_multiplier(rule, [c["M"]]))
            out_q = requantize(c["x"], params, channel_axis=None, zero_point=c["zero_point"],
                               qmin=c["qmin"], qmax=c["qmax"]).astype(c["dtype"])
            named = [("acc", c["x"], "vector"),
                     ("requant_multiplier", params.quantized_multiplier.astype(np.int32), "O"),
                     ("requant_shift", params.shift.astype(np.int32), "O"),
                     ("requant_real_multiplier", params.multiplier.astype(np.float64), "O"),
                     ("output", out_q, "vector")]
            extra = {"rule": rule.describe(), "formula": "q = clamp(Z + round_rule(M acc), "
                                                         "qmin, qmax); M = M0 2^shift / 2^31"}
            if onednn:
                named.insert(4, ("requant_onednn_src_d", params.onednn_factors, "O"))
                extra["formula"] = ("q = clamp(round_even(f32(f32(f32(f32(acc) src) W) D) + Z), "
                                    "qmin, qmax); (src, D) = requant_onednn_src_d = "
                                    "(f32(1/f32(1/M)), 1), W = requant_real_multiplier = 1")
        else:
            bits = 8
            q = QParams(c["scale"], c["zero_point"], bits=bits, signed=c["dtype"] == "int8")
            out_q = quantize(c["x"], q, rule=prof.quantize)
            named = [("input", c["x"], "vector"), ("scale", np.atleast_1d(q.scale), "scalar"),
                     ("output", out_q, "vector")]
            extra = {"rule": prof.quantize.describe(),
                     "formula": "q = clamp(round(x / S) + Z, qmin, qmax)"}
        for role, arr, layout in named:
            tensors.append((f"{base}.{role}", np.ascontiguousarray(arr), layout))
            t[role] = f"{base}.{role}"
        layers.append({"index": i, "name": c["name"], "op": c["op"],
                       "attributes": dict(attrs, **extra), "tensors": t})
    fields = {"generator": "npquant.golden.reference (single-op edge vectors)",
              "profile": {"name": prof.name, "version": prof.version,
                          "description": prof.description, "rules": dict(prof.rules())},
              "layers": layers}
    return write_tensors(out, tensors, fields, formats=OPS_FORMATS, overwrite=overwrite,
                         provenance_record=provenance_record)


def write_cnn(root: str | Path, out: str | Path, profile: str, *,
              provenance_record: dict[str, Any] | None = None,
              overwrite: bool = False) -> dict[str, Any]:
    """Write the seed-CNN set of ``profile`` from ``root/sources`` to ``out``."""
    im, x = cnn_model(root, profile)
    return write_golden(im, x, out, seed=0, formats=CNN_FORMATS, overwrite=overwrite,
                        provenance_record=provenance_record,
                        extra={"source": "reference_data/sources: seed CNN (1 epoch, seed 0) "
                                         f"weights, first {CNN_IMAGES} FashionMNIST test images, "
                                         "qparams calibrated on 16 x 64 training images"})


def reference_sets(root: str | Path) -> dict[str, tuple[Path, Any]]:
    """Every reference set: relative name -> (directory, writer ``f(out, **kw)``)."""
    root = Path(root)
    sets: dict[str, tuple[Path, Any]] = {}
    for p in PROFILES:
        sets[f"cnn/{p}"] = (root / "cnn" / p,
                            lambda out, p=p, **kw: write_cnn(root, out, p, **kw))
        sets[f"ops/{p}"] = (root / "ops" / p, lambda out, p=p, **kw: write_ops(out, p, **kw))
    return sets
