"""Histogram observers: a running histogram of the data, then a clipped range chosen from it.

All four keep the same running histogram, built by PyTorch's ``HistogramObserver`` rule
(``torch/ao/quantization/observer.py``), in float32 as PyTorch does:

* the first batch: ``bins`` equal bins over ``[min(x), max(x)]`` (``torch.histc``: bin
  ``floor(f32(f32(x - lo) bins) / f32(hi - lo))``, the last bin closed; ``lo == hi`` widens the
  edges to ``[lo - 1, hi + 1]``);
* a later batch with the range unchanged adds its histogram; one that widens the range to
  ``[lo', hi']`` histograms itself there, and the old histogram is moved onto the new bins by
  splitting each old bin into 16 equal parts (``upsample_rate``) and adding each part to the new
  bin holding its midpoint.

They differ in the range they pick (``clip_range``):

* ``HistogramObserver`` — PyTorch's L2 search (``_non_linear_param_search``, from caffe2's
  ``NormMinimization``): move the start or end bin inwards, whichever leaves less of the mass
  ``alpha``/``1 - beta`` (steps of ``1e-5``), while the estimated L2 error of quantizing the
  histogram to ``2^b`` levels over ``[start, end]`` keeps decreasing. The error of source bin
  ``[b0, b1]`` (density ``d = count / width``) against the destination bin centre ``c`` is
  ``d ((b1 - c)^3 - (b0 - c)^3) / 3`` (the integral of ``d (x - c)^2``).
* ``PercentileObserver`` — ``[P_{100-p}, P_p]`` of the histogram (linear within a bin).
* ``HistogramMSEObserver`` — the grid search of ``npquant.quant.clipping`` with the bin centres
  weighted by their counts.
* ``KLObserver`` — TensorRT's entropy calibration (Migacz, "8-bit inference with TensorRT",
  GTC 2017): on a histogram of ``|x|`` over ``[0, max|x|]``, for each threshold bin ``i`` from
  ``L`` to ``bins`` let ``P`` be the first ``i`` bins with the outliers added to the last, ``Q``
  the first ``i`` bins merged into ``L`` levels and spread back over their non-empty bins; keep
  the ``i`` minimizing ``KL(P || Q) = sum P log(P / Q)`` and clip at ``|x| <= i w``.
  ``L = 2^(b-1)`` levels (TensorRT: 128 at 8 bits), or ``2^b`` for non-negative data under the
  asymmetric scheme, where ``[0, t]`` gets all the levels.

Where npquant differs from PyTorch: the L2 search uses ``2^bits`` destination levels (PyTorch
uses ``2^8`` for every 8-bit dtype, even with a narrower ``quant_min``/``quant_max``), NaN/inf
raise instead of being dropped with a warning, and the sum of the per-bin errors is taken in
float64 (PyTorch sums float32 in its own order; only a near-tie between two candidates' errors
could tell them apart).
"""

from __future__ import annotations

import numpy as np

from npquant.profiles import QParamsMethod
from npquant.qparams import _fma_to_float32
from npquant.quant.clipping import DEFAULT_GRID, mse_clip_range
from npquant.quant.observers import Observer, _checked_float

f32 = np.float32
UPSAMPLE_RATE = 16  # PyTorch's HistogramObserver.upsample_rate


def histc(x: np.ndarray, bins: int, lo: np.float32, hi: np.float32) -> np.ndarray:
    """``torch.histc(x, bins, min=lo, max=hi)`` for float32 ``x``: float32 counts; values outside
    ``[lo, hi]`` are ignored; ``lo == hi`` widens the edges by 1 on each side."""
    lo, hi = f32(lo), f32(hi)
    if lo == hi:
        lo, hi = f32(lo - f32(1)), f32(hi + f32(1))
    x = x[(x >= lo) & (x <= hi)]
    pos = np.floor((x - lo) * f32(bins) / (hi - lo)).astype(np.int64)
    pos[pos == bins] = bins - 1  # the last bin is closed: hi belongs to it
    return np.bincount(pos, minlength=bins).astype(f32)


def linspace32(start: np.float32, end: np.float32, steps: int) -> np.ndarray:
    """``torch.linspace`` on the CPU in float32, element for element.

    ``step = f32(end - start) / (steps - 1)``; element ``i`` is ``fma(step, i, start)`` for
    ``i < steps // 2`` and ``fma(-step, steps - 1 - i, end)`` after, each rounded once to float32
    (the compiled kernel contracts ``start + step * i`` to a fused multiply-add; measured: with
    two roundings 814 of 2049 elements differ from PyTorch's, with one none).
    """
    start, end = f32(start), f32(end)
    step = f32(f32(end - start) / f32(steps - 1))
    i = np.arange(steps)
    first = _fma_to_float32(i.astype(f32), np.asarray(step), np.asarray(start, np.float64))
    second = _fma_to_float32((steps - 1 - i).astype(f32), np.asarray(-step),
                             np.asarray(end, np.float64))
    return np.where(i < steps // 2, first, second).astype(f32)


class _HistogramBase(Observer):
    """The running histogram (module docstring); ``histogram``, ``hist_min``, ``hist_max`` are
    float32, ``min_val``/``max_val`` the range seen (as in every observer)."""

    def __init__(self, *, bins: int = 2048, **kw) -> None:
        super().__init__(**kw)
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise ValueError(f"bins must be an int >= 2, got {bins!r}")
        self.bins = int(bins)
        self.histogram: np.ndarray | None = None
        self.hist_min = self.hist_max = f32(0)

    def _values(self, arr: np.ndarray) -> tuple[np.ndarray, np.float32, np.float32]:
        """The values the histogram is made of and their range (``|x|`` and ``[0, max]`` for
        KL)."""
        return arr, f32(arr.min()), f32(arr.max())

    def observe(self, x) -> None:
        """Add one batch to the histogram (float32, PyTorch's rule)."""
        arr, lo, hi = self._values(_checked_float(x, self.name).astype(f32).ravel())
        if self.histogram is None:
            self.histogram = histc(arr, self.bins, lo, hi)
            self.hist_min, self.hist_max = lo, hi
        else:
            new_lo, new_hi = min(self.hist_min, lo), max(self.hist_max, hi)
            update = histc(arr, self.bins, new_lo, new_hi)
            if new_lo == self.hist_min and new_hi == self.hist_max:
                self.histogram = self.histogram + update
            else:
                self.histogram = update + self._moved(new_lo, new_hi)
                self.hist_min, self.hist_max = new_lo, new_hi
        self.min_val = np.asarray(float(self.hist_min))
        self.max_val = np.asarray(float(self.hist_max))
        self.count += 1

    def _moved(self, new_lo: np.float32, new_hi: np.float32) -> np.ndarray:
        """The current histogram on the bins of ``[new_lo, new_hi]`` (module docstring)."""
        old_lo, old_hi = self.hist_min, self.hist_max
        if old_lo == old_hi:  # one value: its whole count goes to that value's new bin
            return histc(np.array([old_lo], f32), self.bins, new_lo, new_hi) * \
                f32(self.histogram.sum())
        n = self.bins * UPSAMPLE_RATE
        parts = np.repeat(self.histogram, UPSAMPLE_RATE) / f32(UPSAMPLE_RATE)
        part_width = f32(f32(old_hi - old_lo) / f32(n))
        mids = linspace32(old_lo, old_hi, n + 1)[:-1] + f32(f32(0.5) * part_width)
        edges = linspace32(new_lo, new_hi, self.bins + 1)
        where = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, self.bins - 1)
        moved = np.zeros(self.bins, dtype=f32)
        np.add.at(moved, where, parts)  # sequential float32 sums, as torch.bincount
        return moved

    def _hist(self) -> np.ndarray:
        self.range()  # ValueError when nothing was observed
        return self.histogram


class HistogramObserver(_HistogramBase):
    """PyTorch's ``HistogramObserver``: the L2 search over the histogram (module docstring).

    With ``method="pytorch"``, 8 bits and the asymmetric or symmetric scheme, ``S`` and ``Z``
    equal ``torch.ao.quantization.HistogramObserver``'s bit for bit
    (tests/oracles/test_observer_torch_oracle.py).
    """

    def clip_range(self, method: QParamsMethod | str = QParamsMethod.TFLITE
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``(min + w start, min + w (end + 1))`` (float32) of the L2 search's bins."""
        hist = self._hist()
        start, end = l2_search(hist, float(self.hist_min), float(self.hist_max),
                               2 ** self.bits)
        width = f32(f32(self.hist_max - self.hist_min) / f32(self.bins))
        lo = f32(self.hist_min + f32(width * f32(start)))
        hi = f32(self.hist_min + f32(width * f32(end + 1)))
        return np.asarray(float(lo)), np.asarray(float(hi))


def l2_search(hist: np.ndarray, lo: float, hi: float, dst_nbins: int) -> tuple[int, int]:
    """PyTorch's ``_non_linear_param_search``: the ``(start_bin, end_bin)`` it settles on."""
    bins = hist.shape[0]
    total = float(hist.astype(np.float64).sum())
    csum = np.cumsum(hist, dtype=f32)
    step, alpha, beta = 1e-5, 0.0, 1.0
    start, end = 0, bins - 1
    norm_min = float("inf")
    while alpha < beta:
        next_alpha, next_beta = alpha + step, beta - step
        left, right = start, end
        while left < end and csum[left] < f32(next_alpha * total):
            left += 1
        while right > start and csum[right] > f32(next_beta * total):
            right -= 1
        next_start, next_end = start, end
        if (left - start) > (end - right):
            next_start, alpha = left, next_alpha
        else:
            next_end, beta = right, next_beta
        if next_start == start and next_end == end:
            continue
        norm = _l2_error(hist, lo, hi, next_start, next_end, dst_nbins)
        if norm > norm_min:
            break
        norm_min, start, end = norm, next_start, next_end
    return start, end


def _floor_div(a: np.ndarray, b: np.float32) -> np.ndarray:
    """``torch.div(a, b, rounding_mode="floor")`` in float32 (c10 ``div_floor_floating``)."""
    mod = np.fmod(a, b)
    div = (a - mod) / b
    div = np.where((mod != 0) & ((b < 0) != (mod < 0)), div - f32(1), div).astype(f32)
    floordiv = np.floor(div)
    floordiv = np.where(div - floordiv > f32(0.5), floordiv + f32(1), floordiv)
    return np.where(div != 0, floordiv, f32(0) * (a / b)).astype(f32)


def _l2_error(hist: np.ndarray, lo: float, hi: float, start: int, end: int,
              dst_nbins: int) -> float:
    """PyTorch's ``_compute_quantization_error``: the L2 error of quantizing the histogram to
    ``dst_nbins`` levels over bins ``start..end`` (float32 arithmetic as in PyTorch)."""
    bins = hist.shape[0]
    bin_width = (hi - lo) / bins  # Python floats, as PyTorch's .item()
    dst_width = bin_width * (end - start + 1) / dst_nbins
    if dst_width == 0.0:
        return 0.0
    bw, dw = f32(bin_width), f32(dst_width)
    src_begin = (np.arange(bins) - start).astype(f32) * bw
    src_end = src_begin + bw
    dst_of_begin = np.clip(_floor_div(src_begin, dw), 0, dst_nbins - 1).astype(f32)
    dst_of_begin_center = (dst_of_begin + f32(0.5)) * dw
    dst_of_end = np.clip(_floor_div(src_end, dw), 0, dst_nbins - 1).astype(f32)
    density = hist / bw

    def norm(begin, end_):  # density * integral of x^2 from begin to end
        return ((end_ * end_ * end_ - begin * begin * begin) / f32(3)) * density

    half = f32(dst_width / 2)
    total = norm(src_begin - dst_of_begin_center, np.full(bins, half, f32))
    total = total + (dst_of_end - dst_of_begin - f32(1)) * norm(f32(-half), half)
    dst_of_end_center = dst_of_end * dw + half
    total = total + norm(f32(-half), src_end - dst_of_end_center)
    return float(f32(total.astype(np.float64).sum()))


class PercentileObserver(_HistogramBase):
    """``[P_{100-p}(x), P_p(x)]`` from the histogram (``p`` = ``percentile``, default 99.99):
    the ``q``-quantile is where the cumulative count reaches ``q N``, linear within its bin."""

    def __init__(self, *, percentile: float = 99.99, **kw) -> None:
        super().__init__(**kw)
        p = float(percentile)
        if not 50.0 < p <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
        self.percentile = p

    def clip_range(self, method: QParamsMethod | str = QParamsMethod.TFLITE
                   ) -> tuple[np.ndarray, np.ndarray]:
        hist = self._hist().astype(np.float64)
        edges = np.linspace(float(self.hist_min), float(self.hist_max), self.bins + 1)
        cum = np.concatenate([[0.0], np.cumsum(hist)])
        q = self.percentile / 100.0
        lo = np.interp((1.0 - q) * cum[-1], cum, edges)
        hi = np.interp(q * cum[-1], cum, edges)
        if self.hist_min == self.hist_max:  # one value: histc's widened edges are not data
            lo = hi = float(self.hist_min)
        return np.asarray(max(lo, float(self.hist_min))), np.asarray(min(hi, float(self.hist_max)))


class HistogramMSEObserver(_HistogramBase):
    """MSE-optimal clipping (grid search, ``npquant.quant.clipping``) of the histogram: each bin
    centre counts as many times as the bin holds values."""

    def __init__(self, *, grid: int = DEFAULT_GRID, **kw) -> None:
        super().__init__(**kw)
        self.grid = int(grid)

    def clip_range(self, method: QParamsMethod | str = QParamsMethod.TFLITE
                   ) -> tuple[np.ndarray, np.ndarray]:
        hist = self._hist().astype(np.float64)
        lo, hi = float(self.hist_min), float(self.hist_max)
        if lo == hi:
            return np.asarray(lo), np.asarray(hi)
        width = (hi - lo) / self.bins
        centers = lo + width * (np.arange(self.bins) + 0.5)
        a, b = mse_clip_range(centers.reshape(1, -1), np.array([lo]), np.array([hi]),
                              bits=self.bits, signed=self.signed, scheme=self.scheme,
                              narrow_range=self.narrow_range, method=method, counts=hist,
                              grid=self.grid)
        return _clip_to_data(float(a[0]), float(b[0]), lo, hi)


class KLObserver(_HistogramBase):
    """TensorRT's entropy calibration (module docstring) on a histogram of ``|x|``.

    ``min_val``/``max_val`` still record the signed range seen; the clipped range is
    ``[max(min, -t), min(max, t)]`` for the threshold ``t``.
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._signed: tuple[float, float] | None = None

    def _values(self, arr: np.ndarray) -> tuple[np.ndarray, np.float32, np.float32]:
        lo, hi = float(arr.min()), float(arr.max())
        if self._signed is not None:
            lo, hi = min(lo, self._signed[0]), max(hi, self._signed[1])
        self._signed = (lo, hi)
        a = np.abs(arr)
        return a, f32(0), f32(a.max())  # TensorRT's histogram starts at 0

    def observe(self, x) -> None:
        """Add ``|x|`` of one batch to the histogram over ``[0, max|x|]``."""
        super().observe(x)
        self.min_val, self.max_val = (np.asarray(v) for v in self._signed)

    def levels(self) -> int:
        """``L``: ``2^b`` for non-negative data under the asymmetric scheme, else ``2^(b-1)``."""
        one_sided = float(self.range()[0]) >= 0.0 and self.scheme == "asymmetric"
        return 2 ** self.bits if one_sided else 2 ** (self.bits - 1)

    def threshold(self) -> float:
        """``t = i w`` of the bin ``i`` with the least ``KL(P || Q)``; ``max|x|`` when
        ``L >= bins`` (nothing to merge)."""
        hist = self._hist().astype(np.float64)
        amax = float(self.hist_max)
        levels = self.levels()
        if levels >= self.bins or amax == 0.0:
            return amax
        return kl_threshold_bin(hist, levels) * amax / self.bins

    def clip_range(self, method: QParamsMethod | str = QParamsMethod.TFLITE
                   ) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (float(v) for v in self.range())
        t = self.threshold()
        return _clip_to_data(-t, t, lo, hi)


def _clip_to_data(clip_lo: float, clip_hi: float, lo: float, hi: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``[max(clip_lo, lo), min(clip_hi, hi)]``: a threshold range ``[-t, t]`` (0 inside) cut
    to the observed ``[lo, hi]``. When the data lie all on one side of 0 and ``t`` is nearer to
    0 than all of them, that is empty: the range is then the one point ``-t`` (``t`` for
    positive data), from which qparams (whose ranges include 0) give ``[-t, 0]`` / ``[0, t]``."""
    a, b = max(clip_lo, lo), min(clip_hi, hi)
    if a > b:
        a = b = a if hi < 0 else b
    return np.asarray(a), np.asarray(b)


def kl_threshold_bin(hist: np.ndarray, levels: int) -> int:
    """The ``i`` in ``levels..len(hist)`` minimizing ``KL(P || Q)`` (``KLObserver``).

    The ``i`` bins are merged into ``levels`` groups by ``group(j) = floor(j levels / i)``;
    ``Q`` spreads each group's count evenly over its non-empty bins. Where ``P > 0`` but
    ``Q = 0`` (outliers folded into an empty last bin) ``Q`` is floored at ``1e-12`` of the
    total, a large but finite penalty. Ties keep the smaller ``i``.
    """
    bins = hist.shape[0]
    best_i, best_kl = bins, np.inf
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # tail[i] = sum hist[i:]
    for i in range(levels, bins + 1):
        p = hist[:i].copy()
        p[i - 1] += tail[i]
        nonzero = hist[:i] != 0
        group = (np.arange(i) * levels) // i
        sums = np.bincount(group, weights=hist[:i], minlength=levels)
        counts = np.bincount(group, weights=nonzero, minlength=levels)
        q = np.where(nonzero, sums[group] / np.maximum(counts[group], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p, q = p / ps, np.maximum(q / qs, 1e-12)
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return best_i
