"""Run a whole ``.tflite`` model in the LiteRT interpreter and keep every intermediate tensor.

``run_tflite_model(model, x, kernels=...)`` feeds the batch ``x`` (npquant layout, NCHW) and
returns the model's output and, by tensor name, every tensor an operator wrote, in npquant's
layout (NHWC -> NCHW for 4-D). The kernel paths are those of ``npquant.interop.tflite``:
``"reference"`` (BUILTIN_REF, profile ``tflite``), ``"optimized"`` (builtin optimized kernels,
``tflite-optimized``), ``"xnnpack"`` (the default resolver with the XNNPACK delegate,
``tflite-xnnpack``).

How the intermediate tensors are kept: with the builtin kernels the interpreter is created with
``experimental_preserve_all_tensors=True`` (its arena then never reuses a tensor's memory). A
delegate computes its partition inside itself and writes only the partition's outputs, so for
``"xnnpack"`` the model is rewritten first with every operator output listed as a graph output
(``with_all_outputs``); XNNPACK then has to produce each of them. The operators XNNPACK
declined (they run the builtin optimized kernels) are listed in ``TfliteRun.not_delegated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npquant.interop._common import import_framework
from npquant.interop.tflite import _schema, make_interpreter
from npquant.interop.tflite_export import to_npquant_layout, to_tflite_layout

KERNELS = ("reference", "optimized", "xnnpack")


@dataclass
class TfliteRun:
    """The result of ``run_tflite_model``: the output, every operator-written tensor by name
    (npquant layout), and the operators the delegate did not take (``"xnnpack"`` only)."""

    output: np.ndarray
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    not_delegated: list[str] = field(default_factory=list)


def with_all_outputs(model: bytes) -> bytes:
    """``model`` with every tensor an operator writes listed as a graph output (after the
    original outputs, in operator order)."""
    s = _schema()
    m = s.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sub = m.subgraphs[0]
    outs = list(sub.outputs)
    for op in sub.operators:
        outs += [int(t) for t in op.outputs if int(t) not in outs]
    sub.outputs = outs
    flatbuffers = import_framework("flatbuffers", "npquant.interop.tflite_run")
    b = flatbuffers.Builder(max(1 << 16, len(model) + 4096))
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def not_delegated(interp) -> list[str]:
    """``"index:OP"`` of every operator a delegate did not take. The interpreter lists the
    original nodes and then one DELEGATE node per partition; with every operator output a
    graph output (``with_all_outputs``) a partition outputs every tensor of its nodes, so a
    node is delegated exactly when a DELEGATE node writes its outputs."""
    details = interp._get_ops_details()
    by_delegate = {int(t) for d in details if d["op_name"] == "DELEGATE" for t in d["outputs"]}
    return [f"{d['index']}:{d['op_name']}" for d in details if d["op_name"] != "DELEGATE"
            and not {int(t) for t in d["outputs"]} <= by_delegate]


def run_tflite_model(model: bytes, x: np.ndarray, *, kernels: str = "reference",
                     all_tensors: bool = True) -> TfliteRun:
    """Run ``model`` (one input, one output) on the batch ``x`` (module docstring).

    ``x`` is in npquant's layout and must have the model input's dtype (float32 for a model
    that starts with QUANTIZE, int8 for int8 I/O); its batch size may differ from the model's
    (the input is resized).
    """
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    if not isinstance(model, (bytes, bytearray)):
        raise TypeError(f"model must be bytes, got {type(model).__name__}")
    if kernels == "xnnpack":  # (also to see which operators the delegate took)
        model = with_all_outputs(bytes(model))
    interp = make_interpreter(bytes(model), kernels,
                              preserve_all_tensors=all_tensors and kernels != "xnnpack")
    inp = interp.get_input_details()
    if len(inp) != 1:
        raise ValueError(f"the model has {len(inp)} inputs; run_tflite_model takes one")
    xt = to_tflite_layout(np.asarray(x))
    if xt.dtype != inp[0]["dtype"]:
        raise TypeError(f"x must have dtype {np.dtype(inp[0]['dtype'])} (the model input's), "
                        f"got {xt.dtype}")
    if list(xt.shape) != list(inp[0]["shape"]):
        if list(xt.shape[1:]) != list(inp[0]["shape"][1:]):
            raise ValueError(f"x has shape {np.asarray(x).shape}; the model takes "
                             f"{list(inp[0]['shape'])} (TFLite layout) with any batch size")
        interp.resize_tensor_input(inp[0]["index"], list(xt.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp[0]["index"], xt)
    interp.invoke()
    out_index = interp.get_output_details()[0]["index"]
    run = TfliteRun(to_npquant_layout(np.array(interp.get_tensor(out_index))))
    if kernels == "xnnpack":
        run.not_delegated = not_delegated(interp)
    if all_tensors:
        written = {int(t) for d in interp._get_ops_details() for t in d["outputs"]}
        if kernels == "xnnpack":
            written |= {d["index"] for d in interp.get_output_details()}
        for d in interp.get_tensor_details():
            if d["index"] in written:
                run.tensors[d["name"]] = to_npquant_layout(np.array(interp.get_tensor(d["index"])))
    return run
