"""Per-layer comparison of an ``IntegerModel`` with the TFLite interpreter running a ``.tflite``.

Both run the same float batch: npquant with its trace (every op's output), the interpreter with
every intermediate tensor kept (``npquant.interop.tflite_run``). An op of the integer model and
a TFLite tensor are paired by name (the exporter names each op's output tensor after the op, the
importer names each op after its output tensor), and each pair is compared with the golden
``compare``'s ``diff_arrays``: elements that differ, the ``±1`` signature, ``max |diff|`` and the
first differing index (C order, npquant layout). The report is the golden ``compare`` report
(``npquant.golden.compare.format_comparison``).
"""

from __future__ import annotations

import numpy as np

from npquant.convert import IntegerModel
from npquant.golden.compare import Comparison, diff_arrays
from npquant.interop.tflite_run import TfliteRun, run_tflite_model


def compare_with_tflite(model: IntegerModel, tflite_model: bytes, x: np.ndarray, *,
                        kernels: str = "reference") -> tuple[Comparison, TfliteRun]:
    """Compare every op output of ``model`` on ``x`` with the interpreter's tensor of the same
    name (A = TFLite, B = npquant), and the final DEQUANTIZE output; a missing tensor is a
    problem of the comparison. Returns the comparison and the interpreter's run."""
    if not isinstance(model, IntegerModel):
        raise TypeError(f"model must be an IntegerModel, got {type(model).__name__}")
    logits, trace = model.run(x, return_trace=True)
    run = run_tflite_model(tflite_model, _model_input(model, x, trace), kernels=kernels)
    c = Comparison()
    dq = model.ops[-1]
    pairs = [(e.index, e.name, e.output) for e in trace]
    pairs.append((len(model.ops) - 1, dq.name, model.dequantize_logits(logits)))
    if model.meta.get("tflite_int8_output"):
        pairs.pop()  # no float output in TFLite: the int8 logits were compared just before
    npquant_only = set(model.meta.get("npquant_only", ()))  # ops with no TFLite tensor
    for index, name, ours in pairs:
        if name in npquant_only:
            continue
        theirs = run.tensors.get(name)
        if theirs is None:
            if index == len(model.ops) - 1:
                theirs = run.output
            elif index == 0 and model.meta.get("tflite_int8_input"):
                continue  # an int8-input model: its QUANTIZE is npquant's, fed to TFLite
            else:
                c.problems.append(f"op {index:02d} {name}: no TFLite tensor named {name!r}")
                continue
        d = diff_arrays(np.asarray(theirs), np.asarray(ours))
        d.layer_index, d.layer_name, d.role, d.key = index, name, "output", name
        if d.note:
            c.problems.append(f"op {index:02d} {name}: {d.note}")
        c.diffs.append(d)
    return c, run


def _model_input(model: IntegerModel, x: np.ndarray, trace) -> np.ndarray:
    """The interpreter's input: the float batch, or for a model imported with int8 input the
    int8 tensor npquant's QUANTIZE made of it."""
    return trace[0].output if model.meta.get("tflite_int8_input") else np.asarray(x, np.float32)
