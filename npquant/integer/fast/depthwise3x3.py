"""The fast 3x3 depthwise convolution for stride 1 (any dilation, any padding): the nine taps
summed in one vector loop over 16 output columns at a time, requantized in the same loop.

``depthwise_3x3`` runs ``fast.depthwise3x3_avx512`` instead when it applies
(``avx512_applies``: an AVX-512 BW + VBMI CPU, int8/uint8 inputs, column dilation 1), which
pairs the taps and reads the rows in place; the loop here is the portable kernel for the rest.

``fast.depthwise`` adds one tap at a time to a whole plane of int32 sums (nine loads and
stores of the plane); here each output element reads its nine inputs and leaves the loop as the
output integer:

    acc[i, j] = (bias - Zx sum_t wz_t) + sum_{a,b} wz[a, b] x_pad[i + a dh, j + b dw]     (eq. 2)

with ``wz = w - Zw`` (|wz| <= 255: int16, so LLVM multiplies with ``vpdpwssd`` / ``vpmaddwd``),
evaluated modulo 2^32: exact because the caller's operand bound proves the true value fits
int32. Each image plane is first copied into a buffer padded with ``Zx`` (real 0; a padded tap
adds ``(Zx - Zx) wz = 0`` to eq. 1, here ``Zx wz``, which the start value cancels), so the loop
has no borders. A row runs in chunks of exactly 16 columns, the last chunk shifted left to end
at the row's end (it recomputes a few columns with the same values): a constant trip count the
loop vectorizer turns into one 16-lane step, where a loop over a 32-column row would fall into
the scalar remainder of a 64-column unrolled vector loop.

The float32 ties-to-even rule (ORT, fbgemm) is requantized inside the loop
(``epilogue.f32_even_out``); every other rule (and a call that wants the accumulators) stores
the int32 plane and calls ``epilogue.requantize_row`` per row, the same per-element arithmetic
as the plain epilogue. A call runs on one thread per ``threads.DEPTHWISE_GRAIN`` outputs (at
most numba's count), each on an equal share of the planes.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from npquant import fixedpoint as fp
from npquant.integer.epilogue import f32_even_out, requantize_row
from npquant.integer.fast import depthwise3x3_avx512 as avx512
from npquant.integer.fast.threads import DEPTHWISE_GRAIN, threads_for
from npquant.requant import KIND_FLOAT32, RequantParams

CHUNK = 16  # output columns per vector step (16 int32 lanes of AVX-512)


@numba.njit(cache=True)
def _pad_plane(plane, zx, pt, pl, wp, buf):
    """``buf[(y + pt) Wp + z + pl] = plane[y, z]``, ``Zx`` everywhere else (the borders only
    are filled: the plane's rows overwrite the rest)."""
    h_len, w_len = plane.shape
    hp = buf.shape[0] // wp
    buf[:pt * wp + pl] = zx
    for y in range(h_len):
        base = (y + pt) * wp + pl
        dst = buf[base:base + w_len]
        src = plane[y]
        for z in range(w_len):
            dst[z] = src[z]
        buf[base + w_len:base + wp] = zx  # right border, then the next row's left border
    buf[(h_len + pt) * wp + pl:hp * wp] = zx


@numba.njit(cache=True)
def _plane(buf, wp, wz, start, dh, dw, fused, m32, flo, fhi, fzo, out_plane, sums):
    """One output plane from the padded plane ``buf`` (row stride ``Wp``): eq. 2 per element,
    ``start + sum_{a,b} wz[3 a + b] buf[(i + a dh) Wp + j + b dw]`` modulo 2^32, requantized
    into ``out_plane[i, j]`` when ``fused``, else stored in ``sums[i, j]`` (int32).

    NOTE: the whole plane in one call with the weights and offsets as scalars: called once per
    row, the same loop ran 3x slower. The indices are unsigned: with a signed ``q + off`` numba
    emits the negative-index wrap-around per element and LLVM then gathers the nine inputs
    byte by byte. ``wz`` is int16 and ``start`` int32, so LLVM keeps 32-bit lanes and multiplies
    with ``vpdpwssd`` / ``vpmaddwd`` (from an int64 start it widened the loop to 64-bit lanes).
    """
    oh_len, ow_len = out_plane.shape
    k0, k1, k2 = np.int32(wz[0]), np.int32(wz[1]), np.int32(wz[2])
    k3, k4, k5 = np.int32(wz[3]), np.int32(wz[4]), np.int32(wz[5])
    k6, k7, k8 = np.int32(wz[6]), np.int32(wz[7]), np.int32(wz[8])
    c1, c2 = np.uint64(dw), np.uint64(2 * dw)
    r1, r2 = np.uint64(dh * wp), np.uint64(2 * dh * wp)
    o4, o5, o7, o8 = r1 + c1, r1 + c2, r2 + c1, r2 + c2
    step = CHUNK if ow_len >= CHUNK else 1
    for i in range(oh_len):
        for jc in range(0, ow_len, step):
            j0 = min(jc, ow_len - step)  # the last chunk ends at the row's end
            base = np.uint64(i * wp + j0)
            # NOTE: two copies of the loop, so that each is branch-free and vectorizes
            if fused:
                for jj in range(step):
                    q = base + np.uint64(jj)
                    s = np.int32(start + k0 * np.int32(buf[q]) + k1 * np.int32(buf[q + c1])
                                 + k2 * np.int32(buf[q + c2]) + k3 * np.int32(buf[q + r1])
                                 + k4 * np.int32(buf[q + o4]) + k5 * np.int32(buf[q + o5])
                                 + k6 * np.int32(buf[q + r2]) + k7 * np.int32(buf[q + o7])
                                 + k8 * np.int32(buf[q + o8]))
                    out_plane[i, np.uint64(j0 + jj)] = f32_even_out(s, m32, flo, fhi, fzo)
            else:
                for jj in range(step):
                    q = base + np.uint64(jj)
                    sums[i, np.uint64(j0 + jj)] = np.int32(
                        start + k0 * np.int32(buf[q]) + k1 * np.int32(buf[q + c1])
                        + k2 * np.int32(buf[q + c2]) + k3 * np.int32(buf[q + r1])
                        + k4 * np.int32(buf[q + o4]) + k5 * np.int32(buf[q + o5])
                        + k6 * np.int32(buf[q + r2]) + k7 * np.int32(buf[q + o7])
                        + k8 * np.int32(buf[q + o8]))


@numba.njit(cache=True, parallel=True)
def _depthwise3x3(x, zx, wz, start, mult, pads, dh, dw, want_acc, acc, kind, ties, qm, shift,
                  mscale, zo, lo, hi, chunks, out):
    n_len, o_len, oh_len, ow_len = out.shape
    h_len, w_len = x.shape[2], x.shape[3]
    pt, pl = pads[0], pads[1]
    hp = max(h_len + pt, oh_len + 2 * dh)
    wp = max(w_len + pl, ow_len + 2 * dw)
    tasks = n_len * o_len
    flo, fhi, fzo = np.float32(lo - zo), np.float32(hi - zo), np.float32(zo)
    for ch in prange(chunks):  # one padded buffer per thread's share of the planes
        buf = np.empty(hp * wp, dtype=x.dtype)
        plane_sums = np.empty((oh_len, ow_len), dtype=np.int32)
        for t in range(ch * tasks // chunks, (ch + 1) * tasks // chunks):
            n = t // o_len
            o = t % o_len
            _pad_plane(x[n, o // mult], zx, pt, pl, wp, buf)
            c = o if qm.shape[0] > 1 else 0
            tie = ties[o] if ties.shape[0] > 1 else ties[0]
            fused = kind == KIND_FLOAT32 and tie == fp.TIES_EVEN and not want_acc
            sums = acc[n, o] if want_acc else plane_sums
            _plane(buf, wp, wz[o], start[o], dh, dw, fused, np.float32(mscale[c]), flo, fhi, fzo,
                   out[n, o], sums)
            if not fused:
                for i in range(oh_len):
                    requantize_row(sums[i], kind, tie, qm[c], shift[c], mscale[c], zo, lo, hi,
                                   out[n, o, i])


def depthwise_3x3(x: np.ndarray, w: np.ndarray, zx: int, zw: np.ndarray, bias: np.ndarray,
                  pads: tuple[int, int, int, int], dilation: tuple[int, int],
                  out_hw: tuple[int, int], requant: RequantParams, out_zero_point: int,
                  act_range: tuple[int, int], out_dtype: np.dtype, want_acc: bool
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(out, acc or None)`` of a stride-1 3x3 depthwise conv of the unpadded ``x (N, C, H, W)``
    with ``w (C m, 1, 3, 3)`` and pads ``(top, bottom, left, right)``.

    Contract: int8/uint8/int16 ``x``, int8/uint8 ``w``; zw, bias int64 ``(C m,)``; the exact sums
    fit int32 (the caller's operand bound); ``requant`` needs no domain check
    (``epilogue.needs_domain_check`` is False).
    """
    x = np.ascontiguousarray(x)
    o_len = w.shape[0]
    out = np.empty((x.shape[0], o_len) + tuple(out_hw), dtype=out_dtype)
    acc = np.empty(out.shape if want_acc else (0, 0, 0, 0), dtype=np.int32)
    kind, ties, qm, shift, mscale = requant.kernel_args(o_len)
    args = (np.int64(o_len // x.shape[1]), (np.int64(pads[0]), np.int64(pads[2])),
            np.int64(dilation[0]))
    tail = (want_acc, acc, kind, ties, qm, shift, mscale, np.int64(out_zero_point),
            np.int64(act_range[0]), np.int64(act_range[1]))
    with threads_for(out.size, DEPTHWISE_GRAIN):
        chunks = np.int64(numba.get_num_threads())
        if avx512_applies(x.dtype, dilation):
            # int8 becomes unsigned bytes by + 128, with Zx + 128 (module depthwise3x3_avx512)
            flip = 0x80 if x.dtype == np.int8 else 0
            _, start, pairs = _weights(w, zw, bias, zx + flip)
            avx512.depthwise3x3(x, np.int64(zx), pairs, start, *args, *tail,
                                chunks, out)
        else:
            wz, start, _ = _weights(w, zw, bias, zx)
            _depthwise3x3(x, np.int64(zx), wz, start, *args, np.int64(dilation[1]), *tail,
                          chunks, out)
    return out, (acc if want_acc else None)


def avx512_applies(x_dtype: np.dtype, dilation: tuple[int, int]) -> bool:
    """True when ``depthwise3x3_avx512`` runs the layer: an AVX-512 BW CPU, int8/uint8 inputs
    (the kernel permutes bytes) and column dilation 1 (its byte permutations are constants)."""
    return avx512.HAVE_AVX512 and np.dtype(x_dtype) != np.int16 and dilation[1] == 1


_WEIGHTS: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_MAX_WEIGHTS = 64


def _weights(w: np.ndarray, zw: np.ndarray, bias: np.ndarray, zx: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(wz, start, pairs)``: the int16 ``w - Zw`` ``(O, 9)`` (|wz| <= 255), eq. 2's int32
    start value ``bias - Zx sum_t wz_t`` modulo 2^32 (the sums are exact in int32) and the
    weight pairs of ``depthwise3x3_avx512.weight_pairs``, built once per
    (weights, zero points, bias): a model's layer on every call. The key holds the bytes."""
    key = (w.tobytes(), w.shape, w.dtype.str, zw.tobytes(), bias.tobytes(), int(zx))
    hit = _WEIGHTS.get(key)
    if hit is None:
        wz = w.reshape(w.shape[0], 9).astype(np.int16) - zw.astype(np.int16)[:, None]
        start = (bias - zx * wz.sum(axis=1, dtype=np.int64) + 2**31) % 2**32 - 2**31
        hit = (wz, start.astype(np.int32), avx512.weight_pairs(wz))
        if len(_WEIGHTS) >= _MAX_WEIGHTS:
            _WEIGHTS.pop(next(iter(_WEIGHTS)))  # the oldest
        _WEIGHTS[key] = hit
    return hit
