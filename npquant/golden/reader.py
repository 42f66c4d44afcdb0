"""Reading golden data back: every file's sha256 verified, arrays loaded without pickles, the
three formats (npy, hex, bin) and the npz checked against each other."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npquant.golden.formats import read_bin, read_hex
from npquant.golden.writer import FORMAT, MANIFEST


class GoldenDataError(ValueError):
    """A golden directory is incomplete, modified, truncated or inconsistent."""


@dataclass
class Golden:
    """``manifest`` (the JSON dict) and ``arrays`` (tensor key -> array, from the ``.npy``)."""

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
    """Load a golden directory written by ``write_golden``.

    Verifies the sha256 of every file listed in the manifest before reading it (a missing,
    modified or truncated file is a ``GoldenDataError``, a ValueError, naming the file), loads
    ``.npy`` files with ``allow_pickle=False`` and checks their dtype and shape against the
    manifest. With ``check_formats`` the hex, bin and npz copies must equal the ``.npy``.
    """
    d = Path(directory)
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise GoldenDataError(f"{d}: no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GoldenDataError(f"{mpath}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise GoldenDataError(f"{mpath}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for name, want in manifest["sha256"].items():
        path = d / name
        if not path.is_file():
            raise GoldenDataError(f"{path}: listed in the manifest but missing")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise GoldenDataError(f"{path}: sha256 {got} does not match the manifest ({want}); "
                                  "the file is corrupt, truncated or modified")
    arrays: dict[str, np.ndarray] = {}
    for key, info in manifest["tensors"].items():
        dtype, shape = np.dtype(info["dtype"]), tuple(info["shape"])
        arr = _load_npy(d / info["files"]["npy"])
        if arr.dtype != dtype or arr.shape != shape:
            raise GoldenDataError(f"{d / info['files']['npy']}: {arr.dtype} {arr.shape}, "
                                  f"manifest says {dtype} {shape}")
        if check_formats:
            for ext, read in (("hex", read_hex), ("bin", read_bin)):
                other = read(d / info["files"][ext], dtype, shape)
                if not np.array_equal(other.view(_bits(dtype)), arr.view(_bits(dtype))):
                    raise GoldenDataError(f"{d / info['files'][ext]} differs from the .npy")
        arrays[key] = arr
    if check_formats:
        npz = _load_npz(d / manifest["npz"])
        if set(npz) != set(arrays):
            raise GoldenDataError(f"{d / manifest['npz']}: keys differ from the manifest")
        for key, arr in arrays.items():
            if not np.array_equal(npz[key].view(_bits(arr.dtype)), arr.view(_bits(arr.dtype))):
                raise GoldenDataError(f"{d / manifest['npz']}: {key} differs from the .npy")
    return Golden(manifest, arrays)


def _bits(dtype: np.dtype) -> np.dtype:
    """Compare floats bit for bit (NaN-safe, -0.0 distinct)."""
    return np.dtype(f"u{np.dtype(dtype).itemsize}")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise GoldenDataError(f"{path}: cannot be read as .npy ({exc}); truncated or corrupt"
                              ) from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise GoldenDataError(f"{path}: cannot be read as .npz ({exc}); truncated or corrupt"
                              ) from None
