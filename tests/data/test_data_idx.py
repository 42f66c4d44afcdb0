"""IDX reading/writing and the (Fashion)MNIST loaders, on files the tests write."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npquant.data import FASHION_MNIST_DIR, load_fashion_mnist, load_mnist, read_idx, write_idx

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@given(arr=hnp.arrays(st.sampled_from(IDX_DTYPES), hnp.array_shapes(min_dims=1, max_dims=4,
                                                                     max_side=5)),
       compress=st.booleans())
def test_idx_roundtrip(tmp_path_factory, arr, compress):
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    write_idx(path, arr, compress=compress)
    back = read_idx(path)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_idx_header_layout(tmp_path):
    # 0x00 0x00, type 0x08 (ubyte), 2 dims, sizes 2 and 3 big-endian, then the bytes.
    write_idx(tmp_path / "a", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert (tmp_path / "a").read_bytes() == bytes.fromhex("00000802" "00000002" "00000003"
                                                          "000102030405")


GOOD = bytes.fromhex("00000802" "00000002" "00000003") + bytes(6)
CORRUPT = {
    "empty": (b"", "too short for an IDX header"),
    "bad_magic": (b"\x01" + GOOD[1:], "bad IDX magic 01000802"),
    "unknown_type": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX element type 0x07"),
    "zero_dims": (bytes.fromhex("00000800"), "declares 0 dimensions"),
    "truncated_header": (GOOD[:10], r"truncated IDX header \(10 bytes, need 12\)"),
    "truncated_data": (GOOD[:-1], r"truncated IDX data: shape \(2, 3\) needs 6 bytes, file has 5"),
    "trailing": (GOOD + b"\x00", "1 unexpected trailing bytes"),
    "truncated_gzip": (gzip.compress(GOOD)[:-6], "corrupt or truncated gzip"),
    "corrupt_gzip": (gzip.compress(GOOD)[:12] + b"\xff" * 20, "corrupt or truncated gzip"),
}


@pytest.mark.parametrize("case", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_idx_is_a_value_error_naming_the_file(tmp_path, case):
    data, match = case
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def _write_mnist(d: Path, n_train=5, n_test=3, compress=True, images=None, labels=None):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
        lab = rng.integers(0, 10, n, dtype=np.uint8) if labels is None else labels
        suffix = ".gz" if compress else ""
        write_idx(d / f"{split}-images-idx3-ubyte{suffix}", img, compress=compress)
        write_idx(d / f"{split}-labels-idx1-ubyte{suffix}", lab, compress=compress)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_loader_reads_small_files(tmp_path, compress):
    _write_mnist(tmp_path, compress=compress)
    x, y = load_fashion_mnist("train", data_dir=tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], read_idx(next(tmp_path.glob("train-images*"))))
    xt, _ = load_mnist("test", data_dir=tmp_path)
    assert xt.shape == (3, 1, 28, 28)


BAD_DATASETS = {
    "count_mismatch": (dict(images=np.zeros((4, 28, 28), np.uint8),
                            labels=np.zeros(3, np.uint8)), "has 4 images but .* has 3 labels"),
    "image_shape": (dict(images=np.zeros((2, 32, 32), np.uint8), labels=np.zeros(2, np.uint8)),
                    r"expected uint8 images of shape \(N, 28, 28\), got uint8 \(2, 32, 32\)"),
    "image_dtype": (dict(images=np.zeros((2, 28, 28), np.float32),
                         labels=np.zeros(2, np.uint8)), "got float32"),
    "label_range": (dict(images=np.zeros((2, 28, 28), np.uint8),
                         labels=np.array([3, 10], np.uint8)), "label 10 is not a class"),
}


@pytest.mark.parametrize("case", BAD_DATASETS.values(), ids=BAD_DATASETS.keys())
def test_loader_validates_contents(tmp_path, case):
    kw, match = case
    _write_mnist(tmp_path, **kw)
    with pytest.raises(ValueError, match=match):
        load_fashion_mnist("train", data_dir=tmp_path)


def test_missing_dataset_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", data_dir=tmp_path / "nowhere")


def test_bad_split():
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_fashion_mnist("val")


def test_real_fashion_mnist_files():
    if not Path(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"{FASHION_MNIST_DIR} not installed (apt-get install dataset-fashion-mnist)")
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert np.bincount(y).tolist() == [1000] * 10  # the test set is balanced
