"""The C header compiles (``cc -std=c99 -Wall -Wextra -Werror -pedantic``) and a C program that
walks ``npq_tensors[]`` reads back every value, bit for bit, 16-byte aligned (batch tensors:
the first image); the per-layer ``#define``s equal the manifest."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from golden_helpers import make_golden_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from npquant.golden import load_golden
from npquant.golden.cheader import DTYPE_CODES, c_macro

PROGRAM = r"""
#include <stdio.h>
#include <stdint.h>
#include "golden.h"

static size_t item_size(int32_t code) {
    switch (code) {
    case 1: case 2: return 1;
    case 3: case 4: return 2;
    case 5: case 6: case 7: return 4;
    default: return 8;
    }
}

int main(int argc, char **argv) {
    FILE *bin = fopen(argv[argc - 1], "wb");
    int32_t i, d;
    if (!bin) return 2;
    for (i = 0; i < NPQ_NUM_TENSORS; i++) {
        const npq_tensor_t *t = &npq_tensors[i];
        printf("%s %d %d %lld %d", t->name, (int)t->dtype, (int)t->ndim, (long long)t->size,
               (int)((uintptr_t)t->data % 16));
        for (d = 0; d < t->ndim; d++) printf(" %d", (int)t->shape[d]);
        printf("\n");
        fwrite(t->data, item_size(t->dtype), (size_t)t->size, bin);
    }
    fclose(bin);
    DEFINES
    return 0;
}
"""


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory):
    return make_golden_dir(tmp_path_factory)


def find_compiler() -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        if os.environ.get("CI"):
            pytest.fail("no C compiler in CI: tools/setup.sh installs gcc (apt-get, as root)")
        pytest.skip("no C compiler (cc/gcc/clang); tools/setup.sh installs gcc when run as root")
    return cc


def test_header_compiles_and_round_trips(golden_dir, tmp_path):
    cc = find_compiler()
    d = golden_dir[0]
    g = load_golden(d)
    defines = []
    for layer in g.manifest["layers"]:
        if "offsets" not in layer:
            continue
        p = c_macro(f"{layer['index']:02d}_{layer['name']}")
        for name in ("INPUT_OFFSET", "OUTPUT_OFFSET", "OUTPUT_ZERO_POINT", "ACT_MIN", "ACT_MAX"):
            defines.append(f'printf("define {p}_{name} %d\\n", (int)({p}_{name}));')
    (tmp_path / "main.c").write_text(PROGRAM.replace("DEFINES", "\n    ".join(defines)))
    exe = tmp_path / "main"
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(d),
                        str(tmp_path / "main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(exe), str(tmp_path / "dump.bin")], capture_output=True, text=True,
                       check=True)
    dump = (tmp_path / "dump.bin").read_bytes()
    lines = r.stdout.splitlines()
    tensor_lines = [line.split() for line in lines if not line.startswith("define ")]
    assert [t[0] for t in tensor_lines] == list(g.manifest["tensors"])
    offset = 0
    for name, code, ndim, size, misalign, *shape in tensor_lines:
        want = g.arrays[name]
        if g.manifest["tensors"][name]["layout"].startswith("N"):  # batch: image 0 only
            want = want[:g.manifest["c_header"]["images"]]
        assert int(code) == DTYPE_CODES[want.dtype.name] and int(misalign) == 0, name
        assert [int(s) for s in shape] == list(want.shape) and int(ndim) == want.ndim, name
        n = int(size) * want.dtype.itemsize
        got = np.frombuffer(dump[offset:offset + n], dtype=want.dtype.newbyteorder("<"))
        assert np.array_equal(got.view(f"u{want.dtype.itemsize}"),
                              want.reshape(-1).view(f"u{want.dtype.itemsize}")), name
        offset += n
    assert offset == len(dump)
    got_defines = {line.split()[1]: int(line.split()[2]) for line in lines
                   if line.startswith("define ")}
    for layer in g.manifest["layers"]:
        if "offsets" in layer:
            p = c_macro(f"{layer['index']:02d}_{layer['name']}")
            assert got_defines[f"{p}_INPUT_OFFSET"] == layer["offsets"]["input_offset"]
            assert got_defines[f"{p}_OUTPUT_OFFSET"] == layer["offsets"]["output_offset"]
            assert got_defines[f"{p}_OUTPUT_ZERO_POINT"] == \
                layer["zero_points"]["output_zero_point"]
            lo, hi = layer["requant"]["activation_range"]
            assert (got_defines[f"{p}_ACT_MIN"], got_defines[f"{p}_ACT_MAX"]) == (lo, hi)


def test_extreme_values_survive_the_c_compiler(tmp_path):
    """INT32_MIN/MAX, int8 -128, uint8 255, int16 edges, float -0.0 and NaN bits round trip."""
    cc = find_compiler()
    from npquant.golden import write_tensors

    tensors = [("i32", np.array([-2**31, 2**31 - 1, 0, -1, 10, -10], np.int32), "vector"),
               ("i8", np.array([-128, 127, 0, -1], np.int8), "vector"),
               ("u8", np.array([0, 255, 128], np.uint8), "vector"),
               ("i16", np.array([-32768, 32767, -1], np.int16), "vector"),
               ("i64", np.array([-2**63, 2**63 - 1, 0, -1], np.int64), "vector"),
               ("u32", np.array([0, 2**32 - 1], np.uint32), "vector"),
               ("u64", np.array([0, 2**64 - 1, 2**63], np.uint64), "vector"),
               ("f32", np.array([-0.0, np.nan, np.inf, 1e-45], np.float32), "vector"),
               ("f64", np.array([-0.0, 2.0**-1074], np.float64), "vector"),
               ("empty", np.zeros((0,), np.int8), "vector")]
    d = tmp_path / "edges"
    write_tensors(d, tensors, {"layers": []}, formats=("h",))
    (tmp_path / "main.c").write_text(PROGRAM.replace("DEFINES", ""))
    exe = tmp_path / "main"
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(d),
                        str(tmp_path / "main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    subprocess.run([str(exe), str(tmp_path / "dump.bin")], check=True, capture_output=True)
    expected = b"".join(a.astype(a.dtype.newbyteorder("<")).tobytes() for _, a, _ in tensors)
    assert (tmp_path / "dump.bin").read_bytes() == expected


@given(st.sampled_from(["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                        "uint64"]),
       st.data())
@settings(max_examples=60)
def test_decimal_initializers_equal_python_str(dtype, data):
    """The vectorized C initializer text is ``str(v)`` of every value, comma separated, 16 a
    line (the C compiler test above checks what the compiler makes of it)."""
    from npquant.golden.cheader import PER_LINE, _value_chunks

    def c_int(tok: str) -> int:
        return -(2**63) if tok == "(-INT64_MAX-1)" else int(tok.rstrip("U"))

    info = np.iinfo(dtype)
    edges = [int(info.min), int(info.max), 0, -1 if info.min < 0 else 1, 9, 10, 99, 100]
    values = data.draw(st.lists(st.integers(int(info.min), int(info.max)), max_size=40))
    arr = np.array(edges + values, dtype=dtype)
    text = b"".join(_value_chunks(arr)).decode("ascii")
    lines = text.splitlines()
    assert all(len(line.split(",")) - 1 <= PER_LINE for line in lines)
    tokens = [tok.strip() for tok in text.replace("\n", " ").split(",") if tok.strip()]
    assert [c_int(tok) for tok in tokens] == [int(v) for v in arr]
    plain = [tok for tok, v in zip(tokens, arr, strict=True) if int(v) != -(2**63)]
    assert plain == [str(int(v)) + ("U" if dtype == "uint64" else "") for v in arr
                     if int(v) != -(2**63)]
