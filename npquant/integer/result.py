"""The result object of a kernel called with ``return_accumulators=True``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KernelResult:
    """``out``: the requantized output; ``acc``: the accumulators it came from.

    ``acc`` has the output's shape and layout, before requantization and before the activation
    clamp: int32 for accumulators of at most 32 bits, int64 for wider ones (for pools, the
    window sums or maxima as int32).
    """

    out: np.ndarray
    acc: np.ndarray
