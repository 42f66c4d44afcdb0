"""The speed-only parts of the fast kernels change no number: packed-weight reuse, the thread
count (also of the 3x3 depthwise kernel), the 2x2 max pool and the fused ADD, each against the
reference kernels with ``np.array_equal``.

Packed weights are reused across calls (``vnni_conv._conv_plan``, ``vnni_gemm._packed_weights``),
keyed by the weight bytes: a call with other weights of the same shape must not meet the old
pack. The thread count (``threads.threads_for``) must not matter: each output element is
computed by one thread in a fixed order.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import int_arrays, zero_points

from npquant import integer
from npquant.integer import reference
from npquant.integer.fast import add as fast_add
from npquant.integer.fast import depthwise as fast_depthwise
from npquant.integer.fast import depthwise3x3, max_pool, vnni_conv, vnni_gemm

CONV = dict(x_zero_point=3, out_zero_point=-2, x_scale=0.05, w_scale=0.01, out_scale=0.3,
            profile="onnxruntime", padding=1, activation="relu")
FC = dict(x_zero_point=-7, out_zero_point=5, x_scale=0.05, w_scale=0.02, out_scale=0.4,
          profile="tflite")


@pytest.mark.skipif(not vnni_gemm.HAVE_VNNI, reason="the packed VNNI kernels need AVX-512 VNNI")
@pytest.mark.parametrize("op", ["conv", "fc"])
def test_reused_packs_follow_the_weights(op):
    rng = np.random.default_rng(0)
    if op == "conv":
        x = rng.integers(-128, 128, (2, 8, 7, 7)).astype(np.int8)
        shape, fast, ref, kw = (6, 8, 3, 3), integer.conv2d, reference.conv2d, CONV
    else:
        x = rng.integers(-128, 128, (5, 40)).astype(np.int8)
        shape, fast, ref, kw = (9, 40), integer.fully_connected, reference.fully_connected, FC
    ws = [rng.integers(-127, 128, shape).astype(np.int8) for _ in range(2)]
    # w0, w1 (same shape: the old pack must not be reused), w0 again, w0 as a fresh copy
    for w in (ws[0], ws[1], ws[0], ws[0].copy()):
        got = fast(x, w, None, return_accumulators=True, **kw)
        want = ref(x, w, None, **kw)
        assert np.array_equal(got.out, want.out) and np.array_equal(got.acc, want.acc)
    w = ws[1].copy()
    fast(x, w, None, **kw)
    w[(0,) * w.ndim] ^= 0x55  # the same array object, changed in place: a new key
    assert np.array_equal(fast(x, w, None, **kw), ref(x, w, None, **kw).out)


def test_thread_count_changes_no_result(monkeypatch):
    """Every call parallel or every call on one thread: the same integers. The grains are
    patched where the kernels read them (each module imports its grain by name)."""
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (16, 16, 12, 12)).astype(np.int8)
    w = rng.integers(-127, 128, (16, 16, 3, 3)).astype(np.int8)
    before = numba.get_num_threads()
    users = {"GEMM_GRAIN": (vnni_conv, vnni_gemm, fast_depthwise),
             "POOL_GRAIN": (max_pool, fast_add)}
    outs = []
    for grain in (1, 1 << 40):  # every call parallel / every call on one thread
        for name, modules in users.items():
            for mod in modules:
                monkeypatch.setattr(mod, name, grain)
        y = integer.conv2d(x, w, None, return_accumulators=True, **CONV)
        p = integer.max_pool2d(y.out, 2, profile="tflite", return_accumulators=True)
        a = integer.add(y.out, y.out[:, ::-1], a_scale=0.3, a_zero_point=-2, b_scale=0.3,
                        b_zero_point=-2, out_scale=0.5, out_zero_point=1, profile="tflite",
                        return_accumulators=True)
        outs.append((y.out, y.acc, p.out, p.acc, a.out, a.acc))
        assert numba.get_num_threads() == before  # the context restores the count
    for u, v in zip(*outs, strict=True):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("profile", ["onnxruntime", "tflite"])
def test_depthwise_3x3_thread_count_changes_no_result(profile, monkeypatch):
    """The 3x3 depthwise kernel splits its planes among the threads (``fast.depthwise3x3``):
    one thread or all of them, with (``onnxruntime``) and without (``tflite``) the fused
    float32 epilogue, the same numbers as the reference."""
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (3, 5, 9, 20)).astype(np.int8)
    w = rng.integers(-127, 128, (10, 1, 3, 3)).astype(np.int8)
    kw = dict(CONV, profile=profile)
    want = reference.depthwise_conv2d(x, w, None, **kw)
    for grain in (1, 1 << 40):  # every plane its own share / all planes on one thread
        monkeypatch.setattr(depthwise3x3, "DEPTHWISE_GRAIN", grain)
        for acc in (False, True):
            got = integer.depthwise_conv2d(x, w, None, return_accumulators=acc, **kw)
            assert np.array_equal(got.out if acc else got, want.out)
            assert not acc or np.array_equal(got.acc, want.acc)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_max_pool_2x2_equals_reference(data):
    dt = data.draw(st.sampled_from([np.int8, np.uint8, np.int16]))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)),
             data.draw(st.integers(2, 9)), data.draw(st.integers(2, 9)))  # odd sizes: floor
    x = data.draw(int_arrays(dt, shape, edge_bias=0.5))
    kw = dict(zero_point=data.draw(zero_points(dt)), scale=0.1, profile="tflite",
              activation=data.draw(st.sampled_from([None, "relu", "relu6"])))
    assert max_pool.applies((2, 2), (2, 2), (0, 0, 0, 0))
    got = integer.max_pool2d(x, 2, 2, 0, return_accumulators=True, **kw)
    want = reference.max_pool2d(x, 2, 2, 0, **kw)
    assert np.array_equal(got.out, want.out) and np.array_equal(got.acc, want.acc)
    assert np.array_equal(integer.max_pool2d(x, 2, 2, 0, **kw), want.out)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fused_add_equals_reference(data):
    """TFLite-scheme profiles with M_out < 1 take the fused loop; M_out >= 1 under double
    rounding (out_scale tiny) keeps the checked path; both equal the reference."""
    dt = data.draw(st.sampled_from([np.int8, np.uint8, np.int16]))
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 40)))
    a = data.draw(int_arrays(dt, shape, edge_bias=0.6))
    b = data.draw(int_arrays(dt, shape, edge_bias=0.6))
    kw = dict(a_scale=data.draw(st.sampled_from([0.02, 0.1, 0.0031])),
              a_zero_point=data.draw(zero_points(dt)),
              b_scale=data.draw(st.sampled_from([0.02, 0.5, 0.0473])),
              b_zero_point=data.draw(zero_points(dt)),
              out_scale=data.draw(st.sampled_from([0.05, 0.5, 2.0, 1e-7])),
              out_zero_point=data.draw(zero_points(dt)),
              profile=data.draw(st.sampled_from(["tflite", "tflite-optimized", "onnxruntime",
                                                 "pytorch-fbgemm"])),
              activation=data.draw(st.sampled_from([None, "relu"])))
    try:
        want = reference.add(a, b, **kw)
    except ValueError:
        with pytest.raises(ValueError):
            integer.add(a, b, **kw)
        return
    got = integer.add(a, b, return_accumulators=True, **kw)
    assert np.array_equal(got.out, want.out) and np.array_equal(got.acc, want.acc)
    assert np.array_equal(integer.add(a, b, **kw), want.out)  # the output-only call


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fused_depthwise_equals_reference(data):
    """Stride-1 depthwise layers (depth multiplier 1 or 2, dilation, per-channel scales) take
    the fused loop (``fast.depthwise``) unless double rounding needs its domain check."""
    dt = data.draw(st.sampled_from([np.int8, np.uint8]))
    c, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 2))
    k = data.draw(st.sampled_from([(3, 3), (1, 3), (2, 2)]))
    x = data.draw(int_arrays(dt, (data.draw(st.integers(1, 2)), c, data.draw(st.integers(3, 7)),
                                  data.draw(st.integers(3, 7))), edge_bias=0.5))
    w = data.draw(int_arrays(np.int8, (c * m, 1) + k, edge_bias=0.5))
    bias = data.draw(st.none() | int_arrays(np.int32, (c * m,)).map(lambda v: v >> 8))
    kw = dict(x_zero_point=data.draw(zero_points(dt)), out_zero_point=data.draw(zero_points(dt)),
              x_scale=0.05, w_scale=data.draw(st.sampled_from([0.01, np.linspace(0.005, 0.02,
                                                                                 c * m)])),
              out_scale=data.draw(st.sampled_from([0.3, 2.0, 1e-6])), out_dtype=dt,
              profile=data.draw(st.sampled_from(["tflite", "onnxruntime", "pytorch-fbgemm",
                                                 "tflite-single-rounding"])),
              padding=data.draw(st.sampled_from([0, 1, "SAME"])),
              dilation=data.draw(st.sampled_from([1, (2, 1)])),
              activation=data.draw(st.sampled_from([None, "relu"])))
    try:
        want = reference.depthwise_conv2d(x, w, bias, **kw)
    except ValueError:
        with pytest.raises(ValueError):
            integer.depthwise_conv2d(x, w, bias, **kw)
        return
    got = integer.depthwise_conv2d(x, w, bias, return_accumulators=True, **kw)
    assert np.array_equal(got.out, want.out) and np.array_equal(got.acc, want.acc)
    assert np.array_equal(integer.depthwise_conv2d(x, w, bias, **kw), want.out)
