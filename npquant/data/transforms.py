"""Batching, normalization and augmentation of uint8 NCHW image arrays, all seeded."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Per-channel mean and std of the training sets on the [0, 1] scale.
NORMALIZATION = {"fashion-mnist": ((0.2860,), (0.3530,)), "mnist": ((0.1307,), (0.3081,)),
                 "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


def normalize(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...],
              dtype=np.float32) -> np.ndarray:
    """x = (u8 / 255 - mean[c]) / std[c] per channel of NCHW images, in ``dtype``."""
    if images.ndim != 4 or images.shape[1] != len(mean) or len(mean) != len(std):
        raise ValueError(f"normalize: images shape {images.shape} does not match "
                         f"{len(mean)} channel means and {len(std)} stds")
    m = np.asarray(mean, dtype=dtype).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=dtype).reshape(1, -1, 1, 1)
    return (images.astype(dtype) / dtype(255) - m) / s


def batches(n: int, batch_size: int, *, rng: np.random.Generator | None = None,
            drop_last: bool = False) -> Iterator[np.ndarray]:
    """Index arrays of consecutive batches over range(n), shuffled by ``rng`` if given."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start: start + batch_size]


def random_crop(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad each NCHW image by ``padding`` and crop back to H x W at a random offset."""
    n, c, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dy = rng.integers(0, 2 * padding + 1, size=n)
    dx = rng.integers(0, 2 * padding + 1, size=n)
    # fancy-index each image's window: rows dy+i, cols dx+j
    rows = (dy[:, None] + np.arange(h))[:, None, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, None, :]
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]


def random_hflip(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p``."""
    flip = rng.random(len(images)) < p
    out = images.copy()
    out[flip] = out[flip][..., ::-1]
    return out
