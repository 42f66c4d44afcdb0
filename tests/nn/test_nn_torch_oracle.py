"""Every layer's forward and backward against PyTorch (CPU, float64): rtol = atol = 1e-10.

One helper (``run_both``) runs both libraries on the same inputs and output gradient; a failure
names the stage ("forward", "grad of weight").
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import assert_close, run_both

from npquant import nn
from npquant.nn import functional as F

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def torch():
    t = require("torch")
    t.set_num_threads(1)
    return t


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (N, C, H, W), O, kernel, stride, padding, dilation, groups
CONV_CASES = {
    "3x3": ((2, 3, 7, 7), 4, (3, 3), 1, 0, 1, 1),
    "pad1": ((2, 3, 6, 5), 4, (3, 3), 1, 1, 1, 1),
    "stride2": ((2, 3, 9, 8), 5, (3, 3), 2, 1, 1, 1),
    "stride_hw": ((1, 2, 9, 8), 3, (3, 2), (2, 1), (0, 1), 1, 1),
    "dilation2": ((2, 2, 9, 9), 3, (3, 3), 1, 2, 2, 1),
    "groups2": ((2, 4, 6, 6), 6, (3, 3), 1, 1, 1, 2),
    "depthwise": ((2, 4, 7, 7), 4, (3, 3), 1, 1, 1, 4),
    "depthwise_mult2_s2": ((2, 3, 8, 8), 6, (3, 3), 2, 1, 1, 3),
    "1x1": ((3, 5, 4, 4), 2, (1, 1), 1, 0, 1, 1),
    "1x1_s2": ((2, 4, 5, 5), 6, (1, 1), 2, 0, 1, 1),
    "5x5_pad2_dil": ((1, 2, 12, 11), 2, (5, 5), 1, 2, (1, 2), 1),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d(torch, case, bias):
    xs, o, k, s, p, d, g = case
    w = randn(o, xs[1] // g, *k, seed=1)
    inputs, names = [randn(*xs), w], ["x", "weight"]
    if bias:
        inputs.append(randn(o, seed=2))
        names.append("bias")

    def ours(x, w, b=None):
        return F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)

    def ref(x, w, b=None):
        return torch.nn.functional.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)

    run_both(torch, ours, ref, inputs, names)


def test_linear(torch):
    run_both(torch, F.linear, torch.nn.functional.linear,
             [randn(5, 7), randn(3, 7, seed=1), randn(3, seed=2)], ["x", "weight", "bias"])


def test_linear_no_bias(torch):
    run_both(torch, F.linear, torch.nn.functional.linear, [randn(5, 7), randn(3, 7, seed=1)],
             ["x", "weight"])


@pytest.mark.parametrize("fn", ["relu", "relu6"])
def test_activation(torch, fn):
    # values spread over (-9, 9) so both ReLU6 kinks are crossed; none within 1e-3 of a kink
    x = randn(4, 3, 5, 5) * 4
    x[np.abs(x) < 1e-3] = 0.5
    x[np.abs(x - 6) < 1e-3] = 5.5
    run_both(torch, getattr(F, fn), getattr(torch.nn.functional, fn), [x], ["x"])


POOL_CASES = {
    "k2": (2, None, 0), "k3s2": (3, 2, 0), "k3s1p1": (3, 1, 1), "k2s1": (2, 1, 0),
    "k3s3_hw": ((3, 2), (3, 2), 0), "k3s2p1": (3, 2, 1),
}


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool(torch, kind, case):
    k, s, p = case
    ours = getattr(F, f"{kind}_pool2d")
    ref = getattr(torch.nn.functional, f"{kind}_pool2d")
    run_both(torch, lambda x: ours(x, k, s, p), lambda x: ref(x, k, s, p), [randn(2, 3, 9, 8)],
             ["x"])


def test_max_pool_ties_go_to_first_maximum(torch):
    # A tie inside a window (the zeros left by ReLU): PyTorch routes the gradient to the first.
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 3, 3] = 1.0
    run_both(torch, lambda t: F.max_pool2d(t, 2), lambda t: torch.nn.functional.max_pool2d(t, 2),
             [x], ["x"])


def test_adaptive_avg_pool(torch):
    run_both(torch, F.adaptive_avg_pool2d,
             lambda x: torch.nn.functional.adaptive_avg_pool2d(x, 1), [randn(2, 3, 5, 4)], ["x"])


def test_flatten(torch):
    run_both(torch, F.flatten, lambda x: torch.flatten(x, 1), [randn(2, 3, 2, 2)], ["x"])


def test_residual_add(torch):
    run_both(torch, F.add, lambda a, b: a + b, [randn(2, 3, 4, 4), randn(2, 3, 4, 4, seed=1)],
             ["a", "b"])


def test_cross_entropy(torch):
    target = np.array([0, 3, 1, 3, 2])
    run_both(torch, lambda z: nn.cross_entropy(z, target),
             lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(target)),
             [randn(5, 4) * 3], ["logits"])


def test_cross_entropy_large_logits_are_stable(torch):
    target = np.array([0, 1])
    z = np.array([[1000.0, -1000.0, 0.0], [-800.0, 900.0, 899.0]])
    run_both(torch, lambda z: nn.cross_entropy(z, target),
             lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(target)), [z], ["logits"])


def test_mse(torch):
    t = randn(3, 4, seed=5)
    run_both(torch, lambda y: nn.mse_loss(y, t),
             lambda y: torch.nn.functional.mse_loss(y, torch.tensor(t)), [randn(3, 4)], ["pred"])


def _bn_pair(torch, c, affine=True, momentum=0.1):
    ours = nn.BatchNorm2d(c, momentum=momentum, affine=affine, dtype=np.float64)
    ref = torch.nn.BatchNorm2d(c, momentum=momentum, affine=affine).double()
    if affine:
        w, b = randn(c, seed=3) + 1.0, randn(c, seed=4)
        ours.weight.data[:], ours.bias.data[:] = w, b
        with torch.no_grad():
            ref.weight.copy_(torch.tensor(w))
            ref.bias.copy_(torch.tensor(b))
    return ours, ref


def _compare_module(torch, ours, ref, x, g, stage):
    xo = nn.Tensor(x.copy(), requires_grad=True)
    xt = torch.tensor(x.copy(), requires_grad=True)
    yo, yt = ours(xo), ref(xt)
    assert_close(yo.data, yt.detach().numpy(), f"{stage} forward")
    yo.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(xo.grad, xt.grad.numpy(), f"{stage} grad of x")
    for name, p in ours.named_parameters():
        assert_close(p.grad, dict(ref.named_parameters())[name].grad.numpy(),
                     f"{stage} grad of {name}")
    for name, b in ours.named_buffers():
        assert_close(b, dict(ref.named_buffers())[name].numpy(), f"{stage} buffer {name}")


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "noaffine"])
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batchnorm_train_then_eval(torch, affine, momentum):
    ours, ref = _bn_pair(torch, 3, affine, momentum)
    for step in range(3):  # three training batches move the running statistics
        x = randn(4, 3, 5, 5, seed=10 + step) * 2 + 1
        _compare_module(torch, ours, ref, x, randn(4, 3, 5, 5, seed=20 + step), f"train {step}")
        ours.zero_grad()
        ref.zero_grad()
    ours.eval()
    ref.eval()
    _compare_module(torch, ours, ref, randn(2, 3, 4, 4, seed=30), randn(2, 3, 4, 4, seed=31),
                    "eval")


def test_conv_bn_relu_pool_linear_network(torch):
    """A whole small CNN: state dict copied key by key, same logits, loss and every gradient."""
    from npquant.models import get_model

    ours = get_model("cnn_bn", seed=0).astype(np.float64)
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(1, 40, 3), torch.nn.BatchNorm2d(40), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(40, 40, 3), torch.nn.BatchNorm2d(40), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(1000, 10)).double()
    ref_names = [n for n, _ in ref.named_parameters()] + [n for n, _ in ref.named_buffers()]
    ours_state = ours.state_dict()
    ours_names = list(ours_state)
    assert len(ref_names) == len(ours_names)
    ref.load_state_dict({rn: torch.tensor(ours_state[on])
                         for rn, on in zip(ref_names, ours_names, strict=True)})
    x = randn(4, 1, 28, 28)
    target = np.array([1, 2, 3, 4])
    lo = nn.cross_entropy(ours(nn.Tensor(x)), target)
    lt = torch.nn.functional.cross_entropy(ref(torch.tensor(x)), torch.tensor(target))
    assert_close(lo.data, lt.detach().numpy(), "forward (loss)")
    lo.backward()
    lt.backward()
    ref_params = [p for _, p in ref.named_parameters()]
    for (name, p), tp in zip(ours.named_parameters(), ref_params, strict=True):
        assert_close(p.grad, tp.grad.numpy(), f"grad of {name}")


@st.composite
def conv_geometry(draw):
    """A valid conv call by construction: groups divide both channel counts, the input is
    large enough for the dilated kernel."""
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, d[0] * (kh - 1) + 1 - 2 * p[0]), 9))
    w = draw(st.integers(max(1, d[1] * (kw - 1) + 1 - 2 * p[1]), 9))
    n = draw(st.integers(1, 3))
    return (n, cin, h, w), (cout, cin // groups, kh, kw), s, p, d, groups, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(geom=conv_geometry(), seed=st.integers(0, 2**16))
def test_conv2d_random_geometry(torch, geom, seed):
    xs, ws, s, p, d, g, bias = geom
    inputs = [randn(*xs, seed=seed), randn(*ws, seed=seed + 1)]
    if bias:
        inputs.append(randn(ws[0], seed=seed + 2))
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    run_both(torch, lambda x, w, b=None: F.conv2d(x, w, b, **kw),
             lambda x, w, b=None: torch.nn.functional.conv2d(x, w, b, **kw), inputs, seed=seed)
