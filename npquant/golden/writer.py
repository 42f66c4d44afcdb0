"""Golden data of an integer model on one batch: every op's tensors and constants, in up to five
formats (``.npy``, one ``.npz``, ``$readmemh`` hex, raw little-endian ``.bin``, a C header) and a
self-checksummed JSON manifest with shapes, dtypes, layouts, qparams, profile, seed, provenance
and the sha256 of every file.

The values come from ``IntegerModel.run(..., return_trace=True)`` — the integer kernels under the
named profile; ``tests/test_convert.py`` checks that path bit for bit against an independent
step-by-step reference. The run goes a slice of images at a time (``npquant.golden.trace``, the
same integers) while the files of the finished rows are written.

Per op ``k`` (name ``op``, e.g. ``01_conv1``) the files are ``<k>_<name>.<tensor>.{npy,hex,bin}``
with tensors (the manifest's ``layers[k].tensors`` maps each role to its file stem):

* ``input``, ``output``: activations (``QUANTIZE`` input float32, ``DEQUANTIZE`` output float32,
  all others int8), NCHW for 4-D, ``(N, features)`` for 2-D. Op k's input is the output of
  the op feeding it (op k-1 in a chain; ``model.wiring`` in a residual network), stored once:
  ``layers[k].tensors.input`` names ``<j>_<name>.output``; an ADD's second input is
  ``input_b``;
* ``acc``: int32 accumulators before requantization and activation clamp (CONV_2D,
  FULLY_CONNECTED; the window sums of average pools); none for MAX_POOL_2D, whose window
  maxima are its output;
* ``weight`` (int8 OIHW / (O, I)), ``bias`` (int32, scale ``S_in S_w[o]``, zero point 0);
* ``requant_multiplier`` (int32 Q31 ``M0``), ``requant_shift`` (int32; ``M = M0 2^shift / 2^31``;
  for power-of-two rules ``M = 2^shift``), ``requant_real_multiplier`` (float64 ``M`` as the rule
  multiplies by it);
* ``input_scale``, ``weight_scale``, ``output_scale`` (float32) and ``input_zero_point``,
  ``output_zero_point`` (int32), with the zero points also in the manifest.

The export is atomic (``npquant.golden.atomic``): everything is written into a temporary sibling
directory, fsynced, manifest last, then swapped in with one rename, so a failed or killed export
leaves the previous directory whole. Every argument is checked before the first byte is written.
Each file is streamed once (``npquant.golden.stream``: reused aligned buffers, direct I/O where
the file system has it, sha256 computed on the way, one fsync): hex formatted by a numba kernel
(``hex_kernel``), ``.npy`` as NumPy's header plus the raw bytes, the ``.npz`` front to back with
each member's CRC-32 computed first (``npz_stream``) — the same bytes as ``np.save``,
``formats.hex_chunks`` and ``zipfile``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from npquant import __version__
from npquant.convert import Conv2dOp, FullyConnectedOp, IntegerModel
from npquant.golden import cheader
from npquant.golden.atomic import atomic_directory, check_target, fsync_file
from npquant.golden.formats import check_dtype
from npquant.golden.hex_kernel import hex_range, hex_size, value_bits
from npquant.golden.manifest import manifest_text, provenance
from npquant.golden.npz_stream import npy_header, npy_size, raw_bytes, write_npz
from npquant.golden.stream import Streamer, StreamFile
from npquant.golden.trace import SlicedTrace, TraceStopped
from npquant.integer import activation_range
from npquant.qparams import QParams
from npquant.quant.ptq import qparams_to_dict

FORMAT = "npquant-golden"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
NPZ = "golden.npz"
HEADER = "golden.h"
FORMATS = ("npy", "npz", "hex", "bin", "h")
HEADER_IMAGES = 1  # images of each batch tensor in the C header (``_header_slice``)
WRITER_THREADS = 2
# numba threads of the traced run while the writers fill (docs/pipeline.md, "How the files are
# written, and how fast"): the writers keep the other core busy, and a second kernel thread
# added CPU (0.4-0.6 s) and time (0.7-0.8 s of 14-15 s) at load 5.5-6.6
RUN_THREADS = 1
HEX_FORMAT = ("one value per line, lowercase hex, zero-padded to 2 digits per byte of the dtype "
              "(int8: 2, int32: 8); integers in two's complement (int8 -1 = ff, int32 -2 = "
              "fffffffe); floats as IEEE-754 bit patterns (float32 1.0 = 3f800000); C order")
BIN_FORMAT = "raw array bytes, little-endian, C order, no header"
ZERO_POINTS = ("r = S (q - Z) with Z the zero point. CMSIS-NN style offsets, where given, are "
               "input_offset = -input_zero_point and output_offset = +output_zero_point")
Tensor = tuple[str, np.ndarray, str]  # (key, array, layout)


def write_golden(model: IntegerModel, x: np.ndarray, out_dir: str | Path, *,
                 seed: int | None = None, labels: np.ndarray | None = None,
                 nhwc: bool = False, extra: dict[str, Any] | None = None,
                 formats: Sequence[str] = FORMATS, overwrite: bool = False,
                 command: list[str] | None = None,
                 provenance_record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``model`` on the float batch ``x`` and write its golden data to ``out_dir``.

    Args:
        model: the integer model (its profile names the arithmetic).
        x: float images ``(N, C, H, W)``, N >= 1, finite.
        out_dir: must be absent or empty, or (with ``overwrite``) a previous golden directory,
            which is then replaced whole (atomically: old or new, never a mix).
        seed: recorded in the manifest (the seed that produced the model and batch).
        labels: optional integer labels of the batch, one per image, written as ``labels``.
        nhwc: also write every 4-D activation as NHWC and conv weights as OHWI
            (``<base>.nhwc.*``), listed with their layout.
        extra: JSON-able data added to the manifest under ``"extra"``.
        formats: any of ``npy``, ``npz``, ``hex``, ``bin``, ``h`` (C header).
        overwrite: replace an existing golden directory.
        command: the command line to record in the provenance.
        provenance_record: a provenance dict to record instead of this run's (regenerating a
            committed reference set byte for byte).

    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"model must be an IntegerModel, got {type(model).__name__}")
    arr = _check_images(x, model)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    y = None if labels is None else _check_labels(labels, arr.shape[0])
    if not isinstance(nhwc, bool):
        raise TypeError(f"nhwc must be a bool, got {nhwc!r}")
    fields = {"generator": "npquant.golden", "seed": None if seed is None else int(seed),
              "batch_size": int(arr.shape[0]), "input_shape": list(arr.shape),
              "extra": check_json("extra", extra if extra is not None else {}, dict)}
    formats = check_formats(formats)
    check_target(Path(out_dir), overwrite=overwrite, marker=MANIFEST)

    trace = SlicedTrace(model, arr)  # the first slice runs here; the rest while writing
    tensors, layers, streamed = _trace_tensors(model, trace, labels=y, nhwc=nhwc)
    prof = model.profile
    fields.update({
        "profile": {"name": prof.name, "version": prof.version, "description": prof.description,
                    "rules": dict(prof.rules())},
        "layouts": ["NCHW"] + (["NHWC"] if nhwc else []),
        "zero_point_convention": ZERO_POINTS,
        "flatten_order": "C order of NCHW: feature index = c*H*W + h*W + w",
        "layers": layers,
    })
    return _write_all(out_dir, tensors, fields, formats=formats, overwrite=overwrite,
                      command=command, provenance_record=provenance_record,
                      trace=trace, streamed=streamed)


def golden_tensors(model: IntegerModel, x: np.ndarray, *, labels: np.ndarray | None = None,
                   nhwc: bool = False) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Every tensor of ``model`` on ``x`` in dataflow order, and the manifest's ``layers``.

    Nothing is written; ``npquant compare`` uses this to compare a directory with a fresh run.
    The model runs a slice of images at a time (``npquant.golden.trace``: the same integers).
    """
    trace = SlicedTrace(model, x)
    tensors, layers, _ = _trace_tensors(model, trace, labels=labels, nhwc=nhwc)
    trace.run()
    return tensors, layers


def _trace_tensors(model: IntegerModel, trace: SlicedTrace, *, labels: np.ndarray | None,
                   nhwc: bool) -> tuple[list[Tensor], list[dict[str, Any]], set[str]]:
    """``golden_tensors``' tensors and layers from ``trace`` (its arrays may still be filling),
    and the keys of the tensors that fill with it (one row per image: wait for ``trace``)."""
    tensors: list[Tensor] = []
    streamed: set[str] = set()

    def emit(key: str, arr: np.ndarray, layout: str, rows: bool = False) -> str:
        if not rows:
            arr = np.ascontiguousarray(arr)
        tensors.append((key, arr, layout))
        if rows:
            streamed.add(key)
        if nhwc and layout in ("NCHW", "OIHW"):
            to_nhwc = functools.partial(np.transpose, axes=(0, 2, 3, 1))
            emit(f"{key}.nhwc", trace.derive(arr, to_nhwc) if rows else to_nhwc(arr),
                 "NHWC" if layout == "NCHW" else "OHWI", rows)
        return key

    layers = []
    outputs: dict[int, str] = {}  # op index -> the key of its output
    srcs = model.wiring or [(i - 1,) for i in range(len(model.ops))]
    for entry in trace.entries:
        op = model.ops[entry.index]
        base = f"{entry.index:02d}_{entry.name}"
        # An op's input is the output of the op feeding it: one file, named by both ops'
        # "tensors" (the model input, fed to QUANTIZE, is a file of its own).
        src = srcs[entry.index]
        t: dict[str, str] = {"input": outputs.get(src[0]) or emit(
            f"{base}.input", entry.input, _act_layout(entry.input), True)}
        if entry.other is not None:
            t["input_b"] = outputs[src[1]]
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
            formula = ("q_out = clamp(Z_out + round_rule(M[c] acc), act_min, act_max), "
                       "M = S_in S_w[c] / S_out")
            if rq.rule.bias_for(rq.channels > 1).in_float:  # PyTorch fbgemm: npquant.integer.bias
                formula = ("q_out = clamp(Z_out + round_rule(f32(f32(f32(acc - bias[c]) + T[c]) "
                           "M[c])), act_min, act_max), T[c] the float bias term "
                           f"({rq.rule.bias_for(rq.channels > 1).value}) of "
                           "B = f32(bias[c] f32(S_in S_w[c])), M = S_in S_w[c] / S_out")
            if rq.onednn_factors is not None:  # PyTorch x86 engine (oneDNN): npquant.requant
                src, d = (float(f) for f in rq.onednn_factors)
                formula = ("q_out = clamp(round_even(f32(f32(f32(f32(f32(f32(acc - bias[c]) src) "
                           "W[c]) + B[c]) D) + Z_out)), act_min, act_max), W[c] = "
                           "requant_real_multiplier[c] = f32(S_w[c]), B = f32(bias[c] f32(S_in "
                           f"S_w[c])), src = {src!r} = f32(1/f32(1/S_in)), D = {d!r} = "
                           "f32(1/f32(1/f32(1/S_out)))")
            layer["requant"] = {"rule": rq.rule.describe(), "kind": rq.rule.kind.value,
                                "formula": formula,
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
        if entry.acc is not None:
            t["acc"] = emit(f"{base}.acc", entry.acc, _act_layout(entry.acc), True)
        t["output"] = outputs[entry.index] = emit(f"{base}.output", entry.output,
                                                  _act_layout(entry.output), True)
        layers.append(layer)
    if labels is not None:
        emit("labels", np.asarray(labels).astype(np.int32), "N")
    return tensors, layers, streamed


def write_tensors(out_dir: str | Path, tensors: Iterable[Tensor], fields: dict[str, Any], *,
                  formats: Sequence[str] = FORMATS, overwrite: bool = False,
                  command: list[str] | None = None,
                  provenance_record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Atomically write ``tensors`` ``[(key, array, layout)]`` in ``formats`` with a manifest made
    of ``fields`` (JSON-able; ``layers`` in it name tensors by key) plus the format description,
    the file list with sha256, the provenance and the manifest's own checksum.

    The lower layer of ``write_golden``, also used for single-op reference vectors.
    """
    return _write_all(out_dir, tensors, fields, formats=formats, overwrite=overwrite,
                      command=command, provenance_record=provenance_record)


def _write_all(out_dir: str | Path, tensors: Iterable[Tensor], fields: dict[str, Any], *,
               formats: Sequence[str], overwrite: bool, command: list[str] | None,
               provenance_record: dict[str, Any] | None, trace: SlicedTrace | None = None,
               streamed: set[str] = frozenset()) -> dict[str, Any]:
    """``write_tensors``; with ``trace``, the tensors named in ``streamed`` are still filling
    and are written as their rows become final while this thread runs the rest of ``trace``."""
    formats = check_formats(formats)
    fields = check_json("fields", fields, dict)
    tensors = list(tensors)
    keys = [k for k, _, _ in tensors]
    if len(set(keys)) != len(keys) or not keys:
        raise ValueError(f"tensor keys must be unique and at least one, got {keys}")
    for key, arr, _ in tensors:
        if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
            raise ValueError(f"tensor key {key!r} must be a plain file name stem")
        check_dtype(np.asarray(arr).dtype)
    out = Path(out_dir)
    check_target(out, overwrite=overwrite, marker=MANIFEST)
    prov = provenance(command) if provenance_record is None else \
        check_json("provenance_record", provenance_record, dict)
    manifest: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                                "npquant_version": __version__, **fields, "formats": formats,
                                "provenance": prov}
    for fmt, key, text in (("hex", "hex_format", HEX_FORMAT), ("bin", "bin_format", BIN_FORMAT)):
        if fmt in formats:
            manifest[key] = text
    guard = "NPQUANT_GOLDEN_" + "".join(c if c.isalnum() else "_" for c in out.name).upper() \
        + "_H"
    with atomic_directory(out) as tmp:
        files, digests = _write_files(tmp, tensors, formats, fields.get("layers", []),
                                      _header_comment(manifest), guard, trace, streamed)
        if "npz" in formats:
            manifest["npz"] = NPZ
        if "h" in formats:
            manifest["c_header"] = {"file": HEADER, "include_guard": guard,
                                    "images": HEADER_IMAGES,
                                    "description": cheader.__doc__.split("\n\n")[0],
                                    "batch_tensors": f"tensors whose layout starts with N hold "
                                                     f"the first {HEADER_IMAGES} image(s) only; "
                                                     "the other formats hold the whole batch"}
        manifest["tensors"] = files
        manifest["sha256"] = dict(sorted(digests.items()))
        with open(tmp / MANIFEST, "w", encoding="ascii") as f:  # last: it seals the rest
            f.write(manifest_text(manifest))
            fsync_file(f)
    return json.loads(manifest_text(manifest))


def _write_files(tmp: Path, tensors: list[Tensor], formats: list[str],
                 layers: list[dict[str, Any]], comment: list[str], guard: str,
                 trace: SlicedTrace | None = None, streamed: set[str] = frozenset()
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Write every tensor in every format into ``tmp``; returns the manifest's ``tensors``
    entries and the sha256 of every file written.

    Each file is one job, streamed through ``npquant.golden.stream`` (direct I/O, sha256 on the
    way, one fsync); ``WRITER_THREADS`` threads take the jobs largest first, so they finish
    together while the I/O threads keep the disk busy. The bytes do not depend on the order.

    With ``trace``, this thread runs the model's remaining slices meanwhile: a file of a
    ``streamed`` tensor is written up to the rows that are final and then waits for more (its
    bytes are in file order, image after image); ``golden.npz`` needs every member whole before
    its first byte (each member's CRC-32 precedes it), so it waits for the whole run in a thread
    of its own instead of holding up one of the writers.
    """
    files: dict[str, dict[str, Any]] = {}
    jobs: list[tuple[int, str, Callable[[StreamFile], None]]] = []  # (bytes, file, fill)
    for key, arr, layout in tensors:
        if key not in streamed:
            arr = np.ascontiguousarray(arr)
        rows = trace.wait if key in streamed else None
        entry: dict[str, Any] = {"dtype": str(arr.dtype), "shape": list(arr.shape),
                                 "layout": layout, "files": {}}
        for fmt, size, fill in (("npy", npy_size(arr), _fill_npy),
                                ("hex", hex_size(arr.size, arr.itemsize), _fill_hex),
                                ("bin", arr.nbytes, _fill_bin)):
            if fmt in formats:
                jobs.append((size, f"{key}.{fmt}", functools.partial(fill, arr, rows=rows)))
                entry["files"][fmt] = f"{key}.{fmt}"
        if "npz" in formats:
            entry["files"]["npz"] = f"{NPZ}:{key}.npy"
        if "h" in formats:
            entry["files"]["h"] = f"{HEADER}:{cheader.c_name(key)}"
        files[key] = entry
    first: list[tuple[str, Callable[[StreamFile], None]]] = []  # started before the others
    if "npz" in formats:
        members = [(f"{key}.npy", arr if key in streamed else np.ascontiguousarray(arr))
                   for key, arr, _ in tensors]
        fill_npz = functools.partial(write_npz, members=members)
        if trace is None:
            jobs.append((sum(npy_size(a) for _, a in members), NPZ, fill_npz))
        else:
            first.append((NPZ, functools.partial(_after, trace.wait, trace.n, fill_npz)))
    if "h" in formats:
        fill_h = functools.partial(_fill_header, tensors=tensors, layers=layers,
                                   comment=comment, guard=guard)
        if trace is not None:  # batch tensors: the header holds the first images only
            fill_h = functools.partial(_after, trace.wait, HEADER_IMAGES, fill_h)
        jobs.append((0, HEADER, fill_h))
    jobs.sort(key=lambda job: -job[0])
    ordered = [*first, *((name, fill) for _, name, fill in jobs)]
    with Streamer(tmp) as streamer, \
            ThreadPoolExecutor(max_workers=WRITER_THREADS + len(first)) as pool:
        futures = {name: pool.submit(streamer.write_file, tmp / name, fill)
                   for name, fill in ordered}
        try:
            if trace is not None:
                trace.run(stop=lambda: any(f.done() and f.exception() is not None
                                           for f in futures.values()), threads=RUN_THREADS)
            for future in as_completed(futures.values()):
                if future.exception() is not None:
                    raise future.exception()
        except BaseException as exc:  # stop starting files, make waiting ones give up;
            for other in futures.values():  # the with waits for the running ones
                other.cancel()
            if trace is not None:
                trace.cancel()
            raise _first_error(futures.values(), exc) from None
    return files, {name: future.result() for name, future in futures.items()}


def _first_error(futures, exc: BaseException) -> BaseException:
    """The error that stopped an export: a writer's own, not a ``TraceStopped`` it was given
    because another part failed first, and not the run's stop when a writer failed."""
    for f in futures:
        if f.done() and not f.cancelled():
            e = f.exception()
            if e is not None and not isinstance(e, TraceStopped):
                return e
    return exc


def _after(wait: Callable[[int], int], rows: int, fill: Callable[[StreamFile], None],
           f: StreamFile) -> None:
    """``fill(f)`` once rows ``[0, rows)`` of the traced run are final."""
    wait(rows)
    fill(f)


def check_formats(formats: Sequence[str]) -> list[str]:
    """The formats in canonical order; ValueError on an unknown, repeated or empty list."""
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f]
    fmts = list(formats)
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts or len(set(fmts)) != len(fmts):
        raise ValueError(f"formats must be distinct names from {list(FORMATS)}, got {fmts!r}")
    return [f for f in FORMATS if f in fmts]


def check_json(name: str, value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` that JSON can hold exactly (no NaN, no objects), else
    TypeError naming ``name``; returns its JSON round trip (plain lists, str keys)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be JSON-able (no NaN/inf, no arrays or objects): {exc}"
                        ) from None
    return json.loads(text)


def _check_images(x: np.ndarray, model: IntegerModel) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"x must be a float array, got dtype {arr.dtype}")
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"x must have shape (N, {', '.join(map(str, model.input_shape))}), "
                         f"got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"x must hold at least one image, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"x has {int(np.sum(~np.isfinite(arr)))} NaN/inf values")
    return arr


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per image, got {y.shape}")
    if y.size and (y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max):
        raise ValueError(f"labels must fit int32, got range [{y.min()}, {y.max()}]")
    return y


def _header_comment(manifest: dict[str, Any]) -> list[str]:
    prov = manifest["provenance"]
    git = prov.get("git") or {}
    prof = manifest.get("profile", {})
    lines = [f"Golden data written by npquant {manifest['npquant_version']} (npquant.golden, "
             f"format {FORMAT} {FORMAT_VERSION}); manifest.json lists every file's sha256.",
             f"profile: {prof.get('name')} version {prof.get('version')}; seed: "
             f"{manifest.get('seed')}; batch: {manifest.get('batch_size')}",
             f"provenance: git {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}; "
             f"python {prov.get('python')}, numpy {prov.get('numpy')}, numba {prov.get('numba')}",
             f"command: {prov.get('command')}",
             "Quantized values: r = S (q - Z); input_offset = -input_zero_point, "
             "output_offset = +output_zero_point (CMSIS-NN).",
             "Layouts: activations NCHW, conv weights OIHW, FC weights (O, I); C order.",
             f"Batch tensors (layout N...) hold the first {HEADER_IMAGES} image(s); the npy, hex "
             "and bin files hold the whole batch.",
             "Requantization: q_out = clamp(Z_out + round_rule(M[c] acc), ACT_MIN, ACT_MAX), "
             "M = M0 2^shift / 2^31."]
    return [line.replace("*/", "* /") for line in lines]


def _header_slice(arr: np.ndarray, layout: str) -> np.ndarray:
    """What the C header holds of a tensor: batch tensors (layout ``N...``) cut to the first
    ``HEADER_IMAGES`` images — a test bench runs one image; 10k images of C text would not
    compile — and everything else whole."""
    return arr[:HEADER_IMAGES] if layout.startswith("N") else arr


def _act_layout(arr: np.ndarray) -> str:
    return {4: "NCHW", 2: "NC"}.get(arr.ndim, f"{arr.ndim}-D")


def _act_range(op, profile) -> list[int]:
    """``[act_min, act_max]``: the integer clamp of the fused activation (ReLU: from Z_out)."""
    q = op.output_qparams
    return [int(v) for v in activation_range(op.activation, float(q.scale), int(q.zero_point),
                                             q.dtype, profile, q.bits)]


def _row_ranges(n: int, rows: Callable[[int], int] | None) -> Iterator[tuple[int, int]]:
    """Ranges ``[a, b)`` of the ``n`` rows of a tensor, each as soon as it is final: all at once
    without ``rows``, else whatever ``rows(a + 1)`` (``SlicedTrace.wait``) says is done."""
    if rows is None:
        yield 0, n
        return
    done = 0
    while done < n:
        now = min(rows(done + 1), n)
        yield done, now
        done = now


def _fill_npy(arr: np.ndarray, f: StreamFile, rows: Callable[[int], int] | None = None) -> None:
    """NumPy's ``.npy`` (no pickle): header, then the raw C-order bytes (``npz_stream``)."""
    f.write(npy_header(arr))
    for a, b in _row_ranges(len(arr) if arr.ndim else 1, rows):
        f.write(raw_bytes(arr[a:b] if arr.ndim else arr))


def _fill_bin(arr: np.ndarray, f: StreamFile, rows: Callable[[int], int] | None = None) -> None:
    """The array's bytes, C order, little-endian, no header."""
    for a, b in _row_ranges(len(arr) if arr.ndim else 1, rows):
        part = arr[a:b] if arr.ndim else arr
        f.write(np.ascontiguousarray(part, dtype=arr.dtype.newbyteorder("<")))


def _fill_hex(arr: np.ndarray, f: StreamFile, rows: Callable[[int], int] | None = None) -> None:
    """The ``$readmemh`` text, formatted straight into the file's buffers (``hex_kernel``); a
    row of the tensor is ``row_values (2 itemsize + 1)`` characters of it."""
    bits = value_bits(arr)
    line = hex_size(1, bits.itemsize)
    per_row = line * (bits.size // len(arr) if arr.ndim and len(arr) else bits.size)
    done = 0
    for _, b in _row_ranges(len(arr) if arr.ndim else 1, rows):
        limit = b * per_row
        while done < limit:
            free = f.space()
            k = min(free.size, limit - done)
            hex_range(bits, free[:k], done)
            f.commit(k)
            done += k


def _fill_header(f: StreamFile, *, tensors: list[Tensor], layers: list[dict[str, Any]],
                 comment: list[str], guard: str) -> None:
    """The C header: preamble, each layer's defines before its first tensor, every tensor
    (batch tensors cut by ``_header_slice``), the tensor table."""
    f.write(cheader.header_preamble(guard, comment).encode())
    layer_of = {key: layer for layer in layers for key in layer.get("tensors", {}).values()}
    done_layers: set[int] = set()
    for key, arr, layout in tensors:
        layer = layer_of.get(key)
        if layer is not None and layer.get("index") not in done_layers:
            done_layers.add(layer.get("index"))
            f.write(cheader.layer_defines(layer).encode())
        cheader.write_array(f, key, _header_slice(np.ascontiguousarray(arr), layout), layout)
    f.write(cheader.tensor_table([(k, np.asarray(a).dtype, np.ndim(a))
                                  for k, a, _ in tensors]).encode())
    f.write(cheader.header_end(guard).encode())
