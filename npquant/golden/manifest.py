"""The golden manifest's self-checksum and provenance.

The manifest checksums itself: ``manifest_sha256`` is the sha256 of its canonical JSON without
that field (``json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)``, UTF-8). Any edit of a field — a zero point, an activation range, the profile,
the seed, a file's sha256 — changes the canonical text and no longer matches, so the data files'
sha256 list is itself protected. (A checksum is not a signature: someone who edits the manifest
and recomputes it is caught only by the consistency checks of ``verify_golden``.)

Provenance says where the data came from: npquant version, the git commit (and whether the
checkout had uncommitted changes) when npquant runs from a checkout, Python, NumPy and numba
versions, the CPU flags (cpuid) that decide which real-framework accumulator behaviour a profile
models on this host (VNNI: exact u8 x s8 sums; without it vpmaddubsw saturates int16 pairs; AMX:
oneDNN tile kernels), and the command line. None of it changes the integers: npquant's fast
(VNNI) and portable kernels are bit-exact with each other, and the thread count does not enter
the arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any

import numba
import numpy as np

from npquant import __version__

CHECKSUM_FIELD = "manifest_sha256"
# x86 flags that change what ONNX Runtime / fbgemm compute for u8 x s8 products (docs/fidelity.md)
RELEVANT_CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def canonical_json(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes the checksum covers: sorted keys, no whitespace, ASCII, no NaN."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 hex digest of ``canonical_json(manifest)``."""
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``manifest`` with its ``manifest_sha256`` set (the last key)."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_FIELD}
    return dict(body, **{CHECKSUM_FIELD: manifest_checksum(body)})


def manifest_text(manifest: dict[str, Any]) -> str:
    """The file's text: the sealed manifest, indented for people (the checksum ignores layout)."""
    return json.dumps(seal(manifest), indent=2, allow_nan=False) + "\n"


def checksum_problem(manifest: dict[str, Any]) -> str | None:
    """None if the manifest's own checksum matches its content, else what is wrong."""
    want = manifest.get(CHECKSUM_FIELD)
    if not isinstance(want, str):
        return f"has no {CHECKSUM_FIELD} (not sealed by npquant.golden, or the field was removed)"
    try:
        got = manifest_checksum(manifest)
    except ValueError as exc:
        return f"cannot be checksummed ({exc})"
    if got != want:
        return (f"{CHECKSUM_FIELD} {want} does not match its content (sha256 {got}): "
                "a field was edited after it was written")
    return None


def without_provenance(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest minus ``provenance`` and the checksum: what two exports of the same model,
    profile and images agree on, on any machine and from any checkout."""
    return {k: v for k, v in manifest.items() if k not in ("provenance", CHECKSUM_FIELD)}


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """Where the data came from (module docstring). ``command``: the argv to record."""
    return {
        "npquant_version": __version__,
        "git": _git_state(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "machine": platform.machine(),
        "cpu_flags": cpu_flags(),
        "command": None if command is None else shlex.join(command),
    }


def cpu_flags() -> dict[str, bool]:
    """``RELEVANT_CPU_FLAGS`` of this CPU, read with cpuid (``npquant.testing.cpu``)."""
    from npquant.testing.cpu import cpu_flags as host_flags

    flags = host_flags()
    return {name: name in flags for name in RELEVANT_CPU_FLAGS}


def _git_state() -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the checkout npquant is imported from, None outside one."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], check=True, capture_output=True,
                                text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()
