"""``assert_bit_exact``: equality of integer tensors, with the first divergence spelled out."""

from __future__ import annotations

import numpy as np


class BitExactMismatch(AssertionError):
    """Raised by ``assert_bit_exact``; carries the counts for programs that read them."""

    def __init__(self, message: str, *, count: int, max_abs_diff: int, all_off_by_one: bool):
        super().__init__(message)
        self.count = count
        self.max_abs_diff = max_abs_diff
        self.all_off_by_one = all_off_by_one


def describe_mismatch(actual: np.ndarray, expected: np.ndarray, context: str = "") -> str | None:
    """None when ``actual`` equals ``expected`` bit for bit, else one message naming the first
    divergence: ``out[0, 3, 1, 2]=12, but should be 13 [context]; 5 of 100 differ (all by ±1)``.
    """
    a, e = np.asarray(actual), np.asarray(expected)
    where = f" [{context}]" if context else ""
    if a.shape != e.shape:
        return f"shape {a.shape}, but should be {e.shape}{where}"
    diff_mask = a != e
    if not np.any(diff_mask):
        return None
    idx = tuple(int(i) for i in np.argwhere(diff_mask)[0]) if a.ndim else ()
    diff = a.astype(np.float64) - e.astype(np.float64)
    max_abs = float(np.max(np.abs(diff[diff_mask])))
    count = int(np.count_nonzero(diff_mask))
    off_by_one = max_abs == 1
    pos = f"out{list(idx)}" if a.ndim else "out"
    return (f"{pos}={a[idx]}, but should be {e[idx]}{where}; {count} of {a.size} differ "
            f"({'all by ±1' if off_by_one else f'max |diff| = {max_abs:g}'})")


def assert_bit_exact(actual, expected, context: str = "") -> None:
    """Assert ``np.array_equal(actual, expected)``; dtypes must match when both are integer.

    On failure raises ``BitExactMismatch`` with the first differing index and both values, how
    many elements differ, and whether every difference is ±1 (the usual signature of a tie rule).
    """
    a, e = np.asarray(actual), np.asarray(expected)
    where = f" [{context}]" if context else ""
    if (np.issubdtype(a.dtype, np.integer) and np.issubdtype(e.dtype, np.integer)
            and a.dtype != e.dtype):
        raise BitExactMismatch(f"dtype {a.dtype}, but should be {e.dtype}{where}", count=a.size,
                               max_abs_diff=0, all_off_by_one=False)
    message = describe_mismatch(a, e, context)
    if message is None:
        return
    if a.shape != e.shape:
        raise BitExactMismatch(message, count=max(a.size, e.size), max_abs_diff=0,
                               all_off_by_one=False)
    mask = a != e
    max_abs = int(np.max(np.abs(a.astype(np.int64) - e.astype(np.int64))[mask])) if (
        np.issubdtype(a.dtype, np.integer) and np.issubdtype(e.dtype, np.integer)) else 0
    raise BitExactMismatch(message, count=int(np.count_nonzero(mask)), max_abs_diff=max_abs,
                           all_off_by_one=max_abs == 1)
