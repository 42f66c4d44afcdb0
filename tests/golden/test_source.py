"""``npquant golden``'s model: normalizing only the calibration images (``calibration_split``)
builds the very integer model the fully normalized training split builds."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_toy_fashion_mnist

from npquant import train
from npquant.golden import golden_tensors, source
from npquant.quant.ptq import calibration_order


@pytest.mark.parametrize(("batches", "batch_size", "seed"), [(2, 32, 0), (3, 50, 5)])
def test_the_sparse_calibration_split_builds_the_same_model(tmp_path, monkeypatch, batches,
                                                            batch_size, seed):
    toy = write_toy_fashion_mnist(tmp_path, 128, 8)  # (3, 50): more than the split, all of it
    kw = dict(data_dir=toy, seed=seed, calib_batches=batches, calib_batch_size=batch_size)
    x_test, _ = source.load_images("fashion-mnist", "test", 8, toy)
    sparse = source.calibration_split("fashion-mnist", toy, batches, batch_size, seed)
    full, _ = train.prepare("fashion-mnist", "train", toy)
    _, order = calibration_order(full, batches, batch_size, seed)  # what calibrate reads
    assert sparse.shape == full.shape and np.array_equal(sparse[order], full[order])
    touched = np.flatnonzero(sparse.reshape(len(sparse), -1).any(axis=1))
    assert len(touched) == len(order)  # and nothing else was normalized
    built = {}
    for name, split in (("sparse", None), ("full", full)):
        if split is not None:
            monkeypatch.setattr(source, "calibration_split", lambda *a, s=split: s)
        model, record = source.build_integer_model("cnn", "tflite", **kw)
        built[name] = golden_tensors(model, x_test), record
    (t_sparse, l_sparse), r_sparse = built["sparse"]
    (t_full, l_full), r_full = built["full"]
    assert r_sparse == r_full and l_sparse == l_full
    assert [k for k, _, _ in t_sparse] == [k for k, _, _ in t_full]
    for (key, a, _), (_, b, _) in zip(t_sparse, t_full, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b), key
