"""How many threads a fast kernel call uses: one below a grain of work, else numba's setting.

A numba ``parallel=True`` region wakes the thread team and waits for all of it at the end. For
a small call (the fully-connected layer of a CNN, a batch of a few images) that costs more than
the work; on a machine whose cores other processes share, a woken thread may wait a whole
scheduler slice, and a batch of 64 images through the seed CNN ran 2x (ResNet: 5x) slower on 2
threads than on 1 (tools/bench_model.py, shared 2-core machine). PyTorch's CPU ops follow the
same idea with their grain size (``at::internal::GRAIN_SIZE``): a region parallelizes only when
every thread gets at least a grain of work.

The thread count never changes a result: every fast kernel computes each output element in one
thread, in a fixed order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba

POOL_GRAIN = 1 << 20  # output elements per thread (pools, element-wise: memory-bound)
GEMM_GRAIN = 1 << 22  # multiply-accumulates per thread (conv, fully connected)
QUANTIZE_GRAIN = 1 << 18  # float inputs per thread of QUANTIZE (a few float roundings each)
DEPTHWISE_GRAIN = 1 << 18  # outputs per thread of a 3x3 depthwise conv (9 taps and requantize)


@contextlib.contextmanager
def threads_for(work: int, grain: int) -> Iterator[None]:
    """Run the block on ``min(numba threads, work // grain)`` threads, at least 1."""
    before = numba.get_num_threads()
    want = max(1, min(before, int(work) // grain))
    if want == before:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(before)
