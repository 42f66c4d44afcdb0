"""``npquant compare``: a planted one-element difference in op k is reported exactly (op,
tensor, index, both values, count, ±1 signature); identical sets exit 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from golden_helpers import make_golden_dir

from npquant.cli import main
from npquant.golden import load_golden, write_tensors
from npquant.golden.compare import compare_golden, diff_arrays

WRITER_KEYS = {"format", "format_version", "npquant_version", "formats", "provenance",
               "hex_format", "bin_format", "npz", "c_header", "tensors", "sha256",
               "manifest_sha256"}


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory):
    return make_golden_dir(tmp_path_factory)


def planted_cases(g) -> list[tuple[int, str, str]]:
    """(op index, role, key) of every integer activation tensor (acc and output of each op)."""
    return [(lay["index"], role, lay["tensors"][role]) for lay in g.manifest["layers"]
            for role in ("acc", "output") if role in lay["tensors"]
            and g.arrays[lay["tensors"][role]].dtype.kind == "i"]


def plant(arr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...], int]:
    """A copy with one element moved by +1 (or -1 at the top of the dtype)."""
    out = arr.copy()
    idx = tuple(int(rng.integers(0, s)) for s in arr.shape)
    step = -1 if out[idx] == np.iinfo(arr.dtype).max else 1
    out[idx] += step
    return out, idx, step


def test_a_planted_difference_in_each_op_is_found_exactly(golden_dir):
    g = load_golden(golden_dir[0])
    rng = np.random.default_rng(0)
    cases = planted_cases(g)
    assert len(cases) >= 5
    for index, role, key in cases:
        b = dict(g.arrays)
        b[key], idx, step = plant(g.arrays[key], rng)
        c = compare_golden(g.manifest["layers"], g.arrays, g.manifest["layers"], b)
        differing = [d for d in c.diffs if d.count]
        assert len(differing) == 1 and not c.identical and c.problems == []
        d = c.first
        assert (d.layer_index, d.role, d.key) == (index, role, key)
        assert d.count == 1 and d.first_index == list(idx)
        assert (d.a_value, d.b_value) == (int(g.arrays[key][idx]), int(b[key][idx]))
        assert (d.plus_one, d.minus_one, d.larger) == ((1, 0, 0) if step == 1 else (0, 1, 0))


def test_signature_counts_plus_and_minus_one_and_larger():
    a = np.array([[0, 5, -3], [7, 100, 2]], dtype=np.int32)
    b = np.array([[1, 5, -4], [7, -100, 3]], dtype=np.int32)
    d = diff_arrays(a, b)
    assert (d.count, d.first_index, d.a_value, d.b_value) == (4, [0, 0], 0, 1)
    assert (d.plus_one, d.minus_one, d.larger, d.max_abs) == (2, 1, 1, 200.0)
    f = diff_arrays(np.array([0.0, 1.0], np.float32), np.array([-0.0, 1.0], np.float32))
    assert f.count == 1 and f.first_index == [0]  # floats bit for bit: -0.0 != 0.0


def rewrite_with(src: Path, dst: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a golden directory with ``src``'s manifest fields (a fake RTL dump)."""
    g = load_golden(src)
    fields = {k: v for k, v in g.manifest.items() if k not in WRITER_KEYS}
    tensors = [(k, arrays[k], info["layout"]) for k, info in g.manifest["tensors"].items()]
    write_tensors(dst, tensors, fields, formats=g.manifest["formats"])


def test_compare_command_on_two_directories(golden_dir, tmp_path, capsys):
    src = golden_dir[0]
    g = load_golden(src)
    index, role, key = planted_cases(g)[2]
    arrays = dict(g.arrays)
    arrays[key], idx, step = plant(g.arrays[key], np.random.default_rng(1))
    rewrite_with(src, tmp_path / "b", arrays)
    assert main(["compare", str(src), str(src)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("identical")
    assert main(["compare", str(src), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    name = g.manifest["layers"][index]["name"]
    assert (f"first divergence: op {index:02d} {name}, tensor {role} ({key}), index "
            f"{list(idx)}: A = {int(g.arrays[key][idx])}, B = {int(arrays[key][idx])}; 1 of "
            f"{g.arrays[key].size} differ") in out, out
    assert sum("(all tensors identical)" in line for line in out.splitlines()) == \
        len(g.manifest["layers"]) - 1
    assert main(["compare", str(src), str(tmp_path / "missing")]) == 2
