"""Shared helpers of the nn tests: the PyTorch oracle runner and the finite-difference check."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from npquant.nn import Tensor

# float64 tolerance of every oracle comparison: both libraries compute the same formula in
# IEEE double, differing only in summation order, so results agree to ~1e-13 relative.
RTOL64 = 1e-10
ATOL64 = 1e-10


def assert_close(ours: np.ndarray, ref: np.ndarray, stage: str, *, rtol: float = RTOL64,
                 atol: float = ATOL64) -> None:
    """np.testing-style closeness whose failure message names the stage and the worst element."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{stage}: shape {ours.shape}, but should be {ref.shape}"
    err = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
    if ours.size and err.max() > 0:
        i = np.unravel_index(np.argmax(err), ours.shape)
        raise AssertionError(f"{stage}: out{list(i)}={ours[i]!r}, but should be {ref[i]!r} "
                             f"(|diff|={abs(ours[i] - ref[i]):.3g}, rtol={rtol}, atol={atol})")


def run_both(torch, ours_fn: Callable, torch_fn: Callable, inputs: Sequence[np.ndarray],
             names: Sequence[str] | None = None, *, seed: int = 0, rtol: float = RTOL64,
             atol: float = ATOL64) -> None:
    """Forward and backward of ``ours_fn`` (npquant Tensors) and ``torch_fn`` (torch tensors)
    on the same float inputs and the same random output gradient; compares the output
    ("forward") and the gradient of every input ("grad of <name>")."""
    names = list(names or [f"input {i}" for i in range(len(inputs))])
    xs = [Tensor(np.array(a, copy=True), requires_grad=True) for a in inputs]
    ts = [torch.tensor(np.array(a, copy=True), requires_grad=True) for a in inputs]
    out = ours_fn(*xs)
    tout = torch_fn(*ts)
    assert_close(out.data, tout.detach().numpy(), "forward", rtol=rtol, atol=atol)
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for name, x, t in zip(names, xs, ts, strict=True):
        assert x.grad is not None, f"grad of {name}: npquant computed no gradient"
        assert_close(x.grad, t.grad.numpy(), f"grad of {name}", rtol=rtol, atol=atol)


def numeric_grad_check(fn: Callable, inputs: Sequence[np.ndarray], *, seed: int = 0,
                       eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-8,
                       params: Sequence[Tensor] = ()) -> None:
    """Compare backward of ``fn`` (float64 Tensors -> Tensor) with central differences of the
    scalar L = sum(fn(x) * g), g a fixed random tensor:
    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps).
    The truncation error is O(eps^2 * f''') ~ 1e-12 and the rounding error ~ 1e-16/eps = 1e-10,
    so agreement to 1e-6 relative is a real check. ``params`` (e.g. a module's Parameters
    used inside ``fn``) are checked too, perturbed in place."""
    xs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    out = fn(*xs)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    for p in params:
        p.grad = None
    out.backward(g)
    for k, x in enumerate(list(xs) + list(params)):
        num = np.zeros_like(x.data)
        flat = x.data.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            lp = float((fn(*[Tensor(t.data) for t in xs]).data * g).sum())
            flat[i] = old - eps
            lm = float((fn(*[Tensor(t.data) for t in xs]).data * g).sum())
            flat[i] = old
            num.reshape(-1)[i] = (lp - lm) / (2 * eps)
        name = f"input {k}" if k < len(xs) else f"param {k - len(xs)}"
        assert_close(x.grad, num, f"grad of {name} vs finite differences", rtol=rtol,
                     atol=atol)
