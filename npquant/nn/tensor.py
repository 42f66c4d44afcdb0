"""A tiny reverse-mode autograd: ``Tensor`` over a NumPy array, and ``Function`` to define ops.

Every differentiable op is a ``Function`` subclass with a ``forward`` on arrays and a
``backward`` that maps the output gradient to one gradient per input, written side by side so
that the chain rule *is* the code (micrograd's layout, with arrays instead of scalars).
Calling ``Op.apply(*tensors)`` records a node on the tape; ``loss.backward()`` walks the tape
in reverse topological order and *adds* each contribution, so a tensor used twice receives the
sum of both paths.

A custom op (e.g. the straight-through estimator of fake quantization) is a few lines::

    class RoundSTE(Function):
        @staticmethod
        def forward(ctx, x):
            return np.round(x)

        @staticmethod
        def backward(ctx, grad):
            return (grad,)          # d round(x)/dx := 1 (straight-through)

    y = RoundSTE.apply(x)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

_GRAD_ENABLED = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block ops record no tape (evaluation, optimizer updates)."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return _GRAD_ENABLED


class Context:
    """Scratch space an op's forward fills for its backward (``ctx.x = x``).

    ``needs_input_grad[i]`` says whether input ``i`` wants a gradient, so a backward may skip
    work (e.g. the first convolution never computes the gradient of the image).
    """

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad


class _Node:
    """One entry of the tape: which op produced a tensor, from which inputs, with which ctx."""

    __slots__ = ("fn", "ctx", "inputs")

    def __init__(self, fn: type[Function], ctx: Context, inputs: tuple[Tensor, ...]):
        self.fn, self.ctx, self.inputs = fn, ctx, inputs


class Tensor:
    """An n-d array with an optional gradient and a link to the op that produced it.

    ``data`` is a plain ``np.ndarray`` (float32 by default for float input, float64 kept as
    is); ``grad`` is ``None`` until ``backward`` reaches this tensor, then an array of the same
    shape and dtype. Only leaves (tensors not produced by an op, e.g. parameters) keep their
    ``grad``; gradients of intermediate tensors live only during ``backward``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node")
    __array_priority__ = 1000  # so that ``ndarray + Tensor`` calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        if isinstance(data, Tensor):
            data = data.data
        arr = np.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype.kind in "iub" and requires_grad:
            raise TypeError(f"a tensor that requires grad must be floating, got {arr.dtype}")
        if dtype is None and arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._node: _Node | None = None

    # -- array-like accessors -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def numpy(self) -> np.ndarray:
        """The underlying array (not a copy)."""
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the tape."""
        return Tensor(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{grad})"

    # -- backward -------------------------------------------------------------------------
    def backward(self, grad: np.ndarray | None = None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` defaults to 1 for a scalar. Contributions are summed (``+=``): across the
        paths of one graph, and across calls until the caller zeroes ``grad``.
        """
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without grad needs a scalar, got shape {self.shape}")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"grad shape {grad.shape} != tensor shape {self.shape}")
        # Reverse topological order: a node runs only after all its consumers contributed.
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            t, expanded = stack.pop()
            if expanded:
                order.append(t)
                continue
            if id(t) in seen:
                continue
            seen.add(id(t))
            stack.append((t, True))
            if t._node is not None:
                stack.extend((p, False) for p in t._node.inputs if p.requires_grad)
        grads: dict[int, np.ndarray] = {id(self): grad}
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._node is None:  # a leaf: keep its gradient, summed over calls
                t.grad = g.copy() if t.grad is None else t.grad + g
                continue
            node = t._node
            in_grads = node.fn.backward(node.ctx, g)
            if len(in_grads) != len(node.inputs):
                raise RuntimeError(f"{node.fn.__name__}.backward returned {len(in_grads)} "
                                   f"gradients for {len(node.inputs)} inputs")
            for p, pg in zip(node.inputs, in_grads, strict=True):
                if pg is None or not p.requires_grad:
                    continue
                if pg.shape != p.shape:
                    raise RuntimeError(f"{node.fn.__name__}.backward: grad shape {pg.shape} "
                                       f"!= input shape {p.shape}")
                # Sum over paths: a tensor used twice gets both contributions.
                grads[id(p)] = pg if id(p) not in grads else grads[id(p)] + pg

    # -- operators (defined in ops below) ---------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return Add.apply(self, as_tensor(other, self.dtype))

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(as_tensor(other, self.dtype), self)

    def __sub__(self, other: Any) -> Tensor:
        return Add.apply(self, Neg.apply(as_tensor(other, self.dtype)))

    def __rsub__(self, other: Any) -> Tensor:
        return Add.apply(as_tensor(other, self.dtype), Neg.apply(self))

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(self, as_tensor(other, self.dtype))

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(as_tensor(other, self.dtype), self)

    def __matmul__(self, other: Tensor) -> Tensor:
        return MatMul.apply(self, other)

    def sum(self) -> Tensor:
        """Sum of all elements (a scalar tensor)."""
        return Sum.apply(self)

    def mean(self) -> Tensor:
        """Mean of all elements (a scalar tensor)."""
        return Mul.apply(Sum.apply(self), as_tensor(1.0 / self.data.size, self.dtype))

    def reshape(self, *shape: int) -> Tensor:
        """A reshaped view; its backward reshapes the gradient back."""
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)


def as_tensor(x: Any, dtype: Any = None) -> Tensor:
    """``x`` itself if it is a Tensor, else a constant Tensor (no grad) of ``dtype``."""
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=dtype))


class Function:
    """Base class of differentiable ops: subclass and define two static methods.

    ``forward(ctx, *arrays, **constants) -> ndarray`` computes the output from the input
    arrays (positional, one per input Tensor) and keyword constants, and stores on ``ctx``
    what backward needs.
    ``backward(ctx, grad_out) -> tuple`` returns, for each positional input, dL/d(input) as an
    array of the input's shape, or ``None`` when ``ctx.needs_input_grad[i]`` is False.
    """

    @staticmethod
    def forward(ctx: Context, *args: np.ndarray, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **kwargs: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays and record a tape node if any needs grad."""
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(f"{cls.__name__}: input {i} must be a Tensor, "
                                f"got {type(t).__name__}")
        needs = tuple(t.requires_grad and _GRAD_ENABLED for t in inputs)
        ctx = Context(needs)
        out = Tensor(cls.forward(ctx, *(t.data for t in inputs), **kwargs))
        if any(needs):
            out.requires_grad = True
            out._node = _Node(cls, ctx, inputs)
        return out


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Add(Function):
    """z = a + b (broadcasting); dz/da = dz/db = 1, summed over broadcast axes."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return _unbroadcast(grad, sa), _unbroadcast(grad, sb)


class Neg(Function):
    """z = -a."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return (-grad,)


class Mul(Function):
    """z = a * b (broadcasting); dz/da = b, dz/db = a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        ga = _unbroadcast(grad * ctx.b, ctx.a.shape) if ctx.needs_input_grad[0] else None
        gb = _unbroadcast(grad * ctx.a, ctx.b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class MatMul(Function):
    """Z = A @ B for 2-d A (m, k), B (k, n); dA = dZ B^T, dB = A^T dZ."""

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul shapes {a.shape} and {b.shape} do not match")
        ctx.a, ctx.b = a, b
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        ga = grad @ ctx.b.T if ctx.needs_input_grad[0] else None
        gb = ctx.a.T @ grad if ctx.needs_input_grad[1] else None
        return ga, gb


class Sum(Function):
    """z = sum(a); dz/da = 1 everywhere."""

    @staticmethod
    def forward(ctx, a):
        ctx.shape = a.shape
        return np.asarray(a.sum(), dtype=a.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (np.broadcast_to(grad, ctx.shape).copy(),)


class Reshape(Function):
    """z = reshape(a); the gradient is reshaped back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return (grad.reshape(ctx.shape),)
