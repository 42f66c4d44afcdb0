"""The argument checks of every public entry point, each rule written once.

Kernels, quantization parameters, requantization parameters, the framework bridges and the CLI
call these; numba kernel bodies then assume checked input. Each check raises TypeError (wrong
type or dtype) or ValueError (a value out of its range), naming the argument and the value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from npquant.profiles import Profile

ACTIVATION_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))
WEIGHT_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))


def dtype_range(dtype: np.dtype) -> tuple[int, int]:
    """``(min, max)`` of an integer dtype as Python ints."""
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def check_int_array(name: str, value: Any, allowed: tuple[np.dtype, ...],
                    ndim: int | None = None) -> np.ndarray:
    """``value`` as a C-contiguous array, after checking its type, dtype and rank (no casting)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise TypeError(f"{name} must have dtype in ({names}), got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {value.shape}")
    return np.ascontiguousarray(value)


def check_bits(name: str, bits: Any, lo: int = 2, hi: int = 16) -> int:
    """A bit width: an int in ``lo..hi`` (2..16 for tensors; wider for integer ranges).

    Anything else (1, 17, 4.0, True, "8") is a ValueError with one message: a bit width is a
    value with a range, whatever the type of the wrong value."""
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or \
            not lo <= int(bits) <= hi:
        raise ValueError(f"{name} must be an int in {lo}..{hi}, got {bits!r}")
    return int(bits)


def check_array(name: str, value: Any, dtype: Any, ndim: int | None = None) -> np.ndarray:
    """``value`` as a C-order array after checking its dtype (exactly ``dtype``) and rank, and
    for floats that it holds no NaN/inf. No casting: a silent float64 -> int8 conversion would
    hide a caller's bug."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {value.shape}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return np.asarray(value, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


def check_bias(bias: Any, channels: int) -> np.ndarray:
    """int32 bias of shape ``(channels,)`` (zeros when None), returned as int64."""
    if bias is None:
        return np.zeros(channels, dtype=np.int64)
    b = check_int_array("bias", bias, (np.dtype(np.int32),), 1)
    if b.shape != (channels,):
        raise ValueError(f"bias must have shape ({channels},), got {b.shape}")
    return b.astype(np.int64)


def check_zero_point(name: str, value: Any, dtype: np.dtype) -> int:
    """An integer zero point inside the range of ``dtype``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    lo, hi = dtype_range(dtype)
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}={int(value)} is outside the {np.dtype(dtype)} range [{lo}, {hi}]")
    return int(value)


def check_zero_points(name: str, value: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    """A per-tensor (int) or per-channel (1-D, ``channels`` long) zero point, as int64 array."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.shape[0] != channels or value.dtype.kind not in "iu":
            raise ValueError(f"{name} must be an int or an integer array of shape ({channels},), "
                             f"got {value.dtype} {value.shape}")
        lo, hi = dtype_range(dtype)
        v = value.astype(np.int64)
        if np.any((v < lo) | (v > hi)):
            raise ValueError(f"{name} has values outside the {np.dtype(dtype)} range [{lo}, {hi}]")
        return v
    return np.full(channels, check_zero_point(name, value, dtype), dtype=np.int64)


def check_scale(name: str, value: Any) -> float:
    """A per-tensor scale: finite and > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def check_scales(name: str, value: Any, channels: int) -> np.ndarray:
    """A scale per tensor (a number) or per channel (a 1-D array or sequence of ``channels``, or
    of one), as a float64 array; each finite and > 0."""
    if np.ndim(value) == 0:
        return np.array([check_scale(name, value)])
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}") \
            from None
    if arr.shape not in ((channels,), (1,)):
        raise ValueError(f"{name} must be a number or have shape ({channels},), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return arr


def check_out_dtype(out_dtype: Any) -> np.dtype:
    """The output dtype: int8, uint8 or int16."""
    try:
        dt = np.dtype(out_dtype)
    except TypeError as exc:
        raise TypeError(f"out_dtype must be a numpy dtype, got {out_dtype!r}") from exc
    if dt not in ACTIVATION_DTYPES:
        raise ValueError(f"out_dtype must be int8, uint8 or int16, got {dt}")
    return dt


def check_profile(profile: Any) -> Profile:
    """A ``Profile`` or the name of one (returns the ``Profile``)."""
    # imported here, not at the top: profiles imports fixedpoint, which imports this module
    from npquant.profiles import Profile, get_profile

    if not isinstance(profile, (str, Profile)):
        raise TypeError(f"profile must be a Profile or a name, got {type(profile).__name__}")
    return get_profile(profile)


def pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1 (stride, dilation, kernel size)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in value)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    out = (int(value[0]), int(value[1]))
    if min(out) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return out
