"""``npquant verify``: every manifest edit, deleted, truncated, flipped or stale file is reported
with the file named, exit status 1; a sound directory exits 0."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from golden_helpers import make_golden_dir

from npquant.cli import main
from npquant.golden import GoldenDataError, load_golden, verify_golden
from npquant.golden.manifest import seal


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory):
    return make_golden_dir(tmp_path_factory)


def run_verify(d: Path, capsys) -> tuple[int, str]:
    code = main(["verify", str(d)])
    return code, capsys.readouterr().out


@pytest.fixture
def copy(golden_dir, tmp_path) -> Path:
    d = tmp_path / "g"
    shutil.copytree(golden_dir[0], d)
    return d


def edit_manifest(d: Path, change, *, reseal: bool = False) -> None:
    m = json.loads((d / "manifest.json").read_text())
    change(m)
    (d / "manifest.json").write_text(json.dumps(seal(m) if reseal else m, indent=2))


def test_a_sound_directory_verifies(golden_dir, capsys):
    code, out = run_verify(golden_dir[0], capsys)
    assert code == 0 and out.startswith("OK ") and "manifest checksum" in out


def first_conv(m):
    return next(lay for lay in m["layers"] if lay["op"] == "CONV_2D")


MANIFEST_EDITS = {
    "zero-point": lambda m: first_conv(m)["zero_points"].update(
        input_zero_point=first_conv(m)["zero_points"]["input_zero_point"] + 1),
    "activation-range": lambda m: first_conv(m)["requant"].update(activation_range=[-127, 127]),
    "profile": lambda m: m["profile"].update(name="onnxruntime"),
    "profile-version": lambda m: m["profile"].update(version="2"),
    "seed": lambda m: m.update(seed=8),
    "scale": lambda m: first_conv(m)["qparams"]["output"].update(scale=1.0),
    "tensor-shape": lambda m: m["tensors"]["labels"].update(shape=[5]),
    "a-sha256": lambda m: m["sha256"].update({"labels.npy": "0" * 64}),
    "provenance": lambda m: m["provenance"].update(command="npquant golden other"),
    "extra": lambda m: m.update(extra={"note": "edited"}),
    "checksum-removed": lambda m: m.pop("manifest_sha256"),
}


@pytest.mark.parametrize("edit", list(MANIFEST_EDITS), ids=list(MANIFEST_EDITS))
def test_every_manifest_edit_is_reported(copy, capsys, edit):
    edit_manifest(copy, MANIFEST_EDITS[edit])
    code, out = run_verify(copy, capsys)
    assert code == 1
    assert f"BAD {copy / 'manifest.json'}: " in out
    assert "manifest_sha256" in out


@pytest.mark.parametrize("edit, names", [
    ("zero-point", ["01_0.input_zero_point.npy", "offsets"]),
    ("activation-range", ["activation_range [-127, 127]"]),
    ("profile", ["rules differ"]),
    ("tensor-shape", ["labels.npy: int32 (4,), the manifest says int32 (5,)"]),
], ids=["zero-point", "activation-range", "profile", "tensor-shape"])
def test_a_resealed_manifest_edit_is_caught_by_the_consistency_checks(copy, capsys, edit, names):
    """Someone edits a field and recomputes manifest_sha256: the files and npquant's own
    definitions still disagree with it."""
    edit_manifest(copy, MANIFEST_EDITS[edit], reseal=True)
    code, out = run_verify(copy, capsys)
    assert code == 1 and "manifest_sha256" not in out
    for name in names:
        assert name in out, out


def flip_byte(p: Path, at: int = -2) -> None:
    data = bytearray(p.read_bytes())
    data[at] ^= 0x01
    p.write_bytes(bytes(data))


FILE_DAMAGE = {
    "delete-bin": ("00_input.output.bin", lambda p: p.unlink(), "listed in the manifest but "
                                                                  "missing"),
    "truncate-npy": ("01_0.weight.npy", lambda p: p.write_bytes(p.read_bytes()[:-5]),
                     "does not match"),
    "flip-hex": ("01_0.acc.hex", flip_byte, "does not match"),
    "flip-npz": ("golden.npz", lambda p: flip_byte(p, 200), "does not match"),
    "flip-header": ("golden.h", flip_byte, "does not match"),
    "stale-file": ("01_0.acc.nchw.bin", lambda p: p.write_bytes(b"old"), "not listed in the "
                                                                          "manifest"),
}


@pytest.mark.parametrize("what", list(FILE_DAMAGE), ids=list(FILE_DAMAGE))
def test_every_damaged_or_stale_file_is_named(copy, capsys, what):
    name, damage, message = FILE_DAMAGE[what]
    damage(copy / name)
    code, out = run_verify(copy, capsys)
    assert code == 1
    assert f"BAD {copy / name}" in out and message in out, out
    with pytest.raises(GoldenDataError, match=name):
        load_golden(copy)


def test_every_bad_file_is_named_at_once(copy, capsys):
    """Five problems in one directory: all five are listed, not only the first."""
    damaged = ["00_input.output.bin", "01_0.weight.npy", "01_0.acc.hex", "labels.bin"]
    (copy / damaged[0]).unlink()
    for name in damaged[1:]:
        flip_byte(copy / name)
    (copy / "stale.hex").write_text("00\n")
    code, out = run_verify(copy, capsys)
    lines = [line for line in out.splitlines() if line.startswith("BAD ")]
    assert code == 1 and len(lines) == 5, out
    for name in [*damaged, "stale.hex"]:
        assert any(str(copy / name) in line for line in lines), name
    assert verify_golden(copy) == [line[4:] for line in lines]


def test_a_file_rewritten_with_its_sha256_updated_is_still_caught(copy, capsys):
    """The .bin differs from the .npy: the cross-format check names it even when both the
    file's sha256 and the manifest checksum were recomputed."""
    p = copy / "01_0.output.bin"
    flip_byte(p, 0)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    edit_manifest(copy, lambda m: m["sha256"].update({p.name: digest}), reseal=True)
    code, out = run_verify(copy, capsys)
    assert code == 1 and f"{p} differs from {copy / '01_0.output.npy'}" in out, out


def test_verify_without_a_manifest(tmp_path, capsys):
    (tmp_path / "a.hex").write_text("00\n")
    code, out = run_verify(tmp_path, capsys)
    assert code == 1 and "manifest.json: missing" in out
    (tmp_path / "manifest.json").write_text("{not json")
    code, out = run_verify(tmp_path, capsys)
    assert code == 1 and "not valid JSON" in out


def leaf_paths(obj, path=()):
    """Every leaf of a JSON tree as a path of keys / indices."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaf_paths(v, (*path, k))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            yield from leaf_paths(v, (*path, i))
    else:
        yield path


def test_the_checksum_covers_every_field(golden_dir):
    """Edit each leaf of the manifest in turn (numbers +1, strings changed, bools flipped, None
    and empty lists replaced): the manifest's own checksum fails for every one."""
    from npquant.golden.manifest import checksum_problem

    m = json.loads((golden_dir[0] / "manifest.json").read_text())
    assert checksum_problem(m) is None
    paths = [p for p in leaf_paths(m) if p != ("manifest_sha256",)]
    assert len(paths) > 500
    for path in paths:
        edited = json.loads(json.dumps(m))
        node = edited
        for key in path[:-1]:
            node = node[key]
        v = node[path[-1]]
        node[path[-1]] = (not v if isinstance(v, bool) else v + 1 if isinstance(v, (int, float))
                          else v + "x" if isinstance(v, str) else 0)
        assert checksum_problem(edited) is not None, path
