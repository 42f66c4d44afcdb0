"""Argument checks and lazy framework imports shared by the framework bridges."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from npquant.integer._checks import check_scale  # one definition of a valid scale

_INT_RANGES = {
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int32): (-(2**31), 2**31 - 1),
}


def import_framework(module_name: str, what: str) -> ModuleType:
    """Import an optional framework, or raise ImportError naming the ``interop`` extra."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the optional package {module_name!r}; "
            "install the interop extra: pip install -e .[interop]"
        ) from exc


def check_array(name: str, value: Any, dtype: Any, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a C-contiguous array after checking its dtype and rank exactly.

    No casting is done: a bridge that silently converted float64 to int8 would hide a caller bug.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {value.shape}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return np.asarray(value, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


def check_scales(name: str, value: Any, channels: int) -> np.ndarray:
    """A scale that is a number (per-tensor) or a 1-D array of ``channels`` scales (per-channel).

    Returns a float64 array of length 1 (per-tensor) or ``channels``.
    """
    if np.ndim(value) == 0:
        return np.array([check_scale(name, value)], dtype=np.float64)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != channels:
        raise ValueError(f"{name} must be a number or have shape ({channels},), got {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} must be finite and > 0, got {arr}")
    return arr


def check_zero_point(name: str, value: Any, dtype: Any) -> int:
    """A zero point: an integer inside the range of ``dtype``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    lo, hi = _INT_RANGES[np.dtype(dtype)]
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}] for {np.dtype(dtype)}, got {value}")
    return int(value)


def pair(name: str, value: Any) -> tuple[int, int]:
    """An (h, w) pair of positive ints from an int or a 2-sequence."""
    vals = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in vals):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return int(vals[0]), int(vals[1])


def check_keys(op: str, params: dict, required: set[str], optional: set[str]) -> None:
    """Reject missing or unknown parameter names (a typo must not fall back to a default)."""
    missing = required - params.keys()
    unknown = params.keys() - required - optional
    if missing:
        raise ValueError(f"{op}: missing params {sorted(missing)}")
    if unknown:
        raise ValueError(f"{op}: unknown params {sorted(unknown)}; allowed: "
                         f"{sorted(required | optional)}")
