"""The float stack's fast kernels against the plain ones they replace: bit-equal outputs.

The 2x2 max pool must return the same maxima *and* argmax (first maximum in row-major window
order) as the general kernel, on inputs full of ties, odd sizes (floor mode drops the last row
and column) and -inf padding; the ReLU backward equals ``np.where(x > 0, dy, 0)``; the batch
norm kernels equal the NumPy formulas to float rounding (their sums are float64).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npquant.nn import functional as F
from npquant.nn.norm_kernels import bn_train_backward, bn_train_forward, channel_affine
from npquant.nn.pool_kernels import max_pool_2x2_forward, max_pool_forward, relu_backward
from npquant.nn.tensor import Tensor


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9),
       levels=st.integers(1, 4), pad=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_max_pool_2x2_equals_general_kernel(n, c, h, w, levels, pad, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (n, c, h, w)).astype(np.float32)  # few levels: many ties
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    oh, ow = (x.shape[2] - 2) // 2 + 1, (x.shape[3] - 2) // 2 + 1
    out, arg = np.empty((n, c, oh, ow), np.float32), np.empty((n, c, oh, ow), np.int32)
    max_pool_forward(x, 2, 2, 2, 2, out, arg)
    out2, arg2 = np.empty_like(out), np.empty_like(arg)
    max_pool_2x2_forward(x, out2, arg2, True)
    assert np.array_equal(out, out2) and np.array_equal(arg, arg2)
    out3 = np.empty_like(out)
    max_pool_2x2_forward(x, out3, arg2[:0], False)
    assert np.array_equal(out, out3)


def test_max_pool_inference_equals_training_forward():
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype(np.float32)
    y_train = F.max_pool2d(Tensor(x, requires_grad=True), 2).data
    y_eval = F.max_pool2d(Tensor(x), 2).data
    assert np.array_equal(y_train, y_eval)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_relu_backward_equals_masked_gradient(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(dtype)  # exact zeros included
    g = rng.standard_normal(shape).astype(dtype)
    got = relu_backward(g, np.maximum(x, 0))
    assert got.dtype == dtype and np.array_equal(got, np.where(x > 0, g, 0))


def test_batch_norm_kernels_match_numpy_formulas():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 3, 25)) * 3 + 1).astype(np.float64)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y, xhat = np.empty_like(x), np.empty_like(x)
    mean, var, invstd = np.empty(3), np.empty(3), np.empty(3)
    bn_train_forward(x, gamma, beta, 1e-5, y, xhat, mean, var, invstd)
    mu = x.mean(axis=(0, 2))
    v = x.var(axis=(0, 2))
    ref_xhat = (x - mu[:, None]) / np.sqrt(v[:, None] + 1e-5)
    np.testing.assert_allclose(mean, mu, rtol=1e-13)
    np.testing.assert_allclose(var, v, rtol=1e-12)
    np.testing.assert_allclose(y, ref_xhat * gamma[:, None] + beta[:, None], rtol=1e-12,
                               atol=1e-12)
    g = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = np.empty_like(x), np.empty(3), np.empty(3)
    bn_train_backward(g, xhat, gamma, invstd, True, dx, dgamma, dbeta)
    m = x.shape[0] * x.shape[2]
    gg = g * gamma[:, None]
    ref_dx = invstd[:, None] * (gg - gg.sum(axis=(0, 2), keepdims=True) / m
                                - xhat * (gg * xhat).sum(axis=(0, 2), keepdims=True) / m)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, (g * xhat).sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(dbeta, g.sum(axis=(0, 2)), rtol=1e-12)
    out = np.empty_like(x)
    channel_affine(x, gamma, beta, out)
    assert np.array_equal(out, x * gamma[:, None] + beta[:, None])
