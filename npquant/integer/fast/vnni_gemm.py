"""The fast int8 GEMM core: ``C += A B`` on packed operands with AVX-512 VNNI ``vpdpbusd``.

``vpdpbusd acc, u, s`` multiplies 64 unsigned bytes ``u`` by 64 signed bytes ``s`` and adds each
group of 4 adjacent products to one of 16 int32 lanes of ``acc``, exactly and wrapping modulo 2^32
(the non-saturating form; ``vpdpbusds`` would saturate). That is eq. 2 of
``npquant.integer.accumulator`` modulo 2^32 on the *stored* integers, four reduction steps at a
time, so the kernels here follow the plan of ``npquant.integer.gemm._gemm_i32``: raw sums that may
wrap, the zero-point terms from row and column sums, and a result that is exact whenever the
operand bound proves the true value of eq. 1 fits int32 (the callers only come here then).

Operands must be u8 x s8. Stored int8 activations become u8 by ``a + 128`` (``Za + 128``), uint8
weights become s8 by ``w - 128`` (``Zw - 128``): eq. 2 is unchanged by shifting a value and its
zero point together. int16 activations do not fit and take the int16 kernels of ``gemm``.

Packing (the layout the inner loop wants):

* ``A`` (rows broadcast): ``(Mpad, Kpad)`` bytes, rows padded to ``MR``, K to a multiple of 4
  with zeros (a zero byte times anything adds 0 to the raw sum; the row/column sums and ``K`` of
  eq. 2 use the real K).
* ``B`` (columns in vector lanes): panels of ``NR = 16 NV`` columns, each panel
  ``(Kpad / 4, NR, 4)`` bytes: ``bp[((panel Kpad/4 + kk) NV + v) 64 + 4 j + t] =
  B[4 kk + t, panel NR + 16 v + j]``, so one 64-byte load holds 4 consecutive k of 16 columns.

The micro-kernel ``vnni_tile_*`` is written in LLVM IR (a numba ``intrinsic``): ``MR x NV``
vector accumulators (6 x 4 = 24 zmm registers) stay in registers for the whole k loop; each k
step loads NV panel vectors, broadcasts 4 bytes of each of the MR rows of A, and issues
``MR NV`` vpdpbusd (24 instructions, 1536 multiply-adds, for 4 loads and 6 broadcasts).
LLVM's own vectorizer does not produce this form from a numba loop (see docs/kernels.md).
``HAVE_VNNI`` is False on CPUs without AVX-512 VNNI; then none of this is called.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from npquant.integer.epilogue import requantize_row_channels, requantize_row_channels_float_bias
from npquant.integer.fast.threads import GEMM_GRAIN, threads_for
from npquant.requant import RequantParams

MR = 6  # rows of A per micro-tile
NV = 4  # 16-lane vectors per micro-tile row
NR = 16 * NV  # columns of B per micro-tile (one packed panel)
_NC_PANELS = 4  # panels per cache block of B (NR * 4 columns, Kpad * 256 bytes in L2)


def _host_has_vnni() -> bool:
    feats = llvm.get_host_cpu_features()
    cpu = numba.config.CPU_NAME
    return bool(feats.get("avx512f", False) and feats.get("avx512vnni", False)
                and cpu in (None, "host"))


HAVE_VNNI = _host_has_vnni()


def _tile_codegen(a_unsigned: bool, overwrite: bool = False):
    """IR of one micro-tile: ``C[r, 16 v + j] += sum_k A[r, k] B[k, 16 v + j]`` over kc4 k-steps
    (``overwrite``: ``C = ...``, the accumulators start at 0 instead of C's values, so C needs
    no zeroing pass first).

    Arguments (flat C-contiguous arrays, int64 offsets in elements): a, a_off, lda, b, b_off,
    kc4, c (int32), c_off, ldc. ``a_unsigned`` says which operand holds the u8 bytes.
    """
    def codegen(context, builder, signature, args):
        a_arr, a_off, lda, b_arr, b_off, kc4, c_arr, c_off, ldc = args
        aty, bty, cty = signature.args[0], signature.args[3], signature.args[6]
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        v16i32, v64i8 = ir.VectorType(i32, 16), ir.VectorType(i8, 64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v16i32, [v16i32, v64i8, v64i8]),
            "llvm.x86.avx512.vpdpbusd.512")
        ints = [context.cast(builder, v, t, types.int64) for v, t in
                ((a_off, signature.args[1]), (lda, signature.args[2]), (b_off, signature.args[4]),
                 (kc4, signature.args[5]), (c_off, signature.args[7]), (ldc, signature.args[8]))]
        a_off, lda, b_off, kc4, c_off, ldc = ints
        def data(arr, ty, elem):
            ptr = cgutils.create_struct_proxy(ty)(context, builder, value=arr).data
            return builder.bitcast(ptr, elem.as_pointer())

        a_ptr, b_ptr, c_ptr = data(a_arr, aty, i8), data(b_arr, bty, i8), data(c_arr, cty, i32)
        slots = [[cgutils.alloca_once(builder, v16i32) for _ in range(NV)] for _ in range(MR)]
        c_addr = [[None] * NV for _ in range(MR)]
        for r in range(MR):
            row = builder.add(c_off, builder.mul(ir.Constant(i64, r), ldc))
            for v in range(NV):
                p = builder.gep(c_ptr, [builder.add(row, ir.Constant(i64, 16 * v))])
                c_addr[r][v] = builder.bitcast(p, v16i32.as_pointer())
                start = ir.Constant(v16i32, [0] * 16) if overwrite else \
                    builder.load(c_addr[r][v], align=4)
                builder.store(start, slots[r][v])
        a_rows = [builder.gep(a_ptr, [builder.add(a_off, builder.mul(ir.Constant(i64, r), lda))])
                  for r in range(MR)]
        b_base = builder.gep(b_ptr, [b_off])
        zero_mask = ir.Constant(ir.VectorType(i32, 16), [0] * 16)
        with cgutils.for_range(builder, kc4) as loop:
            kk = loop.index
            bstep = builder.mul(kk, ir.Constant(i64, 64 * NV))
            bvec = []
            for v in range(NV):
                p = builder.gep(b_base, [builder.add(bstep, ir.Constant(i64, 64 * v))])
                bvec.append(builder.load(builder.bitcast(p, v64i8.as_pointer()), align=1))
            astep = builder.mul(kk, ir.Constant(i64, 4))
            for r in range(MR):
                p = builder.bitcast(builder.gep(a_rows[r], [astep]), i32.as_pointer())
                word = builder.load(p, align=1)
                one = builder.insert_element(ir.Constant(v16i32, None), word, ir.Constant(i32, 0))
                splat = builder.bitcast(builder.shuffle_vector(one, one, zero_mask), v64i8)
                for v in range(NV):
                    u, s = (splat, bvec[v]) if a_unsigned else (bvec[v], splat)
                    acc = builder.call(fn, [builder.load(slots[r][v]), u, s])
                    builder.store(acc, slots[r][v])
        for r in range(MR):
            for v in range(NV):
                builder.store(builder.load(slots[r][v]), c_addr[r][v], align=4)
        return context.get_dummy_value()
    return codegen


@intrinsic
def vnni_tile_a_unsigned(typingctx, a, a_off, lda, b, b_off, kc4, c, c_off, ldc):
    """Micro-tile with A holding u8 (broadcast) and B packed s8: fully-connected ``x w^T``."""
    sig = types.void(a, a_off, lda, b, b_off, kc4, c, c_off, ldc)
    return sig, _tile_codegen(True)


@intrinsic
def vnni_tile_b_unsigned_set(typingctx, a, a_off, lda, b, b_off, kc4, c, c_off, ldc):
    """Micro-tile with A holding s8 (broadcast) and B packed u8, overwriting its C tile:
    convolution ``W cols`` (the whole reduction in one call, so C needs no zeroing first)."""
    sig = types.void(a, a_off, lda, b, b_off, kc4, c, c_off, ldc)
    return sig, _tile_codegen(False, overwrite=True)


def runs_exactly(activation_dtype: np.dtype, plan) -> bool:
    """True when the VNNI kernels compute the exact accumulators for operands with this
    ``npquant.integer.accumulator.Plan``: a VNNI CPU, int8/uint8 activations (the kernels take
    bytes), and a plan that proves the sums exact in int32 (eq. 2 modulo 2^32 is then exact)."""
    return HAVE_VNNI and np.dtype(activation_dtype) != np.int16 and plan.kind == "exact" \
        and plan.fits_int32


def padded(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return (n + m - 1) // m * m


@numba.njit(cache=True, parallel=True)
def pack_rows(a, out):
    """``out[r, k] = a[r, k]`` as bytes (the value wraps to the byte type), zeros elsewhere;
    returns the row sums ``sum_k a[r, k]`` (int64, eq. 2's ``sum a`` term).

    Contract: a (M, K) int; out (Mpad, Kpad) uint8/int8 with Mpad >= M, Kpad >= K."""
    m_len, k_len = a.shape
    sums = np.zeros(m_len, dtype=np.int64)
    out[m_len:, :] = 0
    for r in prange(m_len):
        src = a[r]
        dst = out[r]
        s = 0
        for k in range(k_len):
            dst[k] = src[k]
            s += src[k]
        sums[r] = s
        dst[k_len:] = 0
    return sums


@numba.njit(cache=True, parallel=True)
def pack_panels(bt, out):
    """Pack ``B = bt^T`` (``bt`` (N, K): one row per column of B) into panels of NR columns,
    writing ``out`` in order; returns the column sums ``sum_k bt[n, k]`` (int64).

    Contract: bt (N, K) int holding byte values; out flat uint8/int8 of length
    ``padded(N, NR) * padded(K, 4)``."""
    n_len, k_len = bt.shape
    k4 = (k_len + 3) // 4
    sums = np.zeros(n_len, dtype=np.int64)
    for panel in prange((n_len + NR - 1) // NR):
        i = panel * k4 * NR * 4
        for kk in range(k4):
            for col in range(NR):
                n = panel * NR + col
                for t in range(4):
                    k = 4 * kk + t
                    if n < n_len and k < k_len:
                        v = bt[n, k]
                        out[i] = v
                        sums[n] += v
                    else:
                        out[i] = 0
                    i += 1
    return sums


@numba.njit(cache=True, parallel=True)
def gemm_u8s8(ap, bp, kpad, c):
    """Raw ``C = A B`` (wrapping int32) for u8 ``ap (Mpad, Kpad)`` and packed s8 ``bp``.

    Contract: ap C-contiguous (Mpad, Kpad), Mpad % MR == 0, Kpad % 4 == 0; bp from
    ``pack_panels`` with the same Kpad; c int32 (Mpad, Npad), Npad % NR == 0 (zeroed here).
    Cache blocking: _NC_PANELS panels of B (Kpad NR _NC_PANELS bytes) stay in L2 while every
    micro-row block of A (MR Kpad bytes, in L1) passes them; the row blocks run in parallel.
    """
    m_pad, n_pad = c.shape
    k4 = kpad // 4
    n_panels = n_pad // NR
    m_tiles = m_pad // MR
    c[:] = 0
    af = ap.reshape(ap.size)
    cf = c.reshape(c.size)
    for p0 in range(0, n_panels, _NC_PANELS):
        p1 = min(p0 + _NC_PANELS, n_panels)
        for mt in prange(m_tiles):
            for p in range(p0, p1):
                vnni_tile_a_unsigned(af, mt * MR * kpad, kpad, bp, p * k4 * NR * 4, k4,
                                     cf, mt * MR * n_pad + p * NR, n_pad)


@numba.njit(cache=True, parallel=True)
def finish_gemm(c, row_sum, col_sum, za, zw, bias, k_len, out, want_acc, q, want_q, kind, ties,
                qm, shift, mult, term, zo, lo, hi):
    """Eq. 2 modulo 2^32: ``acc[m, n] = C[m, n] - Zw[n] row_sum[m] - Za col_sum[n] + K Za Zw[n]
    + bias[n]`` (exact when eq. 1 fits int32, the caller's bound), stored in ``out`` when
    ``want_acc``, and requantized into ``q`` when ``want_q`` (``requantize_row_channels``;
    with a float bias ``term`` of length N, ``requantize_row_channels_float_bias`` of the row
    without ``bias``, which then also stays out of ``out``: the caller adds it back).

    Contract: c int32 (>= M, >= N); row_sum (M,), col_sum/zw/bias (N,) int64; out int32 (M, N)
    or a dummy; q (M, N) of the output dtype or a dummy; requantization arguments as
    ``requantize_row_channels``. Every term is reduced to int32 first, so the row loop is int32
    arithmetic (wrapping, exact modulo 2^32) that vectorizes.
    """
    m_len, n_len = q.shape if want_q else out.shape
    const = np.empty(n_len, dtype=np.int32)
    zw32 = np.empty(n_len, dtype=np.int32)
    for n in range(n_len):
        const[n] = np.int32(bias[n] - za * col_sum[n] + k_len * za * zw[n])
        zw32[n] = np.int32(zw[n])
    for m in prange(m_len):
        rs = np.int32(row_sum[m])
        row = np.empty(n_len, dtype=np.int32)
        cm = c[m]
        for n in range(n_len):
            row[n] = np.int32(cm[n] - zw32[n] * rs + const[n])
        if want_acc:
            out[m, :] = row
        if want_q and term.shape[0] > 0:
            requantize_row_channels_float_bias(row, ties, mult, term, zo, lo, hi, q[m])
        elif want_q:
            requantize_row_channels(row, kind, ties, qm, shift, mult, zo, lo, hi, q[m])


def to_u8(a: np.ndarray, za: int) -> tuple[np.ndarray, int]:
    """Stored int8/uint8 activations as uint8 and the matching zero point (int8: ``+128``)."""
    if a.dtype == np.uint8:
        return a, za
    return (a.view(np.uint8) ^ np.uint8(0x80)), za + 128


def to_s8(w: np.ndarray, zw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored int8/uint8 weights as int8 and the matching zero points (uint8: ``-128``)."""
    if w.dtype == np.int8:
        return w, zw
    return (w ^ np.uint8(0x80)).view(np.int8), zw - 128


def gemm_exact_vnni(a: np.ndarray, w: np.ndarray, za: int, zw: np.ndarray, bias: np.ndarray,
                    *, requant: RequantParams | None = None, out_zero_point: int = 0,
                    act_range: tuple[int, int] = (0, 0), out_dtype: np.dtype | None = None,
                    want_acc: bool = True,
                    float_bias: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> np.ndarray | tuple[np.ndarray | None, np.ndarray]:
    """Accumulators ``(M, N)`` int32 of eq. 1 for int8/uint8 ``a (M, K)``, ``w (N, K)``.

    With ``requant`` returns ``(acc or None, out)``: the requantized output of ``out_dtype`` as
    ``requantize_accumulators(acc, requant, channel_axis=1, ...)`` computes it, fused into the
    last pass (and ``acc`` only when ``want_acc``); ``float_bias = (bias, term)``: the float32
    bias term of ``npquant.integer.bias`` instead of the integer bias in the requantization.
    Contract: HAVE_VNNI; the operand bound proves eq. 1 fits int32 (then the result is exact);
    ``requant`` needs no domain check (``epilogue.needs_domain_check``).
    """
    au, za_u = to_u8(np.ascontiguousarray(a), za)
    m_len, k_len = au.shape
    n_len = w.shape[0]
    kpad = padded(max(k_len, 1), 4)
    bp, col_sum, zw_s = _packed_weights(np.ascontiguousarray(w), np.asarray(zw), kpad)
    with threads_for(m_len * n_len * k_len, GEMM_GRAIN):
        ap = np.empty((padded(m_len, MR), kpad), dtype=np.uint8)
        row_sum = pack_rows(au, ap)
        c = np.empty((ap.shape[0], padded(n_len, NR)), dtype=np.int32)
        gemm_u8s8(ap, bp, kpad, c)
        return _finish(c, row_sum, col_sum, za_u, zw_s, bias, k_len, m_len, n_len, requant,
                       out_zero_point, act_range, out_dtype, want_acc, float_bias)


_PACKED: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_MAX_PACKED = 64


def _packed_weights(w: np.ndarray, zw: np.ndarray, kpad: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(panels, column sums, s8 zero points)`` of the weights, packed on their first use and
    reused (a model's layer packs once). The key holds the weight bytes themselves, so changed
    weights never meet a stale pack."""
    key = (w.tobytes(), w.shape, w.dtype.str, zw.tobytes(), kpad)
    hit = _PACKED.get(key)
    if hit is None:
        ws, zw_s = to_s8(w, zw)
        bp = np.empty(padded(w.shape[0], NR) * kpad, dtype=np.int8)
        with threads_for(bp.size * 64, GEMM_GRAIN):
            col_sum = pack_panels(ws, bp)
        hit = (bp, col_sum, zw_s.astype(np.int64))
        if len(_PACKED) >= _MAX_PACKED:
            _PACKED.pop(next(iter(_PACKED)))  # the oldest
        _PACKED[key] = hit
    return hit


def _finish(c, row_sum, col_sum, za_u, zw_s, bias, k_len, m_len, n_len, requant,
            out_zero_point, act_range, out_dtype, want_acc, float_bias=None):
    """eq. 2's zero-point terms and the fused requantization (``finish_gemm``)."""
    want_q = requant is not None
    want_acc = want_acc or not want_q
    acc = np.empty((m_len, n_len) if want_acc else (1, 1), dtype=np.int32)
    q = np.empty((m_len, n_len) if want_q else (1, 1), dtype=out_dtype if want_q else np.int8)
    if want_q:
        params = requant.kernel_args(n_len)
    else:
        one = np.zeros(1, dtype=np.int64)
        params = (np.int64(0), one, one, one, np.zeros(1, dtype=np.float64))
    term = np.zeros(0, dtype=np.float64)
    if float_bias is not None and want_q:
        term = np.asarray(float_bias[1], dtype=np.float64)
        bias = np.zeros_like(bias)  # the sums without it; its float term comes in the epilogue
    finish_gemm(c, row_sum, col_sum, np.int64(za_u), zw_s, bias, np.int64(k_len),
                acc, want_acc, q, want_q, *params, term, np.int64(out_zero_point),
                np.int64(act_range[0]), np.int64(act_range[1]))
    if term.shape[0] and want_acc:  # the accumulators' contract: bias + sum
        acc += np.asarray(float_bias[0], dtype=np.int64).astype(np.int32)[None, :]
    if not want_q:
        return acc
    return (acc if want_acc else None), q
