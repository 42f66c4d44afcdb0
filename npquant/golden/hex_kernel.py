"""The ``$readmemh`` text of an array as a function of byte position, compiled with numba.

The hex text (``npquant.golden.formats``) has fixed-width lines: a value of ``s`` bytes is
``L = 2 s + 1`` characters, its ``2 s`` hex digits most significant first and a newline. So
character ``p`` of the file belongs to value ``v = p // L`` at column ``p % L``. Because the text
is a pure function of the position, any byte range ``[start, start + len(out))`` can be produced
on its own: a writer fills each block-aligned buffer with exactly the bytes that go there, also
when a line straddles two buffers.

The digits of up to 32 bits are made at once in a 64-bit word (SWAR, "SIMD within a register"):
spread the 8 nibbles of ``x`` into the 8 bytes of ``t`` (byte ``k`` = nibble ``k``), reverse the
bytes so the most significant nibble comes first in memory, then map each byte ``d`` to ASCII,
``'0' + d`` plus ``'a' - '0' - 10 = 39`` where ``d >= 10`` (``(d + 6) >> 4`` is 1 exactly there).
Lines of 4-byte and 1-byte values (int32 accumulators, int8 activations: nearly all of an
export's hex) are stored eight at a time as 64-bit words, 72 bytes = 9 words or 24 bytes = 3
words, once the output address is 8-byte aligned (on a little-endian host); the other sizes, the
lines before that address and the straddling ends go line by line.

``formats.hex_chunks`` is the plain NumPy reference (one table lookup per byte);
``tests/golden/test_fast_writers.py`` checks the two byte for byte on every dtype.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from numba import uint64

from npquant.golden.formats import check_dtype
from npquant.golden.hex_vector import FAST, LINES, periods, reach

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_NEWLINE = 10


def value_bits(arr: np.ndarray) -> np.ndarray:
    """The bit pattern of every value as an unsigned integer of the same size, flat, C order (a
    view when the array is C-contiguous in native byte order)."""
    a = np.asarray(arr)
    dt = check_dtype(a.dtype)
    native = np.ascontiguousarray(a, dtype=dt.newbyteorder("="))
    return native.reshape(-1).view(_UINT[dt.itemsize])


def hex_size(count: int, itemsize: int) -> int:
    """Bytes of the hex text of ``count`` values of ``itemsize`` bytes, ``count (2 itemsize + 1)``
    (each value: 2 digits per byte and a newline)."""
    return count * (2 * itemsize + 1)


def hex_range(bits: np.ndarray, out: np.ndarray, start: int, *, vector: bool | None = None
              ) -> None:
    """Fill ``out`` (1-D uint8) with characters ``[start, start + out.size)`` of the hex text of
    ``bits`` (``value_bits`` of an array). The range must lie inside the text (``hex_size``).
    ``vector``: make runs of 64 whole lines of 4- and 1-byte values in 512-bit registers
    (``hex_vector``; default: where that is fast, ``hex_vector.FAST``); the bytes are the same."""
    if bits.dtype not in _UINT.values() or bits.ndim != 1:
        raise TypeError(f"bits must be a 1-D unsigned array (value_bits), got {bits.dtype} "
                        f"{bits.shape}")
    if out.dtype != np.uint8 or out.ndim != 1:
        raise TypeError(f"out must be a 1-D uint8 array, got {out.dtype} {out.shape}")
    total = hex_size(bits.size, bits.itemsize)
    if start < 0 or start + out.size > total:
        raise ValueError(f"range [{start}, {start + out.size}) is outside the hex text of "
                         f"{total} bytes")
    _hex_range(bits, bits.itemsize, out, start, out.ctypes.data, sys.byteorder == "little",
               FAST if vector is None else bool(vector))


@numba.njit(cache=True, nogil=True, inline="always")
def _spread(x):
    # x < 2^32 -> byte k of the result holds nibble k of x (nibble 0 the least significant)
    t = uint64(x)
    t = (t | (t << uint64(16))) & uint64(0x0000FFFF0000FFFF)
    t = (t | (t << uint64(8))) & uint64(0x00FF00FF00FF00FF)
    return (t | (t << uint64(4))) & uint64(0x0F0F0F0F0F0F0F0F)


@numba.njit(cache=True, nogil=True, inline="always")
def _ascii(t):
    # each byte d < 16 -> '0' + d, plus 39 ('a' - '0' - 10) where d >= 10
    ge10 = ((t + uint64(0x0606060606060606)) >> uint64(4)) & uint64(0x0101010101010101)
    return t + uint64(0x3030303030303030) + ge10 * uint64(39)


@numba.njit(cache=True, nogil=True, inline="always")
def _digits8(x):
    # x < 2^32 -> its 8 hex digits as ASCII, most significant first in memory (little-endian
    # word: byte 0 is the first character): spread, reverse the 8 bytes, to ASCII.
    t = _spread(x)
    t = (t << uint64(32)) | (t >> uint64(32))
    t = ((t & uint64(0x0000FFFF0000FFFF)) << uint64(16)) | \
        ((t >> uint64(16)) & uint64(0x0000FFFF0000FFFF))
    t = ((t & uint64(0x00FF00FF00FF00FF)) << uint64(8)) | \
        ((t >> uint64(8)) & uint64(0x00FF00FF00FF00FF))
    return _ascii(t)


@numba.njit(cache=True, nogil=True, inline="always")
def _pairs4(x):
    # the 4 bytes b0..b3 of x (b0 the least significant) -> "h0 l0 h1 l1 h2 l2 h3 l3" in memory:
    # each byte's two digits, high first, the bytes in order; spread, swap each byte pair, ASCII.
    t = _spread(x)
    t = ((t & uint64(0x00FF00FF00FF00FF)) << uint64(8)) | \
        ((t >> uint64(8)) & uint64(0x00FF00FF00FF00FF))
    return _ascii(t)


@numba.njit(cache=True, nogil=True, inline="always")
def _put(out, pos, t, first, count):
    # out[pos:pos+count] = characters first..first+count-1 of the 8-character word t
    for i in range(count):
        out[pos + i] = (t >> uint64(8 * (first + i))) & uint64(255)


@numba.njit(cache=True, nogil=True)
def _line(bits, s, v, out, pos):
    # the whole line of value v (2s digits and the newline) into out[pos:pos + 2s + 1]
    x = uint64(bits[v])
    if s == 8:
        _put(out, pos, _digits8(x >> uint64(32)), 0, 8)
        _put(out, pos + 8, _digits8(x & uint64(0xFFFFFFFF)), 0, 8)
    else:
        _put(out, pos, _digits8(x), 8 - 2 * s, 2 * s)
    out[pos + 2 * s] = _NEWLINE


@numba.njit(cache=True, nogil=True)
def _groups4(bits, v, words):
    # 8 lines of 4-byte values = 72 bytes = 9 little-endian words. Line j is bytes 9j..9j+8,
    # so word k (bytes 8k..8k+7) holds the last k-1 digits of line k-1, its newline and the
    # first 8-k digits of line k (word 0: line 0's digits; word 8: line 7's last 7 and newline).
    nl = uint64(_NEWLINE)
    for g in range(words.size // 9):
        i, w = v + 8 * g, 9 * g
        d0, d1 = _digits8(uint64(bits[i])), _digits8(uint64(bits[i + 1]))
        d2, d3 = _digits8(uint64(bits[i + 2])), _digits8(uint64(bits[i + 3]))
        d4, d5 = _digits8(uint64(bits[i + 4])), _digits8(uint64(bits[i + 5]))
        d6, d7 = _digits8(uint64(bits[i + 6])), _digits8(uint64(bits[i + 7]))
        words[w] = d0
        words[w + 1] = nl | (d1 << uint64(8))
        words[w + 2] = (d1 >> uint64(56)) | (nl << uint64(8)) | (d2 << uint64(16))
        words[w + 3] = (d2 >> uint64(48)) | (nl << uint64(16)) | (d3 << uint64(24))
        words[w + 4] = (d3 >> uint64(40)) | (nl << uint64(24)) | (d4 << uint64(32))
        words[w + 5] = (d4 >> uint64(32)) | (nl << uint64(32)) | (d5 << uint64(40))
        words[w + 6] = (d5 >> uint64(24)) | (nl << uint64(40)) | (d6 << uint64(48))
        words[w + 7] = (d6 >> uint64(16)) | (nl << uint64(48)) | (d7 << uint64(56))
        words[w + 8] = (d7 >> uint64(8)) | (nl << uint64(56))


@numba.njit(cache=True, nogil=True)
def _groups1(bits, v, words):
    # 8 lines of 1-byte values = 24 bytes = 3 little-endian words; line j is bytes 3j..3j+2
    nl = uint64(_NEWLINE)
    m = uint64(0xFFFF)
    for g in range(words.size // 3):
        i = v + 8 * g
        lo = uint64(bits[i]) | (uint64(bits[i + 1]) << uint64(8)) | \
            (uint64(bits[i + 2]) << uint64(16)) | (uint64(bits[i + 3]) << uint64(24))
        hi = uint64(bits[i + 4]) | (uint64(bits[i + 5]) << uint64(8)) | \
            (uint64(bits[i + 6]) << uint64(16)) | (uint64(bits[i + 7]) << uint64(24))
        a, b = _pairs4(lo), _pairs4(hi)  # the digit pairs of values 0-3 and 4-7
        p0, p1, p2, p3 = a & m, (a >> uint64(16)) & m, (a >> uint64(32)) & m, a >> uint64(48)
        p4, p5, p6, p7 = b & m, (b >> uint64(16)) & m, (b >> uint64(32)) & m, b >> uint64(48)
        w = 3 * g
        words[w] = p0 | (nl << uint64(16)) | (p1 << uint64(24)) | (nl << uint64(40)) | \
            (p2 << uint64(48))
        words[w + 1] = nl | (p3 << uint64(8)) | (nl << uint64(24)) | (p4 << uint64(32)) | \
            (nl << uint64(48)) | ((p5 & uint64(255)) << uint64(56))
        words[w + 2] = (p5 >> uint64(8)) | (nl << uint64(8)) | (p6 << uint64(16)) | \
            (nl << uint64(32)) | (p7 << uint64(40)) | (nl << uint64(56))


@numba.njit(cache=True, nogil=True)
def _hex_range(bits, s, out, start, address, little, vector):
    # Contract: [start, start + out.size) lies inside the text of bits (s bytes per value);
    # address is out's address (for the word stores), little: a little-endian host; vector:
    # periods of 64 lines in 512-bit registers (hex_vector) first.
    width = 2 * s + 1
    n = out.size
    v, c = start // width, start % width
    pos = 0
    line = np.empty(17, dtype=np.uint8)
    if c != 0:  # the end of a line begun before this range
        _line(bits, s, v, line, 0)
        k = min(width - c, n)
        out[:k] = line[c:c + k]
        pos, v = k, v + 1
    if vector and little and (s == 4 or s == 1) and bits.size - v >= reach(s):
        count = min((n - pos) // (LINES * width), (bits.size - v - reach(s)) // LINES + 1)
        if count > 0:
            periods(bits, s, v, out, pos, count)
            pos, v = pos + count * LINES * width, v + count * LINES
    if little and (s == 4 or s == 1):
        # groups of 8 lines stored as 64-bit words: first single lines up to an 8-byte aligned
        # address (the width, 9 or 3, is odd, so at most 7 of them)
        while pos + width <= n and (address + pos) % 8 != 0:
            _line(bits, s, v, out, pos)
            pos, v = pos + width, v + 1
        groups = (n - pos) // (8 * width)
        if groups > 0:
            words = out[pos:pos + groups * 8 * width].view(np.uint64)
            if s == 4:
                _groups4(bits, v, words)
            else:
                _groups1(bits, v, words)
            pos, v = pos + groups * 8 * width, v + 8 * groups
    while pos + width <= n:  # whole lines
        _line(bits, s, v, out, pos)
        pos, v = pos + width, v + 1
    if pos < n:  # the start of a line the next range finishes
        _line(bits, s, v, line, 0)
        out[pos:] = line[:n - pos]
