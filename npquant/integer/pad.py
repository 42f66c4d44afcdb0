"""Constant padding of quantized tensors: TFLite PAD / PADV2 and ONNX Pad (constant mode).

Padding a quantized tensor with real 0 writes its zero point ``Z`` (``r = S (q - Z) = 0``), not
the integer 0; TFLite's int8 PAD does exactly that (``pad_value = output zero point``). The
qparams are unchanged, so the kernel is a copy into a tensor filled with ``value``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from npquant.validate import ACTIVATION_DTYPES, check_int_array, check_zero_point


def pad(x: np.ndarray, pads: Sequence[tuple[int, int]], *, value: int) -> np.ndarray:
    """``x`` with ``pads[d] = (before, after)`` elements of ``value`` added on each axis ``d``.

    ``value`` is an integer of ``x``'s dtype (for real-0 padding: the zero point). Pads are
    >= 0 (TFLite and ONNX constant-mode negative pads, which crop, are not supported).
    """
    x = check_int_array("x", x, ACTIVATION_DTYPES)
    v = check_zero_point("value", value, x.dtype)
    p = [tuple(int(b) for b in ab) for ab in pads]
    if len(p) != x.ndim or any(len(ab) != 2 for ab in p):
        raise ValueError(f"pads must hold one (before, after) pair per axis of x {x.shape}, "
                         f"got {pads!r}")
    if any(b < 0 for ab in p for b in ab):
        raise ValueError(f"pads must be >= 0, got {pads!r}")
    out = np.full([n + b + a for n, (b, a) in zip(x.shape, p, strict=True)], v, dtype=x.dtype)
    out[tuple(slice(b, b + n) for n, (b, _) in zip(x.shape, p, strict=True))] = x
    return out
