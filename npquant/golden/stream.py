"""Writing large files at disk speed: block-aligned buffers, direct I/O, sha256 on the way, one
fsync per file.

A golden export writes ~9.4 GB for 10k images of the seed CNN (all formats). Through the page
cache, every byte is copied into newly touched kernel memory (in a virtual machine each such
page costs a fault on the host too) and written back later; measured on the development VM that
is 0.4-0.7 GB/s with most of the CPU in the kernel, against 1.3-1.8 GB/s with ``O_DIRECT`` from
reused aligned buffers (``docs/pipeline.md``, stage 5). So a file here is written through a
small pool of reused buffers of ``BUFFER_SIZE`` bytes:

* a producer fills the current buffer (``write`` copies bytes in; ``space``/``commit`` let a
  formatter write straight into it), and a full buffer is hashed (sha256, GIL released) and
  handed to an I/O thread, which writes it at its offset with ``os.pwrite`` while the producer
  fills the next one;
* with ``O_DIRECT`` the offset, length and address of every write must be multiples of the
  block size: buffers are page-aligned ``mmap``s of a multiple of ``BLOCK`` bytes, every buffer
  but the last is full, and the last is padded with zeros to a block and the file then cut to
  its size with ``ftruncate``;
* ``close`` waits for the file's writes, fsyncs it once and returns its sha256.

Where direct I/O is not available (a file system without it, e.g. tmpfs, or not Linux) the
same writes go through the page cache; the bytes and the fsync are the same.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 4096  # O_DIRECT alignment of offsets, lengths and addresses (covers 512 B and 4 KiB)
BUFFER_SIZE = 8 << 20
BUFFERS = 8  # in the pool; producers block when all are filled or in flight
IO_THREADS = 2  # two writes in flight keep the virtio disk of the development VM busier than one
_O_DIRECT = getattr(os, "O_DIRECT", 0)


@dataclass
class Stats:
    """Where an export's writing time went, in seconds summed over threads (``collect_stats``).

    ``fill_cpu``: CPU time of the threads producing the files (formatting, copying, CRC-32,
    sha256), of which ``sha256``; ``wait_buffer``: their time blocked waiting for a free buffer
    (the disk is behind); ``pwrite``: the I/O threads' time in ``os.pwrite``; ``fsync``: time in
    the per-file ``ftruncate`` + ``fsync``; ``bytes``, ``files``: written; ``direct``: O_DIRECT.
    With a traced run streaming into the files (``npquant.golden.trace``): ``wait_rows``, the
    writers' time blocked waiting for its rows; ``run_span``, its first slice's start, the end
    of that slice and of the run (``time.perf_counter``); ``spans``: each file's (start, end).
    """

    fill_cpu: float = 0.0
    wait_rows: float = 0.0
    sha256: float = 0.0
    wait_buffer: float = 0.0
    pwrite: float = 0.0
    fsync: float = 0.0
    bytes: int = 0
    files: int = 0
    direct: bool = False
    run_span: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)

    def add(self, **amounts: float) -> None:
        with _STATS_LOCK:
            for k, v in amounts.items():
                setattr(self, k, getattr(self, k) + v)


_STATS: list[Stats] = []
_STATS_LOCK = threading.Lock()


def current_stats() -> Stats:
    """The ``Stats`` being collected (``collect_stats``), else a throwaway one."""
    return _STATS[-1] if _STATS else Stats()


@contextmanager
def collect_stats() -> Iterator[Stats]:
    """Collect the ``Stats`` of every ``Streamer`` made inside the ``with`` (benchmarks)."""
    stats = Stats()
    _STATS.append(stats)
    try:
        yield stats
    finally:
        _STATS.remove(stats)


def direct_io_works(directory: str | Path) -> bool:
    """Whether ``O_DIRECT`` writes of aligned blocks succeed in ``directory`` (a probe file is
    written and removed)."""
    if not _O_DIRECT:
        return False
    probe = Path(directory) / ".npquant-direct-io-probe"
    buf = mmap.mmap(-1, BLOCK)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_DIRECT, 0o600)
        try:
            return os.pwrite(fd, buf, 0) == BLOCK
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        buf.close()
        probe.unlink(missing_ok=True)


class Streamer:
    """The buffer pool and I/O threads shared by the files of one export.

    ``direct``: use ``O_DIRECT`` (default: if ``direct_io_works`` in ``directory``).
    Use as a context manager; ``write_file`` may be called from several threads at once.
    """

    def __init__(self, directory: str | Path, *, direct: bool | None = None,
                 buffer_size: int = BUFFER_SIZE, buffers: int = BUFFERS,
                 io_threads: int = IO_THREADS) -> None:
        if buffer_size <= 0 or buffer_size % BLOCK:
            raise ValueError(f"buffer_size must be a positive multiple of {BLOCK}, got "
                             f"{buffer_size}")
        if buffers < 2 or io_threads < 1:
            raise ValueError(f"buffers must be >= 2 and io_threads >= 1, got {buffers}, "
                             f"{io_threads}")
        self.direct = direct_io_works(directory) if direct is None else bool(direct)
        self.buffer_size = buffer_size
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._made, self._max = 0, buffers
        self._lock = threading.Lock()
        self._io = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="golden-io")
        self.stats = current_stats()
        self.stats.direct = self.direct

    def write_file(self, path: str | Path, fill: Callable[[StreamFile], Any]) -> str:
        """Create ``path``, let ``fill`` write it, fsync it; returns its sha256 hex digest.
        On an error the file is closed (after its pending writes) and the error re-raised."""
        cpu, start = time.thread_time(), time.perf_counter()
        with StreamFile(self, path) as f:
            fill(f)
        self.stats.add(fill_cpu=time.thread_time() - cpu, bytes=f.size, files=1)
        self.stats.spans[Path(path).name] = (start, time.perf_counter())
        return f.digest

    def close(self) -> None:
        self._io.shutdown(wait=True)

    def __enter__(self) -> Streamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> mmap.mmap:
        with self._lock:
            if self._free.empty() and self._made < self._max:
                self._made += 1
                return mmap.mmap(-1, self.buffer_size)  # page-aligned, zero-filled
        t = time.perf_counter()
        buf = self._free.get()
        self.stats.add(wait_buffer=time.perf_counter() - t)
        return buf

    def _give(self, buf: mmap.mmap) -> None:
        self._free.put(buf)


class StreamFile:
    """One file being written through a ``Streamer`` (module docstring)."""

    def __init__(self, streamer: Streamer, path: str | Path) -> None:
        self.st, self.path = streamer, Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (_O_DIRECT if streamer.direct else 0)
        self.fd = os.open(self.path, flags, 0o644)
        self.size = 0  # bytes committed so far = the file's size when closed
        self.digest = ""
        self._sha = hashlib.sha256()
        self._buf: mmap.mmap | None = None
        self._view: np.ndarray | None = None
        self._fill = 0
        self._pending: list[Future] = []

    def space(self) -> np.ndarray:
        """The free part of the current buffer (uint8, at least one byte) to write into; then
        ``commit`` how many bytes were written."""
        if self._buf is None:
            self._buf = self.st._take()
            self._view = np.frombuffer(self._buf, dtype=np.uint8)
            self._fill = 0
        return self._view[self._fill:]

    def commit(self, n: int) -> None:
        """Append the first ``n`` bytes of the last ``space()`` to the file."""
        if not 0 <= n <= self.st.buffer_size - self._fill or self._buf is None:
            raise ValueError(f"commit({n}) outside the free space")
        self._fill += n
        self.size += n
        if self._fill == self.st.buffer_size:
            self._flush()

    def write(self, data: Any) -> int:
        """Append ``data`` (bytes or any C-contiguous buffer)."""
        src = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
            else data.reshape(-1).view(np.uint8)
        done = 0
        while done < src.size:
            free = self.space()
            k = min(free.size, src.size - done)
            free[:k] = src[done:done + k]
            self.commit(k)
            done += k
        return int(src.size)

    def _flush(self) -> None:
        buf, n = self._buf, self._fill
        self._buf = self._view = None
        mv = memoryview(buf)
        t = time.thread_time()
        self._sha.update(mv[:n])
        self.st.stats.add(sha256=time.thread_time() - t)
        length = n
        if n % BLOCK and self.st.direct:  # the last buffer: pad to a block, ftruncate in close
            length = n + BLOCK - n % BLOCK
            buf[n:length] = bytes(length - n)
        fut = self.st._io.submit(_pwrite_all, self.fd, mv[:length], self.size - n, self.st.stats)
        fut.add_done_callback(lambda _f, b=buf: self.st._give(b))
        self._pending = [p for p in self._pending if not p.done() or p.exception()]
        self._pending.append(fut)
        for p in self._pending:  # a failed write stops the file now, not after the last byte
            if p.done() and p.exception() is not None:
                raise p.exception()

    def close(self, *, abort: bool = False) -> None:
        """Write the last buffer, wait for every write, fsync, close; sets ``digest``.
        With ``abort`` only wait and close (the file is incomplete; write errors are dropped,
        the caller is already raising)."""
        try:
            if not abort and self._buf is not None and self._fill:
                self._flush()
            elif self._buf is not None:
                self.st._give(self._buf)
                self._buf = self._view = None
            errors = [e for p in self._pending if (e := p.exception()) is not None]
            if errors and not abort:
                raise errors[0]
            if not abort:
                t = time.perf_counter()
                if self.st.direct and os.fstat(self.fd).st_size != self.size:
                    os.ftruncate(self.fd, self.size)
                os.fsync(self.fd)
                self.st.stats.add(fsync=time.perf_counter() - t)
                self.digest = self._sha.hexdigest()
        finally:
            wait(self._pending)  # NOTE: never close the fd under a pending pwrite
            os.close(self.fd)

    def __enter__(self) -> StreamFile:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        self.close(abort=exc_type is not None)


def _pwrite_all(fd: int, data: memoryview, offset: int, stats: Stats) -> None:
    t = time.perf_counter()
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n
    stats.add(pwrite=time.perf_counter() - t)
