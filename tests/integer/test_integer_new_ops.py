"""The kernels and ops of imported models (npquant.integer.mean / pad / activations,
npquant.intops) against obviously-right references; their bit-exactness against the real
interpreter is in tests/oracles/test_tflite_new_ops.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from exact_ref import double_rounding, quantize_multiplier

from npquant.integer.activations import (
    exp_on_negative_values,
    logistic_int8,
    logistic_table,
    softmax_int8,
)
from npquant.integer.mean import mean_hw
from npquant.integer.pad import pad
from npquant.intops import ConcatOp, MeanOp, PadOp, ReshapeOp, TransposeOp
from npquant.qparams import QParams


def _mean_reference_ref(x, si, zi, so, zo):
    """LiteRT's reference_ops::QuantizedMeanOrSum in Python ints, one output at a time."""
    n, c, h, w = x.shape
    count = h * w
    m0, s = quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
    k = min(count.bit_length() - 1, 32, 31 + s)
    m0, s = (m0 << k) // count, s - k
    out = np.empty((n, c), np.int64)
    for i in range(n):
        for j in range(c):
            acc = int(x[i, j].astype(np.int64).sum()) - zi * count
            out[i, j] = min(max(zo + double_rounding(acc, m0, s, "away"), -128), 127)
    return out


def test_mean_reference_equals_the_python_int_definition():
    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = (2, 3, int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        x = rng.integers(-128, 128, shape).astype(np.int8)
        si, so = float(rng.uniform(0.001, 0.2)), float(rng.uniform(0.001, 0.2))
        zi, zo = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        got = mean_hw(x, in_scale=si, in_zero_point=zi, out_scale=so, out_zero_point=zo,
                      scheme="reference")
        assert np.array_equal(got, _mean_reference_ref(x, si, zi, so, zo)), (shape, si, so)


def test_mean_xnnpack_is_within_one_of_the_real_mean():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (4, 8, 5, 6)).astype(np.int8)
    got = mean_hw(x, in_scale=0.05, in_zero_point=-7, out_scale=0.02, out_zero_point=3,
                  scheme="xnnpack")
    real = (x.astype(np.float64) + 7).mean(axis=(2, 3)) * 0.05 / 0.02 + 3
    assert np.max(np.abs(got - np.clip(real, -128, 127))) <= 0.5 + 1e-6


def test_exp_on_negative_values_is_exp_within_2_to_minus_21():
    a = -np.arange(0, 32 * 2**26, 9973, dtype=np.int64)  # Q5.26 over [-32, 0]
    e = exp_on_negative_values(a)
    assert e[0] == 2**31 - 1  # exp(0): the Q0.31 maximum
    assert np.max(np.abs(e - np.exp(a / 2**26) * 2**31)) < 2**31 * 2**-21


def test_softmax_is_the_rounded_probability_within_one():
    rng = np.random.default_rng(2)
    for scheme in ("reference", "optimized"):
        for _ in range(30):
            s = float(rng.uniform(0.01, 0.3))
            x = rng.integers(-128, 128, (5, int(rng.integers(2, 30)))).astype(np.int8)
            got = softmax_int8(x, in_scale=s, scheme=scheme).astype(np.int64)
            z = s * x.astype(np.float64)
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            assert np.max(np.abs(got - np.clip(np.round(256 * p - 128), -128, 127))) <= 1


def test_logistic_table_is_the_rounded_sigmoid_and_monotone():
    t = logistic_table(0.03, 5, 1 / 256, -128).astype(np.int64)
    q = np.arange(-128, 128)
    sig = 1 / (1 + np.exp(-0.03 * (q - 5)))
    assert np.max(np.abs(t - np.clip(np.round(256 * sig - 128), -128, 127))) <= 1
    assert np.all(np.diff(t) >= 0)
    x = np.array([[-128, 5, 127]], np.int8)
    assert np.array_equal(logistic_int8(x, in_scale=0.03, in_zero_point=5),
                          t[x.astype(np.int64) + 128])


def test_pad_writes_the_value_around_a_copy():
    x = np.arange(24, dtype=np.int8).reshape(1, 2, 3, 4)
    pads = ((0, 0), (1, 0), (2, 1), (0, 3))
    assert np.array_equal(pad(x, pads, value=-5),
                          np.pad(x, pads, mode="constant", constant_values=-5))


def test_layout_ops_act_in_their_order():
    q = QParams(np.float32(0.1), 0)
    x = np.arange(2 * 3 * 4 * 5, dtype=np.int8).reshape(2, 3, 4, 5)  # NCHW
    nhwc = x.transpose(0, 2, 3, 1)
    y, _ = ReshapeOp("r", q, (20, 3), "nhwc").run(x, None)
    assert np.array_equal(y, nhwc.reshape(2, 20, 3))
    y, _ = ReshapeOp("r", q, (4, 5, 3), "nhwc").run(x, None)  # back to 4-D: NCHW again
    assert np.array_equal(y, x)
    y, _ = ReshapeOp("r", q, (60,), "nchw").run(x, None)
    assert np.array_equal(y, x.reshape(2, 60))
    y, _ = TransposeOp("t", q, (0, 2, 1, 3), "nhwc").run(x, None)  # swap H and W in NHWC
    assert np.array_equal(y, x.transpose(0, 1, 3, 2))
    y, _ = ConcatOp("c", q, axis=1).run(x, None, x)
    assert y.shape == (2, 6, 4, 5)
    y, _ = PadOp("p", QParams(np.float32(0.1), -3), ((0, 0), (0, 0), (1, 1), (0, 0))).run(x, None)
    assert y.shape == (2, 3, 6, 5) and np.all(y[:, :, 0] == -3)


@pytest.mark.parametrize("keep_dims,shape", [(True, (2, 3, 1, 1)), (False, (2, 3))])
def test_mean_op_shapes(keep_dims, shape):
    q = QParams(np.float32(0.1), 0)
    x = np.ones((2, 3, 4, 4), np.int8)
    y, acc = MeanOp("m", q, q, keep_dims, "reference").run(x, None)
    assert y.shape == shape and np.all(y == 1) and np.all(acc == 16)


X8 = np.zeros((1, 4), np.int8)
BAD = [
    ("mean scheme", lambda: mean_hw(np.zeros((1, 1, 2, 2), np.int8), in_scale=0.1,
                                    in_zero_point=0, out_scale=0.1, out_zero_point=0,
                                    scheme="fast"), ValueError, "scheme"),
    ("mean int16", lambda: mean_hw(np.zeros((1, 1, 2, 2), np.int16), in_scale=0.1,
                                   in_zero_point=0, out_scale=0.1, out_zero_point=0,
                                   scheme="reference"), TypeError, "x must have dtype"),
    ("mean 2-D", lambda: mean_hw(X8, in_scale=0.1, in_zero_point=0, out_scale=0.1,
                                 out_zero_point=0, scheme="reference"), ValueError, "4-D"),
    ("softmax out", lambda: softmax_int8(X8, in_scale=0.1, out_zero_point=0,
                                         scheme="reference"), ValueError, "1/256, -128"),
    ("softmax beta", lambda: softmax_int8(X8, in_scale=0.1, beta=math.nan,
                                          scheme="reference"), ValueError, "beta"),
    ("softmax scale", lambda: softmax_int8(X8, in_scale=0.0, scheme="reference"), ValueError,
     "in_scale"),
    ("logistic out", lambda: logistic_int8(X8, in_scale=0.1, in_zero_point=0, out_scale=0.1),
     ValueError, "1/256, -128"),
    ("pad negative", lambda: pad(X8, ((0, 0), (-1, 0)), value=0), ValueError, ">= 0"),
    ("pad rank", lambda: pad(X8, ((0, 0),), value=0), ValueError, "one \\(before, after\\)"),
    ("pad value", lambda: pad(X8, ((0, 0), (1, 0)), value=300), ValueError, "value"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
