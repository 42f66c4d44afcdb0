"""numba kernels of max pooling (forward with argmax, backward scatter) on padded NCHW arrays,
and of the ReLU backward (``relu_backward``).

Plain loops, one output element at a time; they replace a NumPy version that was 5-10x
slower on the CNN's (64, 40, 26, 26) activations because it needed a boolean mask per tap.
Contract: ``xp`` is already padded with -inf; the window of output (y, x) starts at
(y*sh, x*sw) and lies inside ``xp`` (the callers' output-size formula guarantees it).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def max_pool_forward(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, out: np.ndarray,
                     arg: np.ndarray) -> None:
    """out[n, c, y, x] = max of the window; arg = flat index (row * Wp + col) into xp[n, c] of
    the first maximum in row-major window order (PyTorch's tie rule: only a strictly larger
    value replaces the current maximum).

    NOTE: a NaN never compares greater, so it wins only as the first element of a window;
    PyTorch propagates any NaN. Inputs are assumed finite (the loss rejects NaN logits).
    """
    n_len, c_len, oh, ow = out.shape
    wp = xp.shape[3]
    for n in range(n_len):
        for c in range(c_len):
            for y in range(oh):
                for x in range(ow):
                    r0, c0 = y * sh, x * sw
                    best = xp[n, c, r0, c0]
                    best_i = r0 * wp + c0
                    for i in range(kh):
                        for j in range(kw):
                            v = xp[n, c, r0 + i, c0 + j]
                            if v > best:
                                best = v
                                best_i = (r0 + i) * wp + c0 + j
                    out[n, c, y, x] = best
                    arg[n, c, y, x] = best_i


@numba.njit(cache=True)
def max_pool_backward(grad: np.ndarray, arg: np.ndarray, dxp: np.ndarray) -> None:
    """dxp[n, c].flat[arg[n, c, y, x]] += grad[n, c, y, x] (overlapping windows sum)."""
    n_len, c_len, oh, ow = grad.shape
    wp = dxp.shape[3]
    for n in range(n_len):
        for c in range(c_len):
            for y in range(oh):
                for x in range(ow):
                    a = arg[n, c, y, x]
                    dxp[n, c, a // wp, a % wp] += grad[n, c, y, x]


@numba.njit(cache=True)
def max_pool_2x2_forward(xp: np.ndarray, out: np.ndarray, arg: np.ndarray,
                         want_arg: bool) -> None:
    """``max_pool_forward`` for kernel 2 and stride 2 (the CNN's pools), with the same outputs:
    the four taps of a window compared in row-major order, a tap replacing the maximum only if
    strictly larger. Fixed-size windows let LLVM vectorize the loop over output columns
    (measured 2.4 ms against 42 ms for the general kernel on (256, 40, 26, 26)). ``arg`` is
    written only with ``want_arg`` (inference needs no argmax)."""
    n_len, c_len, oh, ow = out.shape
    wp = xp.shape[3]
    for n in range(n_len):
        for c in range(c_len):
            plane = xp[n, c]
            for y in range(oh):
                r0 = plane[2 * y]
                r1 = plane[2 * y + 1]
                dst = out[n, c, y]
                if not want_arg:
                    for x in range(ow):
                        dst[x] = max(max(r0[2 * x], r0[2 * x + 1]),
                                     max(r1[2 * x], r1[2 * x + 1]))
                    continue
                ar = arg[n, c, y]
                base = 2 * y * wp
                for x in range(ow):
                    best = r0[2 * x]
                    bi = base + 2 * x
                    v = r0[2 * x + 1]
                    if v > best:
                        best, bi = v, base + 2 * x + 1
                    v = r1[2 * x]
                    if v > best:
                        best, bi = v, base + wp + 2 * x
                    v = r1[2 * x + 1]
                    if v > best:
                        best, bi = v, base + wp + 2 * x + 1
                    dst[x] = best
                    ar[x] = bi


def relu_backward(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dx = dy`` where the ReLU output ``y = max(x, 0)`` is > 0 (exactly where x > 0), else 0.

    One serial pass without a mask array: measured on the CNN's (64, 40, 26, 26) gradient,
    0.5 ms against 14 ms for ``np.where(mask, dy, 0)`` and 1.4 ms for ``dy * (y > 0)``; a
    ``parallel=True`` version was slower on a shared 2-core machine (tools/bench_train.py).
    """
    out = np.empty(y.shape, dtype=np.result_type(grad, y))
    _relu_backward(np.ascontiguousarray(grad).reshape(-1), np.ascontiguousarray(y).reshape(-1),
                   out.reshape(-1))
    return out


@numba.njit(cache=True)
def _relu_backward(grad, y, out):
    for k in range(y.shape[0]):
        out[k] = grad[k] if y[k] > 0 else 0
