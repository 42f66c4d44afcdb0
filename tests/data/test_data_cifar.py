"""CIFAR-10 binary records (3073 bytes: label, R, G, B planes), on files the tests write."""

from __future__ import annotations

import numpy as np
import pytest

from npquant.data import load_cifar10, load_dataset, parse_cifar10_batch


def _records(labels, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    rec = np.concatenate([np.asarray(labels, np.uint8)[:, None], pixels], axis=1)
    return rec.tobytes(), pixels


def test_record_layout():
    data, pixels = _records([7, 2])
    x, y = parse_cifar10_batch(data)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [7, 2]
    # pixel (c, row, col) of image n is byte 1 + c*1024 + row*32 + col of record n
    for n, c, r, col in [(0, 0, 0, 0), (1, 2, 31, 31), (0, 1, 5, 17)]:
        assert x[n, c, r, col] == pixels[n, c * 1024 + r * 32 + col]


def test_loads_train_and_test_files(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(_records([i, i], seed=i)[0])
    (tmp_path / "test_batch.bin").write_bytes(_records([0, 1, 9])[0])
    x, y = load_cifar10("train", data_dir=tmp_path)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    xt, yt = load_dataset("cifar10", "test", tmp_path)
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == [0, 1, 9]


@pytest.mark.parametrize("data, match", [
    (b"", "not a positive multiple of the 3073-byte"),
    (_records([1])[0][:-1], "size 3072 is not a positive multiple"),
    (_records([1, 12])[0], "record 1 has label 12"),
], ids=["empty", "truncated", "bad_label"])
def test_bad_batch_file(tmp_path, data, match):
    (tmp_path / "test_batch.bin").write_bytes(data)
    with pytest.raises(ValueError, match=match) as info:
        load_cifar10("test", data_dir=tmp_path)
    assert "test_batch.bin" in str(info.value)


def test_missing_files_are_listed(tmp_path):
    (tmp_path / "data_batch_1.bin").write_bytes(_records([1])[0])
    with pytest.raises(FileNotFoundError, match="data_batch_2.bin"):
        load_cifar10("train", data_dir=tmp_path)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn", "train")
