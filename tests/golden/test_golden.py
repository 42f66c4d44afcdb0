"""Golden data: formats, round trip, self-consistency of the exported integers, tamper detection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden_helpers import make_golden_dir

from npquant.golden import (
    GoldenDataError,
    hex_lines,
    load_golden,
    read_bin,
    read_hex,
    write_bin,
    write_golden,
    write_hex,
)
from npquant.golden.manifest import RELEVANT_CPU_FLAGS
from npquant.profiles import get_profile
from npquant.requant import RequantParams, requantize
from npquant.testing.cpu import cpu_flags


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory):
    return make_golden_dir(tmp_path_factory)


def test_hex_format_twos_complement_and_width():
    assert hex_lines(np.array([-1, 0, 127, -128], dtype=np.int8)) == "ff\n00\n7f\n80\n"
    assert hex_lines(np.array([-2, 1], dtype=np.int32)) == "fffffffe\n00000001\n"
    assert hex_lines(np.array([-32768], dtype=np.int16)) == "8000\n"
    assert hex_lines(np.array([255], dtype=np.uint8)) == "ff\n"
    assert hex_lines(np.array([1.0, -2.0], dtype=np.float32)) == "3f800000\nc0000000\n"
    assert hex_lines(np.array([[1, 2], [3, 4]], dtype=np.int8)) == "01\n02\n03\n04\n"  # C order
    with pytest.raises(TypeError, match="integer or float"):
        hex_lines(np.array([True]))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.float32,
                                   np.float64])
def test_hex_and_bin_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        arr = rng.normal(size=(3, 4)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=(3, 4), dtype=dtype, endpoint=True)
        arr.flat[0], arr.flat[1] = info.min, info.max
    write_hex(tmp_path / "a.hex", arr)
    write_bin(tmp_path / "a.bin", arr)
    assert np.array_equal(read_hex(tmp_path / "a.hex", dtype, arr.shape), arr)
    assert np.array_equal(read_bin(tmp_path / "a.bin", dtype, arr.shape), arr)
    assert (tmp_path / "a.bin").read_bytes() == arr.astype(np.dtype(dtype).newbyteorder("<")
                                                           ).tobytes()


def test_hex_and_bin_readers_reject_bad_files(tmp_path):
    (tmp_path / "short.hex").write_text("ff\n01\n")
    with pytest.raises(ValueError, match="2 lines, expected 3"):
        read_hex(tmp_path / "short.hex", np.int8, (3,))
    (tmp_path / "bad.hex").write_text("ff\nzz\n")
    with pytest.raises(ValueError, match="line 2 'zz'"):
        read_hex(tmp_path / "bad.hex", np.int8, (2,))
    (tmp_path / "wide.hex").write_text("0ff\n")
    with pytest.raises(ValueError, match="line 1"):
        read_hex(tmp_path / "wide.hex", np.int8, (1,))
    (tmp_path / "a.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="7 bytes, expected 8"):
        read_bin(tmp_path / "a.bin", np.int32, (2,))


def test_round_trip_equals_the_model_trace(golden_dir):
    d, im, x = golden_dir
    g = load_golden(d)
    logits, trace = im.run(x, return_trace=True)
    for entry in trace:
        got = g.layer(entry.index)
        assert np.array_equal(got["input"], entry.input) and got["input"].dtype == \
            entry.input.dtype
        assert np.array_equal(got["output"], entry.output)
        if entry.acc is not None:
            assert np.array_equal(got["acc"], entry.acc) and got["acc"].dtype == np.int32
    assert np.array_equal(g.layer("output")["input"], logits)
    assert np.array_equal(g.layer("0")["weight"], im.ops[1].weight)
    assert g.manifest["layers"][1]["tensors"]["input"] == "00_input.output"  # stored once
    nhwc = g.arrays["00_input.output.nhwc"]
    assert np.array_equal(nhwc, g.layer(1)["input"].transpose(0, 2, 3, 1))
    assert g.manifest["tensors"]["01_0.weight.nhwc"]["layout"] == "OHWI"
    assert np.array_equal(g.arrays["labels"], np.arange(4))


def test_manifest_lists_every_file_with_sha256_and_provenance(golden_dir):
    d, im, _ = golden_dir
    m = json.loads((d / "manifest.json").read_text())
    on_disk = {p.name for p in d.iterdir()} - {"manifest.json"}
    assert set(m["sha256"]) == on_disk
    assert m["profile"]["name"] == "tflite" and m["profile"]["version"] == "1"
    assert m["seed"] == 7 and m["npquant_version"] and "two's complement" in m["hex_format"]
    conv = m["layers"][1]
    assert conv["op"] == "CONV_2D"
    zi = conv["zero_points"]["input_zero_point"]
    assert zi == int(im.ops[1].input_qparams.zero_point)
    assert conv["offsets"]["input_offset"] == -zi
    for key, info in m["tensors"].items():
        assert set(info["files"]) == {"npy", "npz", "hex", "bin", "h"}, key
    prov = m["provenance"]
    assert prov["numpy"] == np.__version__
    assert prov["cpu_flags"] == {f: f in cpu_flags() for f in RELEVANT_CPU_FLAGS}
    assert prov["npquant_version"] == m["npquant_version"]


def test_exported_integers_reproduce_each_output(golden_dir):
    """A hardware engineer's check: output = clamp(Z_out + requant(acc)) from the files alone."""
    d, _, _ = golden_dir
    g = load_golden(d)
    prof = get_profile(g.manifest["profile"]["name"])
    for layer in g.manifest["layers"]:
        if layer["op"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        t = g.layer(layer["index"])
        rule = prof.conv if layer["op"] == "CONV_2D" else prof.fully_connected
        params = RequantParams(rule, t["requant_real_multiplier"], t["requant_multiplier"],
                               t["requant_shift"])
        lo, hi = layer["requant"]["activation_range"]
        got = requantize(t["acc"], params, channel_axis=1,
                         zero_point=int(t["output_zero_point"][0]), qmin=lo, qmax=hi)
        assert np.array_equal(got, t["output"]), layer["name"]


@pytest.mark.parametrize("what", ["flip-hex", "truncate-npy", "delete-bin", "flip-npz"])
def test_tampering_is_detected(golden_dir, tmp_path, what):
    import shutil

    src, _, _ = golden_dir
    d = tmp_path / "g"
    shutil.copytree(src, d)
    if what == "flip-hex":
        p = d / "01_0.acc.hex"
        text = p.read_text()
        p.write_text(("0" if text[0] != "0" else "1") + text[1:])
    elif what == "truncate-npy":
        p = d / "01_0.weight.npy"
        p.write_bytes(p.read_bytes()[:-5])
    elif what == "delete-bin":
        p = d / "00_input.output.bin"
        p.unlink()
    else:
        p = d / "golden.npz"
        p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(GoldenDataError, match=p.name):
        load_golden(d)


def test_corrupt_file_with_a_matching_manifest_is_still_caught(golden_dir, tmp_path):
    """Someone edits a file and updates its sha256: the cross-format check still fails."""
    import hashlib
    import shutil

    src, _, _ = golden_dir
    d = tmp_path / "g"
    shutil.copytree(src, d)
    p = d / "01_0.output.bin"
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(bytes(data))
    m = json.loads((d / "manifest.json").read_text())
    m["sha256"][p.name] = hashlib.sha256(bytes(data)).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(GoldenDataError, match="01_0.output.bin differs"):
        load_golden(d)
    q = d / "01_0.output.npy"
    q.write_bytes(q.read_bytes()[:20])  # a truncated .npy read without sha checks
    m["sha256"][q.name] = hashlib.sha256(q.read_bytes()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(GoldenDataError, match="cannot be read as .npy"):
        load_golden(d, check_formats=False)


def test_write_golden_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="IntegerModel"):
        write_golden(object(), np.zeros((1, 1, 4, 4), np.float32), tmp_path)
    with pytest.raises(GoldenDataError, match="manifest.json: missing"):
        load_golden(tmp_path)
