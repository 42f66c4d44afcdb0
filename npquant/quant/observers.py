"""Observers: gather the range of float tensors, then turn it into ``(S, Z)`` with one formula.

Subclasses differ only in how they gather statistics and which range they pick from them
(``clip_range``); every observer turns that range into quantization parameters through
``npquant.qparams.from_range`` (the method — TFLite nudging or PyTorch's formula — comes from the
profile), so a reader finds that formula in one place. This module holds the range observers
(min/max, moving average, per channel, and per-channel MSE clipping for weights);
``npquant.quant.histogram_observers`` the histogram ones (L2 search, percentile, MSE, KL).

Power-of-two variants: every observer takes ``scheme="power_of_two"``; its clipped range then
goes through ``from_range``'s ``S = 2^ceil(log2(max|r| / qmax))`` (the scale is rounded *up*, so
the clipped range is widened to the next power of two). The MSE observers search the
power-of-two scales themselves instead (``npquant.quant.clipping``).

Degenerate cases:

* an observer that has seen no data has no range: ``range()`` and ``calculate_qparams`` raise
  ValueError (PyTorch returns a default scale 1.0 here, which silently hides a missed layer);
* ``min == max`` (a constant tensor): ``from_range`` first widens the range to include 0, so
  ``[c, c]`` becomes ``[min(c, 0), max(c, 0)]``; only an all-zero tensor leaves an empty range,
  for which ``from_range`` picks ``S = 1`` (``eps`` for the PyTorch method) so that 0 stays exact;
* NaN or +-inf in observed data is a ValueError naming the observer and the first bad index.
"""

from __future__ import annotations

import copy

import numpy as np

from npquant.profiles import Profile, QParamsMethod
from npquant.qparams import SCHEMES, QParams, from_range


class Observer:
    """Base class: keeps ``min_val``/``max_val`` and computes qparams from them.

    Keyword-only configuration: ``scheme`` ("asymmetric", "symmetric", "power_of_two"), ``bits``
    (2..16), ``signed`` and ``narrow_range`` (``qmin = -(2^(b-1) - 1)``, symmetric weights).
    ``min_val``/``max_val`` are None until the first ``observe``; 0-d arrays per tensor, 1-D
    arrays per channel.
    """

    axis: int | None = None

    def __init__(self, *, scheme: str = "asymmetric", bits: int = 8, signed: bool = True,
                 narrow_range: bool = False, name: str = "observer") -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
            raise ValueError(f"bits must be an int in 2..16, got {bits!r}")
        self.scheme, self.bits, self.signed = scheme, int(bits), bool(signed)
        self.narrow_range, self.name = bool(narrow_range), name
        self.min_val: np.ndarray | None = None
        self.max_val: np.ndarray | None = None
        self.count = 0  # number of observe() calls

    # -- statistics: subclasses override _update -------------------------------------------
    def observe(self, x) -> None:
        """Update the statistics with one batch ``x`` (a float array; NaN/inf raise ValueError)."""
        arr = _checked_float(x, self.name)
        lo, hi = self._batch_range(arr)
        self._update(lo, hi)
        self.count += 1

    __call__ = observe

    def _batch_range(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(arr.min(), dtype=np.float64), np.asarray(arr.max(), dtype=np.float64)

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        raise NotImplementedError

    # -- the one shared qparams formula ----------------------------------------------------
    @property
    def observed(self) -> bool:
        """True once ``observe`` has been called."""
        return self.min_val is not None

    def range(self) -> tuple[np.ndarray, np.ndarray]:
        """``(min_val, max_val)``; ValueError if nothing was observed."""
        if self.min_val is None or self.max_val is None:
            raise ValueError(f"{self.name}: {type(self).__name__} has observed no data; "
                             "run calibration data through it before computing qparams")
        return self.min_val, self.max_val

    def clip_range(self, method: QParamsMethod | str = QParamsMethod.TFLITE
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The range the qparams are made from: ``range()`` here; clipping observers (histogram,
        percentile, MSE, KL) return a narrower one that depends on ``bits`` and ``scheme`` (and,
        for MSE, on the qparams ``method``)."""
        return self.range()

    def configured(self, **changes) -> Observer:
        """A shallow copy sharing the statistics with other ``bits``, ``scheme``, ``signed`` or
        ``narrow_range`` (one calibration, many bit widths: PTQ's per-layer config)."""
        unknown = set(changes) - {"bits", "scheme", "signed", "narrow_range"}
        if unknown:
            raise TypeError(f"configured() takes bits, scheme, signed, narrow_range; "
                            f"got {sorted(unknown)}")
        out = copy.copy(self)
        probe = Observer(scheme=changes.get("scheme", self.scheme),
                         bits=changes.get("bits", self.bits))  # validates
        out.scheme, out.bits = probe.scheme, probe.bits
        out.signed = bool(changes.get("signed", self.signed))
        out.narrow_range = bool(changes.get("narrow_range", self.narrow_range))
        return out

    def calculate_qparams(self, method: QParamsMethod | str | Profile = QParamsMethod.TFLITE
                          ) -> QParams:
        """``from_range(min_val, max_val, ...)`` with this observer's scheme and ``method``.

        ``method`` is a ``QParamsMethod``/its name, or a ``Profile`` (its ``qparams_method``).
        """
        if isinstance(method, Profile):
            method = method.qparams_method
        lo, hi = self.clip_range(method)
        return from_range(lo, hi, bits=self.bits, signed=self.signed, scheme=self.scheme,
                          narrow_range=self.narrow_range, method=method, axis=self.axis)

    def __repr__(self) -> str:
        rng = "unobserved" if not self.observed else \
            f"min={np.round(self.min_val, 6).tolist()}, max={np.round(self.max_val, 6).tolist()}"
        return f"{type(self).__name__}({self.name}: {self.scheme}, {rng})"


class MinMaxObserver(Observer):
    """Running minimum and maximum over all batches: ``min = min(min, min(x))``."""

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = np.minimum(self.min_val, lo)
            self.max_val = np.maximum(self.max_val, hi)


class MovingAverageMinMaxObserver(Observer):
    """Exponential moving average of the batch minima and maxima (PyTorch's rule):

        min_1 = min(x_1)                              (the first batch sets the range)
        min_t = min_{t-1} + c (min(x_t) - min_{t-1})  (t > 1; likewise max)

    with ``c = averaging_constant`` in (0, 1], each operation rounded to float32 as PyTorch's
    ``MovingAverageMinMaxObserver`` computes it (so the two agree bit for bit). ``c = 1`` keeps
    only the last batch. The average damps outlier batches; with few calibration batches and a
    small ``c`` the range stays close to the first batch's.
    """

    def __init__(self, *, averaging_constant: float = 0.01, **kw) -> None:
        super().__init__(**kw)
        c = float(averaging_constant)
        if not 0.0 < c <= 1.0:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant!r}")
        self.averaging_constant = c

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        f32 = np.float32
        lo, hi = f32(lo), f32(hi)  # the batch extremes are float32 values already
        if self.min_val is None:
            new_lo, new_hi = lo, hi
        else:
            c = f32(self.averaging_constant)
            old_lo, old_hi = f32(self.min_val), f32(self.max_val)
            new_lo = f32(old_lo + f32(c * f32(lo - old_lo)))
            new_hi = f32(old_hi + f32(c * f32(hi - old_hi)))
        self.min_val = np.asarray(new_lo, dtype=np.float64)
        self.max_val = np.asarray(new_hi, dtype=np.float64)


class PerChannelMinMaxObserver(Observer):
    """Minimum and maximum per channel along ``axis`` (0: the output channels of OIHW weights
    and of ``(out, in)`` linear weights), reduced over all other axes and all batches."""

    def __init__(self, *, axis: int = 0, scheme: str = "symmetric", **kw) -> None:
        super().__init__(scheme=scheme, **kw)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _batch_range(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if arr.ndim == 0 or not -arr.ndim <= self.axis < arr.ndim:
            raise ValueError(f"{self.name}: axis={self.axis} is out of range for shape "
                             f"{arr.shape}")
        moved = np.moveaxis(arr, self.axis, 0).reshape(arr.shape[self.axis], -1)
        if moved.shape[1] == 0:
            raise ValueError(f"{self.name}: channels of shape {arr.shape} are empty")
        return moved.min(axis=1).astype(np.float64), moved.max(axis=1).astype(np.float64)

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
            return
        if lo.shape != self.min_val.shape:
            raise ValueError(f"{self.name}: {lo.shape[0]} channels now, "
                             f"{self.min_val.shape[0]} before")
        self.min_val = np.minimum(self.min_val, lo)
        self.max_val = np.maximum(self.max_val, hi)


class PerChannelMSEObserver(PerChannelMinMaxObserver):
    """MSE-optimal clipping per channel (``npquant.quant.clipping.mse_clip_range``): for each
    channel ``c`` the range ``a_c [min_c, max_c]`` minimizing ``sum (w - w^)^2`` over the grid
    ``a = k / grid``.

    It keeps every observed value (it is meant for weights, observed once); ``axis=None`` treats
    the whole tensor as one channel (per-tensor weights). Symmetric by default.
    """

    def __init__(self, *, axis: int | None = 0, grid: int = 100, **kw) -> None:
        super().__init__(axis=0 if axis is None else axis, **kw)
        self.per_tensor = axis is None
        if self.per_tensor:
            self.axis = None
        self.grid = int(grid)
        self._rows: list[np.ndarray] = []

    def _batch_range(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.per_tensor:
            rows = arr.reshape(1, -1).astype(np.float64)
        else:
            lo, _ = super()._batch_range(arr)
            rows = np.moveaxis(arr, self.axis, 0).reshape(lo.shape[0], -1).astype(np.float64)
        self._rows.append(rows)
        return rows.min(axis=1), rows.max(axis=1)

    def clip_range(self, method: QParamsMethod | str = QParamsMethod.TFLITE
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``(a_c min_c, a_c max_c)`` per channel (shape ``()`` per tensor)."""
        from npquant.quant.clipping import mse_clip_range

        lo, hi = self.range()
        lo, hi = mse_clip_range(np.concatenate(self._rows, axis=1), lo, hi, bits=self.bits,
                                signed=self.signed, scheme=self.scheme,
                                narrow_range=self.narrow_range, method=method, grid=self.grid)
        return (lo.reshape(()), hi.reshape(())) if self.per_tensor else (lo, hi)


def _checked_float(x, name: str) -> np.ndarray:
    arr = np.asarray(x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name}: observed data must be a float array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name}: observed an empty array of shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: observed data has {arr[idx]} at index {idx} "
                         "(NaN/inf cannot be quantized)")
    return arr
