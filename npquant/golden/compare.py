"""First divergence between two golden sets: the tool to run when RTL and model disagree.

``compare_golden(a, b)`` walks the ops in dataflow order and, inside each op, its tensors in the
order the manifest lists them (input, constants, accumulators, output); a tensor shared by two
ops (op k's input is op k-1's output) is compared once, at the op that produces it. For each
tensor present in both it reports how many elements differ, the first differing index (C order)
with both values, and the signature of the differences ``d = b - a``: how many are ``+1``, how
many ``-1`` and how many larger. A pure ``±1`` signature in an output with identical
accumulators is a rounding-rule difference (ties, double vs single rounding); a difference
that starts in an accumulator is an arithmetic or data error upstream. Floats are compared
bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class TensorDiff:
    """How one tensor differs between A and B (``count == 0``: identical)."""

    layer_index: int
    layer_name: str
    role: str
    key: str
    size: int
    count: int = 0
    first_index: list[int] | None = None
    a_value: Any = None
    b_value: Any = None
    plus_one: int = 0
    minus_one: int = 0
    larger: int = 0
    max_abs: float = 0.0
    note: str = ""


@dataclass
class Comparison:
    """Every tensor's ``TensorDiff`` in dataflow order, and problems that stop a comparison
    (missing tensors, shape or dtype mismatches, different op lists)."""

    diffs: list[TensorDiff] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when no tensor differs and nothing was missing."""
        return not self.problems and all(d.count == 0 for d in self.diffs)

    @property
    def first(self) -> TensorDiff | None:
        """The first differing tensor in dataflow order."""
        return next((d for d in self.diffs if d.count), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        first = self.first
        return {"identical": self.identical, "problems": self.problems,
                "first_divergence": None if first is None else asdict(first),
                "tensors": [asdict(d) for d in self.diffs]}


def compare_golden(a_layers: list[dict[str, Any]], a: dict[str, np.ndarray],
                   b_layers: list[dict[str, Any]], b: dict[str, np.ndarray]) -> Comparison:
    """Compare two golden sets given as (manifest ``layers``, tensor key -> array)."""
    out = Comparison()
    a_ops = [(lay["index"], lay["name"], lay["op"]) for lay in a_layers]
    b_ops = [(lay["index"], lay["name"], lay["op"]) for lay in b_layers]
    if a_ops != b_ops:
        out.problems.append(f"the op lists differ: A {a_ops} vs B {b_ops}")
    b_by_index = {lay["index"]: lay for lay in b_layers}
    seen: set[str] = set()
    for layer in a_layers:
        other = b_by_index.get(layer["index"], {"tensors": {}})
        for role, key in layer["tensors"].items():
            if key in seen:  # op k's input is op k-1's output: compared once, there
                continue
            seen.add(key)
            bkey = other["tensors"].get(role)
            if key not in a or bkey is None or bkey not in b:
                out.problems.append(f"op {layer['index']:02d} {layer['name']} {role}: missing "
                                    f"in {'A' if key not in a else 'B'}")
                continue
            d = diff_arrays(a[key], b[bkey])
            d.layer_index, d.layer_name, d.role, d.key = layer["index"], layer["name"], role, key
            if d.note:
                out.problems.append(f"op {layer['index']:02d} {layer['name']} {role}: {d.note}")
            out.diffs.append(d)
    return out


def diff_arrays(a: np.ndarray, b: np.ndarray) -> TensorDiff:
    """Count, first index, values and ``±1`` signature of ``b - a`` (module docstring)."""
    d = TensorDiff(-1, "", "", "", int(a.size))
    if a.shape != b.shape or a.dtype != b.dtype:
        d.count, d.note = int(max(a.size, b.size)), (f"A is {a.dtype} {list(a.shape)}, "
                                                     f"B is {b.dtype} {list(b.shape)}")
        return d
    if a.dtype.kind == "f":
        bits = np.dtype(f"u{a.dtype.itemsize}")
        differ = a.view(bits) != b.view(bits)
        delta = None
    else:
        delta = b.astype(np.int64) - a.astype(np.int64)
        differ = delta != 0
    d.count = int(np.count_nonzero(differ))
    if d.count == 0:
        return d
    flat = int(np.flatnonzero(differ.reshape(-1))[0])
    d.first_index = [int(i) for i in np.unravel_index(flat, a.shape)]
    d.a_value, d.b_value = a.reshape(-1)[flat].item(), b.reshape(-1)[flat].item()
    if delta is None:
        d.max_abs = float(np.max(np.abs(b[differ].astype(np.float64) - a[differ])))
    else:
        d.plus_one, d.minus_one = int(np.sum(delta == 1)), int(np.sum(delta == -1))
        d.larger = d.count - d.plus_one - d.minus_one
        d.max_abs = float(np.max(np.abs(delta)))
    return d


def format_comparison(c: Comparison, a_name: str = "A", b_name: str = "B") -> str:
    """The report ``npquant compare`` prints: one row per op (identical, or each differing
    tensor with count, signature, first index and values), then the first divergence."""
    lines = [f"A = {a_name}", f"B = {b_name}"]
    lines += [f"problem: {p}" for p in c.problems]
    lines.append(f"{'op':>3} {'name':<12} {'tensor':<24} {'differ':>10} {'of':>10} {'+1':>8} "
                 f"{'-1':>8} {'|d|>1':>8} {'max|d|':>8}  first index: A -> B")
    by_layer: dict[tuple[int, str], list[TensorDiff]] = {}
    for d in c.diffs:
        by_layer.setdefault((d.layer_index, d.layer_name), []).append(d)
    for (index, name), diffs in by_layer.items():
        bad = [d for d in diffs if d.count]
        if not bad:
            lines.append(f"{index:>3} {name:<12} {'(all tensors identical)':<24} {0:>10} "
                         f"{sum(d.size for d in diffs):>10}")
        for d in bad:
            lines.append(f"{index:>3} {name:<12} {d.role:<24} {d.count:>10} {d.size:>10} "
                         f"{d.plus_one:>8} {d.minus_one:>8} {d.larger:>8} {d.max_abs:>8g}  "
                         f"{d.first_index}: {d.a_value} -> {d.b_value}")
    first = c.first
    if first is None:
        lines.append("identical" if c.identical else "no differing values, but see the problems")
    else:
        lines.append(f"first divergence: op {first.layer_index:02d} {first.layer_name}, tensor "
                     f"{first.role} ({first.key}), index {first.first_index}: A = "
                     f"{first.a_value}, B = {first.b_value}; {first.count} of {first.size} "
                     f"differ (+1: {first.plus_one}, -1: {first.minus_one}, larger: "
                     f"{first.larger})")
    return "\n".join(lines)
