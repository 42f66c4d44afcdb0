"""numba kernels of batch norm over (N, C, H W): the training-mode forward and backward in two
passes over the activation each, instead of NumPy's seven or so full-size temporaries, and the
eval-mode per-channel affine map in one.

Per channel c, with M = N H W values (Ioffe & Szegedy, arXiv:1502.03167):

    mu = sum(x) / M,   var = sum((x - mu)^2) / M   (biased; two passes, the sums in float64)
    xhat = (x - mu) / sqrt(var + eps),   y = gamma xhat + beta                          (fwd)
    dbeta = sum(dy),   dgamma = sum(dy xhat)
    dx = gamma / sqrt(var + eps) (dy - dbeta / M - xhat dgamma / M)                    (bwd)

Serial loops (a ``parallel=True`` version lost on the shared 2-core machine, as the pool kernels
did); the inner loop runs over the contiguous H W plane of one image and channel.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def bn_train_forward(x, gamma, beta, eps, y, xhat, mean, var, invstd):
    """Fill y, xhat (N, C, P) and mean, var, invstd (C,) from x (N, C, P) (module docstring).

    Contract: y, xhat of x's dtype and shape; mean/var/invstd of x's dtype; N P >= 1."""
    n_len, c_len, p_len = x.shape
    m = n_len * p_len
    for c in range(c_len):
        s = 0.0
        for n in range(n_len):
            row = x[n, c]
            for p in range(p_len):
                s += row[p]
        mu = s / m
        ss = 0.0
        for n in range(n_len):
            row = x[n, c]
            for p in range(p_len):
                d = row[p] - mu
                ss += d * d
        v = ss / m
        mean[c] = mu
        var[c] = v
        inv = 1.0 / np.sqrt(var[c] + eps)  # var rounded to x's dtype first, as NumPy's version
        invstd[c] = inv
        mu_t, inv_t, g, b = mean[c], invstd[c], gamma[c], beta[c]
        for n in range(n_len):
            src = x[n, c]
            xh = xhat[n, c]
            dst = y[n, c]
            for p in range(p_len):
                h = (src[p] - mu_t) * inv_t
                xh[p] = h
                dst[p] = h * g + b


@numba.njit(cache=True)
def bn_train_backward(grad, xhat, gamma, invstd, want_dx, dx, dgamma, dbeta):
    """Fill dgamma, dbeta (C,) and, with ``want_dx``, dx (N, C, P) (module docstring).

    Contract: grad, xhat (N, C, P) of one dtype; dx of that shape (ignored unless want_dx)."""
    n_len, c_len, p_len = grad.shape
    m = n_len * p_len
    for c in range(c_len):
        sg = 0.0
        sgx = 0.0
        for n in range(n_len):
            g = grad[n, c]
            xh = xhat[n, c]
            for p in range(p_len):
                sg += g[p]
                sgx += g[p] * xh[p]
        dbeta[c] = sg
        dgamma[c] = sgx
        if want_dx:
            k = gamma[c] * invstd[c]
            a = dbeta[c] / m
            b = dgamma[c] / m
            for n in range(n_len):
                g = grad[n, c]
                xh = xhat[n, c]
                d = dx[n, c]
                for p in range(p_len):
                    d[p] = k * (g[p] - a - xh[p] * b)


@numba.njit(cache=True)
def channel_affine(x, scale, shift, y):
    """``y[n, c, p] = x[n, c, p] scale[c] + shift[c]`` in one pass (eval-mode batch norm).

    Contract: x, y (N, C, P) of one dtype; scale, shift (C,) of that dtype."""
    n_len, c_len, p_len = x.shape
    for n in range(n_len):
        for c in range(c_len):
            a, b = scale[c], shift[c]
            src = x[n, c]
            dst = y[n, c]
            for p in range(p_len):
                dst[p] = src[p] * a + b
