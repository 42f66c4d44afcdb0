"""Module containers: parameters, buffers, train/eval mode, named traversal, state dicts, hooks.

Names follow PyTorch (``features.0.weight``, ``bn.running_var``), so a state dict maps onto the
same model written in PyTorch key by key, and quantization passes can walk ``named_modules()``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from npquant.nn.tensor import Tensor

Hook = Callable[["Module", tuple, Any], Any]


class Parameter(Tensor):
    """A leaf Tensor that requires grad and is registered by the Module that owns it."""

    __slots__ = ()

    def __init__(self, data: np.ndarray):
        arr = np.asarray(data)
        if arr.dtype.kind != "f":
            raise TypeError(f"a Parameter must be floating, got {arr.dtype}")
        super().__init__(arr, requires_grad=True)


class HookHandle:
    """Returned by ``register_forward_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: OrderedDict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    """Base class: assign Parameters, sub-Modules and buffers as attributes; define ``forward``.

    ``training`` selects batch statistics (BatchNorm) and dropout; ``train()`` / ``eval()``
    set it recursively. Forward hooks ``hook(module, inputs, output)`` run after ``forward``;
    a hook that returns a value replaces the output (as in PyTorch).
    """

    _hook_counter = 0

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", [])
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before assigning {name!r}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif value is None and name in ("bias", "weight"):
            pass  # an optional parameter that is absent (bias=False) stays an attribute
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A non-trained array saved in the state dict (e.g. BatchNorm running statistics)."""
        if name not in self._buffers:
            self._buffers.append(name)
        object.__setattr__(self, name, np.asarray(value))

    # -- forward ----------------------------------------------------------------------------
    def forward(self, *inputs: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *inputs: Any) -> Tensor:
        inputs = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        out = self.forward(*inputs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, inputs, out)
            if replaced is not None:
                out = replaced
        return out

    def register_forward_hook(self, hook: Hook) -> HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward; returns a removable handle."""
        Module._hook_counter += 1
        self._forward_hooks[Module._hook_counter] = hook
        return HookHandle(self._forward_hooks, Module._hook_counter)

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield (dotted name, module) for self (name ``prefix``) and all descendants, in order."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules in registration order."""
        yield from self._modules.items()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter of self and descendants."""
        for mname, m in self.named_modules():
            for pname, p in m._parameters.items():
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> list[Parameter]:
        """All parameters, in ``named_parameters`` order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """(dotted name, array) for every buffer of self and descendants."""
        for mname, m in self.named_modules():
            for bname in m._buffers:
                yield (f"{mname}.{bname}" if mname else bname), getattr(m, bname)

    def get_submodule(self, name: str) -> Module:
        """The descendant at dotted ``name`` ('' is self)."""
        m = self
        for part in filter(None, name.split(".")):
            if part not in m._modules:
                raise KeyError(f"{type(m).__name__} has no submodule {part!r} (in {name!r})")
            m = m._modules[part]
        return m

    # -- modes and grads --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on self and all descendants; returns self."""
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: running statistics, no dropout."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget accumulated gradients (set every ``p.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    def astype(self, dtype: Any) -> Module:
        """Cast every parameter and float buffer in place to ``dtype`` (e.g. float64 for grad
        checks); returns self."""
        for _, m in self.named_modules():
            for p in m._parameters.values():
                p.data = p.data.astype(dtype)
            for b in m._buffers:
                arr = getattr(m, b)
                if arr.dtype.kind == "f":
                    object.__setattr__(m, b, arr.astype(dtype))
        return self

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and buffers as plain arrays, keyed like PyTorch."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into parameters and buffers (cast to their dtype).

        Raises ValueError on a shape mismatch (both shapes printed) and, when ``strict``, on
        missing or unexpected keys.
        """
        targets: dict[str, tuple[Module, str, bool]] = {}
        for mname, m in self.named_modules():
            for pname in m._parameters:
                targets[f"{mname}.{pname}" if mname else pname] = (m, pname, True)
            for bname in m._buffers:
                targets[f"{mname}.{bname}" if mname else bname] = (m, bname, False)
        if strict:
            missing = sorted(set(targets) - set(state))
            unexpected = sorted(set(state) - set(targets))
            if missing or unexpected:
                raise ValueError(f"load_state_dict: missing keys {missing}, "
                                 f"unexpected keys {unexpected}")
        for key, value in state.items():
            if key not in targets:
                continue
            m, attr, is_param = targets[key]
            value = np.asarray(value)
            current = m._parameters[attr].data if is_param else getattr(m, attr)
            if value.shape != current.shape:
                raise ValueError(f"load_state_dict: {key} has shape {value.shape} in the state "
                                 f"dict but {current.shape} in the model")
            if is_param:
                m._parameters[attr].data = value.astype(current.dtype, copy=True)
            else:
                object.__setattr__(m, attr, value.astype(current.dtype, copy=True))

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


class Sequential(Module):
    """Runs its children in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential item {i} must be a Module, got {type(m).__name__}")
            setattr(self, str(i), m)

    def forward(self, x: Tensor) -> Tensor:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


Record = dict[str, tuple[list[np.ndarray], np.ndarray]]


def record_activations(model: Module, *inputs: Any, names: list[str] | None = None) -> Record:
    """Run ``model(*inputs)`` once and return {module name: ([input arrays], output array)}.

    Every named sub-module (or only ``names``) is recorded, in call order; the root module is
    recorded under ''. The hooks are removed afterwards, even on error. Observers of PTQ use
    this to see each layer's float input and output.
    """
    record: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    handles = []
    wanted = None if names is None else set(names)
    for name, m in model.named_modules():
        if wanted is not None and name not in wanted:
            continue

        def hook(mod, ins, out, _name=name):
            record[_name] = ([t.data for t in ins], out.data)

        handles.append(m.register_forward_hook(hook))
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return record
