"""Clipping observers (histogram L2, percentile, MSE, KL) and per-channel MSE weights on data
whose right answer is known, and properties on hypothesis draws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from npquant.qparams import from_range
from npquant.quant import (
    HistogramMSEObserver,
    HistogramObserver,
    KLObserver,
    MinMaxObserver,
    PercentileObserver,
    PerChannelMSEObserver,
    make_activation_observer,
)
from npquant.quant.clipping import fake_quant_error
from npquant.quant.histogram_observers import histc, kl_threshold_bin, linspace32

CLIPPING = [HistogramObserver, PercentileObserver, HistogramMSEObserver, KLObserver]
ALL = [MinMaxObserver] + CLIPPING


def _range(obs):
    lo, hi = obs.clip_range()
    return float(lo), float(hi)


@pytest.mark.parametrize("cls", ALL)
def test_all_zero_data_gives_scale_one_and_exact_zero(cls):
    obs = cls(name="z")
    obs.observe(np.zeros((4, 8), np.float32))
    assert _range(obs) == (0.0, 0.0)
    q = obs.calculate_qparams()
    assert float(q.scale) == 1.0 and int(q.zero_point) == 0


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("c", [0.37, -2.5])
def test_one_value_keeps_that_value_exact(cls, c):
    obs = cls()
    for _ in range(2):
        obs.observe(np.full(50, c, np.float32))
    lo, hi = _range(obs)
    assert lo == hi == pytest.approx(c, rel=1e-7)
    q = obs.calculate_qparams()  # [min(c,0), max(c,0)]: c is an end of the range, exact
    assert float(q.scale) * (q.qmax - q.qmin) == pytest.approx(abs(c), rel=1e-6)


def _one_outlier(n: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    x[17] = 1000.0
    return x


def test_one_outlier_is_clipped_by_percentile_and_kl():
    """10^4 standard normal values and one at 1000: min/max would spend the 8-bit grid on the
    outlier (S ~ 4, most values round to 0); the 99.99th percentile cuts it off and keeps the
    bulk. KL clips as far as it can: its smallest threshold is L = 128 of the 2048 bins of
    [0, max|x|] (as TensorRT's), 1000 * 128 / 2048 = 62.5."""
    p = PercentileObserver(bits=8)
    p.observe(_one_outlier(10_000))
    lo, hi = _range(p)
    assert 2.5 < hi < 50 and -50 < lo < -2.5, (lo, hi)
    kl = KLObserver(bits=8)
    kl.observe(_one_outlier(10_000))
    assert kl.threshold() == pytest.approx(1000.0 * 128 / 2048)


def test_l2_and_mse_clip_an_outlier_only_when_the_bulk_outweighs_it():
    """Squared error counts the clipped outlier. Clipping ``A = 1000`` at ``t`` costs
    ``(A - t)^2``; the rounding error of ``N`` values on an 8-bit grid over ``t`` is about
    ``N (t / 127.5)^2 / 12``; their sum is least near ``t* = A / (1 + N / 195075)``: ~950 for
    N = 10^4 (keep the outlier), ~160 for N = 10^6. The grid search (MSE) moves that way;
    PyTorch's L2 search keeps the outlier at 10^4 and clips to the bulk at 10^6."""
    hi = {}
    for cls in (HistogramObserver, HistogramMSEObserver):
        for n in (10_000, 1_000_000):
            obs = cls(bits=8)
            obs.observe(_one_outlier(n))
            hi[cls.__name__, n] = _range(obs)[1]
    assert hi["HistogramObserver", 10_000] > 900 and hi["HistogramObserver", 1_000_000] < 50
    assert hi["HistogramMSEObserver", 10_000] > 900
    assert hi["HistogramMSEObserver", 1_000_000] < 0.5 * hi["HistogramMSEObserver", 10_000]


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_mse_error_is_never_worse_than_minmax(bits):
    rng = np.random.default_rng(bits)
    x = np.concatenate([rng.standard_normal(5000), rng.standard_t(2, 500)]).astype(np.float32)
    mse = HistogramMSEObserver(bits=bits)
    mm = MinMaxObserver(bits=bits)
    mse.observe(x)
    mm.observe(x)

    def err(obs):
        q = obs.calculate_qparams()
        return float(fake_quant_error(x.reshape(1, -1).astype(np.float64), None, q.scale,
                                      q.zero_point, q.qmin, q.qmax)[0])

    assert err(mse) <= err(mm) * 1.001  # the histogram's bin centres approximate the data
    assert _range(mse)[1] < _range(mm)[1]


def test_fewer_bits_clip_more():
    """MSE and KL clip harder when there are fewer levels. (PyTorch's L2 search is greedy: it
    stops at the first step whose error grows, so its range need not shrink with the bits.)"""
    rng = np.random.default_rng(1)
    x = rng.laplace(size=20_000).astype(np.float32)
    for cls in (HistogramMSEObserver, KLObserver):
        obs = cls()
        obs.observe(x)
        widths = [np.subtract(*_range(obs.configured(bits=b))[::-1]) for b in (3, 5, 8)]
        assert widths[0] <= widths[1] <= widths[2], (cls.__name__, widths)


def test_percentile_matches_numpy_within_one_bin():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(50_000).astype(np.float32)
    obs = PercentileObserver(percentile=99.0)
    obs.observe(x)
    lo, hi = _range(obs)
    width = (float(x.max()) - float(x.min())) / obs.bins
    assert abs(hi - np.percentile(x, 99.0)) <= width
    assert abs(lo - np.percentile(x, 1.0)) <= width
    with pytest.raises(ValueError, match="percentile must be in"):
        PercentileObserver(percentile=40)


def test_kl_keeps_uniform_data_and_clips_a_long_tail():
    rng = np.random.default_rng(3)
    uni = KLObserver()
    uni.observe(rng.uniform(0, 1, 100_000).astype(np.float32))
    assert uni.levels() == 256  # non-negative, asymmetric: all 2^8 levels on [0, t]
    assert uni.threshold() >= 0.95 * float(uni.max_val)
    tail = KLObserver()
    tail.observe(rng.standard_cauchy(100_000).astype(np.float32))
    assert tail.levels() == 128
    # the smallest threshold KL can pick is L = 128 of the 2048 bins of [0, max|x|]
    assert tail.threshold() <= 128 / 2048 * max(-float(tail.min_val), float(tail.max_val))


def test_kl_threshold_bin_on_a_hand_made_histogram():
    """Mass only in the first 4 of 16 bins merged into 4 levels: the threshold i = 4 reproduces
    it exactly (KL 0); larger i merge it coarser."""
    hist = np.zeros(16)
    hist[:4] = [5, 1, 3, 2]
    assert kl_threshold_bin(hist, 4) == 4


def test_histc_and_linspace_edges():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0], np.float32)
    assert histc(x, 4, np.float32(0), np.float32(4)).tolist() == [1, 1, 1, 2]  # hi closes bin 3
    assert histc(np.array([5.0], np.float32), 4, np.float32(5), np.float32(5)).tolist() == \
        [0, 0, 1, 0]  # one value: edges widened to [4, 6]
    ls = linspace32(np.float32(-1), np.float32(3), 9)
    assert ls[0] == -1 and ls[-1] == 3 and np.all(np.diff(ls) > 0)


def test_per_channel_mse_constant_and_zero_channels():
    """A constant channel keeps its value exact, an all-zero one gets S = 1; an outlier weight
    of 10 among 1000 standard normal ones is kept at 8 bits (its own error would dominate) and
    clipped at 4 bits, where the step ``10 / 7`` would round most weights to 0."""
    w = np.random.default_rng(4).standard_normal((4, 1000)).astype(np.float32)
    w[1] = 0.25  # constant channel: its one value is exact at S = 0.25 / 127
    w[2] = 0.0  # all-zero channel: S = 1
    w[3, 0] = 10.0  # an outlier weight
    obs = PerChannelMSEObserver(bits=8, narrow_range=True)
    obs.observe(w)
    q = obs.calculate_qparams()
    assert q.scale[1] == np.float32(0.25 / 127) and q.scale[2] == 1.0
    assert obs.clip_range()[1][3] == 10.0
    lo, hi = obs.configured(bits=4).clip_range()
    assert hi[3] < 5.0 and hi[1] == np.float32(0.25) and hi[2] == 0.0
    per_tensor = PerChannelMSEObserver(axis=None, bits=4)
    per_tensor.observe(w)
    assert per_tensor.calculate_qparams().scale.shape == ()


def test_power_of_two_variants_give_power_of_two_scales():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(100_000).astype(np.float32)
    x[0] = 100.0  # at 4 bits, S = 16 would round every other value to 0: MSE picks S < 16
    for name in ("minmax", "histogram", "percentile", "mse", "kl"):
        obs = make_activation_observer(name, scheme="power_of_two")
        obs.observe(x)
        s = float(obs.calculate_qparams().scale)
        assert np.log2(s) == np.round(np.log2(s)), name
    mse = make_activation_observer("mse", scheme="power_of_two", bits=4)
    mm = make_activation_observer("minmax", scheme="power_of_two", bits=4)
    mse.observe(x)
    mm.observe(x)
    assert mse.calculate_qparams().scale < mm.calculate_qparams().scale


@pytest.mark.parametrize("cls", CLIPPING)
def test_nan_and_unobserved(cls):
    bad = np.ones((2, 3), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"index \(1, 2\)"):
        cls(name="relu1").observe(bad)
    with pytest.raises(ValueError, match="observed no data"):
        cls(name="relu1").calculate_qparams()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), size=st.integers(1, 2000),
       scale=st.floats(1e-3, 1e3), bits=st.integers(2, 16),
       kind=st.sampled_from(["histogram", "percentile", "mse", "kl"]),
       scheme=st.sampled_from(["asymmetric", "symmetric", "power_of_two"]))
@example(seed=61727, n=1, size=2, scale=1.0, bits=2, kind="mse", scheme="symmetric")
@example(seed=653557, n=3, size=3, scale=1.0, bits=2, kind="kl", scheme="asymmetric")
def test_clipped_range_lies_inside_the_observed_range(seed, n, size, scale, bits, kind, scheme):
    rng = np.random.default_rng(seed)
    obs = make_activation_observer(kind, bits=bits, scheme=scheme)
    for _ in range(n):
        obs.observe((rng.standard_normal(size) * scale + rng.normal() * scale).astype(np.float32))
    lo, hi = (float(v) for v in obs.clip_range())
    mn, mx = (float(v) for v in obs.range())
    # inside the observed range widened to include 0, as every quantization range is (MSE on
    # and KL on data all of one sign can pick a threshold nearer to 0 than the data: the
    # examples above)
    mn, mx = min(mn, 0.0), max(mx, 0.0)
    assert lo <= hi
    assert mn - 1e-6 * abs(mn) <= lo <= hi <= mx + 1e-6 * abs(mx)
    q = obs.calculate_qparams()
    ref = from_range(lo, hi, bits=bits, scheme=scheme)  # the shared formula on that range
    assert q.scale == ref.scale and q.zero_point == ref.zero_point
