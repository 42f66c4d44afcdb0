"""npquant observers against ``torch.ao.quantization`` observers on the same data: (S, Z) equal
bit for bit where the formulas are the same.

Same formulas: MinMax, moving-average MinMax (float32 EMA), per-channel MinMax (symmetric and
affine) and ``HistogramObserver`` (float32 histogram, ``torch.histc`` binning, the upsampling of
the old histogram when the range grows, the L2 search) with npquant's ``method="pytorch"``. Where
they differ on purpose (npquant/quant/histogram_observers.py): the L2 search uses ``2^bits``
destination bins (PyTorch: 256 for every 8-bit dtype), so only 8 bits are compared; NaN/inf raise
in npquant and are dropped by PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

from npquant.quant import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
)

pytestmark = pytest.mark.oracle


def _torch_qparams(obs, batches):
    torch = require("torch")
    for b in batches:
        obs(torch.from_numpy(b))
    s, z = obs.calculate_qparams()
    return s.numpy().astype(np.float32).ravel(), z.numpy().astype(np.int64).ravel()


def _batches(seed: int, n: int, shape, outlier: bool = False, relu: bool = False):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        b = (rng.standard_normal(shape) * rng.uniform(0.01, 10) + rng.normal()).astype(np.float32)
        if outlier:
            b.flat[rng.integers(b.size)] *= 50
        out.append(np.maximum(b, 0) if relu else b)
    return out


def _assert_same(ours, s, z, what):
    got_s = np.atleast_1d(ours.scale).astype(np.float32)
    got_z = np.atleast_1d(ours.zero_point).astype(np.int64)
    assert np.array_equal(got_s, s), f"scale {got_s} != torch {s} [{what}]"
    assert np.array_equal(got_z, z), f"zero_point {got_z} != torch {z} [{what}]"


def _torch_kw(signed: bool, symmetric: bool, per_channel: bool = False):
    torch = require("torch")
    if per_channel:
        qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    else:
        qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    return dict(dtype=torch.qint8 if signed else torch.quint8, qscheme=qscheme)


CASES = [(signed, sym) for signed in (False, True) for sym in (False, True)]


@pytest.mark.parametrize(("signed", "symmetric"), CASES)
@pytest.mark.parametrize("seed", range(6))
def test_minmax_matches_torch(seed, signed, symmetric):
    torch = require("torch")
    batches = _batches(seed, 3, (4, 3, 5, 5), outlier=seed % 2 == 0, relu=seed % 3 == 0)
    s, z = _torch_qparams(torch.ao.quantization.MinMaxObserver(**_torch_kw(signed, symmetric)),
                          batches)
    ours = MinMaxObserver(scheme="symmetric" if symmetric else "asymmetric", signed=signed)
    for b in batches:
        ours.observe(b)
    _assert_same(ours.calculate_qparams("pytorch"), s, z, f"minmax seed {seed}")


@pytest.mark.parametrize("c", [0.01, 0.25, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_moving_average_matches_torch(seed, c):
    torch = require("torch")
    batches = _batches(seed, 5, (8, 20), outlier=seed % 2 == 1)
    s, z = _torch_qparams(torch.ao.quantization.MovingAverageMinMaxObserver(
        averaging_constant=c, **_torch_kw(False, False)), batches)
    ours = MovingAverageMinMaxObserver(averaging_constant=c, signed=False)
    for b in batches:
        ours.observe(b)
    _assert_same(ours.calculate_qparams("pytorch"), s, z, f"ema c={c} seed {seed}")


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_per_channel_minmax_matches_torch(seed, symmetric):
    torch = require("torch")
    batches = _batches(seed, 2, (6, 3, 3, 3), outlier=True)
    batches[0][2] = 0.0  # an all-zero channel (in one batch)
    s, z = _torch_qparams(torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=0, **_torch_kw(True, symmetric, per_channel=True)), batches)
    ours = PerChannelMinMaxObserver(axis=0, scheme="symmetric" if symmetric else "asymmetric")
    for b in batches:
        ours.observe(b)
    _assert_same(ours.calculate_qparams("pytorch"), s, z, f"per-channel seed {seed}")


@pytest.mark.parametrize(("signed", "symmetric"), CASES)
@pytest.mark.parametrize("n_batches", [1, 3])
@pytest.mark.parametrize("seed", range(4))
def test_histogram_matches_torch(seed, n_batches, signed, symmetric):
    """One batch, and three whose ranges grow (the old histogram is upsampled onto new bins):
    the histogram itself and (S, Z) are equal."""
    torch = require("torch")
    rng = np.random.default_rng(100 + seed)
    batches = [(rng.standard_normal(int(rng.integers(50, 4000))) * (k + 1) * rng.uniform(0.1, 5)
                + rng.normal()).astype(np.float32) for k in range(n_batches)]
    if seed % 2:
        batches = [np.maximum(b, 0) for b in batches]
    t_obs = torch.ao.quantization.HistogramObserver(**_torch_kw(signed, symmetric))
    s, z = _torch_qparams(t_obs, batches)
    ours = HistogramObserver(scheme="symmetric" if symmetric else "asymmetric", signed=signed)
    for b in batches:
        ours.observe(b)
    assert np.array_equal(ours.histogram, t_obs.histogram.numpy()), "histogram"
    _assert_same(ours.calculate_qparams("pytorch"), s, z, f"histogram seed {seed}")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), size=st.integers(1, 3000),
       spread=st.floats(1e-3, 1e3), quantized=st.booleans())
def test_histogram_matches_torch_hypothesis(seed, n, size, spread, quantized):
    """Drawn data, including few values and values on a coarse grid (many exact ties on bin
    edges)."""
    torch = require("torch")
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        b = rng.standard_normal(size) * spread
        if quantized:
            b = np.round(b * 4 / spread) * spread / 4
        batches.append(b.astype(np.float32))
    t_obs = torch.ao.quantization.HistogramObserver()
    s, z = _torch_qparams(t_obs, batches)
    ours = HistogramObserver(signed=False)
    for b in batches:
        ours.observe(b)
    assert np.array_equal(ours.histogram, t_obs.histogram.numpy())
    _assert_same(ours.calculate_qparams("pytorch"), s, z, f"seed {seed}")


@pytest.mark.parametrize("steps", [2, 17, 2049, 32769])
def test_linspace32_matches_torch_linspace(steps):
    """``torch.linspace`` on the CPU is one fused multiply-add per point; two roundings
    (``start + f32(step * i)``) would differ in the last bit (814 of 2049 points from -3.2 to
    4.1)."""
    torch = require("torch")
    from npquant.quant.histogram_observers import linspace32

    rng = np.random.default_rng(steps)
    for a, b in [(-3.2, 4.1)] + [tuple(sorted(rng.normal(0, 10, 2))) for _ in range(20)]:
        a32, b32 = np.float32(a), np.float32(b)
        ref = torch.linspace(torch.tensor(a32), torch.tensor(b32), steps).numpy()
        assert np.array_equal(linspace32(a32, b32, steps), ref), (a, b, steps)
    a32, b32 = np.float32(-3.2), np.float32(4.1)
    i = np.arange(2049)
    step = np.float32((b32 - a32) / np.float32(2048))
    two = np.where(i < 1024, a32 + step * i.astype(np.float32),
                   b32 - step * (2048 - i).astype(np.float32))
    ref = torch.linspace(torch.tensor(a32), torch.tensor(b32), 2049).numpy()
    assert int(np.sum(two != ref)) == 814
