"""Per-layer comparison of a quantized ONNX model in ONNX Runtime with npquant's integer model.

``compare_onnx(path, images)`` imports the model (``npquant.interop.onnx_import``), runs npquant
on the images with every op's output traced, runs ORT with every integer tensor added as a graph
output (ORT's way of keeping intermediate tensors), and compares op by op, A = npquant and
B = ORT, with the golden comparison's ``diff_arrays``: per layer the elements that differ (its
agreement), the ``±1`` signature, ``max |B - A|`` and the first differing index with both values;
``format_comparison`` prints the same report as ``npquant compare`` of two golden directories.

Two questions, two modes:

* ``isolate=False`` (default): npquant runs the model end to end, so a difference in one layer
  shows in every layer after it; the first divergent layer is where to look.
* ``isolate=True``: each npquant op runs on ORT's own inputs of that op (the tensors ORT wrote
  for the ops feeding it), so each row measures that op's arithmetic alone.

NOTE: adding intermediate tensors as graph outputs can change what ORT's optimizer does with a
QDQ model (a QuantizeLinear whose output is a graph output is not fused into a QLinear kernel),
so with ``optimize=True`` a QDQ model is measured as ORT runs it *when observed*; QOperator
models (npquant's export, ORT's quantizer with ``QuantFormat.QOperator``) run the same kernels
either way. docs/onnx_import_export.md has the measurements.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npquant.convert import IntegerModel
from npquant.golden.compare import Comparison, diff_arrays
from npquant.interop.onnx_model import run_onnx_model, tensor_names
from npquant.profiles import Profile


def onnx_tensor_names(model: IntegerModel) -> list[str]:
    """The ONNX tensor each op of ``model`` writes: recorded by the importer, else the names
    ``export_onnx`` gives (``tensor_names``)."""
    names = model.meta.get("onnx_tensors")
    return list(names) if names is not None else tensor_names(model)


def compare_onnx(model: str | Path | bytes, x: np.ndarray, *,
                 profile: Profile | str = "onnxruntime", optimize: bool = False,
                 isolate: bool = False, integer_model: IntegerModel | None = None
                 ) -> Comparison:
    """Compare ``model`` run by ONNX Runtime with npquant, op by op, on the float images ``x``
    (module docstring). ``integer_model``: npquant's model of it (default: imported from
    ``model`` under ``profile``). A = npquant, B = ORT; the last row is the float output."""
    from npquant.interop.onnx_import import import_onnx

    im = integer_model if integer_model is not None else import_onnx(model, profile=profile)
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"images must be float32, got {x.dtype}")
    names = onnx_tensor_names(im)
    q, trace = im.run(x, return_trace=True)
    got = run_onnx_model(model, x, tensors=names[:-1], optimize=optimize)
    srcs = im.wiring if im.wiring is not None else [(i - 1,) for i in range(len(im.ops))]
    out = Comparison()
    for e in trace:
        ort_out = got[names[e.index]]
        mine = e.output
        if isolate:
            ins = [x if j < 0 else got[names[j]] for j in srcs[e.index]]
            mine, _ = im.ops[e.index].run(ins[0], im.profile, *ins[1:])
        d = diff_arrays(mine, ort_out)
        d.layer_index, d.layer_name, d.role, d.key = e.index, e.name, "output", names[e.index]
        if d.note:
            out.problems.append(f"op {e.index:02d} {e.name}: {d.note}")
        out.diffs.append(d)
    last = len(im.ops) - 1
    logits = got[names[srcs[last][0]]] if isolate else q
    d = diff_arrays(im.dequantize_logits(logits), got[names[last]])
    d.layer_index, d.layer_name, d.role, d.key = last, im.ops[last].name, "output", names[last]
    if d.note:
        out.problems.append(f"op {last:02d} {im.ops[last].name}: {d.note}")
    out.diffs.append(d)
    return out
