"""Image classification datasets from their original files: (Fashion)MNIST IDX, CIFAR-10 binary.

Each loader returns ``(images, labels)``: images uint8 NCHW (N, C, H, W), labels int64 (N,).
No pickles are ever read (the CIFAR-10 *binary* version is used, not the Python one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npquant.data.idx import read_bytes, read_idx

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_DIR = "/usr/share/datasets/mnist"
CIFAR10_DIR = "/usr/share/datasets/cifar-10-batches-bin"

_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_INSTALL_HINT = {"fashion-mnist": "apt-get install dataset-fashion-mnist",
                 "mnist": "copy the MNIST IDX files there"}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _find(data_dir: Path, stem: str, dataset: str) -> Path:
    for name in (stem + ".gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(
        f"{dataset}: {stem}[.gz] not found in {data_dir} (pass data_dir=..., --data-dir, "
        f"or install it: {_INSTALL_HINT[dataset]})")


def load_idx_dataset(split: str, data_dir: str | Path, dataset: str = "fashion-mnist",
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of an MNIST-format dataset.

    Checks the element type and shapes (images 3-d of 28x28 uint8, labels 1-d uint8 < 10) and
    that both files hold the same number of items; any violation is a ValueError naming the
    file.
    """
    _check_split(split)
    data_dir = Path(data_dir)
    img_path = _find(data_dir, _IDX_FILES[split][0], dataset)
    lab_path = _find(data_dir, _IDX_FILES[split][1], dataset)
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{img_path}: expected uint8 images of shape (N, 28, 28), got "
                         f"{images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{lab_path}: expected uint8 labels of shape (N,), got "
                         f"{labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{img_path} has {len(images)} images but {lab_path} has "
                         f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: label {labels.max()} is not a class in 0..9")
    return images[:, None, :, :], labels.astype(np.int64)


def load_fashion_mnist(split: str = "train", data_dir: str | Path = FASHION_MNIST_DIR,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """FashionMNIST (Xiao et al., arXiv:1708.07747): 60000 train / 10000 test 28x28 images."""
    return load_idx_dataset(split, data_dir, "fashion-mnist")


def load_mnist(split: str = "train", data_dir: str | Path = MNIST_DIR,
               ) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the same IDX file names as FashionMNIST."""
    return load_idx_dataset(split, data_dir, "mnist")


CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 R, 1024 G, 1024 B bytes (row-major)


def parse_cifar10_batch(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR-10 binary records (3073 bytes each) into (N, 3, 32, 32) uint8 and labels."""
    if len(data) == 0 or len(data) % CIFAR_RECORD:
        raise ValueError(f"{name}: size {len(data)} is not a positive multiple of the "
                         f"{CIFAR_RECORD}-byte CIFAR-10 record (truncated or wrong file?)")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{name}: record {bad} has label {labels[bad]}, not a class in 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def load_cifar10(split: str = "train", data_dir: str | Path = CIFAR10_DIR,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary version: data_batch_1..5.bin (train) or test_batch.bin (test)."""
    _check_split(split)
    data_dir = Path(data_dir)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    missing = [n for n in names if not (data_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"cifar10: {missing} not found in {data_dir} (pass data_dir=... "
                                f"or --data-dir pointing at the CIFAR-10 binary version)")
    parts = [parse_cifar10_batch(read_bytes(data_dir / n), str(data_dir / n)) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


DATASETS = {"fashion-mnist": (load_fashion_mnist, FASHION_MNIST_DIR),
            "mnist": (load_mnist, MNIST_DIR), "cifar10": (load_cifar10, CIFAR10_DIR)}


def load_dataset(name: str, split: str, data_dir: str | Path | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch by name ("fashion-mnist", "mnist", "cifar10"); ``data_dir`` None = default."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}")
    loader, default = DATASETS[name]
    return loader(split, default if data_dir is None else data_dir)
