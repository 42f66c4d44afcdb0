"""Seeded batching, normalization and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npquant.data import batches, normalize, random_crop, random_hflip


@given(n=st.integers(0, 50), bs=st.integers(1, 12), drop_last=st.booleans(), seed=st.integers(0, 9))
def test_batches_partition_the_indices(n, bs, drop_last, seed):
    got = list(batches(n, bs, rng=np.random.default_rng(seed), drop_last=drop_last))
    flat = np.concatenate(got) if got else np.array([], int)
    assert len(set(flat.tolist())) == len(flat)  # no index twice
    assert len(flat) == (n - n % bs if drop_last else n)
    assert all(len(b) == bs for b in got[:-1])


def test_batches_are_seeded():
    a = np.concatenate(list(batches(100, 7, rng=np.random.default_rng(3))))
    b = np.concatenate(list(batches(100, 7, rng=np.random.default_rng(3))))
    c = np.concatenate(list(batches(100, 7, rng=np.random.default_rng(4))))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.concatenate(list(batches(10, 3))), np.arange(10))


def test_normalize_formula():
    x = np.array([0, 51, 255], np.uint8).reshape(1, 3, 1, 1)
    out = normalize(x, (0.0, 0.1, 0.5), (1.0, 0.2, 0.5))
    np.testing.assert_allclose(out.ravel(), [0.0, (0.2 - 0.1) / 0.2, 1.0], rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"images shape \(1, 3, 1, 1\) does not match 1"):
        normalize(x, (0.0,), (1.0,))


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (6, 2, 5, 4), dtype=np.uint8)
    out = random_crop(x, 2, np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    r = np.random.default_rng(1)
    dy, dx = r.integers(0, 5, size=6), r.integers(0, 5, size=6)
    for n in range(6):
        np.testing.assert_array_equal(out[n], padded[n, :, dy[n]:dy[n] + 5, dx[n]:dx[n] + 4])
    assert (out == 0).any()  # some padding came in
    np.testing.assert_array_equal(random_crop(x, 0, rng), x)


def test_hflip():
    x = np.arange(2 * 1 * 2 * 3).reshape(2, 1, 2, 3)
    np.testing.assert_array_equal(random_hflip(x, np.random.default_rng(0), p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(random_hflip(x, np.random.default_rng(0), p=0.0), x)
