"""Same model, same images: byte-identical golden files across runs, numba thread counts and the
fast (VNNI) / portable kernel paths."""

from __future__ import annotations

from pathlib import Path

import numba
import pytest
from golden_helpers import small_model

from npquant.golden import write_golden
from npquant.integer import fast_gemm


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
