"""Parameter initialization as PyTorch's defaults, drawn from an explicit NumPy Generator."""

from __future__ import annotations

import math

import numpy as np


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs feeding one output: in_features for (out, in), C/G*KH*KW for OIHW weights."""
    return int(np.prod(shape[1:]))


def kaiming_uniform(shape: tuple[int, ...], rng: np.random.Generator, *, a: float = math.sqrt(5),
                    dtype=np.float32) -> np.ndarray:
    """U(-bound, bound) with bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).

    With PyTorch's default a = sqrt(5) for Conv2d/Linear, gain^2 = 1/3 and the bound is exactly
    1/sqrt(fan_in). Draws in float64 then casts, so float32 and float64 models share values.
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in(shape))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def bias_uniform(n: int, weight_shape: tuple[int, ...], rng: np.random.Generator, *,
                 dtype=np.float32) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default bias of Conv2d/Linear."""
    bound = 1.0 / math.sqrt(fan_in(weight_shape))
    return rng.uniform(-bound, bound, size=(n,)).astype(dtype)


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A Generator from a seed (int) or the Generator itself; ``None`` is refused (determinism)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int or a numpy Generator, got {seed!r}")
