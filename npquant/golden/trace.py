"""The traced run of an integer model over a large batch, a slice of images at a time, into
arrays allocated once, so a writer can stream the finished rows while later slices run.

No op of an integer model mixes images (QUANTIZE, CONV_2D, pools, FULLY_CONNECTED, ADD and
DEQUANTIZE all work image by image), so rows ``[a, b)`` of every traced tensor of the whole batch
are the trace of images ``[a, b)`` run alone: running ``SLICE`` images at a time and copying each
slice's tensors into their rows of full-size arrays gives the same integers as one run
(``tests/golden/test_trace.py`` checks it against ``IntegerModel.run`` on the whole batch).
This buys two things:

* memory: the kernels' temporaries are a slice's size, so the allocator reuses them slice after
  slice; the full-size arrays (~2 GB for 10k images of the seed CNN, mostly int32 accumulators)
  are one private anonymous ``mmap`` touched once, without the transparent huge pages NumPy asks
  for on large arrays, and a thread populates each slice's rows ahead of the run
  (``madvise(MADV_POPULATE_WRITE)``, Linux 5.14+; elsewhere the pages fault in as they are
  written): on the development VM 2 GB took 3-3.9 s of kernel time with huge pages, 1.3-1.4 s
  faulted in page by page (shared), 1.2-2.7 s (private), and 0.6-0.7 s populated in 64 MiB
  steps (docs/pipeline.md, "How the files are written, and how fast");
* overlap: ``wait(n)`` returns once rows ``[0, n)`` of every tensor are final, so the writer's
  threads format, hash and write them while the next slices run.

An op that could combine or move images — PAD of the batch axis, CONCATENATION along it, a
TRANSPOSE that moves it (imported models may hold them) — or a tensor whose first axis is not
the slice's images makes the run one slice of the whole batch: still correct, only not
overlapped.

The first slice runs in the constructor (it fixes every tensor's dtype and row shape); ``run``
does the rest in the calling thread (the numba kernels' thread team belongs to it).
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import threading
import time
from collections.abc import Callable

import numba
import numpy as np

from npquant.convert import IntegerModel, IntOp, TraceEntry
from npquant.golden.stream import current_stats
from npquant.intops import ConcatOp, PadOp, TransposeOp

SLICE = 256  # images per slice: the seed CNN's largest temporary (conv1 int32 accumulators,
# 108 KB an image) stays below glibc's 32 MiB ceiling for heap (not mmap) allocations, so the
# kernels' outputs are reused slice after slice instead of faulted in afresh
_ALIGN = 4096
_FIELDS = ("input", "output", "acc", "other")


class TraceStopped(RuntimeError):
    """Raised by ``SlicedTrace.wait`` when the run failed or was cancelled (the rows waited for
    will not come)."""


class SlicedTrace:
    """``model.run(x, return_trace=True)`` with the final DEQUANTIZE, a slice of images at a
    time (module docstring).

    ``entries``: one ``TraceEntry`` per op, DEQUANTIZE last (its input the int8 logits, its
    output the float32 logits), whose arrays have the whole batch's shape and fill row by row;
    an op's input is the very array of the output feeding it. ``derive`` adds arrays computed
    row-wise from them (NHWC copies). Rows ``[0, done)`` are final.
    """

    def __init__(self, model: IntegerModel, x: np.ndarray, *, slice_images: int | None = None
                 ) -> None:
        slice_images = SLICE if slice_images is None else slice_images
        if isinstance(slice_images, bool) or not isinstance(slice_images, int) \
                or slice_images < 1:
            raise ValueError(f"slice_images must be an int >= 1, got {slice_images!r}")
        x = np.asarray(x)
        self.model, self.x, self.step = model, x, slice_images
        self.n = int(x.shape[0])
        self.done = 0
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._cancelled = False
        self.stats = current_stats()
        start = time.perf_counter()
        self._derived: list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]] = []
        if any(_moves_images(op) for op in model.ops):
            self.step = self.n
        first = self._run_slice(0, min(self.step, self.n))
        if any(len(a) != len(first[0].input) for e in first for f in _FIELDS
               if (a := getattr(e, f)) is not None):
            self.step = self.n  # a tensor whose rows are not the images: one slice of all
            first = self._run_slice(0, self.n)
        # one full array per distinct array of the first slice's trace (an op's input is the
        # array of the output feeding it); _slots: where each is found in a slice's trace
        seen: dict[int, int] = {}
        self._slots: list[tuple[int, str]] = []
        specs = []
        for i, e in enumerate(first):
            for f in _FIELDS:
                a = getattr(e, f)
                if a is not None and id(a) not in seen:
                    seen[id(a)] = len(self._slots)
                    self._slots.append((i, f))
                    specs.append((a.dtype, (self.n, *a.shape[1:])))
        self._arrays = _arena(specs)
        self.entries = [TraceEntry(e.index, e.name, e.op,
                                   *(None if a is None else self._arrays[seen[id(a)]]
                                     for a in (e.input, e.output, e.acc, e.other)))
                        for e in first]
        self._store(first, 0)
        self.stats.run_span = (start, time.perf_counter(), time.perf_counter())

    def derive(self, source: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """A new full-size array whose rows ``[a, b)`` are ``fn(source[a:b])``, filled with the
        others (``source`` one of ``entries``' arrays; ``fn`` row-wise, e.g. a transpose of the
        non-batch axes). Call before ``run``."""
        rows = fn(source[:max(self.done, 1)])
        (full,) = _arena([(rows.dtype, (self.n, *rows.shape[1:]))])
        full[:self.done] = rows[:self.done]
        self._derived.append((full, source, fn))
        return full

    def run(self, stop: Callable[[], bool] | None = None, *, threads: int | None = None
            ) -> None:
        """Run the remaining slices, publishing each (``wait``). ``stop()`` is asked before each
        slice (a writer failed: ``TraceStopped``). ``threads``: numba threads of the kernels
        meanwhile (default: as set; the integers do not depend on it). An error is kept for
        ``wait`` and re-raised."""
        before = numba.get_num_threads()
        if threads is not None:
            numba.set_num_threads(max(1, min(threads, before)))
        ahead = threading.Thread(target=self._populate, name="golden-populate", daemon=True)
        ahead.start()
        try:
            for a in range(self.done, self.n, self.step):
                if self._cancelled or (stop is not None and stop()):
                    raise TraceStopped("traced run stopped: cancelled, or a writer failed")
                b = min(a + self.step, self.n)
                self._store(self._run_slice(a, b), a)
            first = self.stats.run_span
            self.stats.run_span = (first[0], first[1], time.perf_counter())
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()
            raise
        finally:
            numba.set_num_threads(before)
            ahead.join()

    def _populate(self) -> None:
        """Populate the rows of the slices still to run, slice after slice, in every full-size
        array (module docstring); stops at the first refusal (no such madvise here)."""
        arrays = [*self._arrays, *(full for full, _, _ in self._derived)]
        for a in range(self.done, self.n, self.step):
            if self._cancelled or self._error is not None:
                return
            b = min(a + self.step, self.n)
            for arr in arrays:
                row = arr.nbytes // max(len(arr), 1)
                if row and not populate(arr.ctypes.data + a * row, (b - a) * row):
                    return

    def cancel(self) -> None:
        """Make ``run`` stop before its next slice and ``wait`` raise."""
        with self._cond:
            self._cancelled = True
            self._error = self._error or TraceStopped("traced run cancelled")
            self._cond.notify_all()

    def wait(self, rows: int) -> int:
        """Block until rows ``[0, min(rows, n))`` are final; returns how many rows are (at least
        that many). ``TraceStopped`` if the run failed or was cancelled."""
        with self._cond:
            if self.done < min(rows, self.n) and self._error is None:
                t = time.perf_counter()
                while self.done < min(rows, self.n) and self._error is None:
                    self._cond.wait()
                self.stats.add(wait_rows=time.perf_counter() - t)
            if self._error is not None:
                raise TraceStopped(f"the traced run stopped at image {self.done}: "
                                   f"{self._error!r}") from self._error
            return self.done

    def _run_slice(self, a: int, b: int) -> list[TraceEntry]:
        logits, trace = self.model.run(self.x[a:b], return_trace=True)
        dq = self.model.ops[-1]
        final = TraceEntry(len(trace), dq.name, dq.op, logits,
                           self.model.dequantize_logits(logits))
        return [*trace, final]

    def _store(self, entries: list[TraceEntry], a: int) -> None:
        b = a + len(entries[0].input)
        for full, (i, f) in zip(self._arrays, self._slots, strict=True):
            full[a:b] = getattr(entries[i], f)
        for full, source, fn in self._derived:
            full[a:b] = fn(source[a:b])
        with self._cond:
            self.done = b
            self._cond.notify_all()


def _moves_images(op: IntOp) -> bool:
    """Whether ``op`` may combine images or move them off the first axis (module docstring):
    PAD of the batch axis, CONCATENATION along axis 0 (or a negative axis, which may be it), a
    TRANSPOSE whose permutation moves axis 0."""
    if isinstance(op, PadOp):
        return bool(op.pads) and tuple(op.pads[0]) != (0, 0)
    if isinstance(op, ConcatOp):
        return op.axis < 1
    if isinstance(op, TransposeOp):
        return bool(op.perm) and op.perm[0] != 0
    return False


_MADV_POPULATE_WRITE = 23  # linux/mman.h (5.14+)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def populate(address: int, length: int) -> bool:
    """Fault in the pages of ``[address, address + length)`` of a private anonymous map for
    writing, in one system call (the pages outward to page boundaries); False where the kernel
    or the OS has no ``MADV_POPULATE_WRITE`` (nothing done: the pages fault in when written).
    ctypes releases the GIL for the call."""
    if _LIBC is None or length <= 0:
        return _LIBC is not None
    page = mmap.PAGESIZE
    first = address - address % page
    end = -(-(address + length) // page) * page
    return _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(end - first),
                         _MADV_POPULATE_WRITE) == 0


def _arena(specs: list[tuple[np.dtype, tuple[int, ...]]]) -> list[np.ndarray]:
    """Arrays of the given (dtype, shape)s in one private anonymous ``mmap``, each at a 4 KiB-
    aligned offset: zero pages until written, no huge pages asked for (module docstring). The
    map lives as long as any of the arrays."""
    offsets, total = [], 0
    for dtype, shape in specs:
        offsets.append(total)
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        total += -(-max(size, 1) // _ALIGN) * _ALIGN
    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    buf = mmap.mmap(-1, max(total, _ALIGN), **({"flags": private} if private else {}))
    return [np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)),
                          offset=off).reshape(shape)
            for (dtype, shape), off in zip(specs, offsets, strict=True)]
