"""The integer model behind ``npquant golden``: a trained checkpoint (or a registered model at
its seeded initialization), BatchNorm folded, calibrated and converted exactly as the main job
does it (``npquant.pipeline`` stages 3-4), plus the images to run.

``build_integer_model`` records what it did in a JSON-able ``source`` dict; the golden manifest
keeps it under ``extra.source`` so ``npquant compare DIR --profile P`` can rebuild the same
model under another profile.
"""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path
from typing import Any

import numpy as np

from npquant import train
from npquant.convert import IntegerModel, convert
from npquant.data import DATASETS, NORMALIZATION, load_dataset, normalize
from npquant.models import get_model, list_models
from npquant.profiles import get_profile
from npquant.quant import fold_batch_norm
from npquant.quant.ptq import calibrate, calibration_order, choose_qparams


def find_checkpoint(source: str | Path) -> Path | None:
    """The training directory of ``source``: itself if it holds ``checkpoint.json``, its
    ``train/`` sub-directory (a ``npquant pipeline`` output), else None."""
    p = Path(source)
    for d in (p, p / "train"):
        if (d / train.METADATA).is_file():
            return d
    return None


def build_integer_model(source: str | Path, profile: str, *, dataset: str | None = None,
                        data_dir: str | Path | None = None, seed: int = 0,
                        calib_batches: int = 16, calib_batch_size: int = 64
                        ) -> tuple[IntegerModel, dict[str, Any]]:
    """The integer model of ``source`` under ``profile`` and the ``source`` record.

    ``source``: a training directory (``npquant train --out``), a pipeline output directory, or a
    model name (``npquant.models.list_models()``) built untrained with ``seed``. The dataset is
    the checkpoint's (or ``dataset``, default fashion-mnist, for a model name). Calibration:
    ``calib_batches`` seeded batches of ``calib_batch_size`` training images, as in the pipeline.
    """
    get_profile(profile)
    for name, v in (("calib_batches", calib_batches), ("calib_batch_size", calib_batch_size),
                    ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, int) or (v < 1 and name != "seed"):
            raise ValueError(f"{name} must be an int{' >= 1' if name != 'seed' else ''}, "
                             f"got {v!r}")
    ckpt = find_checkpoint(source)
    record: dict[str, Any]
    if ckpt is not None:
        meta = train.load_checkpoint(ckpt)[2]
        if dataset is not None and dataset != meta["dataset"]:
            raise ValueError(f"dataset={dataset!r}, but the checkpoint was trained on "
                             f"{meta['dataset']!r}")
        dataset = meta["dataset"]
        model = train.load_trained_model(ckpt)
        record = {"kind": "checkpoint", "path": str(Path(source)), "model": meta["model"],
                  "seed": meta["seed"], "epoch": meta.get("epoch"),
                  "checkpoint_sha256": meta.get("sha256")}
    elif str(source) in list_models():
        dataset = dataset or "fashion-mnist"
        record = {"kind": "model", "model": str(source), "seed": seed,
                  "note": "untrained: the model's seeded initialization"}
        model = None
    else:
        raise ValueError(f"source {str(source)!r} is neither a training / pipeline directory "
                         f"(with {train.METADATA}) nor a model name {list_models()}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {sorted(DATASETS)}")
    x_train = calibration_split(dataset, data_dir, calib_batches, calib_batch_size, seed)
    if model is None:
        model = get_model(str(source), seed=seed, **train._model_kwargs(str(source), x_train))
        model.eval()
    folded = fold_batch_norm(model)
    cal = calibrate(folded, x_train, num_batches=calib_batches, batch_size=calib_batch_size,
                    seed=seed)
    qp = choose_qparams(folded, cal, profile)
    im = convert(folded, qp, profile, input_shape=tuple(int(v) for v in x_train.shape[1:]))
    record.update({"dataset": dataset, "calibration": {
        "batches": calib_batches, "batch_size": calib_batch_size, "seed": seed,
        "images": f"{dataset} train split, seeded permutation (npquant.quant.ptq.calibrate)"}})
    return im, record


def calibration_split(dataset: str, data_dir: str | Path | None, num_batches: int,
                      batch_size: int, seed: int) -> np.ndarray:
    """The training split as ``calibrate(..., num_batches, batch_size, seed)`` reads it,
    normalized only where it reads.

    ``calibrate`` looks at ``images[order]`` alone, ``order`` being the first ``num_batches *
    batch_size`` indices of a seeded permutation of the split (``ptq.calibration_order``), and
    ``normalize`` works value by value. So a zero array of the split's shape holding just those
    rows normalized gives ``calibrate`` the very values of ``train.prepare``'s fully normalized
    split (``tests/golden/test_source.py`` checks the model built both ways); the other rows stay
    untouched zero pages. For FashionMNIST that is 1 024 images normalized instead of 60 000
    (188 MB of float32 made and faulted in, ~1 s of the command's start on the development VM).
    The zeros are an anonymous map, not ``np.zeros``: numpy asks for transparent huge pages on
    large arrays, and the 1 024 scattered rows then fault in (and zero) nearly all 188 MB in 2 MB
    pages (0.3 s here); the map faults in only the touched 4 KB pages (0.006 s).
    """
    images, _ = load_dataset(dataset, "train", data_dir)
    zero_pages = mmap.mmap(-1, max(1, images.size * np.dtype(np.float32).itemsize))
    x = np.frombuffer(zero_pages, dtype=np.float32, count=images.size).reshape(images.shape)
    _, order = calibration_order(x, num_batches, batch_size, seed)
    x[order] = normalize(images[order], *NORMALIZATION[dataset])
    return x


def load_images(dataset: str, split: str, count: int, data_dir: str | Path | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images (normalized float32 NCHW) and labels of a split."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"images must be an int >= 1, got {count!r}")
    x, y = train.prepare(dataset, split, data_dir)
    if count > len(x):
        raise ValueError(f"images={count}, but the {dataset} {split} split has {len(x)}")
    return x[:count], y[:count]


def images_digest(x: np.ndarray) -> str:
    """sha256 of the images' float32 bytes (C order): which images a golden set holds."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()
