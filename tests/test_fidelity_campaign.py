"""tools/fidelity.py's campaign: chunks stored as measured, summed for the page, and a second run
over the same JSON measures nothing already stored (resumable)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import require

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fidelity  # noqa: E402

from npquant.testing.oracles import COMPARISONS, Tally  # noqa: E402


def test_merge_tallies_sums_counts_and_keeps_the_largest_difference():
    a = Tally(cases=3, agree=2, elements=30, elements_differ=1, max_abs_diff=1.0,
              first_failure="case a")
    b = Tally(cases=2, agree=2, elements=10, declined=1)
    m = fidelity.merge_tallies([b, a])
    assert (m.cases, m.agree, m.elements, m.elements_differ, m.declined) == (5, 4, 40, 1, 1)
    assert m.max_abs_diff == 1.0 and m.first_failure == "case a"


def test_campaign_stores_chunks_and_resumes(tmp_path, monkeypatch):
    require("onnxruntime")
    require("onnx")
    row = next(c for c in COMPARISONS if c.id == "onnxruntime-cpu-DequantizeLinear int8")
    path = tmp_path / "campaign.json"
    camp = fidelity.Campaign(path)
    fidelity.run_campaign(camp, [row], ["native"], cases=6, chunk=3, seed=7, until=None)
    stored = json.loads(path.read_text())["rows"][f"native|{row.id}"]
    assert sorted(stored) == ["7", "8"]  # two chunks, seeded 7 and 8
    total = fidelity.Campaign(path).total("native", row.id)
    assert total.cases == 6 and total.agree == 6
    calls = []
    monkeypatch.setattr(fidelity, "measure", lambda *a, **k: calls.append(a))
    fidelity.run_campaign(fidelity.Campaign(path), [row], ["native"], cases=6, chunk=3, seed=7,
                          until=None)
    assert calls == []  # every chunk was stored: nothing to measure
    # a third chunk is missing, but ``until`` has come (00:00 UTC always has): nothing starts
    fidelity.run_campaign(fidelity.Campaign(path), [row], ["native"], cases=9, chunk=3, seed=7,
                          until="00:00")
    assert calls == [] and "9" not in fidelity.Campaign(path).chunks("native", row.id)


def test_campaign_refuses_chunks_of_another_host_or_versions(tmp_path):
    path = tmp_path / "campaign.json"
    vers = {"onnxruntime": "1.32.0", "torch": "2.13.0+cpu"}
    host = {"cpu_model": "AMD EPYC", "simd_flags": ["avx2", "avx512_vnni"], "onednn": "x"}
    fidelity.Campaign(path, versions=vers, native_host=host).add("avx2", "row", 0,
                                                                 Tally(cases=1, agree=1))
    stored = json.loads(path.read_text())
    assert stored["versions"] == vers and stored["native_host"] == host
    fidelity.Campaign(path, versions=dict(vers), native_host=dict(host))  # same: resumes
    other_cpu = {**host, "simd_flags": ["avx2"]}
    with pytest.raises(SystemExit, match=r"native host.*simd_flags.*avx512_vnni"):
        fidelity.Campaign(path, versions=vers, native_host=other_cpu)
    # emulated CPUs are the same on every host: without native chunks another CPU may add
    fidelity.Campaign(path, versions=vers, native_host=None)
    with pytest.raises(SystemExit, match=r"versions.*onnxruntime"):
        fidelity.Campaign(path, versions={**vers, "onnxruntime": "1.33.0"})


def test_tell_apart_section_lists_every_differing_pair_with_its_rows():
    data = {"draws": 100, "keep": 10, "seconds": 1, "native_host": {"cpu_model": "test CPU"},
            "rows": {"tflite-reference-ADD": {
                "op": "ADD", "path": "reference", "framework": "tflite", "profile": "tflite",
                "rivals": {"tflite-optimized": {"found": 3, "sides_with_profile": 3,
                                                "sides_with_rival": 0, "declined": 0}}}}}
    lines = fidelity.tell_apart_section(data)
    pair = [line for line in lines if line.startswith("| `tflite` / `tflite-optimized` |")]
    assert len(pair) == 1 and "ADD reference (3: 3 as `tflite`)" in pair[0]
    assert "add_inputs" in pair[0]
    missing = [line for line in lines if line.startswith("| `tflite` / `tflite-xnnpack` |")]
    assert len(missing) == 1 and "not told apart" in missing[0]
    assert not any("`onnxruntime` / `tflite`" in line for line in lines)


def test_merge_joins_columns_measured_apart(tmp_path):
    vers = {"onnxruntime": "1.32.0"}
    host = {"cpu_model": "AMD EPYC", "simd_flags": ["avx2", "avx512_vnni"], "onednn": "x"}
    main, arm, avx2 = (tmp_path / f"{n}.json" for n in ("main", "arm", "avx2"))
    fidelity.Campaign(main, versions=vers, native_host=host).add(
        "native", "row", 0, Tally(cases=3, agree=3))
    for path, cpu in ((arm, "aarch64"), (avx2, "avx2")):
        camp = fidelity.Campaign(path, versions=vers)
        camp.add(cpu, "row", 0, Tally(cases=3, agree=3))
        camp.add(cpu, "row", 1, Tally(cases=3, agree=2, elements_differ=1, max_abs_diff=1.0))
    camp = fidelity.Campaign(main)
    assert camp.merge(fidelity.Campaign(arm)) == 2
    assert camp.merge(fidelity.Campaign(avx2)) == 2
    assert camp.merge(fidelity.Campaign(avx2)) == 0  # already there, the same tallies
    again = fidelity.Campaign(main)  # written to the file
    assert again.total("aarch64", "row").cases == 6 and again.total("avx2", "row").agree == 5
    assert again.total("native", "row").cases == 3 and again.data["native_host"] == host


def test_merge_refuses_what_cannot_be_summed(tmp_path):
    vers = {"onnxruntime": "1.32.0"}
    host = {"cpu_model": "AMD EPYC", "simd_flags": ["avx2", "avx512_vnni"], "onednn": "x"}
    main = tmp_path / "main.json"
    fidelity.Campaign(main, versions=vers, native_host=host).add(
        "avx2", "row", 0, Tally(cases=3, agree=3))

    def other(name, versions=vers, native_host=None, cpu="avx2", tally=None):
        path = tmp_path / f"{name}.json"
        fidelity.Campaign(path, versions=versions, native_host=native_host).add(
            cpu, "row", 0, tally or Tally(cases=3, agree=3))
        return fidelity.Campaign(path)

    camp = fidelity.Campaign(main)
    with pytest.raises(SystemExit, match="other versions"):
        camp.merge(other("vers", versions={"onnxruntime": "1.31.0"}))
    with pytest.raises(SystemExit, match="chunk 0 of avx2\\|row differs"):
        camp.merge(other("tally", tally=Tally(cases=3, agree=2)))
    intel = {**host, "cpu_model": "Intel Xeon"}
    with pytest.raises(SystemExit, match="other native host"):
        camp.merge(other("native", native_host=intel, cpu="native"))
    # emulated chunks measured on another machine are the same emulated CPU: merged
    assert camp.merge(other("emulated", native_host=intel, cpu="aarch64")) == 1
    assert fidelity.Campaign(main).data["native_host"] == host
