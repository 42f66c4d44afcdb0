"""BatchNorm folding: an eval-mode ``BatchNorm2d`` after a ``Conv2d`` becomes part of the conv.

In eval mode BN is the per-channel affine map ``y = (z - mu) gamma / sqrt(var + eps) + beta`` of
the conv output ``z = w * x + b``. With ``a = gamma / sqrt(var + eps)`` (one per output channel):

    y = a (w * x + b - mu) + beta = (a w) * x + (a (b - mu) + beta)

so the folded conv has ``w' = w a`` (each output channel's filter scaled) and
``b' = (b - mu) a + beta`` (Jacob et al. 2018, arXiv:1712.05877, section 3.2; docs/pipeline.md).
The running statistics are used whatever the model's mode: folding describes inference.
"""

from __future__ import annotations

import copy

import numpy as np

from npquant import nn
from npquant.quant.chain import chain_layers, consumers, resolve, trace_graph


def fold_bn_params(weight: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray,
                   beta: np.ndarray, running_mean: np.ndarray, running_var: np.ndarray,
                   eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(w', b')`` of the folded conv, computed in float64 and returned in ``weight``'s dtype.

    ``w' = w gamma / sqrt(var + eps)`` per output channel (axis 0 of OIHW) and
    ``b' = (b - mu) gamma / sqrt(var + eps) + beta`` (``b = 0`` when the conv has no bias).
    """
    w = np.asarray(weight)
    o = w.shape[0]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if np.shape(v) != (o,):
            raise ValueError(f"{name} must have shape ({o},) for weight {w.shape}, "
                             f"got {np.shape(v)}")
    var = np.asarray(running_var, dtype=np.float64)
    if np.any(var < 0) or not np.all(np.isfinite(var)) or not eps > 0:
        raise ValueError(f"running_var must be finite and >= 0 and eps > 0 (eps={eps})")
    a = np.asarray(gamma, dtype=np.float64) / np.sqrt(var + float(eps))
    b = np.zeros(o) if bias is None else np.asarray(bias, dtype=np.float64)
    w_f = w.astype(np.float64) * a.reshape((o,) + (1,) * (w.ndim - 1))
    b_f = (b - np.asarray(running_mean, dtype=np.float64)) * a + np.asarray(beta, np.float64)
    return w_f.astype(w.dtype), b_f.astype(w.dtype)


def fold_batch_norm(model: nn.Module, example: np.ndarray | None = None) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every ``BatchNorm2d`` that directly follows a
    ``Conv2d`` folded into that conv and replaced by ``nn.Identity``.

    Without ``example`` the model must be a chain (``chain_layers``) and "follows" means the next
    leaf. With an example batch ``example`` the model is traced (``trace_graph``, residual
    networks too) and a BatchNorm2d is folded when its input is a conv's output that nothing
    else reads. The conv gains a bias if it had none. A BatchNorm2d after anything else stays
    (conversion then reports it as unsupported). The input model is not modified.
    """
    folded = copy.deepcopy(model).eval()
    if example is None:
        layers = chain_layers(folded)
        pairs = list(zip(layers, layers[1:], strict=False))
    else:
        nodes = trace_graph(folded, example)
        by_name = {n.name: n.module for n in nodes}
        readers = consumers(nodes)
        pairs = [((resolve(nodes, n.inputs[0]), by_name.get(resolve(nodes, n.inputs[0]))),
                  (n.name, n.module)) for n in nodes
                 if isinstance(n.module, nn.BatchNorm2d)
                 and readers.get(resolve(nodes, n.inputs[0])) == [n.name]]
    for (_, prev), (name, m) in pairs:
        if not (isinstance(m, nn.BatchNorm2d) and isinstance(prev, nn.Conv2d)):
            continue
        if m.num_features != prev.out_channels:
            raise ValueError(f"BatchNorm2d {name!r} has {m.num_features} features but the "
                             f"conv before it has {prev.out_channels} output channels")
        dtype = prev.weight.data.dtype
        gamma = m.weight.data if m.affine else np.ones(m.num_features, dtype)
        beta = m.bias.data if m.affine else np.zeros(m.num_features, dtype)
        w, b = fold_bn_params(prev.weight.data, None if prev.bias is None else prev.bias.data,
                              gamma, beta, m.running_mean, m.running_var, m.eps)
        prev.weight.data = w
        if prev.bias is None:
            prev.bias = nn.Parameter(b)
        else:
            prev.bias.data = b
        _replace_child(folded, name, nn.Identity())
    return folded


def _replace_child(model: nn.Module, dotted: str, new: nn.Module) -> None:
    """Swap the leaf at ``dotted`` for ``new`` keeping its place in the call order.

    NOTE: ``Module.__setattr__`` re-registers a name at the end of the children (which would
    reorder the chain), so the children dict is rebuilt in order here.
    """
    parent_name, _, leaf = dotted.rpartition(".")
    parent = model.get_submodule(parent_name)
    children = list(parent.named_children())
    for key, _ in children:
        parent._modules.pop(key)
    for key, child in children:
        parent._modules[key] = new if key == leaf else child
    object.__setattr__(parent, leaf, new)
