"""File formats of golden data: ``$readmemh`` hex (one value per line) and raw little-endian bin.

Hex: one value per line, lowercase, zero-padded to the full width of the dtype (2 hex digits
per byte: int8 -> 2, int32 -> 8), integers in two's complement (int8 -1 -> ``ff``, int32 -2 ->
``fffffffe``), floats as their IEEE-754 bit pattern (float32 1.0 -> ``3f800000``). Values are in
C order of the array (NCHW unless the manifest says otherwise). Verilog ``$readmemh`` reads it
into a ``reg [W-1:0] mem [0:N-1]``.

Bin: the array's bytes in C order, little-endian, no header (``np.fromfile(path, dtype)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_BITS_VIEW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _check_dtype(dtype: np.dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind not in "iuf" or dt.itemsize not in _BITS_VIEW:
        raise TypeError(f"golden arrays must be integer or float of 1, 2, 4 or 8 bytes, got {dt}")
    return dt


def hex_lines(arr: np.ndarray) -> str:
    """The ``$readmemh`` text of ``arr`` (module docstring), one value per line, final newline."""
    a = np.ascontiguousarray(arr)
    dt = _check_dtype(a.dtype)
    # Reinterpreting the bytes as unsigned gives the two's complement / IEEE bit pattern.
    bits = a.astype(dt.newbyteorder("<")).view(_BITS_VIEW[dt.itemsize]).ravel()
    width = 2 * dt.itemsize
    if bits.size == 0:
        return ""
    return "\n".join(f"{int(v):0{width}x}" for v in bits.tolist()) + "\n"


def write_hex(path: str | Path, arr: np.ndarray) -> None:
    """Write ``hex_lines(arr)`` to ``path``."""
    Path(path).write_text(hex_lines(arr), encoding="ascii")


def read_hex(path: str | Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Parse a hex file back into an array of ``dtype`` and ``shape``.

    Raises ValueError (naming the file and line) on a line of the wrong width or with non-hex
    characters, or on the wrong number of lines (a truncated file).
    """
    dt = _check_dtype(dtype)
    width = 2 * dt.itemsize
    lines = Path(path).read_text(encoding="ascii").splitlines()
    expected = int(np.prod(shape, dtype=np.int64))
    if len(lines) != expected:
        raise ValueError(f"{path}: {len(lines)} lines, expected {expected} for shape {shape} "
                         "(truncated or corrupt)")
    try:
        if any(len(line) != width for line in lines):
            raise ValueError
        raw = np.array([int(line, 16) for line in lines], dtype=np.uint64)
    except ValueError:
        bad = next((i for i, line in enumerate(lines)
                    if len(line) != width or not _is_hex(line)), 0)
        raise ValueError(f"{path}: line {bad + 1} {lines[bad]!r} is not {width} hex digits"
                         ) from None
    return raw.astype(_BITS_VIEW[dt.itemsize]).view(dt.newbyteorder("<")).astype(dt).reshape(shape)


def write_bin(path: str | Path, arr: np.ndarray) -> None:
    """Write the array's bytes, C order, little-endian, no header."""
    a = np.ascontiguousarray(arr)
    dt = _check_dtype(a.dtype)
    Path(path).write_bytes(a.astype(dt.newbyteorder("<")).tobytes(order="C"))


def read_bin(path: str | Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Read a raw little-endian file; ValueError if its size is not ``prod(shape) * itemsize``."""
    dt = _check_dtype(dtype)
    data = Path(path).read_bytes()
    expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, expected {expected} for {dt} {shape} "
                         "(truncated or corrupt)")
    return np.frombuffer(data, dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
    except ValueError:
        return False
    return True
