"""A float model seen as a chain of leaf layers, the form PTQ and conversion work on.

The seed models (``CNN``/``CNN_BN``) and ``nn.Sequential`` run their children in registration
order, so ``chain_layers`` lists the leaves in that order (nested ``Sequential`` flattened).
Whether ``forward`` really is that chain cannot be read off the code; ``check_chain`` runs one
batch through the model with forward hooks and proves it (each leaf's input is the previous
leaf's output, and the model's output is the last leaf's).
"""

from __future__ import annotations

import numpy as np

from npquant import nn


def chain_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[(dotted name, leaf module), ...]`` in call order.

    A child with children of its own must be an ``nn.Sequential`` (it is flattened); any other
    container (e.g. a residual ``BasicBlock``) is a ValueError naming it, since its forward is not
    a chain. A model without children is a TypeError.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an npquant.nn.Module, got {type(model).__name__}")
    out: list[tuple[str, nn.Module]] = []

    def walk(m: nn.Module, prefix: str) -> None:
        for name, child in m.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if any(True for _ in child.named_children()):
                if not isinstance(child, nn.Sequential):
                    raise ValueError(f"layer {full!r} ({type(child).__name__}) is a container "
                                     "whose forward is not a chain; only Sequential-style "
                                     "models are supported")
                walk(child, full)
            else:
                out.append((full, child))

    walk(model, "")
    if not out:
        raise TypeError(f"{type(model).__name__} has no child layers to quantize")
    return out


def run_chain(layers: list[tuple[str, nn.Module]], x: np.ndarray,
              visit=None) -> np.ndarray:
    """Run ``x`` through the leaves in order (no tape); ``visit(name, module, out)`` sees every
    leaf's output. Returns the last output as a numpy array."""
    t = nn.Tensor(np.asarray(x))
    with nn.no_grad():
        for name, m in layers:
            t = m(t)
            if visit is not None:
                visit(name, m, t.data)
    return t.data


def check_chain(model: nn.Module, x: np.ndarray) -> list[tuple[str, nn.Module]]:
    """``chain_layers(model)`` after proving on ``x`` that ``model(x)`` is that chain.

    Raises ValueError naming the first leaf whose input is not its predecessor's output.
    """
    layers = chain_layers(model)
    was_training = model.training
    model.eval()
    try:
        with nn.no_grad():
            rec = nn.record_activations(model, np.asarray(x), names=[""] + [n for n, _ in layers])
    finally:
        model.train(was_training)
    prev_name, prev = "<input>", np.asarray(x)
    for name, _ in layers:
        if name not in rec:
            raise ValueError(f"layer {name!r} is never called by {type(model).__name__}.forward")
        ins, out = rec[name]
        if len(ins) != 1 or ins[0].shape != prev.shape or not np.array_equal(ins[0], prev):
            raise ValueError(f"{type(model).__name__}.forward is not the chain of its layers: "
                             f"the input of {name!r} is not the output of {prev_name!r}")
        prev_name, prev = name, out
    if not np.array_equal(rec[""][1], prev):
        raise ValueError(f"{type(model).__name__}.forward does not return the output of its "
                         f"last layer {prev_name!r}")
    return layers
