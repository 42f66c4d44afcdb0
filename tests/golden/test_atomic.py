"""Atomic export: bad input fails before the first byte, an existing directory is replaced whole
or refused, a failed or killed export leaves the old directory whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from golden_helpers import small_model

from npquant.golden import atomic, verify_golden, write_golden
from npquant.golden import writer as golden_writer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_and_images():
    return small_model()


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def siblings(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


def export(d: Path, model_and_images) -> Path:
    im, x = model_and_images
    write_golden(im, x[:2], d, seed=1, nhwc=True, labels=np.arange(2))
    return d


@pytest.fixture
def old_export(tmp_path, model_and_images) -> Path:
    """A fresh old export for a test that replaces it."""
    return export(tmp_path / "g", model_and_images)


@pytest.fixture(scope="module")
def kept_export(tmp_path_factory, model_and_images) -> Path:
    """An old export that the tests using it must leave unchanged."""
    return export(tmp_path_factory.mktemp("kept") / "g", model_and_images)


class NotJson:
    pass


BAD_CALLS = [
    ("no-images", lambda x: dict(x=x[:0]), ValueError, "at least one image"),
    ("nan-image", lambda x: dict(x=np.where(np.arange(x[:2].size).reshape(x[:2].shape) == 3,
                                            np.nan, x[:2])), ValueError, "NaN/inf"),
    ("int-images", lambda x: dict(x=x[:2].astype(np.int32)), TypeError, "float array"),
    ("label-count", lambda x: dict(labels=np.arange(3)), ValueError, r"labels must have shape"),
    ("float-labels", lambda x: dict(labels=np.array([0.0, 1.0])), TypeError, "integers"),
    ("bool-labels", lambda x: dict(labels=np.array([True, False])), TypeError, "integers"),
    ("extra-object", lambda x: dict(extra={"a": NotJson()}), TypeError, "extra must be JSON"),
    ("extra-nan", lambda x: dict(extra={"a": float("nan")}), TypeError, "extra must be JSON"),
    ("extra-list", lambda x: dict(extra=[1]), TypeError, "extra must be a dict"),
    ("format", lambda x: dict(formats=("npy", "tiff")), ValueError, "formats"),
    ("no-format", lambda x: dict(formats=()), ValueError, "formats"),
    ("seed", lambda x: dict(seed=True), TypeError, "seed"),
    ("nhwc", lambda x: dict(nhwc="yes"), TypeError, "nhwc"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_input_fails_before_the_first_byte(kept_export, model_and_images, make, exc, match):
    im, x = model_and_images
    before = snapshot(kept_export)
    kwargs = dict(x=x[:2], labels=np.arange(2), overwrite=True)
    kwargs.update(make(x))
    with pytest.raises(exc, match=match):
        write_golden(im, out_dir=kept_export, **kwargs)
    assert snapshot(kept_export) == before and siblings(kept_export) == []
    fresh = kept_export.parent / "fresh"
    kwargs.pop("overwrite")
    with pytest.raises(exc, match=match):
        write_golden(im, out_dir=fresh, **kwargs)
    assert not fresh.exists() and siblings(fresh) == []


def test_existing_directory_refused_without_overwrite(kept_export, model_and_images):
    im, x = model_and_images
    before = snapshot(kept_export)
    with pytest.raises(ValueError, match="not empty; pass overwrite=True"):
        write_golden(im, x[:2], kept_export, seed=2)
    assert snapshot(kept_export) == before


def test_a_non_golden_directory_is_never_replaced(tmp_path, model_and_images):
    im, x = model_and_images
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="does not look like a golden directory"):
        write_golden(im, x[:2], d, overwrite=True)
    assert (d / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_golden(im, x[:2], tmp_path / "file")


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_overwrite_replaces_the_whole_directory(old_export, model_and_images, monkeypatch,
                                                exchange):
    """The old export had NHWC copies and labels; none of its files survives the new one."""
    im, x = model_and_images
    if not exchange:
        monkeypatch.setattr(atomic, "_rename_exchange", lambda a, b: False)
    m = write_golden(im, x[:3], old_export, seed=2, overwrite=True, formats=("npy", "hex"))
    assert {p.name for p in old_export.iterdir()} == set(m["sha256"]) | {"manifest.json"}
    assert not any("nhwc" in name or "labels" in name for name in m["sha256"])
    assert verify_golden(old_export) == [] and siblings(old_export) == []
    assert json.loads((old_export / "manifest.json").read_text())["seed"] == 2


@pytest.mark.parametrize("fresh", [False, True], ids=["replace", "fresh"])
def test_an_export_that_fails_midway_leaves_the_old_directory(old_export, model_and_images,
                                                              monkeypatch, fresh):
    """An error after most files are written (here: in the C header of a late tensor) leaves
    the old export byte for byte, or no directory at all for a fresh export."""
    im, x = model_and_images
    calls = {"n": 0}
    real = golden_writer.cheader.write_array

    def failing(f, key, arr, layout):
        calls["n"] += 1
        if calls["n"] == 20:
            raise OSError("disk full (simulated)")
        return real(f, key, arr, layout)

    monkeypatch.setattr(golden_writer.cheader, "write_array", failing)
    target = old_export.parent / "new" if fresh else old_export
    before = None if fresh else snapshot(old_export)
    with pytest.raises(OSError, match="disk full"):
        write_golden(im, x[:2], target, seed=3, overwrite=True)
    assert calls["n"] == 20
    if fresh:
        assert not target.exists()
    else:
        assert snapshot(old_export) == before and verify_golden(old_export) == []
    assert siblings(target) == []


def test_stale_temporaries_of_dead_exports_are_removed(old_export, model_and_images):
    im, x = model_and_images
    dead = old_export.parent / f".{old_export.name}.tmp-999999999-deadbeef"
    dead.mkdir()
    (dead / "00_input.input.npy").write_bytes(b"partial")
    write_golden(im, x[:2], old_export, seed=4, overwrite=True)
    assert siblings(old_export) == []


def run_kill_campaign(kills: int, images: int) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "kill_golden.py"), "--kills",
                        str(kills), "--images", str(images)], capture_output=True, text=True,
                       timeout=900, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode in (0, 1), r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["bad"] == 0, r.stdout
    assert summary["old"] + summary["new"] == kills
    return summary


def test_kill_9_during_export_leaves_old_or_new():
    """3 SIGKILLs at random moments (tools/kill_golden.py; the 20-kill run is marked slow)."""
    run_kill_campaign(3, 16)


@pytest.mark.slow
def test_kill_9_twenty_times():
    summary = run_kill_campaign(20, 32)
    assert summary["new"] >= 1  # some kills came after the swap: both outcomes were seen
