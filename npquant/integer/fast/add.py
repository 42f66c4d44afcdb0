"""The fast integer ADD (TFLite scheme): both input rescalings, the sum, the output
requantization and the clamp in one loop, instead of a loop for the sums and NumPy passes (with
int64 temporaries) for the rest.

Per element, with the multipliers of ``npquant.integer.elementwise``'s module docstring:

    acc = M_a ((a - Za) 2^ls) + M_b ((b - Zb) 2^ls)            (each rounded by the input rule)
    out = clamp(Z_out + M_out acc, lo, hi)                               (the profile's add rule)

computed with the same scalar primitives (``npquant.requant.requantize_scalar``) as the plain
path, so the numbers are the same; the loop runs over flat, equally long inputs, in parallel
above ``threads.POOL_GRAIN`` elements per thread.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from npquant.integer.fast.threads import POOL_GRAIN, threads_for
from npquant.requant import RequantParams, requantize_scalar


@numba.njit(cache=True, parallel=True)
def _add_fused(a, b, za, zb, left_shift, kind, ties, qa, sha, ma, qb, shb, mb,
               okind, oties, qo, sho, mo, zo, lo, hi, want_acc, acc, out):
    for i in prange(a.shape[0]):
        va = (np.int64(a[i]) - za) << left_shift
        vb = (np.int64(b[i]) - zb) << left_shift
        s = (requantize_scalar(va, kind, ties, qa, sha, ma)
             + requantize_scalar(vb, kind, ties, qb, shb, mb))
        if want_acc:
            acc[i] = s
        y = requantize_scalar(s, okind, oties, qo, sho, mo) + zo
        out[i] = min(max(y, lo), hi)


def add_tflite(af: np.ndarray, bf: np.ndarray, za: int, zb: int, left_shift: int,
               pa: RequantParams, pb: RequantParams, po: RequantParams, zo: int,
               act_range: tuple[int, int], out_dtype: np.dtype, want_acc: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(out, acc or None)`` of the TFLite-scheme ADD of the flat inputs ``af``, ``bf``.

    Contract: as ``elementwise._add_inputs`` (``(x - z) 2^ls`` fits int32, M_a, M_b <= 1/2), one
    multiplier per params, and ``po`` needs no requantization domain check
    (``epilogue.needs_domain_check`` is False): its product never leaves int32."""
    n = af.shape[0]
    out = np.empty(n, dtype=out_dtype)
    acc = np.empty(n if want_acc else 0, dtype=np.int32)
    with threads_for(n, POOL_GRAIN):
        _add_fused(af, bf, np.int64(za), np.int64(zb), np.int64(left_shift), pa.kind_code,
                   pa.ties_code, int(pa.quantized_multiplier[0]), int(pa.shift[0]),
                   float(pa.multiplier[0]), int(pb.quantized_multiplier[0]), int(pb.shift[0]),
                   float(pb.multiplier[0]), po.kind_code, int(po.channel_ties(1)[0]),
                   int(po.quantized_multiplier[0]), int(po.shift[0]), float(po.multiplier[0]),
                   np.int64(zo), np.int64(act_range[0]), np.int64(act_range[1]), want_acc, acc,
                   out)
    return out, (acc if want_acc else None)
