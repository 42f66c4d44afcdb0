"""The autograd core: accumulation over paths, custom Functions, no_grad, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from nn_helpers import assert_close, run_both

from npquant.nn import Function, Tensor, no_grad


def test_node_used_twice_sums_both_paths():
    # y = x*x + x uses x three times: dy/dx = 2x + 1.
    x = Tensor(np.array([1.5, -2.0, 3.0]), requires_grad=True)
    y = x * x + x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 1)


def test_intermediate_used_twice_against_torch():
    torch = require("torch")

    def ours(a, b):
        h = a @ b           # h feeds two branches
        return (h * h - h * 3.0).sum() * 0.5 + (h + a @ b).sum()

    rng = np.random.default_rng(1)
    run_both(torch, ours, ours, [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))],
             ["a", "b"])


def test_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0])


def test_broadcast_add_and_mul_reduce_gradients():
    torch = require("torch")
    rng = np.random.default_rng(2)
    run_both(torch, lambda a, b: a * b + b, lambda a, b: a * b + b,
             [rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 1))], ["a", "b"])


class RoundSTE(Function):
    """round(x) with the straight-through gradient 1, the pattern fake quantization uses."""

    @staticmethod
    def forward(ctx, x):
        return np.round(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad,)


def test_custom_function_straight_through():
    x = Tensor(np.array([0.4, 1.6, -2.5]), requires_grad=True)
    y = RoundSTE.apply(x) * 2.0
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 4.0, -4.0])
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_custom_function_wrong_gradient_shape_is_reported():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return (grad[:1],)

    x = Tensor(np.ones(3), requires_grad=True)
    msg = r"Bad.backward: grad shape \(1,\) != input shape \(3,\)"
    with pytest.raises(RuntimeError, match=msg):
        Bad.apply(x).sum().backward()


def test_no_grad_records_no_tape():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y._node is None


def test_backward_of_non_scalar_needs_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"needs a scalar, got shape \(3,\)"):
        (x * 2.0).backward()


def test_backward_grad_shape_mismatch():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"grad shape \(2,\) != tensor shape \(3,\)"):
        (x * 2.0).backward(np.ones(2))


def test_function_input_must_be_tensor():
    with pytest.raises(TypeError, match="input 0 must be a Tensor, got ndarray"):
        RoundSTE.apply(np.ones(2))


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="must be floating"):
        Tensor(np.arange(3), requires_grad=True)


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    y = (x @ x) * 2.0 + 1.0
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert_close(x.grad, np.full((2, 2), 8.0), "grad")
