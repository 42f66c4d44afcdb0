"""IDX files (the MNIST/FashionMNIST format), gzipped or not, with every header field validated.

Layout (big-endian): bytes 0-1 are zero, byte 2 the element type code, byte 3 the number of
dimensions d, then d uint32 sizes, then prod(sizes) elements in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

# element type code -> big-endian NumPy dtype (the IDX specification's table)
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic 1f 8b.

    A truncated or corrupt gzip stream is a ValueError naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array of native byte order; ValueError names ``name`` and the
    problem (bad magic, unknown type, truncated header or data, trailing bytes)."""
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: bad IDX magic {data[:4].hex()} (first two bytes must be 0)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise ValueError(f"{name}: unknown IDX element type 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise ValueError(f"{name}: truncated IDX data: shape {shape} needs {expected} bytes, "
                         f"file has {got}")
    if got > expected:
        raise ValueError(f"{name}: {got - expected} unexpected trailing bytes after IDX data "
                         f"of shape {shape}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw)."""
    return parse_idx(read_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzipped if ``compress``); the inverse of ``read_idx``."""
    arr = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in IDX_TYPES.items()}
    if arr.dtype not in codes:
        raise TypeError(f"IDX cannot store dtype {arr.dtype}")
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    # mtime=0 keeps the bytes reproducible
    Path(path).write_bytes(gzip.compress(data, mtime=0) if compress else data)
