"""MSE-optimal clipping: the range whose quantization error is smallest, by grid search.

Clipping a range ``[lo, hi]`` at a threshold ``t`` to ``[max(lo, -t), min(hi, t)]`` trades
rounding error (a smaller step ``S``) against clipping error (values beyond the range
saturate). With the fake-quantized value ``x^ = S (clamp(round(x / S) + Z, qmin, qmax) - Z)``
the error is

    E(t) = sum_i c_i (x_i - x^_i)^2          (c_i: the count of value x_i)

and the observer keeps ``argmin_t E(t)`` over the grid ``t = (k / grid) max(-lo, hi)``,
``k = 1..grid`` (a **grid search**, not golden section: ``E`` is not unimodal in ``t`` at 2-3
bits, where a golden-section search can stop in a local minimum). One threshold for both ends
leaves the shorter side of a lopsided range (``[-5, 1000]``) whole until ``t`` reaches it;
scaling both ends by one factor would clip it first. The qparams of each candidate come from
``from_range`` with the observer's scheme and method, so the error is measured on the grid the
model will use; under the power-of-two scheme each candidate's scale is rounded up to ``2^k``,
which makes the search a search over the power-of-two scales at and below the min/max one.

NOTE: squared error counts a clipped outlier in full. Clipping ``A`` at ``t`` costs
``(A - t)^2`` while the rounding error of ``N`` values on a grid of step ``S`` is about
``N S^2 / 12``, so MSE keeps a lone outlier until the bulk is large (tests/quant).
"""

from __future__ import annotations

import numpy as np

from npquant.profiles import QParamsMethod
from npquant.qparams import from_range

DEFAULT_GRID = 100


def fake_quant_error(values: np.ndarray, counts: np.ndarray | None, scale: np.ndarray,
                     zero_point: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """``sum_i c_i (x_i - x^_i)^2`` per row of ``values (C, n)`` (float64; ties to even).

    ``scale``/``zero_point`` have one entry per row; ``counts`` (``n``,) weights the columns
    (None: every value counts once).
    """
    s = np.asarray(scale, dtype=np.float64).reshape(-1, 1)
    z = np.asarray(zero_point, dtype=np.float64).reshape(-1, 1)
    q = np.clip(np.rint(values / s) + z, qmin, qmax)
    err = (values - s * (q - z)) ** 2
    if counts is not None:
        err = err * counts
    return err.sum(axis=1)


def mse_clip_range(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, bits: int,
                   signed: bool, scheme: str, narrow_range: bool,
                   method: QParamsMethod | str = QParamsMethod.TFLITE,
                   counts: np.ndarray | None = None, grid: int = DEFAULT_GRID
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``values (C, n)``: ``(max(lo, -t), min(hi, t))`` with the ``t`` of least
    error (module docstring). ``lo``/``hi`` are ``(C,)`` (the rows' min/max, 0 included). Ties
    keep the larger ``t`` (the least clipping).
    """
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid must be an int >= 1, got {grid!r}")
    v = np.asarray(values, dtype=np.float64)
    lo = np.minimum(np.asarray(lo, dtype=np.float64).reshape(-1), 0.0)
    hi = np.maximum(np.asarray(hi, dtype=np.float64).reshape(-1), 0.0)
    amax = np.maximum(-lo, hi)
    best_err = np.full(lo.shape, np.inf)
    best_t = amax.copy()
    for k in range(grid, 0, -1):
        t = amax * (k / grid)
        qp = from_range(np.maximum(lo, -t), np.minimum(hi, t), bits=bits, signed=signed,
                        scheme=scheme, narrow_range=narrow_range, method=method, axis=0)
        err = fake_quant_error(v, counts, qp.scale, qp.zero_point, qp.qmin, qp.qmax)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_t = np.where(better, t, best_t)
    return np.maximum(lo, -best_t), np.minimum(hi, best_t)
