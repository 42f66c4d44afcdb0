"""C headers of golden data, CMSIS-NN / TFLite Micro test-data style: ``const`` arrays a C test
bench compiles in.

One header per export (``golden.h``) holds, for every tensor of the manifest,

* ``static const int8_t npq_<key>[N] NPQ_ALIGN = {...};`` (integer tensors, decimal values, C
  order, the manifest's layout) — the dtype keeps its width: ``int8_t``, ``int16_t``,
  ``int32_t``, ``uint8_t``; batch tensors (activations, labels) hold the first image only;
* float tensors as their IEEE-754 bit patterns, ``static const uint32_t npq_<key>_bits[N]``
  (float32; ``uint64_t`` for float64): ``memcpy`` them into a ``float`` to get the value;
* ``static const int32_t npq_<key>_shape[ndim]`` and ``#define NPQ_<KEY>_SIZE N``;

per conv / fully connected layer ``#define``s of the zero points, the CMSIS-NN offsets
(``input_offset = -input_zero_point``, ``output_offset = +output_zero_point``) and the activation
clamp; and a table ``npq_tensors[]`` (name, data, dtype code, ndim, shape, size) so a test bench
can walk every tensor. Arrays are aligned to 16 bytes (``NPQ_ALIGN``, GCC/Clang attribute).

Values are formatted by vectorized digit extraction (no Python loop per value).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from npquant.golden.formats import CHUNK, check_dtype, hex_chunks

PER_LINE = 16  # values per line of an array initializer
DTYPE_CODES = {"int8": 1, "uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 6,
               "float32": 7, "float64": 8, "int64": 9, "uint64": 10}
_C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
            "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t",
            "float32": "uint32_t", "float64": "uint64_t"}


def c_name(key: str) -> str:
    """The C identifier of a tensor key: ``01_conv1.weight`` -> ``npq_01_conv1_weight``."""
    return "npq_" + re.sub(r"[^0-9A-Za-z_]", "_", key)


def c_macro(key: str) -> str:
    """The macro prefix of a tensor key: ``01_conv1.weight`` -> ``NPQ_01_CONV1_WEIGHT``."""
    return c_name(key).upper()


def header_preamble(guard: str, comment_lines: list[str]) -> str:
    """The opening comment (provenance), include guard, ``<stdint.h>``, ``NPQ_ALIGN`` and the
    tensor descriptor type."""
    body = "\n".join(f" * {line}".rstrip() for line in comment_lines)
    return (f"/*\n{body}\n */\n#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n"
            "#if defined(__GNUC__) || defined(__clang__)\n"
            "#define NPQ_ALIGN __attribute__((aligned(16)))\n#else\n#define NPQ_ALIGN\n#endif\n\n"
            "/* dtype codes of npq_tensor_t: " + ", ".join(f"{v} {k}" for k, v in
                                                        DTYPE_CODES.items()) + " */\n"
            "typedef struct {\n    const char *name;\n    const void *data;\n"
            "    int32_t dtype;\n    int32_t ndim;\n    const int32_t *shape;\n"
            "    int64_t size;\n} npq_tensor_t;\n\n")


def write_array(f: IO[bytes], key: str, arr: np.ndarray, layout: str) -> None:
    """Append one tensor's shape, size macro and initialized array to ``f``."""
    a = np.ascontiguousarray(arr)
    dt = check_dtype(a.dtype)
    name, macro = c_name(key), c_macro(key)
    shape = ", ".join(str(int(s)) for s in a.shape) or "1"
    note = " IEEE-754 bit patterns (memcpy into a float)" if dt.kind == "f" else ""
    f.write(f"/* {key}: {dt} {list(a.shape)} {layout}, C order;{note} */\n"
            f"#define {macro}_SIZE {a.size}\n"
            f"static const int32_t {name}_shape[] = {{{shape}}};\n"
            f"static const {_C_TYPES[dt.name]} {name}{'_bits' if dt.kind == 'f' else ''}"
            f"[{max(a.size, 1)}] NPQ_ALIGN = {{\n".encode("ascii"))
    if a.size == 0:
        f.write(b"0")  # C forbids empty initializers; the size macro says 0
    for chunk in _value_chunks(a):
        f.write(chunk)
    f.write(b"};\n\n")


def tensor_table(entries: list[tuple[str, np.dtype, int]]) -> str:
    """The ``npq_tensors[]`` table over ``(key, dtype, ndim)`` entries, in order."""
    rows = []
    for key, dtype, ndim in entries:
        dt = np.dtype(dtype)
        name = c_name(key) + ("_bits" if dt.kind == "f" else "")
        rows.append(f'    {{"{key}", {name}, {DTYPE_CODES[dt.name]}, {ndim}, {c_name(key)}_shape, '
                    f"{c_macro(key)}_SIZE}},")
    return (f"#define NPQ_NUM_TENSORS {len(entries)}\n"
            "static const npq_tensor_t npq_tensors[] = {\n" + "\n".join(rows) + "\n};\n")


def layer_defines(layer: dict[str, Any]) -> str:
    """``#define``s of one layer: zero points, CMSIS-NN offsets, activation clamp, shape attrs."""
    prefix = c_macro(f"{layer['index']:02d}_{layer['name']}")
    lines = [f"/* op {layer['index']:02d} {layer['name']} {layer['op']} */"]
    for k, v in layer.get("zero_points", {}).items():
        lines.append(f"#define {prefix}_{k.upper()} {int(v)}")
    for k, v in layer.get("offsets", {}).items():
        if k != "definition":
            lines.append(f"#define {prefix}_{k.upper()} {int(v)}")
    if "requant" in layer:
        lo, hi = layer["requant"]["activation_range"]
        lines += [f"#define {prefix}_ACT_MIN {int(lo)}", f"#define {prefix}_ACT_MAX {int(hi)}"]
    for k, v in layer.get("attributes", {}).items():
        if isinstance(v, list) and len(v) == 2 and all(isinstance(i, int) for i in v):
            for axis, i in zip("HW", v, strict=True):
                lines.append(f"#define {prefix}_{k.upper()}_{axis} {i}")
        elif isinstance(v, int) and not isinstance(v, bool):
            lines.append(f"#define {prefix}_{k.upper()} {v}")
    return "\n".join(lines) + "\n\n"


def header_end(guard: str) -> str:
    """Closes the include guard."""
    return f"#endif /* {guard} */\n"


def _value_chunks(a: np.ndarray) -> Iterator[bytes]:
    """Initializer text: ``PER_LINE`` comma-separated values per line, fixed width."""
    if a.dtype.kind == "f":
        # the hex digits of each bit pattern, each line 'xx..x\n' -> '0x' + digits + 'U, '
        w = 2 * a.dtype.itemsize
        for chunk in hex_chunks(a):
            rows = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, w + 1)
            out = np.empty((rows.shape[0], w + 5), dtype=np.uint8)
            out[:, 0], out[:, 1] = ord("0"), ord("x")
            out[:, 2:w + 2] = rows[:, :w]
            out[:, w + 2], out[:, w + 3], out[:, w + 4] = ord("U"), ord(","), ord(" ")
            yield _break_lines(out)
        return
    flat = a.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        yield _break_lines(_c_literals(flat[start:start + CHUNK]))


def _c_literals(v: np.ndarray) -> np.ndarray:
    """``_decimal`` rows made valid C for 8-byte integers: a decimal literal has a signed type
    unless suffixed, so uint64 values get ``U``, and INT64_MIN, whose magnitude no signed
    literal holds, is written ``(-INT64_MAX-1)``."""
    rows = _decimal(v)
    if v.dtype == np.uint64:
        width = rows.shape[1] - 2
        out = np.full((rows.shape[0], width + 3), ord(" "), dtype=np.uint8)
        out[:, :width], out[:, width], out[:, width + 1] = rows[:, :width], ord("U"), ord(",")
        return out
    if v.dtype == np.int64:
        token = np.frombuffer(b"(-INT64_MAX-1)", dtype=np.uint8)
        width = rows.shape[1] - 2
        rows[v == np.iinfo(np.int64).min, :width] = np.concatenate(
            [np.full(width - token.size, ord(" "), dtype=np.uint8), token])
    return rows


def _decimal(v: np.ndarray) -> np.ndarray:
    """Rows ``' -123, '``: each value right-aligned in a fixed field (sign + digits), comma, space.

    1- and 2-byte dtypes look their rows up in a table of every value; wider ones extract the
    digits of ``|v|`` as ``(|v| // 10^j) % 10`` for ``j = 0, 1, ...``, put spaces past the
    value's digit count and the minus sign just left of the first digit.
    """
    info = np.iinfo(v.dtype)
    if v.dtype.itemsize <= 2:
        table = _decimal_table(v.dtype.str)
        return table[v.astype(np.int64) - int(info.min)]
    return _decimal_digits(v)


@functools.lru_cache(maxsize=8)
def _decimal_table(dtype: str) -> np.ndarray:
    """``_decimal`` rows of every value of a 1- or 2-byte integer dtype, indexed by v - min."""
    info = np.iinfo(np.dtype(dtype))
    return _decimal_digits(np.arange(int(info.min), int(info.max) + 1).astype(dtype))


def _decimal_digits(v: np.ndarray) -> np.ndarray:
    info = np.iinfo(v.dtype)
    digits = len(str(max(abs(int(info.min)), int(info.max))))
    width = digits + 1  # one column for the sign
    # |v| as uint64; for negatives -(v + 1) + 1, which cannot overflow even at INT64_MIN
    w = v.astype(np.int64) if v.dtype.kind == "i" else None
    mag = v.astype(np.uint64) if w is None else \
        np.where(w < 0, (-(w + 1)).astype(np.uint64) + np.uint64(1), w.astype(np.uint64))
    out = np.full((v.size, width + 2), ord(" "), dtype=np.uint8)
    ndig = np.ones(v.size, dtype=np.int64)  # digit count: 1 + #{j >= 1 : |v| >= 10^j}
    for j in range(1, digits):
        ndig += mag >= np.uint64(10 ** j)
    rest = mag.copy()
    for j in range(digits):
        col = width - 1 - j
        out[:, col] = np.where(j < ndig, ord("0") + (rest % np.uint64(10)).astype(np.uint8),
                               ord(" "))
        rest //= np.uint64(10)
    neg = v < 0 if info.min < 0 else np.zeros(v.size, dtype=bool)
    rows = np.nonzero(neg)[0]
    out[rows, width - 1 - ndig[rows]] = ord("-")
    out[:, width] = ord(",")
    return out


def _break_lines(rows: np.ndarray) -> bytes:
    """Replace the trailing space of every ``PER_LINE``-th value (and the last) by a newline
    (``rows`` is a fresh array, changed in place)."""
    rows[PER_LINE - 1::PER_LINE, -1] = ord("\n")
    rows[-1, -1] = ord("\n")
    return rows.tobytes()
