"""The 3x3 depthwise convolution for stride 1, column dilation 1, int8/uint8 inputs, on AVX-512
(BW and VBMI): several output rows per step, taps paired into ``vpdpwssd``, rows read in place.

Each output element is eq. 2 of ``npquant.integer.fast.depthwise3x3`` modulo 2^32 (exact under
the caller's operand bound), here on bytes ``u`` that are the stored uint8 values, or the stored
int8 values plus 128 (``Zx + 128`` then, as ``fast.vnni_gemm`` does: eq. 2 is unchanged when a
value and its zero point move together):

    acc[i, j] = start + sum_{a,b} wz[a, b] u_pad[i + a dh, j + b]                        (eq. 2)

``vpmaddwd`` multiplies 32 int16 lanes pairwise and adds each adjacent pair into one of 16 int32
lanes. Laying out, for 16 consecutive output columns ``j + l``, the int16 pairs

    H_r[l] = (u[r, j+l], u[r, j+l+1])      V_r[l] = (u[r, j+l+2], u[r+dh, j+l+2])
    S_r[l] = (u[r, j+l+2], 0)

(``r`` a padded input row), one output row takes five ``vpdpwssd`` instead of nine multiplies:

    acc = start + H_i (w00, w01) + H_{i+dh} (w10, w11) + H_{i+2dh} (w20, w21)
                + V_i (w02, w12) + S_{i+2dh} (w22, 0)

The pairs are built in registers from one 64-byte load of each input row (masked: the lanes
outside the image read ``Zx``, so there is no padded copy) by byte permutations that zero the
high bytes (``vpermt2b`` with AVX-512 VBMI). With ``dh == 1`` the step computes ``ROWS``
consecutive output rows: ``ROWS + 2`` input rows are loaded and permuted once each and feed up
to three output rows. The row step of a plane runs its last group shifted up to end at the last
row, and the column step of 16 stores its last chunk under a lane mask, so every plane size runs
the same code.

The float32 ties-to-even rule (ORT, fbgemm) is applied in registers: the integer of
``epilogue.f32_even_out``, ``clamp(rint(f32(f32(acc) m)), lo - zo, hi - zo) + zo``, computed as
``round_even(clamp(f32(f32(acc) m), lo - zo, hi - zo)) + zo`` (the same integer: the bounds are
integers and rounding is monotone; clamping first keeps ``vcvtps2dq`` in range). Any other rule
(or a call that wants the accumulators) stores the int32 sums and the caller requantizes them
per row.

The kernels are LLVM IR (numba ``intrinsic``s, as in ``fast.vnni_gemm``): numba's loops do not
produce this form (its own vectorizer gave 9 zero-extensions and 9 multiply-adds per 16 outputs,
``fast.depthwise3x3``). ``HAVE_AVX512`` is False on CPUs without AVX-512 F, BW and VBMI; then
``fast.depthwise3x3``'s portable loop runs instead.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from npquant import fixedpoint as fp
from npquant.integer.epilogue import requantize_row
from npquant.requant import KIND_FLOAT32

ROWS = 4  # output rows per step when dh == 1
LANES = 16  # output columns per step (int32 lanes of a 512-bit register)
WINDOW = 64  # bytes of an input row loaded per step (one 512-bit register)


def _host_has_avx512() -> bool:
    feats = llvm.get_host_cpu_features()
    return bool(feats.get("avx512f", False) and feats.get("avx512bw", False)
                and feats.get("avx512vbmi", False) and numba.config.CPU_NAME in (None, "host"))


HAVE_AVX512 = _host_has_avx512()

_I1, _I8, _I16, _I32, _I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
_F32 = ir.FloatType()
_V16I32, _V32I16, _V64I8 = (ir.VectorType(_I32, 16), ir.VectorType(_I16, 32),
                            ir.VectorType(_I8, 64))
_V16F32 = ir.VectorType(_F32, 16)


def _splat(builder, value, vty):
    one = builder.insert_element(ir.Constant(vty, None), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(_I32, vty.count),
                                                        [0] * vty.count))


def _data(context, builder, ty, arr, elem):
    ptr = cgutils.create_struct_proxy(ty)(context, builder, value=arr).data
    return builder.bitcast(ptr, elem.as_pointer())


def _mask(builder, bits, lanes):
    if bits.type.width != lanes:
        bits = builder.trunc(bits, ir.IntType(lanes))
    return builder.bitcast(bits, ir.VectorType(_I1, lanes))


def _masked_load(builder, ptr, mask, passthru):
    vty = passthru.type
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [ptr.type, _I32, mask.type, vty]),
        f"llvm.masked.load.v{vty.count}i{vty.element.width}.p0")
    return builder.call(fn, [ptr, ir.Constant(_I32, 1), mask, passthru])


def _masked_store(builder, value, ptr, mask):
    vty = value.type
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vty, ptr.type, _I32, mask.type]),
        f"llvm.masked.store.v{vty.count}i{vty.element.width}.p0")
    builder.call(fn, [value, ptr, ir.Constant(_I32, 1), mask])


def _pairs(builder, low, high, low_at, high_at):
    """The 32 int16 lanes ``(low[l + low_at], high[l + high_at])`` for l < 16, as unsigned
    bytes with zero high bytes (``high_at`` None: 0 in the high half), in one byte permutation
    with zero masking (``vpermb`` of one row, ``vpermt2b`` of two; AVX-512 VBMI)."""
    keep = [1, 0, 0 if high_at is None else 1, 0] * LANES
    if high is low or high_at is None:
        idx = [v for lane in range(LANES)
               for v in (lane + low_at, 0, lane + (high_at or 0), 0)]
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V64I8, [_V64I8, _V64I8]),
            "llvm.x86.avx512.permvar.qi.512")
        perm = builder.call(fn, [low, ir.Constant(_V64I8, idx)])
    else:  # vpermi2b: index k < 64 picks low[k], 64 + k picks high[k]
        idx = [v for lane in range(LANES) for v in (lane + low_at, 0, 64 + lane + high_at, 0)]
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V64I8, [_V64I8, _V64I8, _V64I8]),
            "llvm.x86.avx512.vpermi2var.qi.512")
        perm = builder.call(fn, [low, ir.Constant(_V64I8, idx), high])
    zero = ir.Constant(_V64I8, [0] * 64)
    return builder.bitcast(builder.select(ir.Constant(ir.VectorType(_I1, 64), keep), perm, zero),
                           _V32I16)


def _codegen(rows: int, fused: bool):
    """IR of one step: ``rows`` output rows times 16 columns (module docstring).

    Arguments: x (C-contiguous, int8/uint8), x_off (the plane's first element), h, w,
    y0 = i0 - pt (the input row of output row i0's first tap), c0 = j0 - pl (the input column of
    output column j0's first tap), dh, colmask (uint64: bit k set when input column c0 + k is
    inside [0, w)), zx (the stored Zx), the five int32
    weight pairs (w00,w01) (w10,w11) (w20,w21) (w02,w12) (w22,0), start (int32); then
    fused: m32, flo, fhi, fzo (float32), out, out_off, ow, outmask (lanes < ow - j0)
    or not: sums (int32), s_off, ow, outmask.
    """
    def codegen(context, builder, signature, args):
        (x_arr, x_off, h, w, y0, c0, dh, colmask, zx,
         p0, p1, p2, p3, p4, start) = args[:15]
        xty = signature.args[0]
        xp = _data(context, builder, xty, x_arr, _I8)
        madd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V16I32, [_V32I16, _V32I16]),
            "llvm.x86.avx512.pmaddw.d.512")
        colm = _mask(builder, colmask, 64)
        zxv = _splat(builder, builder.trunc(zx, _I8), _V64I8)
        cache = {}

        def row(k):
            """The padded input row y0 + k (dh == 1) or y0 + k dh (rows == 1): 64 bytes from
            column c0, Zx outside the image, as unsigned bytes."""
            if k in cache:
                return cache[k]
            step = ir.Constant(_I64, k) if rows > 1 else builder.mul(ir.Constant(_I64, k), dh)
            y = builder.add(y0, step)
            inside = builder.and_(builder.icmp_signed(">=", y, ir.Constant(_I64, 0)),
                                  builder.icmp_signed("<", y, h))
            ysafe = builder.select(inside, y, ir.Constant(_I64, 0))
            mask = builder.select(inside, colm, ir.Constant(colm.type, [0] * 64))
            off = builder.add(x_off, builder.add(builder.mul(ysafe, w), c0))
            # NOTE: lanes outside [0, w) are masked off: the load never touches them (c0 may
            # be negative), so the pointer is computed without inbounds
            ptr = builder.gep(xp, [off], inbounds=False)
            v = _masked_load(builder, builder.bitcast(ptr, _V64I8.as_pointer()), mask, zxv)
            if xty.dtype.signed:  # int8 + 128 as uint8
                v = builder.xor(v, ir.Constant(_V64I8, [0x80] * 64))
            cache[k] = v
            return v

        def weights(p):
            return builder.bitcast(_splat(builder, p, _V16I32), _V32I16)

        wh = [weights(p0), weights(p1), weights(p2)]
        wv, ws = weights(p3), weights(p4)
        startv = _splat(builder, start, _V16I32)
        hcache = {}

        def hpair(k):
            if k not in hcache:
                hcache[k] = _pairs(builder, row(k), row(k), 0, 1)
            return hcache[k]

        accs = []
        for s in range(rows):
            base = s if rows > 1 else 0
            acc = startv
            for a in range(3):
                acc = builder.add(acc, builder.call(madd, [hpair(base + a), wh[a]]))
            vp = _pairs(builder, row(base), row(base + 1), 2, 2)
            acc = builder.add(acc, builder.call(madd, [vp, wv]))
            sp = _pairs(builder, row(base + 2), None, 2, None)
            acc = builder.add(acc, builder.call(madd, [sp, ws]))
            accs.append(acc)
        if fused:
            m32, flo, fhi, fzo, out_arr, out_off, ow, outmask = args[15:]
            oty = signature.args[19]
            width = oty.dtype.bitwidth
            op = _data(context, builder, oty, out_arr, ir.IntType(width))
            # vcvtps2dq with the rounding given in the instruction: 8 = to nearest, ties to
            # even, exceptions suppressed (whatever the MXCSR holds)
            cvt = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_V16I32, [_V16F32, _V16I32, _I16, _I32]),
                "llvm.x86.avx512.mask.cvtps2dq.512")
            mv, lo, hi = (_splat(builder, v, _V16F32) for v in (m32, flo, fhi))
            zo = builder.fptosi(_splat(builder, fzo, _V16F32), _V16I32)
            om = _mask(builder, outmask, 16)
            for s, acc in enumerate(accs):
                # clamp, then round to even (module docstring: the same integer as rint first)
                r = builder.fmul(builder.sitofp(acc, _V16F32), mv)
                r = builder.select(builder.fcmp_ordered(">", r, lo), r, lo)  # max(r, lo)
                r = builder.select(builder.fcmp_ordered("<", r, hi), r, hi)  # min(., hi)
                q = builder.call(cvt, [r, ir.Constant(_V16I32, None), ir.Constant(_I16, -1),
                                       ir.Constant(_I32, 8)])
                q = builder.trunc(builder.add(q, zo), ir.VectorType(ir.IntType(width), 16))
                at = builder.add(out_off, builder.mul(ir.Constant(_I64, s), ow))
                _masked_store(builder, q, builder.gep(op, [at], inbounds=False), om)
        else:
            sums_arr, s_off, ow, outmask = args[15:]
            sp_ = _data(context, builder, signature.args[15], sums_arr, _I32)
            om = _mask(builder, outmask, 16)
            for s, acc in enumerate(accs):
                at = builder.add(s_off, builder.mul(ir.Constant(_I64, s), ow))
                _masked_store(builder, acc, builder.gep(sp_, [at], inbounds=False), om)
        return context.get_dummy_value()
    return codegen


def _fused_step(rows: int):
    def typer(typingctx, x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
              start, m32, flo, fhi, fzo, out, out_off, ow, outmask):
        sig = types.void(x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
                         start, m32, flo, fhi, fzo, out, out_off, ow, outmask)
        return sig, _codegen(rows, True)
    typer.__name__ = typer.__qualname__ = f"dw3x3_out_{rows}rows"
    return intrinsic(typer)


def _sums_step(rows: int):
    def typer(typingctx, x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
              start, sums, s_off, ow, outmask):
        sig = types.void(x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
                         start, sums, s_off, ow, outmask)
        return sig, _codegen(rows, False)
    typer.__name__ = typer.__qualname__ = f"dw3x3_sums_{rows}rows"
    return intrinsic(typer)


out_rows, out_row = _fused_step(ROWS), _fused_step(1)
sums_rows, sums_row = _sums_step(ROWS), _sums_step(1)


@numba.njit(cache=True)
def _lanes(first: int, stop: int, width: int) -> np.uint64:
    """The bit mask of lanes ``k`` with ``first <= k < stop`` among ``width`` (<= 64) lanes."""
    a, b = max(first, 0), min(stop, width)
    if b <= a:
        return np.uint64(0)
    one = np.uint64(1)
    upper = np.uint64(0xFFFFFFFFFFFFFFFF) if b == 64 else (one << np.uint64(b)) - one
    return upper ^ ((one << np.uint64(a)) - one)


@numba.njit(cache=True)
def plane(x, x_off, zx, pt, pl, dh, p, start, fused, m32, flo, fhi, fzo, out, out_off,
          sums):
    """One output plane: eq. 2 for every ``(i, j)`` of ``out``'s plane at ``out_off``
    (``(OH, OW)`` elements) from ``x``'s plane at ``x_off`` (``(H, W)``), requantized into
    ``out`` when ``fused``, else stored in ``sums`` (int32 ``(OH, OW)``).

    Contract: ``p`` the five int32 weight pairs of the channel; ``start`` eq. 2's start value
    for the unsigned bytes (``Zx + 128`` for int8 ``x``)."""
    h, w = x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    p0, p1, p2, p3, p4 = p[0], p[1], p[2], p[3], p[4]
    step = ROWS if dh == 1 and oh >= ROWS else 1
    for j0 in range(0, ow, LANES):
        c0 = j0 - pl
        colmask = _lanes(-c0, w - c0, WINDOW)
        outmask = _lanes(0, ow - j0, LANES)
        for i in range(0, oh, step):
            i0 = min(i, oh - step)  # the last group ends at the last row
            y0 = i0 - pt
            if fused:
                at = out_off + i0 * ow + j0
                if step == ROWS:
                    out_rows(x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
                             start, m32, flo, fhi, fzo, out, at, ow, outmask)
                else:
                    out_row(x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
                            start, m32, flo, fhi, fzo, out, at, ow, outmask)
            else:
                at = i0 * ow + j0
                if step == ROWS:
                    sums_rows(x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
                              start, sums, at, ow, outmask)
                else:
                    sums_row(x, x_off, h, w, y0, c0, dh, colmask, zx, p0, p1, p2, p3, p4,
                             start, sums, at, ow, outmask)


def weight_pairs(wz: np.ndarray) -> np.ndarray:
    """The int32 ``(O, 5)`` weight pairs ``(w00,w01) (w10,w11) (w20,w21) (w02,w12) (w22,0)``
    of ``wz (O, 9)`` (int16, row-major taps): low int16 half first (little-endian lanes)."""
    wz = np.concatenate([wz.astype(np.int64), np.zeros((wz.shape[0], 1), np.int64)], axis=1)
    low, high = [0, 3, 6, 2, 8], [1, 4, 7, 5, 9]  # tap 9 is the zero column
    pairs = (wz[:, low] & 0xFFFF) | ((wz[:, high] & 0xFFFF) << 16)
    return pairs.astype(np.uint32).view(np.int32)


@numba.njit(cache=True, parallel=True)
def depthwise3x3(x, zx, pairs, start, mult, pads, dh, want_acc, acc, kind, ties, qm, shift,
                 mscale, zo, lo, hi, chunks, out):
    """``fast.depthwise3x3._depthwise3x3`` on this module's planes: ``chunks`` shares of the
    ``(image, channel)`` planes, one per thread; ``pairs`` (O, 5) and ``start`` (O,) per output
    channel (``weight_pairs``; ``start`` for the unsigned bytes)."""
    n_len, o_len, oh_len, ow_len = out.shape
    c_len, h_len, w_len = x.shape[1], x.shape[2], x.shape[3]
    tasks = n_len * o_len
    flo, fhi, fzo = np.float32(lo - zo), np.float32(hi - zo), np.float32(zo)
    for ch in prange(chunks):
        plane_sums = np.empty((oh_len, ow_len), dtype=np.int32)
        for t in range(ch * tasks // chunks, (ch + 1) * tasks // chunks):
            n = t // o_len
            o = t % o_len
            c = o if qm.shape[0] > 1 else 0
            tie = ties[o] if ties.shape[0] > 1 else ties[0]
            fused = kind == KIND_FLOAT32 and tie == fp.TIES_EVEN and not want_acc
            sums = acc[n, o] if want_acc else plane_sums
            plane(x, (n * c_len + o // mult) * h_len * w_len, zx, pads[0], pads[1], dh,
                  pairs[o], start[o], fused, np.float32(mscale[c]), flo, fhi, fzo, out,
                  (n * o_len + o) * oh_len * ow_len, sums)
            if not fused:
                for i in range(oh_len):
                    requantize_row(sums[i], kind, tie, qm[c], shift[c], mscale[c], zo, lo, hi,
                                   out[n, o, i])
