"""Reading and verifying golden data: the manifest's own checksum, every file's sha256, files
not in the manifest, the formats against each other, and the manifest against the files.

``verify_golden(dir)`` returns every problem it finds, each naming its file, so a hardware
team sees the whole damage at once (``npquant verify DIR`` prints them and exits 1);
``load_golden(dir)`` raises ``GoldenDataError`` listing them, or returns the arrays (loaded
without pickles).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npquant.golden.formats import read_bin, read_hex
from npquant.golden.manifest import checksum_problem, sha256_file
from npquant.golden.writer import FORMAT, FORMAT_VERSION, HEADER, MANIFEST, NPZ


class GoldenDataError(ValueError):
    """A golden directory is incomplete, modified, truncated or inconsistent."""


@dataclass
class Golden:
    """``manifest`` (the JSON dict) and ``arrays`` (tensor key -> array)."""

    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def layer(self, name_or_index: str | int) -> dict[str, np.ndarray]:
        """The tensors of one op by name (``"conv1"``) or index: ``{"input": ..., "acc": ...}``."""
        for layer in self.manifest["layers"]:
            if name_or_index in (layer["name"], layer["index"]):
                return {role: self.arrays[key] for role, key in layer["tensors"].items()}
        known = [(lay["index"], lay["name"]) for lay in self.manifest["layers"]]
        raise KeyError(f"no layer {name_or_index!r}; layers: {known}")


def load_golden(directory: str | Path, *, check_formats: bool = True) -> Golden:
    """Load a golden directory written by ``write_golden`` / ``write_tensors``.

    Runs every check of ``verify_golden`` first and raises ``GoldenDataError`` (a ValueError)
    listing every problem, each naming its file. With ``check_formats`` the hex, bin, npz and
    npy copies must be equal; without it only the first available copy of each tensor is read
    (npy, else the npz member, else bin, else hex).
    """
    problems, manifest, arrays = _verify(Path(directory), check_formats)
    if problems:
        raise GoldenDataError(f"{directory}: {len(problems)} problem(s):\n  "
                              + "\n  ".join(problems))
    return Golden(manifest, arrays)


def verify_golden(directory: str | Path, *, check_formats: bool = True) -> list[str]:
    """Every problem of a golden directory, one line each naming the file; [] if it is sound.

    Checked: ``manifest.json`` exists, is JSON, has the expected format and its own checksum
    matches (``npquant.golden.manifest``); each listed file exists and has its sha256; no file
    in the directory is missing from the manifest (stale files of another export); each tensor's
    dtype and shape match the manifest and its formats agree bit for bit; the zero points,
    offsets and activation ranges in the manifest match the tensors and the profile.
    """
    return _verify(Path(directory), check_formats)[0]


def _verify(d: Path, check_formats: bool) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    mpath = d / MANIFEST
    if not d.is_dir():
        return [f"{d}: not a directory"], {}, {}
    if not mpath.is_file():
        return [f"{mpath}: missing (no manifest: not a golden directory, or an export that "
                "never finished)"], {}, {}
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"{mpath}: not valid JSON ({exc})"], {}, {}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), dict) \
            or not isinstance(manifest.get("tensors"), dict):
        return [f"{mpath}: not a golden manifest (no sha256 / tensors tables)"], {}, {}
    problems: list[str] = []
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"{mpath}: format {manifest.get('format')!r} version "
                        f"{manifest.get('format_version')!r}, expected {FORMAT!r} "
                        f"{FORMAT_VERSION}")
    bad_sum = checksum_problem(manifest)
    if bad_sum:
        problems.append(f"{mpath}: {bad_sum}")
    sound: set[str] = set()
    for name, want in sorted(manifest["sha256"].items()):
        path = d / name
        if Path(name).name != name or name == MANIFEST:
            problems.append(f"{mpath}: lists {name!r}, not a plain file name of the directory")
        elif not path.is_file():
            problems.append(f"{path}: listed in the manifest but missing")
        elif (got := sha256_file(path)) != want:
            problems.append(f"{path}: sha256 {got} does not match the manifest ({want}); the "
                            "file is corrupt, truncated or modified")
        else:
            sound.add(name)
    for path in sorted(d.iterdir()):
        if path.name != MANIFEST and path.name not in manifest["sha256"]:
            problems.append(f"{path}: not listed in the manifest (a stale file of another "
                            "export, or added by hand)")
    arrays: dict[str, Any] = {}
    try:
        arrays = _check_tensors(d, manifest, sound, check_formats, problems)
        _check_layers(d, manifest, arrays, problems)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        problems.append(f"{mpath}: malformed ({type(exc).__name__}: {exc})")
    return problems, manifest, arrays


def _check_tensors(d: Path, manifest: dict[str, Any], sound: set[str], check_formats: bool,
                   problems: list[str]) -> dict[str, np.ndarray]:
    """Load each tensor from its first sound copy, compare dtype/shape with the manifest and,
    with ``check_formats``, every other copy with it."""
    npz_members: dict[str, np.ndarray] | None = None
    if NPZ in manifest["sha256"] and NPZ in sound:
        npz_members = _load_npz(d / NPZ, problems)
    arrays: dict[str, np.ndarray] = {}
    for key, info in manifest["tensors"].items():
        dtype, shape = np.dtype(info["dtype"]), tuple(info["shape"])
        copies: list[tuple[str, Any]] = []
        for fmt, name in info["files"].items():
            fname = name.split(":", 1)[0]
            if fname not in manifest["sha256"]:
                problems.append(f"{d / MANIFEST}: tensor {key} names {name}, which has no sha256")
            elif fname in sound and fmt != "h":
                copies.append((fmt, d / fname))
        loaded: list[tuple[Path | str, np.ndarray]] = []
        for fmt, path in copies:
            if loaded and not check_formats:
                break
            try:
                if fmt == "npy":
                    arr = _load_npy(path)
                elif fmt == "npz":
                    if npz_members is None or f"{key}.npy" not in npz_members:
                        problems.append(f"{path}: has no member {key}.npy")
                        continue
                    arr = npz_members[f"{key}.npy"]
                    path = f"{path}:{key}.npy"
                else:
                    arr = (read_hex if fmt == "hex" else read_bin)(path, dtype, shape)
            except (ValueError, OSError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            if arr.dtype != dtype or arr.shape != shape:
                problems.append(f"{path}: {arr.dtype} {arr.shape}, the manifest says {dtype} "
                                f"{shape}")
                continue
            if loaded and not np.array_equal(arr.view(_bits(dtype)),
                                             loaded[0][1].view(_bits(dtype))):
                problems.append(f"{path} differs from {loaded[0][0]}")
                continue
            loaded.append((path, arr))
        if loaded:
            arrays[key] = loaded[0][1]
    return arrays


def _check_layers(d: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                  problems: list[str]) -> None:
    """The manifest's zero points, offsets, activation ranges and profile against the tensor
    files and npquant's own definitions (a re-checksummed edit of the manifest still fails)."""
    from npquant.integer import activation_range
    from npquant.profiles import PROFILES, get_profile
    from npquant.qparams import QParams

    mpath = d / MANIFEST
    prof_info = manifest.get("profile")
    prof = None
    if prof_info is not None:
        if prof_info.get("name") not in PROFILES:
            problems.append(f"{mpath}: unknown profile {prof_info.get('name')!r}")
        else:
            prof = get_profile(prof_info["name"])
            if prof.version != prof_info.get("version") or \
                    dict(prof.rules()) != prof_info.get("rules"):
                problems.append(f"{mpath}: profile {prof.name} version "
                                f"{prof_info.get('version')!r} / rules differ from npquant's "
                                f"{prof.name} version {prof.version!r}")
    for layer in manifest.get("layers", []):
        tag = f"layer {layer['index']:02d} {layer['name']}"
        t = layer["tensors"]
        for role, zp in layer.get("zero_points", {}).items():
            key = t.get(role)
            if key in arrays and int(arrays[key].reshape(-1)[0]) != zp:
                problems.append(f"{mpath}: {tag} {role} {zp} differs from {d / (key + '.npy')}"
                                f" ({int(arrays[key].reshape(-1)[0])})")
        for role, q in (layer.get("qparams") or {}).items():
            zkey = f"{role}_zero_point"
            if isinstance(q, dict) and zkey in layer.get("zero_points", {}) and \
                    np.any(np.asarray(q["zero_point"]) != layer["zero_points"][zkey]):
                problems.append(f"{mpath}: {tag} qparams.{role}.zero_point {q['zero_point']} "
                                f"!= zero_points.{zkey} {layer['zero_points'][zkey]}")
        offsets = layer.get("offsets")
        if offsets is not None:
            zps = layer["zero_points"]
            if offsets["input_offset"] != -zps["input_zero_point"] or \
                    offsets["output_offset"] != zps["output_zero_point"]:
                problems.append(f"{mpath}: {tag} offsets {offsets} do not follow from the zero "
                                f"points {zps}")
        if "requant" in layer and prof is not None:
            qo = layer["qparams"]["output"]
            q = QParams(qo["scale"], qo["zero_point"], bits=qo["bits"], signed=qo["signed"])
            want = [int(v) for v in activation_range(layer["attributes"].get("activation"),
                                                     float(q.scale), int(q.zero_point),
                                                     q.dtype, prof, q.bits)]
            if layer["requant"]["activation_range"] != want:
                problems.append(f"{mpath}: {tag} activation_range "
                                f"{layer['requant']['activation_range']} != {want}, the range "
                                "of its activation and output qparams")


def _bits(dtype: np.dtype) -> np.dtype:
    """Compare floats bit for bit (NaN-safe, -0.0 distinct)."""
    return np.dtype(f"u{np.dtype(dtype).itemsize}")



def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cannot be read as .npy ({exc}); truncated or corrupt") from None


def _load_npz(path: Path, problems: list[str]) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {f"{k}.npy": z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        problems.append(f"{path}: cannot be read as .npz ({exc}); truncated or corrupt")
        return None


__all__ = ["Golden", "GoldenDataError", "HEADER", "load_golden", "verify_golden"]
