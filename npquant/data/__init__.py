"""Datasets (FashionMNIST/MNIST IDX, CIFAR-10 binary) and seeded batching/augmentation."""

from npquant.data.datasets import (
    CIFAR10_DIR,
    DATASETS,
    FASHION_MNIST_DIR,
    MNIST_DIR,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    parse_cifar10_batch,
)
from npquant.data.idx import parse_idx, read_idx, write_idx
from npquant.data.transforms import NORMALIZATION, batches, normalize, random_crop, random_hflip

__all__ = ["CIFAR10_DIR", "DATASETS", "FASHION_MNIST_DIR", "MNIST_DIR", "NORMALIZATION", "batches",
           "load_cifar10", "load_dataset", "load_fashion_mnist", "load_idx_dataset", "load_mnist",
           "normalize", "parse_cifar10_batch", "parse_idx", "random_crop", "random_hflip",
           "read_idx", "write_idx"]
