"""The ``$readmemh`` text of 64 values at a time in 512-bit registers: one byte permutation,
one nibble select and one ASCII map per 64 characters of output.

Lines have a fixed width ``L = 2 s + 1`` (``npquant.golden.hex_kernel``), so 64 lines are a
*period* of ``64 L`` characters that starts on a line: 576 characters for 4-byte values (int32
accumulators), 192 for 1-byte values (int8 activations) — nearly all of an export's hex. Cut the
period into ``L`` chunks of 64 characters. Character ``p = 64 j + i`` of the period (chunk ``j``,
lane ``i``) is column ``c = p mod L`` of line ``k = p div L``:

    c = L - 1:  a newline;
    c <  L - 1: digit ``c`` (most significant first) of value ``k``, i.e. the high nibble
                (c even) or the low nibble (c odd) of the value's byte ``s - 1 - c div 2``
                (little-endian storage).

So chunk ``j`` is a fixed function of the 64 bytes loaded from value ``k0 = (64 j) div L`` on (the
lines it touches lie within 64 bytes of input): permute the loaded bytes so that lane ``i``
holds its source byte (a constant ``shufflevector``: one ``vpermb`` with AVX-512 VBMI), take the
high or low nibble per lane (a constant lane mask), map the nibble ``d`` to ASCII, ``'0' + d``
plus 39 where ``d > 9`` (``'a' - '0' - 10``), and put the newline in its lanes. Every constant
of the ``L`` chunks is computed here from those two formulas.

The IR is generic LLVM (shuffles, selects, adds), so it compiles and gives the same bytes on any
CPU; it is *fast* where the 64-lane byte shuffle is one instruction, which is what ``FAST``
says (AVX-512 BW and VBMI, as ``npquant.integer.fast.depthwise3x3_avx512`` checks), and
``hex_kernel`` takes it only then. ``tests/golden/test_fast_writers.py`` checks it byte for
byte against the NumPy table lookups on every CPU.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from npquant.integer.fast.depthwise3x3_avx512 import HAVE_AVX512

FAST = HAVE_AVX512  # AVX-512 F, BW and VBMI on the host numba compiles for
LANES = 64  # characters per chunk (bytes of a 512-bit register)
LINES = 64  # lines per period
_I1, _I8, _I32 = ir.IntType(1), ir.IntType(8), ir.IntType(32)
_V64I8 = ir.VectorType(_I8, LANES)


@numba.njit(cache=True, nogil=True)
def reach(size: int) -> int:
    """Values after a period's first that its loads read (64 bytes from the last chunk's first
    value): the caller keeps ``v + reach(size) <= count``."""
    width = 2 * size + 1
    return ((LANES * (width - 1)) // width) + LANES // size


def chunk_plan(size: int) -> list[tuple[int, list[int], list[bool], list[bool]]]:
    """For each chunk ``j`` of a period of ``size``-byte values: the first value it loads from,
    the source byte of every lane (relative to that value), the lanes that take the high nibble,
    and the newline lanes (module docstring)."""
    width = 2 * size + 1
    plan = []
    for j in range(width):
        first = (LANES * j) // width
        source, high, newline = [], [], []
        for i in range(LANES):
            k, c = divmod(LANES * j + i, width)
            if c == width - 1:
                source.append(0)
                high.append(False)
                newline.append(True)
                continue
            byte = size * (k - first) + size - 1 - c // 2
            if not 0 <= byte < LANES:
                raise AssertionError(f"lane {i} of chunk {j} reads byte {byte}")
            source.append(byte)
            high.append(c % 2 == 0)
            newline.append(False)
        plan.append((first, source, high, newline))
    return plan


def _codegen(size: int):
    plan = chunk_plan(size)

    def codegen(context, builder, signature, args):
        bits, v, out, pos = args
        src = builder.bitcast(cgutils.create_struct_proxy(signature.args[0])(
            context, builder, value=bits).data, _I8.as_pointer())
        dst = builder.bitcast(cgutils.create_struct_proxy(signature.args[2])(
            context, builder, value=out).data, _I8.as_pointer())
        first_byte = builder.mul(v, ir.Constant(v.type, size))
        four, fifteen = ir.Constant(_V64I8, [4] * LANES), ir.Constant(_V64I8, [15] * LANES)
        nine, zero = ir.Constant(_V64I8, [9] * LANES), ir.Constant(_V64I8, [48] * LANES)
        letters = ir.Constant(_V64I8, [48 + 39] * LANES)
        newline = ir.Constant(_V64I8, [10] * LANES)
        for j, (first, source, high, nl) in enumerate(plan):
            at = builder.add(first_byte, ir.Constant(v.type, size * first))
            ptr = builder.bitcast(builder.gep(src, [at]), _V64I8.as_pointer())
            x = builder.load(ptr, align=1)
            t = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(_I32, LANES), source))
            nib = builder.select(ir.Constant(ir.VectorType(_I1, LANES), high),
                                 builder.lshr(t, four), builder.and_(t, fifteen))
            digit = builder.add(nib, builder.select(builder.icmp_unsigned(">", nib, nine),
                                                    letters, zero))
            char = builder.select(ir.Constant(ir.VectorType(_I1, LANES), nl), newline, digit)
            o = builder.add(pos, ir.Constant(pos.type, LANES * j))
            builder.store(char, builder.bitcast(builder.gep(dst, [o]), _V64I8.as_pointer()),
                          align=1)
        return context.get_dummy_value()
    return codegen


def _period(size: int):
    def typer(typingctx, bits, v, out, pos):
        return types.void(bits, types.int64, out, types.int64), _codegen(size)
    typer.__name__ = typer.__qualname__ = f"hex_period_{size}"
    return intrinsic(typer)


_period4, _period1 = _period(4), _period(1)


@numba.njit(cache=True, nogil=True)
def periods(bits, size, v, out, pos, count):
    """Write ``count`` periods (``LINES`` lines each) of values ``v, v + 1, ...`` into
    ``out[pos:]``; ``size`` is 4 or 1 (``bits`` uint32 or uint8). The caller keeps the output
    inside ``out`` and ``v + LINES (count - 1) + reach(size) <= bits.size``."""
    width = 2 * size + 1
    for p in range(count):
        if size == 4:
            _period4(bits, np.int64(v + LINES * p), out, np.int64(pos + LINES * width * p))
        else:
            _period1(bits, np.int64(v + LINES * p), out, np.int64(pos + LINES * width * p))
