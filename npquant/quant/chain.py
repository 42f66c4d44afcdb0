"""A float model seen as a chain, or a graph, of leaf layers: the form PTQ and conversion work on.

The seed models (``CNN``/``CNN_BN``) and ``nn.Sequential`` run their children in registration
order, so ``chain_layers`` lists the leaves in that order (nested ``Sequential`` flattened).
Whether ``forward`` really is that chain cannot be read off the code; ``check_chain`` runs one
batch through the model with forward hooks and proves it (each leaf's input is the previous
leaf's output, and the model's output is the last leaf's).

Residual networks are not chains: a block's input feeds both its main branch and its shortcut,
and an ``nn.Add`` leaf joins them. ``trace_graph`` records such a model as a list of ``Node`` s in
call order, each naming the nodes whose outputs it takes. It runs one batch with a forward hook
on every leaf and matches each leaf's input tensors to the leaf (or the model input) that
produced them *by object identity*, so the graph is what ``forward`` really did; a tensor made
outside any leaf (``x + y`` written in ``forward``) has no producer and is an error naming the
leaf that consumed it. A chain model traces to a graph whose nodes each take the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

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


INPUT = "input"  # the name of the model input in a graph


@dataclass(frozen=True)
class Node:
    """One leaf call of a traced model: its dotted ``name`` (also the name of its output), the
    ``module`` and the names of the nodes (or ``"input"``) whose outputs are its inputs."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]


def trace_graph(model: nn.Module, x: np.ndarray) -> list[Node]:
    """The leaf graph of ``model`` on the batch ``x``, in call order (module docstring).

    Raises ValueError for a leaf called twice, a leaf input no leaf produced, or a model output
    that is not the last leaf's. The model is run in eval mode and restored.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an npquant.nn.Module, got {type(model).__name__}")
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(
        True for _ in m.named_children())]
    if not leaves:
        raise TypeError(f"{type(model).__name__} has no child layers to quantize")
    x_t = nn.Tensor(np.asarray(x))
    producer: dict[int, str] = {id(x_t): INPUT}
    keep: list[nn.Tensor] = [x_t]  # holds every tensor so that no id is reused during the trace
    nodes: list[Node] = []
    seen: set[str] = set()

    def hook(mod, ins, out, _name):
        if _name in seen:
            raise ValueError(f"layer {_name!r} is called twice by {type(model).__name__}.forward;"
                             " a shared layer cannot be quantized as one node")
        seen.add(_name)
        srcs = []
        for k, t in enumerate(ins):
            if id(t) not in producer:
                raise ValueError(f"input {k} of layer {_name!r} was computed outside any layer "
                                 f"of {type(model).__name__}; only leaf modules can be converted")
            srcs.append(producer[id(t)])
        keep.extend([*ins, out])
        producer[id(out)] = _name
        nodes.append(Node(_name, mod, tuple(srcs)))

    handles = [m.register_forward_hook(lambda mod, ins, out, _n=n: hook(mod, ins, out, _n))
               for n, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with nn.no_grad():
            out = model(x_t)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not nodes or producer.get(id(out)) != nodes[-1].name:
        raise ValueError(f"{type(model).__name__}.forward does not return the output of its "
                         "last layer call")
    return nodes


def chain_graph(layers: list[tuple[str, nn.Module]]) -> list[Node]:
    """The graph of a chain: each layer takes the previous one's output."""
    prev, nodes = INPUT, []
    for name, m in layers:
        nodes.append(Node(name, m, (prev,)))
        prev = name
    return nodes


def run_graph(nodes: list[Node], x: np.ndarray, visit=None) -> np.ndarray:
    """Run ``x`` through the graph (no tape); ``visit(name, module, out)`` sees every node's
    output. Returns the last node's output as a numpy array."""
    values: dict[str, nn.Tensor] = {INPUT: nn.Tensor(np.asarray(x))}
    with nn.no_grad():
        for node in nodes:
            out = node.module(*(values[i] for i in node.inputs))
            values[node.name] = out
            if visit is not None:
                visit(node.name, node.module, out.data)
    return values[nodes[-1].name].data


def is_alias(module: nn.Module) -> bool:
    """True for leaves that pass their input through unchanged at inference (Identity, Dropout)."""
    return isinstance(module, (nn.Identity, nn.Dropout))


def resolve(nodes: list[Node], name: str) -> str:
    """The node that really computes ``name``'s value: follows Identity/Dropout to their input."""
    by_name = {n.name: n for n in nodes}
    while name in by_name and is_alias(by_name[name].module):
        name = by_name[name].inputs[0]
    return name


def consumers(nodes: list[Node]) -> dict[str, list[str]]:
    """``{producer: [consumer, ...]}`` with Identity/Dropout resolved away on both sides."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        if is_alias(n.module):
            continue
        for i in n.inputs:
            out.setdefault(resolve(nodes, i), []).append(n.name)
    return out
