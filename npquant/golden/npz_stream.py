"""``.npy`` bytes and a stored (uncompressed) ``.npz`` written in one forward pass.

An ``.npy`` file is NumPy's header (magic, version, a Python-literal dict of ``descr``,
``fortran_order``, ``shape``, padded to a multiple of 64 bytes) followed by the array's raw bytes:
``npy_header(a) + a.tobytes()`` is exactly what ``np.save`` writes, without going through
``np.save``'s chunked copies.

An ``.npz`` is a zip archive with one stored ``<key>.npy`` member per array. ``zipfile`` writes a
member's local header first and seeks back to fill in its CRC-32 and size afterwards; here the
CRC-32 (``zlib.crc32``, one fast pass over memory) and the size are known before the header is
written, so the file goes out front to back — a block-aligned direct-I/O stream cannot seek back.
The bytes are those of ``zipfile.ZipFile(f, "w")`` with ``open(ZipInfo(name, (1980, 1, 1, 0, 0,
0)), "w", force_zip64=True)`` per member (local headers always carry the zip64 sizes; the central
directory and end records use zip64 only past ``zipfile.ZIP64_LIMIT``, as ``zipfile`` does),
which ``tests/golden/test_fast_writers.py`` checks byte for byte, zip64 records included.
Layout (PKWARE APPNOTE 4.3): ``[local header, member]*, [central directory entry]*, [zip64 end
record, zip64 locator], end record``.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

DATE_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed member time: the same arrays give the same bytes
_ZIP64_VERSION = 45
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header (APPNOTE 4.3.12)
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (4.3.14)
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator (4.3.15)
_END = struct.Struct("<4s4H2LH")  # end of central directory record (4.3.16)


def npy_header(arr: np.ndarray) -> bytes:
    """The header ``np.save`` writes before ``arr``'s bytes (format 1.0, or 2.0 when the header
    does not fit 1.0's 16-bit length, as ``np.lib.format.write_array`` decides)."""
    d = np.lib.format.header_data_from_array_1_0(arr)
    out = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(out, d)
    except ValueError:
        out = io.BytesIO()
        np.lib.format.write_array_header_2_0(out, d)
    return out.getvalue()


def raw_bytes(arr: np.ndarray) -> np.ndarray:
    """The bytes ``np.save`` writes after the header: the C-order data in the array's own byte
    order, as a flat uint8 view (copied only if ``arr`` is not C-contiguous)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def npy_size(arr: np.ndarray) -> int:
    """Bytes of ``arr``'s ``.npy`` file."""
    return len(npy_header(arr)) + arr.nbytes


def write_npz(sink, members: Sequence[tuple[str, np.ndarray]]) -> None:
    """Write a stored ``.npz`` of ``members`` ``[(name, array)]`` (names end in ``.npy``) to
    ``sink`` (any object with ``write(buffer)``), front to back (module docstring)."""
    infos, offset = [], 0
    for name, arr in members:
        info, local, head, raw = _member(name, arr, offset)
        for part in (local, head, raw):
            sink.write(part)
        infos.append(info)
        offset += len(local) + info.file_size
    sink.write(central_directory(infos, offset))


def _member(name: str, arr: np.ndarray, offset: int
            ) -> tuple[zipfile.ZipInfo, bytes, bytes, np.ndarray]:
    """A member's ``ZipInfo`` (CRC-32 and size filled in), local header, npy header and data."""
    head, raw = npy_header(arr), raw_bytes(arr)
    info = zipfile.ZipInfo(name, date_time=DATE_TIME)  # ZIP_STORED
    info.external_attr = 0o600 << 16  # as zipfile sets it: ?rw-------
    info.header_offset = offset
    info.CRC = zlib.crc32(raw, zlib.crc32(head))
    info.file_size = info.compress_size = len(head) + raw.size
    local = info.FileHeader(zip64=True)  # also sets the versions to 4.5 (zip64)
    return info, local, head, raw


def central_directory(infos: Sequence[zipfile.ZipInfo], start_dir: int) -> bytes:
    """The central directory at offset ``start_dir`` and the end records, as
    ``zipfile.ZipFile._write_end_record`` writes them."""
    limit = zipfile.ZIP64_LIMIT
    out = []
    for info in infos:
        zip64 = []
        size = info.file_size
        if size > limit:
            zip64 += [size, size]
            size = 0xFFFFFFFF
        offset = info.header_offset
        if offset > limit:
            zip64.append(offset)
            offset = 0xFFFFFFFF
        extra = struct.pack(f"<HH{len(zip64)}Q", 1, 8 * len(zip64), *zip64) if zip64 else b""
        name, flags = _encode_name(info)
        dt = info.date_time
        dosdate = (dt[0] - 1980) << 9 | dt[1] << 5 | dt[2]
        dostime = dt[3] << 11 | dt[4] << 5 | (dt[5] // 2)
        out.append(_CENTRAL.pack(
            b"PK\x01\x02", info.create_version, info.create_system, info.extract_version,
            info.reserved, flags, info.compress_type, dostime, dosdate, info.CRC, size, size,
            len(name), len(extra), 0, 0, info.internal_attr, info.external_attr, offset))
        out += [name, extra]
    size = sum(len(b) for b in out)
    count, start = len(infos), start_dir
    if count > zipfile.ZIP_FILECOUNT_LIMIT or start > limit or size > limit:
        out.append(_END64.pack(b"PK\x06\x06", 44, _ZIP64_VERSION, _ZIP64_VERSION, 0, 0,
                               count, count, size, start))
        out.append(_LOCATOR64.pack(b"PK\x06\x07", 0, start + size, 1))
        count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
    out.append(_END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0))
    return b"".join(out)


def _encode_name(info: zipfile.ZipInfo) -> tuple[bytes, int]:
    # ASCII names as they are; others UTF-8 with general purpose bit 11 set (as zipfile does)
    try:
        return info.filename.encode("ascii"), info.flag_bits
    except UnicodeEncodeError:
        return info.filename.encode("utf-8"), info.flag_bits | 0x800

