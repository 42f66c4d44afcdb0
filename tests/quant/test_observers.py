"""Observers: statistics against plain loops, the shared qparams formula, degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest

from npquant.profiles import get_profile
from npquant.qparams import from_range
from npquant.quant import MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver


def _batches(seed: int, n: int = 5, shape=(4, 3, 5, 5)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape) * rng.uniform(0.5, 3) + rng.normal()).astype(np.float32)
            for _ in range(n)]


def test_minmax_is_min_and_max_of_everything_seen():
    obs = MinMaxObserver()
    data = _batches(0)
    for b in data:
        obs.observe(b)
    allv = np.concatenate([b.ravel() for b in data])
    assert obs.min_val == allv.min() and obs.max_val == allv.max()
    assert obs.count == len(data)


@pytest.mark.parametrize("c", [0.01, 0.3, 1.0])
def test_moving_average_follows_the_ema_rule(c):
    obs = MovingAverageMinMaxObserver(averaging_constant=c)
    data = _batches(1)
    lo = hi = None
    f32 = np.float32
    for b in data:  # the rule written out in float32 scalars, one rounding per operation
        bmin, bmax = f32(b.min()), f32(b.max())
        if lo is None:
            lo, hi = bmin, bmax
        else:
            lo, hi = lo + f32(c) * (bmin - lo), hi + f32(c) * (bmax - hi)
        obs.observe(b)
    assert float(obs.min_val) == float(lo) and float(obs.max_val) == float(hi)
    # and within float32 rounding of the rule in float64
    lo64 = hi64 = None
    for b in data:
        if lo64 is None:
            lo64, hi64 = float(b.min()), float(b.max())
        else:
            lo64, hi64 = lo64 + c * (float(b.min()) - lo64), hi64 + c * (float(b.max()) - hi64)
    assert float(obs.min_val) == pytest.approx(lo64, rel=1e-5, abs=1e-6)
    if c == 1.0:  # keeps only the last batch
        assert float(obs.min_val) == float(data[-1].min())


def test_per_channel_reduces_all_axes_but_axis_0():
    obs = PerChannelMinMaxObserver()
    data = _batches(2, shape=(6, 3, 3, 3))
    for b in data:
        obs.observe(b)
    for o in range(6):
        vals = np.concatenate([b[o].ravel() for b in data])
        assert obs.min_val[o] == vals.min() and obs.max_val[o] == vals.max()


@pytest.mark.parametrize("profile", ["tflite", "onnxruntime", "pow2"])
def test_qparams_come_from_the_shared_formula(profile):
    prof = get_profile(profile)
    data = _batches(3)
    act = MinMaxObserver()
    w = PerChannelMinMaxObserver(narrow_range=True, scheme="symmetric")
    for b in data:
        act.observe(b)
        w.observe(b.transpose(1, 0, 2, 3))
    qa = act.calculate_qparams(prof)
    ref = from_range(act.min_val, act.max_val, method=prof.qparams_method)
    assert qa.scale == ref.scale and qa.zero_point == ref.zero_point
    qw = w.calculate_qparams(prof.qparams_method)
    assert qw.axis == 0 and qw.narrow_range and qw.scale.shape == (3,)
    np.testing.assert_array_equal(qw.zero_point, 0)
    amax = np.maximum(-w.min_val, w.max_val)
    if prof.qparams_method.value == "tflite":  # S = max|r| / 127
        np.testing.assert_array_equal(qw.scale, (amax / 127).astype(np.float32))


def test_unobserved_is_a_clear_error():
    with pytest.raises(ValueError, match="observed no data"):
        MinMaxObserver(name="conv1.out").calculate_qparams()
    with pytest.raises(ValueError, match="observed no data"):
        PerChannelMinMaxObserver().range()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_rejected_with_index(bad):
    x = np.zeros((2, 3), dtype=np.float32)
    x[1, 2] = bad
    obs = MinMaxObserver(name="act")
    with pytest.raises(ValueError, match=r"act: .*index \(1, 2\)"):
        obs.observe(x)
    assert not obs.observed  # a rejected batch leaves no trace


def test_min_equals_max():
    obs = MinMaxObserver()
    obs.observe(np.full((3, 3), 2.5, dtype=np.float32))  # range widened to [0, 2.5]
    q = obs.calculate_qparams("tflite")
    assert q.zero_point == -128 and q.scale == np.float32(2.5 / 255)
    zero = MinMaxObserver()
    zero.observe(np.zeros(4, dtype=np.float32))  # empty range: S = 1, 0 exact
    q0 = zero.calculate_qparams("tflite")
    assert q0.scale == 1.0 and q0.zero_point == 0
    neg = PerChannelMinMaxObserver()
    neg.observe(np.array([[-1.0, -1.0], [0.0, 0.0]], dtype=np.float32))
    qn = neg.calculate_qparams("tflite")
    assert qn.scale[0] == np.float32(1 / 127) and qn.scale[1] == 1.0


@pytest.mark.parametrize("make, exc", [
    (lambda: MinMaxObserver(scheme="weird"), ValueError),
    (lambda: MinMaxObserver(bits=1), ValueError),
    (lambda: MovingAverageMinMaxObserver(averaging_constant=0.0), ValueError),
    (lambda: PerChannelMinMaxObserver(axis="0"), TypeError),
    (lambda: MinMaxObserver().observe(np.arange(3)), TypeError),
    (lambda: MinMaxObserver().observe(np.zeros(0, np.float32)), ValueError),
    (lambda: PerChannelMinMaxObserver(axis=3).observe(np.zeros((2, 2), np.float32)), ValueError),
], ids=["scheme", "bits", "ema-constant", "axis-type", "int-data", "empty", "axis-range"])
def test_bad_arguments(make, exc):
    with pytest.raises(exc):
        make()


def test_per_channel_count_change_is_an_error():
    obs = PerChannelMinMaxObserver()
    obs.observe(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="4 channels now, 3 before"):
        obs.observe(np.ones((4, 2), np.float32))
