"""File formats of golden data: ``$readmemh`` hex (one value per line) and raw little-endian bin.

Hex: one value per line, lowercase, zero-padded to the full width of the dtype (2 hex digits
per byte: int8 -> 2, int32 -> 8), integers in two's complement (int8 -1 -> ``ff``, int32 -2 ->
``fffffffe``), floats as their IEEE-754 bit pattern (float32 1.0 -> ``3f800000``). Values are in
C order of the array (NCHW unless the manifest says otherwise). Verilog ``$readmemh`` reads it
into a ``reg [W-1:0] mem [0:N-1]``.

Bin: the array's bytes in C order, little-endian, no header (``np.fromfile(path, dtype)``).

Here both are produced by table lookups on the array's bytes (no Python loop per value), chunk
by chunk: the plain reference. The export (``npquant.golden.writer``) formats hex with the numba
kernel of ``npquant.golden.hex_kernel`` straight into its write buffers;
``tests/golden/test_fast_writers.py`` checks the two byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

_BITS_VIEW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# byte b -> its two hex characters (_DIGITS[b >> 4], _DIGITS[b & 15]) as one uint16 in memory order
_PAIRS = np.ascontiguousarray(np.stack([_DIGITS[np.arange(256) >> 4],
                                        _DIGITS[np.arange(256) & 15]], axis=1)
                              ).view(np.uint16)[:, 0]
# ASCII code -> hex digit value, 255 for anything that is not [0-9a-fA-F].
_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _VALUE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _VALUE[_c] = 10 + _i
CHUNK = 1 << 20  # values per formatting chunk (bounds the temporary buffers to a few MB)


def check_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype if golden files can hold it (integer or float of 1, 2, 4 or 8 bytes)."""
    dt = np.dtype(dtype)
    if dt.kind not in "iuf" or dt.itemsize not in _BITS_VIEW:
        raise TypeError(f"golden arrays must be integer or float of 1, 2, 4 or 8 bytes, got {dt}")
    return dt


def hex_chunks(arr: np.ndarray) -> Iterator[bytes]:
    """The ``$readmemh`` bytes of ``arr`` (module docstring), ``CHUNK`` values at a time.

    Each value's bytes are taken most significant first (a big-endian view), and each byte
    becomes its two characters by one table lookup, ``_PAIRS[b]`` (``b >> 4``, ``b & 15``).
    """
    a = np.ascontiguousarray(arr)
    dt = check_dtype(a.dtype)
    width = 2 * dt.itemsize
    flat = a.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        be = flat[start:start + CHUNK].astype(dt.newbyteorder(">")).view(np.uint8)
        be = be.reshape(-1, dt.itemsize)
        out = np.empty((be.shape[0], width + 1), dtype=np.uint8)
        out[:, :width] = _PAIRS[be].view(np.uint8)
        out[:, width] = ord("\n")
        yield out.tobytes()


def hex_lines(arr: np.ndarray) -> str:
    """The ``$readmemh`` text of ``arr`` (module docstring), one value per line, final newline."""
    return b"".join(hex_chunks(arr)).decode("ascii")


def bin_chunks(arr: np.ndarray) -> Iterator[bytes]:
    """The array's bytes, C order, little-endian, ``CHUNK`` values at a time."""
    a = np.ascontiguousarray(arr)
    dt = check_dtype(a.dtype)
    flat = a.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        yield flat[start:start + CHUNK].astype(dt.newbyteorder("<")).tobytes()


def write_hex(path: str | Path, arr: np.ndarray) -> None:
    """Write ``hex_lines(arr)`` to ``path``."""
    with open(path, "wb") as f:
        for chunk in hex_chunks(arr):
            f.write(chunk)


def read_hex(path: str | Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Parse a hex file back into an array of ``dtype`` and ``shape``.

    Raises ValueError (naming the file and line) on a line of the wrong width or with non-hex
    characters, or on the wrong number of lines (a truncated file).
    """
    dt = check_dtype(dtype)
    width = 2 * dt.itemsize
    data = Path(path).read_bytes()
    expected = int(np.prod(shape, dtype=np.int64))
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if lines != expected:
        raise ValueError(f"{path}: {lines} lines, expected {expected} for shape {shape} "
                         "(truncated or corrupt)")
    if len(data) != expected * (width + 1):
        _raise_bad_line(path, data, width)
    rows = np.frombuffer(data, dtype=np.uint8).reshape(expected, width + 1)
    out = np.empty(expected, dtype=np.uint64)
    for start in range(0, expected, CHUNK):
        block = rows[start:start + CHUNK]
        digits = _VALUE[block[:, :width]]
        if not (np.all(block[:, width] == ord("\n")) and np.all(digits != 255)):
            _raise_bad_line(path, data, width)
        # value = sum_j digit_j 16^(width-1-j), accumulated in uint64 (at most 64 bits)
        value = np.zeros(block.shape[0], dtype=np.uint64)
        for j in range(width):
            value = (value << np.uint64(4)) | digits[:, j].astype(np.uint64)
        out[start:start + CHUNK] = value
    return out.astype(_BITS_VIEW[dt.itemsize]).view(dt).reshape(shape)


def _raise_bad_line(path: str | Path, data: bytes, width: int) -> None:
    bad = _first_bad_line(data, width)
    text = data.split(b"\n")[bad].decode("ascii", "replace")
    raise ValueError(f"{path}: line {bad + 1} {text!r} is not {width} hex digits")


def _first_bad_line(data: bytes, width: int) -> int:
    for i, line in enumerate(data.split(b"\n")):
        if len(line) != width or np.any(_VALUE[np.frombuffer(line, dtype=np.uint8)] == 255):
            return i
    return 0


def write_bin(path: str | Path, arr: np.ndarray) -> None:
    """Write the array's bytes, C order, little-endian, no header."""
    with open(path, "wb") as f:
        for chunk in bin_chunks(arr):
            f.write(chunk)


def read_bin(path: str | Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Read a raw little-endian file; ValueError if its size is not ``prod(shape) * itemsize``."""
    dt = check_dtype(dtype)
    data = Path(path).read_bytes()
    expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, expected {expected} for {dt} {shape} "
                         "(truncated or corrupt)")
    return np.frombuffer(data, dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)
