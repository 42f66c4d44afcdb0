"""Same model, same images: byte-identical golden files across runs, numba thread counts and the
fast (VNNI) / portable kernel paths."""

from __future__ import annotations

from pathlib import Path

import numba
import pytest
from golden_helpers import small_model

from npquant.golden import write_golden
from npquant.integer.fast import vnni_gemm as fast_gemm


def export(d: Path) -> dict[str, bytes]:
    im, x = small_model()
    write_golden(im, x[:5], d / "g", seed=3, command=["npquant", "golden", "test"])
    return {p.name: p.read_bytes() for p in sorted((d / "g").iterdir())}


def test_same_bytes_across_runs_threads_and_kernel_paths(tmp_path, monkeypatch):
    runs = {"first": export(tmp_path / "a"), "again": export(tmp_path / "b")}
    if numba.config.NUMBA_NUM_THREADS >= 2:
        before = numba.get_num_threads()
        try:
            for n in (1, 2):
                numba.set_num_threads(n)
                runs[f"{n} thread(s)"] = export(tmp_path / f"t{n}")
        finally:
            numba.set_num_threads(before)
    monkeypatch.setattr(fast_gemm, "HAVE_VNNI", False)
    runs["portable kernels"] = export(tmp_path / "portable")
    first = runs["first"]
    assert len(first) > 80
    for name, files in runs.items():
        assert files.keys() == first.keys(), name
        different = [f for f in files if files[f] != first[f]]
        assert different == [], (name, different)


@pytest.mark.skipif(not fast_gemm.HAVE_VNNI, reason="CPU without AVX-512 VNNI: only the portable "
                    "kernels run here, so the fast/portable comparison above is one path twice")
def test_the_fast_path_is_really_taken_here():
    """Guards the comparison above: with VNNI the conv and FC accumulators come from fast_gemm."""
    calls = {"n": 0}
    real = fast_gemm.gemm_exact_vnni

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    im, x = small_model()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast_gemm, "gemm_exact_vnni", counting)
        im.run(x[:5])
    assert calls["n"] >= 1


@pytest.mark.slow
def test_npquant_golden_is_byte_identical_under_numba_num_threads(tmp_path):
    """The literal claim with the environment variable, in fresh processes: ``npquant golden``
    with NUMBA_NUM_THREADS=1 and =2 (same relative output name, so even the recorded command
    line and the C include guard agree) writes the same bytes, manifest included."""
    import os
    import subprocess
    import sys

    from conftest import write_toy_fashion_mnist

    (tmp_path / "toy").mkdir()
    toy = write_toy_fashion_mnist(tmp_path / "toy", 128, 16)
    root = Path(__file__).resolve().parents[2]
    outs = {}
    for n in ("1", "2"):
        cwd = tmp_path / f"threads{n}"
        cwd.mkdir()
        env = dict(os.environ, PYTHONPATH=str(root), NUMBA_NUM_THREADS=n)
        subprocess.run([sys.executable, "-m", "npquant", "golden", "cnn", "out", "--images", "8",
                        "--data-dir", str(toy), "--calib-batches", "2", "--calib-batch-size",
                        "32"], cwd=cwd, env=env, check=True, capture_output=True)
        outs[n] = {p.name: p.read_bytes() for p in sorted((cwd / "out").iterdir())}
    assert outs["1"].keys() == outs["2"].keys()
    assert [f for f in outs["1"] if outs["1"][f] != outs["2"][f]] == []
